// The NCCL process group (see strata/distributed.h: new_nccl_group): collectives on the CUDA
// tensors of one device per rank. The rules it keeps:
// - Ordering: at the call, an event is recorded on the CUDA backend's stream (where the caller's
//   kernels run); the NCCL call goes on the group's own stream behind that event, so it reads
//   what those kernels wrote while later kernels run beside it. A second event marks its end.
// - Several ranks: a collective's description (a Header) first goes to every rank over the
//   bootstrap group (an all_gather of int64s, started at the call, so it keeps the program's
//   order); the group's thread launches the NCCL call once every rank's description is in and
//   they agree, and fails the collective on every rank alike, with no NCCL call, when they
//   differ. One rank alone launches at the call.
// - The group's thread polls the end events (cudaEventQuery, sleeping briefly when nothing moves)
//   and NCCL's asynchronous errors, completes the Work handles and drops the tensors it held:
//   they stay alive until the device is done with them.
// - A timeout (Work::wait), an NCCL error or a CUDA error breaks the group: the communicator is
//   aborted (ncclCommAbort), pending collectives fail and later calls fail.
// NCCL forbids concurrent calls on one communicator: every call on it is made under comm_mutex_.
#include <memory>
#include <string>

#include "entry_points.h"
#include "strata/distributed.h"
#include "strata/error.h"

#if STRATA_WITH_NCCL
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "cuda_backend.h"
#include "distributed/work.h"
#include "internal.h"
#endif

namespace strata::cuda {

#if STRATA_WITH_NCCL

namespace {

using detail::concat;
using distributed::ProcessGroup;
using distributed::ProcessGroupOptions;
using distributed::ReduceOp;
using distributed::Work;

using Kind = distributed::CollectiveKind;
using Header = distributed::CollectiveHeader;
using distributed::kHeaderWords;

std::string nccl_status_string(ncclResult_t status) { return ncclGetErrorString(status); }

// "unhandled cuda error (...)" plus NCCL's own last message when it has one.
std::string nccl_failure_text(ncclResult_t status, ncclComm_t comm) {
  std::string text = ncclGetErrorString(status);
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') text += concat(" (", last, ")");
  return text;
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
    case DType::Float16:
      return ncclFloat16;
    case DType::BFloat16:
      return ncclBfloat16;
    case DType::Int32:
      return ncclInt32;
    case DType::Int64:
      return ncclInt64;
    case DType::UInt8:
    case DType::Bool:
      return ncclUint8;
  }
  return ncclUint8;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Avg:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

// DeviceGuard for destructors and failure paths, which must not throw: errors are ignored.
class QuietDeviceGuard {
 public:
  explicit QuietDeviceGuard(int device) : device_(device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device_) static_cast<void>(cudaSetDevice(device_));
  }
  ~QuietDeviceGuard() {
    if (previous_ >= 0 && previous_ != device_) static_cast<void>(cudaSetDevice(previous_));
  }
  QuietDeviceGuard(const QuietDeviceGuard&) = delete;
  QuietDeviceGuard& operator=(const QuietDeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = -1;
};

// One collective, from the call to its completion.
struct Op {
  Header header;
  Tensor send;     // all_gather's and reduce_scatter's input (read)
  Tensor receive;  // written: in place (all_reduce, broadcast) or the output
  ReduceOp op = ReduceOp::Sum;
  std::shared_ptr<Work::State> state;
  cudaEvent_t ready = nullptr;  // recorded on the CUDA backend's stream at the call
  cudaEvent_t done = nullptr;   // recorded on the group's stream after the NCCL call
  bool launched = false;        // the NCCL call went (the device may write `receive`)
  // Several ranks: this rank's header and every rank's, gathered over the bootstrap group.
  Tensor my_header;    // [kHeaderWords] int64, cpu
  Tensor all_headers;  // [size * kHeaderWords] int64, cpu
  Work check;
};

class NcclProcessGroup final : public ProcessGroup {
 public:
  NcclProcessGroup(std::shared_ptr<ProcessGroup> bootstrap, Device device,
                   ProcessGroupOptions options)
      : options_(options), device_(device), bootstrap_(std::move(bootstrap)) {
    if (bootstrap_ != nullptr) {
      rank_ = bootstrap_->rank();
      size_ = bootstrap_->size();
    }
    backend_stream_ = static_cast<CudaBackend&>(cuda::backend(device_.index)).stream();
    const ncclUniqueId id = share_unique_id();
    DeviceGuard guard(device_.index);
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclComm_t comm = nullptr;
    const ncclResult_t status = ncclCommInitRank(&comm, size_, id, rank_);
    if (status != ncclSuccess) {
      static_cast<void>(cudaStreamDestroy(stream_));
      STRATA_CHECK(false, "new_nccl_group: ncclCommInitRank (rank ", rank_, " of ", size_, " on ",
                   device_.str(), ") failed: ", nccl_failure_text(status, nullptr));
    }
    comm_.store(comm);
    try {
      barrier_buffer_ = zeros({1}, TensorOptions(kFloat32).device(device_));
      worker_ = std::thread([this] { run(); });
    } catch (...) {
      static_cast<void>(ncclCommAbort(comm_.exchange(nullptr)));
      static_cast<void>(cudaStreamDestroy(stream_));
      throw;
    }
  }

