// The MPI process group (see strata/distributed.h). One thread per group makes every MPI call:
// it takes the collectives in call order and runs each in two phases on communicators of its
// own (duplicates of MPI_COMM_WORLD, so a program's own messages never mix with them):
//   1. check: each rank sends its collective's description (a Header) to every other rank and
//      receives theirs (nonblocking point-to-point, so a timeout can name who never sent);
//      any difference fails the collective on every rank alike;
//   2. data, once every rank's description has arrived (so every rank is there): the blocking
//      MPI collective (MPI_Allreduce, MPI_Bcast, ...) on this thread; Avg then divides the sum.
// Polling the check phase backs off to short sleeps when nothing moves, so waiting for a late
// rank costs no core.
// CUDA tensors are staged through a pinned host copy (copied back by Work::wait()).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../internal.h"
#include "strata/distributed.h"
#include "strata/error.h"
#include "work.h"

#if STRATA_WITH_MPI
#include <mpi.h>
#endif

namespace strata::distributed {

#if STRATA_WITH_MPI

namespace {

using Kind = CollectiveKind;
using Header = CollectiveHeader;

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
    case DType::Int32:
      return MPI_INT32_T;
    case DType::UInt8:
    case DType::Bool:
      return MPI_UINT8_T;
    case DType::Float16:
    case DType::BFloat16:
      return MPI_UINT16_T;  // moved as bits, never reduced
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_OP_NULL;
}

// data[i] /= divisor for a floating tensor's `count` elements.
void divide(const Tensor& t, int64_t count, int divisor) {
  if (t.dtype() == DType::Float32) {
    float* data = static_cast<float*>(t.raw_data());
    const float d = static_cast<float>(divisor);
    for (int64_t i = 0; i < count; ++i) data[i] /= d;
  } else {
    double* data = static_cast<double*>(t.raw_data());
    const double d = static_cast<double>(divisor);
    for (int64_t i = 0; i < count; ++i) data[i] /= d;
  }
}

// MPI initialized by Strata is finalized at exit, once no group is alive.
std::mutex g_mpi_mutex;
bool g_we_initialized = false;
int g_live_groups = 0;

void finalize_at_exit() {
  std::lock_guard<std::mutex> lock(g_mpi_mutex);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_we_initialized && !finalized && g_live_groups == 0) MPI_Finalize();
}

void ensure_mpi_initialized() {
  std::lock_guard<std::mutex> lock(g_mpi_mutex);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  STRATA_CHECK(!finalized, "new_mpi_group: MPI was already finalized in this process");
  int provided = 0;
  if (!initialized) {
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided);
    STRATA_CHECK(code == MPI_SUCCESS,
                 "new_mpi_group: MPI_Init_thread failed: ", mpi_error_text(code));
    g_we_initialized = true;
    std::atexit(finalize_at_exit);
  } else {
    MPI_Query_thread(&provided);
  }
  STRATA_CHECK(provided >= MPI_THREAD_SERIALIZED,
               "new_mpi_group: the MPI library gives thread level ", provided,
               ", below MPI_THREAD_SERIALIZED (", MPI_THREAD_SERIALIZED,
               "), which the group's own thread needs");
}

// One collective, from the call to its completion.
struct Op {
  Header header;
  Tensor send;     // all_gather's input, reduce_scatter's input (read)
  Tensor receive;  // written in place (all_reduce, broadcast) or the output
  ReduceOp op = ReduceOp::Sum;
  std::shared_ptr<Work::State> state;

  // The check phase: headers to and from every other rank.
  std::vector<Header> peer_headers;  // indexed by rank
  std::vector<MPI_Request> check_requests;
  std::vector<int> check_peers;  // the rank of each receive request (the first half)
  std::vector<bool> heard_from;  // by rank, set as headers arrive
  bool check_started = false;
};

class MpiProcessGroup final : public ProcessGroup {
 public:
  explicit MpiProcessGroup(ProcessGroupOptions options) : options_(options) {
    ensure_mpi_initialized();
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm_dup(MPI_COMM_WORLD, &check_comm_);
    MPI_Comm_dup(MPI_COMM_WORLD, &data_comm_);
    {
      std::lock_guard<std::mutex> lock(g_mpi_mutex);
      ++g_live_groups;
    }
    worker_ = std::thread([this] { run(); });
  }

