// AlgoFallback: the order in which a call tries the ranked candidate algorithms of one cached
// configuration (conv.cpp's key), and what it remembers of their failures. Plain C++ with no
// CUDA in it, so tests/test_cuda_algo_fallback.cpp checks it on any machine. The rules:
// - Candidates are tried in their ranked order, skipping those remembered as failed for the
//   key, until one runs.
// - A candidate fails when its workspace cannot be had from the caching allocator without
//   emptying the cache (kNoWorkspace) or when the library refuses it for this configuration
//   (kRefused). The failure is remembered per (key, candidate): later calls go straight to the
//   next candidate instead of failing the same way again.
// - Only the last candidate of a call's order is told `last`: it alone may empty the cache for
//   its workspace (a device-wide synchronize) and its failure is the call's error. So a call
//   empties the cache at most once, and only when nothing before it could run.
// - When every candidate of a key has failed, the next call tries them all again (memory may
//   have been freed since): a last resort, never a loop.
// - A kTransient failure (the library refused these pointers, not this configuration) moves on
//   without being remembered.
// Thread-safe: the bookkeeping is under a mutex; attempts run outside it.
// NOTE: a remembered failure lasts for the process (or until clear()): an algorithm that once
// could not get its workspace is not tried again for that key even when memory frees up,
// trading a possibly faster algorithm for never emptying the cache on every call.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <set>
#include <vector>

namespace strata::cuda {

enum class AttemptResult {
  kRan,          // the candidate ran
  kNoWorkspace,  // its workspace could not be had without emptying the cache
  kRefused,      // the library does not run it for this configuration
  kTransient,    // the library refused it for a reason of this call only
};

template <typename Key>
class AlgoFallback {
 public:
  // The candidates of `key` (out of 0..count-1) a call tries, in order.
  std::vector<size_t> order_for(const Key& key, size_t count) const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<size_t> order;
    const auto it = failed_.find(key);
    for (size_t i = 0; i < count; ++i) {
      if (it == failed_.end() || it->second.count(i) == 0) order.push_back(i);
    }
    if (order.empty()) {  // every one failed before: all again
      for (size_t i = 0; i < count; ++i) order.push_back(i);
    }
    return order;
  }

  void mark_failed(const Key& key, size_t candidate) {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_[key].insert(candidate);
  }

  bool failed(const Key& key, size_t candidate) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto it = failed_.find(key);
    return it != failed_.end() && it->second.count(candidate) != 0;
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_.clear();
  }

  // Calls attempt(candidate, last) -> AttemptResult for the candidates of `key` by the rules
  // above until one returns kRan, and returns the result of the last attempt made (kRan, or
  // the failure of the call's last candidate, which the caller reports). An exception from
  // attempt (the last candidate's allocation failing after the cache was emptied) propagates.
  template <typename AttemptFn>
  AttemptResult run(const Key& key, size_t count, const AttemptFn& attempt) {
    const std::vector<size_t> order = order_for(key, count);
    AttemptResult result = AttemptResult::kRefused;
    for (size_t i = 0; i < order.size(); ++i) {
      const bool last = i + 1 == order.size();
      result = attempt(order[i], last);
      if (result == AttemptResult::kRan) return result;
      if (result != AttemptResult::kTransient) mark_failed(key, order[i]);
    }
    return result;
  }

 private:
  mutable std::mutex mutex_;
  std::map<Key, std::set<size_t>> failed_;
};

}  // namespace strata::cuda