  // Lets the collectives already called finish (for at most the timeout), then destroys the
  // communicator; a broken group's was aborted.
  ~NcclProcessGroup() override {
    bool drained = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      stopping_ = true;
      wake_.notify_all();
      drained = drained_.wait_for(lock, options_.timeout, [&] { return worker_done_; });
    }
    if (!drained) {
      break_group("it was destroyed with collectives that did not finish within the timeout");
    }
    wake_.notify_all();
    worker_.join();
    QuietDeviceGuard guard(device_.index);
    if (ncclComm_t comm = comm_.exchange(nullptr)) {
      // Every collective has finished here (otherwise the group broke and aborted it).
      const ncclResult_t status = ncclCommDestroy(comm);
      if (status != ncclSuccess) {
        std::fprintf(stderr, "strata: rank %d: ncclCommDestroy failed: %s\n", rank_,
                     ncclGetErrorString(status));
      }
    }
    // NOTE: the collectives of a broken group may still be on the device (an aborted NCCL
    // kernel ends on its own time); freeing their memory could hand it to new tensors while
    // they write it. When the stream is not idle that memory is kept until the process ends.
    if (cudaStreamQuery(stream_) != cudaSuccess && (!abandoned_.empty() || broken_)) {
      abandoned_.push_back(barrier_buffer_);
      static_cast<void>(new std::vector<Tensor>(std::move(abandoned_)));  // deliberately leaked
    }
    abandoned_.clear();
    barrier_buffer_ = Tensor();
    for (cudaEvent_t event : all_events_) static_cast<void>(cudaEventDestroy(event));
    static_cast<void>(cudaStreamDestroy(stream_));
    static_cast<void>(cudaGetLastError());  // nothing above may leave an error for the caller
  }

  NcclProcessGroup(const NcclProcessGroup&) = delete;
  NcclProcessGroup& operator=(const NcclProcessGroup&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "nccl"; }
  const ProcessGroupOptions& options() const override { return options_; }

  Work all_reduce(const Tensor& tensor, ReduceOp op) override {
    check_tensor("all_reduce", "tensor", tensor);
    check_reducible("all_reduce", tensor, op);
    return enqueue(Kind::AllReduce, Tensor(), tensor, tensor.numel(), static_cast<int64_t>(op), op,
                   tensor.dtype());
  }

  Work broadcast(const Tensor& tensor, int root) override {
    check_tensor("broadcast", "tensor", tensor);
    STRATA_CHECK(root >= 0 && root < size_, "broadcast: root ", root,
                 " is not a rank of this group (size ", size_, ")");
    return enqueue(Kind::Broadcast, Tensor(), tensor, tensor.numel(), root, ReduceOp::Sum,
                   tensor.dtype());
  }

