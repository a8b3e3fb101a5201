// Work handles: waiting with a timeout, and the names of the reduce operations.
#include "work.h"

#include <sstream>

#include "../internal.h"
#include "strata/error.h"

namespace strata::distributed {

const char* collective_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::AllReduce:
      return "all_reduce";
    case CollectiveKind::Broadcast:
      return "broadcast";
    case CollectiveKind::AllGather:
      return "all_gather";
    case CollectiveKind::ReduceScatter:
      return "reduce_scatter";
    case CollectiveKind::Barrier:
      return "barrier";
  }
  return "?";
}

std::string describe(const CollectiveHeader& h) {
  std::ostringstream text;
  const auto kind = static_cast<CollectiveKind>(h.kind);
  text << collective_name(kind) << " #" << h.sequence;
  if (kind == CollectiveKind::Barrier) return text.str();
  text << " of " << h.count << " " << dtype_name(static_cast<DType>(h.dtype)) << " elements";
  if (kind == CollectiveKind::Broadcast) {
    text << " from root " << h.argument;
  } else if (kind != CollectiveKind::AllGather) {
    text << " (" << reduce_op_name(static_cast<ReduceOp>(h.argument)) << ")";
  }
  return text.str();
}

std::string compare_headers(const CollectiveHeader& mine, const std::vector<CollectiveHeader>& all,
                            int rank, const char* backend) {
  bool same = true;
  for (const CollectiveHeader& h : all) same = same && h == mine;
  if (same) return {};
  std::ostringstream text;
  text << collective_name(static_cast<CollectiveKind>(mine.kind))
       << ": the ranks called different collectives (rank " << rank << " of " << all.size()
       << ", " << backend << "):";
  for (size_t r = 0; r < all.size(); ++r) {
    text << (r ? ";" : "") << " rank " << r << " called " << describe(all[r]);
  }
  return text.str();
}

void check_concatenation(const char* op, const Tensor& whole, const Tensor& part, int size) {
  STRATA_CHECK(whole.dtype() == part.dtype() && whole.device() == part.device(), op,
               ": input and output must share a dtype and device, got ",
               detail::describe(whole), " and ", detail::describe(part));
  Shape expected = part.shape();
  if (expected.empty()) expected.push_back(1);
  expected[0] *= size;
  STRATA_CHECK(whole.shape() == expected, op, ": expected ", shape_str(expected), " (", size,
               " ranks x ", shape_str(part.shape()), "), got ", detail::describe(whole));
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Avg:
      return "avg";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "?";
}

void Work::State::complete(std::string failure) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    done = true;
    error = std::move(failure);
  }
  changed.notify_all();
}

bool Work::is_completed() const {
  if (!state_) return true;
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->done;
}

void Work::wait() const {
  if (state_) wait(state_->timeout);
}

void Work::wait(std::chrono::milliseconds timeout) const {
  if (!state_) return;
  State& s = *state_;
  std::unique_lock<std::mutex> lock(s.mutex);
  if (!s.changed.wait_for(lock, timeout, [&] { return s.done; })) {
    lock.unlock();
    const std::string ranks = s.on_timeout ? s.on_timeout() : std::string();
    const double seconds = static_cast<double>(timeout.count()) / 1000.0;
    STRATA_CHECK(false, s.description, " timed out after ", seconds, " s", ranks,
                 "; the process group is broken (", s.when_broken, ")");
  }
  STRATA_CHECK(s.error.empty(), s.error);
  if (!s.finished) {
    s.finished = true;
    if (s.finish) s.finish();
  }
}

}  // namespace strata::distributed
