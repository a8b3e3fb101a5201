// What a Work handle shares with the group that made it: the collective's description, its
// completion (or failure) and what wait() does on a timeout.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>

#include "strata/distributed.h"

namespace strata::distributed {

struct Work::State {
  std::string description;  // "all_reduce of 1000 f32 elements (sum) on rank 0 of 2"
  std::chrono::milliseconds timeout{0};

  std::mutex mutex;
  std::condition_variable changed;
  bool done = false;
  std::string error;  // set with done when the collective failed

  // Run once by the first wait() that sees the collective done without error, on the caller's
  // thread (copying a CUDA tensor's result back from its host copy); may be empty.
  std::function<void()> finish;
  bool finished = false;

  // Called by wait() when the timeout passes first: breaks the group and returns what to say
  // about the ranks (which never arrived).
  std::function<std::string()> on_timeout;
  // What becomes of the broken group, for the timeout's message.
  std::string when_broken = "destroying it ends the job";

  // Marks the collective done, failed when `failure` is not empty; wakes the waiters.
  void complete(std::string failure = {});
};

}  // namespace strata::distributed