  Work all_gather(const Tensor& output, const Tensor& input) override {
    check_tensor("all_gather", "input", input);
    check_tensor("all_gather", "output", output);
    check_concatenation("all_gather", output, input);
    return enqueue(Kind::AllGather, input, output, input.numel(), 0, ReduceOp::Sum, input.dtype());
  }

  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    check_tensor("reduce_scatter", "input", input);
    check_tensor("reduce_scatter", "output", output);
    check_reducible("reduce_scatter", input, op);
    check_concatenation("reduce_scatter", input, output);
    return enqueue(Kind::ReduceScatter, input, output, output.numel(), static_cast<int64_t>(op), op,
                   output.dtype());
  }

  // An all-reduce of one float of the group's own: it ends once every rank has called it.
  Work barrier() override {
    return enqueue(Kind::Barrier, Tensor(), barrier_buffer_, 0, 0, ReduceOp::Sum, kFloat32);
  }

 private:
  // ---- construction --------------------------------------------------------------------------

  // Rank 0's ncclGetUniqueId, on every rank. The bytes travel with a flag saying whether rank 0
  // made the id, so that the other ranks fail with it rather than wait in ncclCommInitRank.
  ncclUniqueId share_unique_id() {
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    ncclResult_t made = ncclSuccess;
    if (rank_ == 0) made = ncclGetUniqueId(&id);
    if (size_ > 1) {
      const auto bytes_of_id = static_cast<int64_t>(sizeof(id));
      Tensor bytes = zeros({bytes_of_id + 1}, TensorOptions(kUInt8));
      uint8_t* data = bytes.data<uint8_t>();
      if (rank_ == 0) {
        std::memcpy(data, &id, sizeof(id));
        data[sizeof(id)] = made == ncclSuccess ? 1 : 0;
      }
      try {
        bootstrap_->broadcast(bytes, 0).wait(options_.timeout);
      } catch (const Error& e) {
        STRATA_CHECK(false, "new_nccl_group: sharing the NCCL unique id over the bootstrap group (",
                     bootstrap_->backend_name(), ", rank ", rank_, " of ", size_,
                     ") failed: ", e.what());
      }
      STRATA_CHECK(data[sizeof(id)] == 1, "new_nccl_group: rank 0 could not make the NCCL ",
                   "unique id: ",
                   rank_ == 0 ? nccl_failure_text(made, nullptr) : std::string("see its error"));
      std::memcpy(&id, data, sizeof(id));
    }
    STRATA_CHECK(made == ncclSuccess,
                 "new_nccl_group: ncclGetUniqueId failed: ", nccl_failure_text(made, nullptr));
    return id;
  }

  // ---- the caller's side ---------------------------------------------------------------------

  void check_tensor(const char* op, const char* what, const Tensor& t) const {
    detail::check_defined(t, op, what);
    STRATA_CHECK(
        t.device() == device_, op, ": the ", what, " must be on ", device_.str(),
        ", the NCCL group's device, got ", detail::describe(t),
        t.device().is_cpu() ? " (move it with .to(device); an MPI group takes CPU tensors)" : "");
    STRATA_CHECK(t.is_contiguous(), op, ": the ", what, " must be contiguous, got ",
                 detail::describe(t));
  }

  void check_reducible(const char* op, const Tensor& t, ReduceOp reduce) const {
    STRATA_CHECK(t.dtype() != DType::Bool, op,
                 ": the NCCL group reduces f32, f64, f16, bf16, i32, i64 and uint8 tensors, got ",
                 detail::describe(t), " (reduce a uint8 copy)");
    STRATA_CHECK(reduce != ReduceOp::Avg || is_floating(t.dtype()), op,
                 ": avg needs a floating tensor, got ", detail::describe(t));
  }

  void check_concatenation(const char* op, const Tensor& whole, const Tensor& part) const {
    distributed::check_concatenation(op, whole, part, size_);
  }


