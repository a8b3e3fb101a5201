// Work handles: waiting with a timeout, and the names of the reduce operations.
#include "work.h"

#include "strata/error.h"

namespace strata::distributed {

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