  // Lets the collectives already called finish (for at most the timeout), then stops.
  ~MpiProcessGroup() override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      stopping_ = true;
      wake_.notify_all();
      if (!drained_.wait_for(lock, options_.timeout, [&] { return worker_done_; }) && !broken_) {
        broken_ = true;
        broken_reason_ =
            "it was destroyed with collectives that did not finish within the "
            "timeout";
      }
    }
    wake_.notify_all();
    worker_.join();
    if (broken_) {
      // Collectives are still pending on some rank: MPI cannot finish cleanly. End the job.
      std::fprintf(stderr, "strata: rank %d: process group broken (%s); aborting the job\n", rank_,
                   broken_reason_.c_str());
      std::fflush(stderr);
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    MPI_Comm_free(&check_comm_);
    MPI_Comm_free(&data_comm_);
    std::lock_guard<std::mutex> lock(g_mpi_mutex);
    --g_live_groups;
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend_name() const override { return "mpi"; }
  const ProcessGroupOptions& options() const override { return options_; }

  Work all_reduce(const Tensor& tensor, ReduceOp op) override {
    check_tensor("all_reduce", "tensor", tensor);
    check_reducible("all_reduce", tensor, op);
    return enqueue(Kind::AllReduce, Tensor(), tensor, tensor.numel(), static_cast<int64_t>(op), op,
                   tensor);
  }

  Work broadcast(const Tensor& tensor, int root) override {
    check_tensor("broadcast", "tensor", tensor);
    STRATA_CHECK(root >= 0 && root < size_, "broadcast: root ", root,
                 " is not a rank of this group (size ", size_, ")");
    return enqueue(Kind::Broadcast, Tensor(), tensor, tensor.numel(), root, ReduceOp::Sum, tensor);
  }

  Work all_gather(const Tensor& output, const Tensor& input) override {
    check_tensor("all_gather", "input", input);
    check_tensor("all_gather", "output", output);
    check_concatenation("all_gather", output, input);
    return enqueue(Kind::AllGather, input, output, input.numel(), 0, ReduceOp::Sum, output);
  }

  Work reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override {
    check_tensor("reduce_scatter", "input", input);
    check_tensor("reduce_scatter", "output", output);
    check_reducible("reduce_scatter", input, op);
    check_concatenation("reduce_scatter", input, output);
    return enqueue(Kind::ReduceScatter, input, output, output.numel(), static_cast<int64_t>(op), op,
                   output);
  }

  Work barrier() override {
    return enqueue(Kind::Barrier, Tensor(), Tensor(), 0, 0, ReduceOp::Sum, Tensor());
  }

 private:
  // ---- the caller's side -----------------------------------------------------------------

  void check_tensor(const char* op, const char* what, const Tensor& t) const {
    detail::check_defined(t, op, what);
    STRATA_CHECK(t.is_contiguous(), op, ": the ", what, " must be contiguous, got ",
                 detail::describe(t));
    STRATA_CHECK(t.numel() <= INT32_MAX, op, ": the ", what, " has ", t.numel(),
                 " elements, more than MPI's int count allows (", INT32_MAX, "); split it");
  }

  void check_reducible(const char* op, const Tensor& t, ReduceOp reduce) const {
    const DType dt = t.dtype();
    STRATA_CHECK(
        dt == DType::Float32 || dt == DType::Float64 || dt == DType::Int64 || dt == DType::Int32,
        op, ": the MPI group reduces f32, f64, i64 and i32 tensors, got ", detail::describe(t),
        " (reduce a float32 copy of a half-precision tensor)");
    STRATA_CHECK(reduce != ReduceOp::Avg || is_floating(dt), op,
                 ": avg needs a floating tensor, got ", detail::describe(t));
  }

  void check_concatenation(const char* op, const Tensor& whole, const Tensor& part) const {
    distributed::check_concatenation(op, whole, part, size_);
  }


  // A host copy of a CUDA tensor (the group moves host memory); `t` itself on the CPU.
  static Tensor on_host(const Tensor& t) {
    if (!t.defined() || t.device().is_cpu()) return t;
    return t.to(Device(DeviceType::CPU)).pin_memory();
  }

  Work enqueue(Kind kind, const Tensor& send, const Tensor& receive, int64_t count,
               int64_t argument, ReduceOp op, const Tensor& like) {
    auto item = std::make_shared<Op>();
    item->header.kind = static_cast<int64_t>(kind);
    item->header.dtype = like.defined() ? static_cast<int64_t>(like.dtype()) : 0;
    item->header.count = count;
    item->header.argument = argument;
    item->op = op;
    item->send = on_host(send);
    item->receive = on_host(receive);
    auto state = std::make_shared<Work::State>();
    state->timeout = options_.timeout;
    if (receive.defined() && !receive.device().is_cpu()) {
      state->finish = [device_tensor = receive, host = item->receive] {
        device_tensor.detach().copy_(host);
      };
    }
    item->state = state;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      STRATA_CHECK(!broken_, collective_name(kind), ": the process group (rank ", rank_, " of ", size_,
                   ") is broken: ", broken_reason_);
      item->header.sequence = ++sequence_;
      state->description = describe(item->header) + " on rank " + std::to_string(rank_) +
                           " of " + std::to_string(size_);
      state->on_timeout = [this, weak = std::weak_ptr<Op>(item)] {
        return break_on_timeout(weak.lock());
      };
      queue_.push_back(item);
    }
    wake_.notify_all();
    return Work(state);
  }

  // Called by a timed-out wait(): marks the group broken, says which ranks never arrived.
  std::string break_on_timeout(const std::shared_ptr<Op>& item) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string ranks;
    if (item && item->check_started) {
      std::vector<int> missing;
      for (int r = 0; r < size_; ++r) {
        if (r != rank_ && !item->heard_from[static_cast<size_t>(r)]) missing.push_back(r);
      }
      if (!missing.empty()) {
        ranks = missing.size() == 1 ? ": rank " : ": ranks ";
        for (size_t i = 0; i < missing.size(); ++i) {
          ranks += (i ? ", " : "") + std::to_string(missing[i]);
        }
        ranks += " never reached it (died, hung, or called other collectives)";
      } else {
        ranks = ": every rank reached it but the data exchange did not finish";
      }
    } else {
      ranks = ": earlier collectives of this rank had not finished";
    }
    if (!broken_) {
      broken_ = true;
      broken_reason_ = (item ? describe(item->header) : std::string("a collective")) +
                       " timed out" + ranks;
    }
    return ranks;
  }

  // ---- the group's thread ----------------------------------------------------------------

  void run() {
    std::shared_ptr<Op> current;
    int idle_polls = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (broken_) break;
        if (!current) {
          wake_.wait(lock, [&] { return stopping_ || broken_ || !queue_.empty(); });
          if (broken_ || queue_.empty()) break;  // broken, or stopping with nothing left
          current = queue_.front();
          queue_.pop_front();
        }
      }
      const bool moved = advance(*current);
      if (current->state->done) {
        current.reset();
        idle_polls = 0;
      } else if (moved) {
        idle_polls = 0;
      } else if (++idle_polls > 20000) {
        // Nothing moved for a while (a few ms of yielding): a peer is late. Sleep instead of
        // taking a core from the ranks' own computation.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      } else {
        std::this_thread::yield();
      }
    }
    // Broken: fail what is left, so no waiter hangs.
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string reason = "the process group is broken: " + broken_reason_;
    if (current && !current->state->done) current->state->complete(reason);
    for (const auto& item : queue_) item->state->complete(reason);
    queue_.clear();
    worker_done_ = true;
    drained_.notify_all();
  }

  // Moves `item` on as far as it can go without blocking; true when something happened. The
  // check phase is polled; once every description is in, the data phase runs to the end.
  bool advance(Op& item) {
    if (!item.check_started) {
      start_check(item);
      return true;
    }
    // Receives first: record who has been heard from (for a timeout's message).
    for (size_t i = 0; i < item.check_peers.size(); ++i) {
      const int peer = item.check_peers[i];
      if (item.heard_from[static_cast<size_t>(peer)]) continue;
      int done = 0;
      MPI_Test(&item.check_requests[i], &done, MPI_STATUS_IGNORE);
      if (done) {
        std::lock_guard<std::mutex> lock(mutex_);
        item.heard_from[static_cast<size_t>(peer)] = true;
      }
    }
    int all_done = 0;
    MPI_Testall(static_cast<int>(item.check_requests.size()), item.check_requests.data(), &all_done,
                MPI_STATUSES_IGNORE);
    if (!all_done) return false;
    const std::string mismatch = compare_headers(item);
    if (!mismatch.empty()) {
      item.state->complete(mismatch);
    } else {
      run_data(item);
    }
    return true;
  }

  void start_check(Op& item) {
    const int peers = size_ - 1;
    item.peer_headers.assign(static_cast<size_t>(size_), Header{});
    item.heard_from.assign(static_cast<size_t>(size_), false);
    item.check_requests.assign(static_cast<size_t>(2 * peers), MPI_REQUEST_NULL);
    constexpr int kHeaderTag = 1;
    const int words = static_cast<int>(sizeof(Header) / sizeof(int64_t));
    int i = 0;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      item.check_peers.push_back(r);
      MPI_Irecv(&item.peer_headers[static_cast<size_t>(r)], words, MPI_INT64_T, r, kHeaderTag,
                check_comm_, &item.check_requests[static_cast<size_t>(i++)]);
    }
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Isend(&item.header, words, MPI_INT64_T, r, kHeaderTag, check_comm_,
                &item.check_requests[static_cast<size_t>(i++)]);
    }
    item.peer_headers[static_cast<size_t>(rank_)] = item.header;
    std::lock_guard<std::mutex> lock(mutex_);
    item.check_started = true;
  }

  // An error listing what every rank called; empty when all agree.
  std::string compare_headers(const Op& item) const {
    return distributed::compare_headers(item.header, item.peer_headers, rank_, "mpi");
  }


  // The data phase, once every rank has been heard from: a blocking MPI collective on this
  // thread (the caller's wait() keeps its own timeout). NOTE: blocking, not MPI_I* polled with
  // MPI_Test: Open MPI's nonblocking collectives progress only inside MPI calls and use other
  // algorithms, and ran a 16 MB all-reduce at half the blocking one's bandwidth.
  void run_data(Op& item) {
    const auto kind = static_cast<Kind>(item.header.kind);
    const int count = static_cast<int>(item.header.count);
    const MPI_Datatype type =
        kind == Kind::Barrier ? MPI_DATATYPE_NULL : mpi_type(static_cast<DType>(item.header.dtype));
    int code = MPI_SUCCESS;
    switch (kind) {
      case Kind::AllReduce:
        code = MPI_Allreduce(MPI_IN_PLACE, item.receive.raw_data(), count, type, mpi_op(item.op),
                             data_comm_);
        break;
      case Kind::Broadcast:
        code = MPI_Bcast(item.receive.raw_data(), count, type,
                         static_cast<int>(item.header.argument), data_comm_);
        break;
      case Kind::AllGather:
        code = MPI_Allgather(item.send.raw_data(), count, type, item.receive.raw_data(), count,
                             type, data_comm_);
        break;
      case Kind::ReduceScatter:
        code = MPI_Reduce_scatter_block(item.send.raw_data(), item.receive.raw_data(), count, type,
                                        mpi_op(item.op), data_comm_);
        break;
      case Kind::Barrier:
        code = MPI_Barrier(data_comm_);
        break;
    }
    if (code != MPI_SUCCESS) {
      item.state->complete(item.state->description + " failed in MPI: " + mpi_error_text(code));
      return;
    }
    if (item.op == ReduceOp::Avg && kind != Kind::Barrier) {
      divide(item.receive, item.receive.numel(), size_);
    }
    item.state->complete();
  }

  ProcessGroupOptions options_;
  int rank_ = 0, size_ = 1;
  MPI_Comm check_comm_ = MPI_COMM_NULL, data_comm_ = MPI_COMM_NULL;

  std::mutex mutex_;  // guards everything below, and Op::heard_from
  std::condition_variable wake_;
  std::condition_variable drained_;  // the worker has stopped
  bool worker_done_ = false;
  std::deque<std::shared_ptr<Op>> queue_;
  int64_t sequence_ = 0;
  bool stopping_ = false;
  bool broken_ = false;
  std::string broken_reason_;
  std::thread worker_;
};

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<ProcessGroup> new_mpi_group(ProcessGroupOptions options) {
  STRATA_CHECK(options.timeout.count() > 0, "new_mpi_group: the timeout must be positive, got ",
               options.timeout.count(), " ms");
  return std::make_shared<MpiProcessGroup>(options);
}

#else  // built without MPI

bool mpi_available() { return false; }

std::shared_ptr<ProcessGroup> new_mpi_group(ProcessGroupOptions) {
  STRATA_CHECK(false,
               "new_mpi_group: this Strata was built without MPI (install "
               "libopenmpi-dev and reconfigure with -DSTRATA_MPI=AUTO or ON)");
  return nullptr;
}

#endif

}  // namespace strata::distributed