  Work enqueue(Kind kind, const Tensor& send, const Tensor& receive, int64_t count,
               int64_t argument, ReduceOp op, DType dtype) {
    auto item = std::make_shared<Op>();
    item->header.kind = static_cast<int64_t>(kind);
    item->header.dtype = static_cast<int64_t>(dtype);
    item->header.count = count;
    item->header.argument = argument;
    item->send = send;
    item->receive = receive;
    item->op = op;
    if (size_ > 1) {
      item->my_header = Tensor::empty({kHeaderWords}, TensorOptions(kInt64));
      item->all_headers = Tensor::empty({size_ * kHeaderWords}, TensorOptions(kInt64));
    }
    auto state = std::make_shared<Work::State>();
    state->timeout = options_.timeout;
    state->when_broken = "its NCCL communicator is aborted; make a new group to go on";
    item->state = state;

    DeviceGuard guard(device_.index);
    std::unique_lock<std::mutex> lock(mutex_);
    STRATA_CHECK(!broken_, distributed::collective_name(kind), ": the process group (nccl, rank ", rank_, " of ",
                 size_, ") is broken: ", broken_reason_);
    // The events come before the call is numbered: a CUDA failure here throws and leaves the
    // group as it was.
    take_events_locked(*item);
    const cudaError_t recorded = cudaEventRecord(item->ready, backend_stream_);
    if (recorded != cudaSuccess) {
      give_back_events_locked(*item);
      STRATA_CHECK(false, distributed::collective_name(kind), ": cudaEventRecord on the CUDA backend's stream of ",
                   device_.str(), " failed: ", cuda_status_string(recorded));
    }
    item->header.sequence = ++sequence_;
    state->description = concat(distributed::describe(item->header), " on rank ", rank_, " of ", size_,
                                " (nccl, ", device_.str(), ")");
    state->on_timeout = [this, weak = std::weak_ptr<Op>(item)] {
      return break_on_timeout(weak.lock());
    };
    if (kind != Kind::Barrier && receive.numel() > 0) receive.bump_version();

    if (size_ == 1) {
      const std::string failure = launch(*item);
      if (failure.empty()) {
        in_flight_.push_back(item);
      } else {
        lock.unlock();
        fail_and_break(item, failure);
        return Work(state);
      }
    } else {
      std::memcpy(item->my_header.raw_data(), &item->header, sizeof(Header));
      try {
        item->check = bootstrap_->all_gather(item->all_headers, item->my_header);
      } catch (const Error& e) {
        lock.unlock();
        fail_and_break(item, concat("the bootstrap group (", bootstrap_->backend_name(),
                                    ") could not compare it across the ranks: ", e.what()));
        return Work(state);
      }
      checking_.push_back(item);
    }
    lock.unlock();
    wake_.notify_all();
    return Work(state);
  }

  // Called by a timed-out wait(): breaks the group and says where the collective was.
  std::string break_on_timeout(const std::shared_ptr<Op>& item) {
    std::string where;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto holds = [&](const std::deque<std::shared_ptr<Op>>& queue) {
        return item && std::find(queue.begin(), queue.end(), item) != queue.end();
      };
      if (holds(checking_) && checking_.front() == item) {
        where =
            ": not every rank's description of it arrived over the bootstrap group (a rank "
            "never reached it: it died, hung, or called other collectives)";
      } else if (holds(checking_)) {
        where = ": earlier collectives of this rank had not finished";
      } else if (holds(in_flight_)) {
        where =
            ": it was launched on the device but did not finish (a rank never reached it, or "
            "the device is stuck)";
      }
    }
    break_group(concat(item ? distributed::describe(item->header) : std::string("a collective"),
                       " timed out", where));
    return where;
  }

  // ---- shared by both sides ------------------------------------------------------------------

  // Two events for `item` from the pool (or new ones); with mutex_ held and the group's device
  // current. Throws, keeping nothing, when CUDA cannot make one.
  void take_events_locked(Op& item) {
    for (cudaEvent_t* slot : {&item.ready, &item.done}) {
      if (!free_events_.empty()) {
        *slot = free_events_.back();
        free_events_.pop_back();
        continue;
      }
      const cudaError_t status = cudaEventCreateWithFlags(slot, cudaEventDisableTiming);
      if (status != cudaSuccess) {
        *slot = nullptr;
        give_back_events_locked(item);
        STRATA_CHECK(false, distributed::describe(item.header), ": cudaEventCreateWithFlags on ",
                     device_.str(), " failed: ", cuda_status_string(status));
      }
      all_events_.push_back(*slot);
    }
  }

  // NOTE: an event may go back while a record of it is still pending on the device (a failed
  // collective's): recording it again replaces that record, so reuse is safe.
  void give_back_events_locked(Op& item) {
    for (cudaEvent_t* slot : {&item.ready, &item.done}) {
      if (*slot != nullptr) free_events_.push_back(*slot);
      *slot = nullptr;
    }
  }

  // Enqueues the collective on stream_ behind its ready event and records its done event.
  // Empty when it went, else what failed. Runs with the group's device current.
  std::string launch(Op& item) {
    std::lock_guard<std::timed_mutex> lock(comm_mutex_);
    ncclComm_t comm = comm_.load();
    if (comm == nullptr) return "the NCCL communicator was aborted";
    cudaError_t status = cudaStreamWaitEvent(stream_, item.ready, 0);
    if (status != cudaSuccess) return "cudaStreamWaitEvent failed: " + cuda_status_string(status);
    const auto kind = static_cast<Kind>(item.header.kind);
    const auto count = static_cast<size_t>(item.header.count);
    const ncclDataType_t type = nccl_type(static_cast<DType>(item.header.dtype));
    void* receive = item.receive.raw_data();
    const char* call = "";
    ncclResult_t result = ncclSuccess;
    if (kind == Kind::Barrier) {
      call = "ncclAllReduce (barrier)";
      result = ncclAllReduce(receive, receive, 1, ncclFloat32, ncclSum, comm, stream_);
    } else if (count > 0) {
      // NOTE: no elements, no call: every rank skips alike (the counts were compared), and an
      // empty tensor's data pointer may be null, which NCCL refuses.
      switch (kind) {
        case Kind::AllReduce:
          call = "ncclAllReduce";
          result = ncclAllReduce(receive, receive, count, type, nccl_op(item.op), comm, stream_);
          break;
        case Kind::Broadcast:
          call = "ncclBroadcast";
          result = ncclBroadcast(receive, receive, count, type,
                                 static_cast<int>(item.header.argument), comm, stream_);
          break;
        case Kind::AllGather:
          call = "ncclAllGather";
          result = ncclAllGather(item.send.raw_data(), receive, count, type, comm, stream_);
          break;
        case Kind::ReduceScatter:
          call = "ncclReduceScatter";
          result = ncclReduceScatter(item.send.raw_data(), receive, count, type, nccl_op(item.op),
                                     comm, stream_);
          break;
        case Kind::Barrier:
          break;
      }
    }
    if (result != ncclSuccess) return concat(call, " failed: ", nccl_failure_text(result, comm));
    item.launched = true;
    status = cudaEventRecord(item.done, stream_);
    if (status != cudaSuccess) {
      return "cudaEventRecord after the NCCL call failed: " + cuda_status_string(status);
    }
    return {};
  }

  // Marks the group broken (the first reason stays), wakes its thread and aborts the
  // communicator. The thread then fails what is pending.
  void break_group(const std::string& reason) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (broken_) return;
      broken_ = true;
      broken_reason_ = reason;
    }
    wake_.notify_all();
    abort_comm();
  }

  // ncclCommAbort, once. NOTE: NCCL forbids concurrent calls on a communicator, so the abort
  // waits for comm_mutex_; but a launch can block inside NCCL (a first collective connects to
  // its peers and waits for them), and aborting from another thread is how NCCL ends such a
  // call: after a few seconds without the mutex the abort goes ahead (as PyTorch's watchdog).
  void abort_comm() {
    std::unique_lock<std::timed_mutex> lock(comm_mutex_, std::defer_lock);
    static_cast<void>(lock.try_lock_for(std::chrono::seconds(5)));
    ncclComm_t comm = comm_.exchange(nullptr);
    if (comm == nullptr) return;
    QuietDeviceGuard guard(device_.index);
    const ncclResult_t status = ncclCommAbort(comm);
    if (status != ncclSuccess) {
      std::fprintf(stderr, "strata: rank %d: ncclCommAbort failed: %s\n", rank_,
                   ncclGetErrorString(status));
    }
  }

  // A collective that is on no queue (any more) fails and the group breaks.
  void fail_and_break(const std::shared_ptr<Op>& item, const std::string& failure) {
    const std::string message = concat(item->state->description, " failed: ", failure);
    break_group(message);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      give_back_events_locked(*item);
      if (item->launched) {
        abandoned_.push_back(item->send);
        abandoned_.push_back(item->receive);
      }
    }
    item->send = Tensor();
    item->receive = Tensor();
    item->state->complete(message);
  }

  // ---- the group's thread --------------------------------------------------------------------

  void run() {
    const cudaError_t selected = cudaSetDevice(device_.index);
    if (selected != cudaSuccess) {
      break_group(concat("its thread could not select ", device_.str(), ": ",
                         cuda_status_string(selected)));
    }
    int idle_polls = 0;
    auto next_error_check = std::chrono::steady_clock::now();
    while (true) {
      std::shared_ptr<Op> checking, flying;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] {
          return broken_ || stopping_ || !checking_.empty() || !in_flight_.empty();
        });
        if (broken_ || (checking_.empty() && in_flight_.empty())) break;  // or stopping, done
        if (!checking_.empty()) checking = checking_.front();
        if (!in_flight_.empty()) flying = in_flight_.front();
      }
      bool moved = false;
      if (flying) moved = poll_done(flying);
      if (checking && checking->check.is_completed()) {
        finish_check(checking);
        moved = true;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_error_check) {
        check_async_error();
        next_error_check = now + std::chrono::milliseconds(20);
      }
      if (moved) {
        idle_polls = 0;
      } else if (++idle_polls > 2000) {
        // Nothing moved for a while (a long collective, or a late peer): sleep rather than take
        // a core from the ranks' own work.
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      } else {
        std::this_thread::yield();
      }
    }
    fail_remaining();
  }

  // True when the oldest collective on the device has finished (or failed).
  bool poll_done(const std::shared_ptr<Op>& item) {
    const cudaError_t status = cudaEventQuery(item->done);
    if (status == cudaErrorNotReady) return false;
    if (status != cudaSuccess) {
      break_group(
          concat(item->state->description, " failed on the device: ", cuda_status_string(status)));
      return true;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      in_flight_.pop_front();  // only this thread takes from the queues
      give_back_events_locked(*item);
    }
    item->send = Tensor();
    item->receive = Tensor();
    item->state->complete();
    return true;
  }

  // Every rank's header of the oldest collective not yet launched is in: launch it when they
  // agree, fail it (on every rank alike) when they differ.
  void finish_check(const std::shared_ptr<Op>& item) {
    try {
      item->check.wait();
    } catch (const Error& e) {
      break_group(
          concat(distributed::describe(item->header),
                 ": comparing it across the ranks over the bootstrap group failed: ", e.what()));
      return;  // fail_remaining fails it
    }
    const std::string mismatch = compare_headers(*item);
    const std::string failure = mismatch.empty() ? launch(*item) : std::string();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      checking_.pop_front();
      if (mismatch.empty() && failure.empty()) {
        in_flight_.push_back(item);
        return;
      }
      if (!mismatch.empty()) give_back_events_locked(*item);
    }
    if (!mismatch.empty()) {
      item->send = Tensor();
      item->receive = Tensor();
      item->state->complete(mismatch);
    } else {
      fail_and_break(item, failure);
    }
  }

  // An error listing what every rank called; empty when all agree.
  std::string compare_headers(const Op& item) const {
    std::vector<Header> headers(static_cast<size_t>(size_));
    std::memcpy(headers.data(), item.all_headers.raw_data(), headers.size() * sizeof(Header));
    return distributed::compare_headers(item.header, headers, rank_, "nccl");
  }


  // NCCL's asynchronous errors (a peer gone, a network failure) break the group at once
  // rather than at the timeout.
  void check_async_error() {
    std::string failure;
    {
      std::unique_lock<std::timed_mutex> lock(comm_mutex_, std::try_to_lock);
      if (!lock.owns_lock()) return;  // a launch or an abort is under way: next time
      ncclComm_t comm = comm_.load();
      if (comm == nullptr) return;
      ncclResult_t async = ncclSuccess;
      const ncclResult_t status = ncclCommGetAsyncError(comm, &async);
      if (status != ncclSuccess) {
        failure = "ncclCommGetAsyncError failed: " + nccl_failure_text(status, comm);
      } else if (async != ncclSuccess && async != ncclInProgress) {
        failure = "NCCL reported an asynchronous error: " + nccl_failure_text(async, comm);
      }
    }
    if (!failure.empty()) break_group(failure);
  }

  // The thread is stopping: fail whatever is left (a broken group's), so no waiter hangs.
  void fail_remaining() {
    std::vector<std::shared_ptr<Op>> left;
    std::string reason;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      reason = "the process group is broken: " + broken_reason_;
      left.assign(checking_.begin(), checking_.end());
      left.insert(left.end(), in_flight_.begin(), in_flight_.end());
      checking_.clear();
      in_flight_.clear();
      for (const auto& item : left) {
        give_back_events_locked(*item);
        if (item->launched) {
          abandoned_.push_back(item->send);
          abandoned_.push_back(item->receive);
        }
      }
    }
    for (const auto& item : left) {
      item->send = Tensor();
      item->receive = Tensor();
      item->state->complete(reason);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      worker_done_ = true;
    }
    drained_.notify_all();
  }

  ProcessGroupOptions options_;
  Device device_;
  std::shared_ptr<ProcessGroup> bootstrap_;  // null for one process
  int rank_ = 0, size_ = 1;
  cudaStream_t backend_stream_ = nullptr;  // the CUDA backend's, where the callers' kernels run
  cudaStream_t stream_ = nullptr;          // the group's own
  Tensor barrier_buffer_;                  // [1] f32 on the device

  std::timed_mutex comm_mutex_;  // held for every NCCL call on comm_ (see abort_comm)
  std::atomic<ncclComm_t> comm_{nullptr};

  std::mutex mutex_;  // guards everything below
  std::condition_variable wake_;
  std::condition_variable drained_;            // the thread has stopped
  std::deque<std::shared_ptr<Op>> checking_;   // headers being compared, in call order
  std::deque<std::shared_ptr<Op>> in_flight_;  // launched, in call (= stream) order
  std::vector<cudaEvent_t> free_events_;
  std::vector<cudaEvent_t> all_events_;  // destroyed with the group
  std::vector<Tensor> abandoned_;        // failed collectives' tensors the device may still use
  int64_t sequence_ = 0;
  bool stopping_ = false;
  bool broken_ = false;
  bool worker_done_ = false;
  std::string broken_reason_;
  std::thread worker_;
};

}  // namespace

bool nccl_built() { return true; }

std::shared_ptr<distributed::ProcessGroup> new_nccl_group(
    std::shared_ptr<distributed::ProcessGroup> bootstrap, Device device,
    const distributed::ProcessGroupOptions& options) {
  return std::make_shared<NcclProcessGroup>(std::move(bootstrap), device, options);
}

#else  // built without NCCL

bool nccl_built() { return false; }

std::shared_ptr<distributed::ProcessGroup> new_nccl_group(
    std::shared_ptr<distributed::ProcessGroup>, Device, const distributed::ProcessGroupOptions&) {
  STRATA_CHECK(false,
               "new_nccl_group: this Strata was built without NCCL (nccl.h not found in the CUDA "
               "toolkit; install NCCL and reconfigure with -DSTRATA_NCCL=ON)");
  return nullptr;
}

#endif

}  // namespace strata::cuda
