// cuda/algo_fallback.h on any machine: the order in which the CUDA convolution tries cuDNN's
// candidate algorithms, and what it remembers of their failures. A fake `attempt` stands in for
// "get the workspace, run cuDNN": it records what it was asked and answers from a script, so
// each rule of the header is checked without a GPU.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "../cuda/algo_fallback.h"

namespace strata::cuda {
namespace {

using Key = std::array<int64_t, 3>;
constexpr Key kKey = {1, 2, 3};
constexpr Key kOtherKey = {4, 5, 6};

// A scripted candidate list: outcome(i) when attempted, and a log of (candidate, last).
struct Script {
  std::function<AttemptResult(size_t, bool)> outcome;
  std::vector<std::pair<size_t, bool>> calls;

  AttemptResult operator()(size_t i, bool last) {
    calls.emplace_back(i, last);
    return outcome(i, last);
  }
};

// Workspaces that cannot be had without emptying the cache (`no_workspace`): they succeed only
// when `last` allows emptying it.
Script memory_bound(std::set<size_t> no_workspace) {
  Script s;
  s.outcome = [no_workspace](size_t i, bool last) {
    if (no_workspace.count(i) != 0 && !last) return AttemptResult::kNoWorkspace;
    return AttemptResult::kRan;
  };
  return s;
}

TEST(CudaAlgoFallback, FirstCandidateThatRunsWins) {
  AlgoFallback<Key> fallback;
  Script script = memory_bound({});
  EXPECT_EQ(fallback.run(kKey, 4, std::ref(script)), AttemptResult::kRan);
  ASSERT_EQ(script.calls.size(), 1u);
  EXPECT_EQ(script.calls[0], std::make_pair(size_t{0}, false));
}

TEST(CudaAlgoFallback, WorkspaceFailureIsRememberedAndSkippedWithoutEmptyingTheCache) {
  AlgoFallback<Key> fallback;
  Script first = memory_bound({0});
  EXPECT_EQ(fallback.run(kKey, 3, std::ref(first)), AttemptResult::kRan);
  // Candidate 0 asked without emptying the cache, failed, and 1 ran: nothing emptied the cache.
  ASSERT_EQ(first.calls.size(), 2u);
  EXPECT_EQ(first.calls[0], std::make_pair(size_t{0}, false));
  EXPECT_EQ(first.calls[1], std::make_pair(size_t{1}, false));
  EXPECT_TRUE(fallback.failed(kKey, 0));
  EXPECT_FALSE(fallback.failed(kKey, 1));
  // Every later call goes straight to candidate 1.
  for (int call = 0; call < 3; ++call) {
    Script later = memory_bound({0});
    EXPECT_EQ(fallback.run(kKey, 3, std::ref(later)), AttemptResult::kRan);
    ASSERT_EQ(later.calls.size(), 1u);
    EXPECT_EQ(later.calls[0], std::make_pair(size_t{1}, false));
  }
  // Per key: another configuration still starts at its own first candidate.
  Script other = memory_bound({});
  fallback.run(kOtherKey, 3, std::ref(other));
  EXPECT_EQ(other.calls.at(0).first, 0u);
}

TEST(CudaAlgoFallback, OnlyTheLastCandidateMayEmptyTheCacheOncePerCall) {
  AlgoFallback<Key> fallback;
  Script script = memory_bound({0, 1, 2});
  EXPECT_EQ(fallback.run(kKey, 3, std::ref(script)), AttemptResult::kRan);
  ASSERT_EQ(script.calls.size(), 3u);
  int may_empty = 0;
  for (const auto& [candidate, last] : script.calls) may_empty += last ? 1 : 0;
  EXPECT_EQ(may_empty, 1);
  EXPECT_EQ(script.calls.back(), std::make_pair(size_t{2}, true));
  // The next call starts at the candidate that ran (the others are remembered): it is the only
  // one left, so it is the call's last and may use a normal allocation.
  Script next = memory_bound({0, 1, 2});
  fallback.run(kKey, 3, std::ref(next));
  ASSERT_EQ(next.calls.size(), 1u);
  EXPECT_EQ(next.calls[0], std::make_pair(size_t{2}, true));
}

TEST(CudaAlgoFallback, RefusedCandidatesAreRememberedTransientOnesAreNot) {
  AlgoFallback<Key> fallback;
  Script script;
  script.outcome = [](size_t i, bool) {
    if (i == 0) return AttemptResult::kRefused;
    if (i == 1) return AttemptResult::kTransient;
    return AttemptResult::kRan;
  };
  EXPECT_EQ(fallback.run(kKey, 3, std::ref(script)), AttemptResult::kRan);
  EXPECT_EQ(script.calls.size(), 3u);
  EXPECT_TRUE(fallback.failed(kKey, 0));
  EXPECT_FALSE(fallback.failed(kKey, 1));
  std::vector<size_t> order = fallback.order_for(kKey, 3);
  EXPECT_EQ(order, (std::vector<size_t>{1, 2}));
}

TEST(CudaAlgoFallback, WhenEveryCandidateFailedAllAreTriedAgain) {
  AlgoFallback<Key> fallback;
  Script refused;
  refused.outcome = [](size_t, bool) { return AttemptResult::kRefused; };
  // The caller reports the last candidate's failure.
  EXPECT_EQ(fallback.run(kKey, 2, std::ref(refused)), AttemptResult::kRefused);
  EXPECT_EQ(refused.calls.size(), 2u);
  EXPECT_EQ(fallback.order_for(kKey, 2), (std::vector<size_t>{0, 1}));
  // Memory freed since: the next call finds candidate 0 working again.
  Script fine = memory_bound({});
  EXPECT_EQ(fallback.run(kKey, 2, std::ref(fine)), AttemptResult::kRan);
  EXPECT_EQ(fine.calls.at(0).first, 0u);
  fallback.clear();
  EXPECT_FALSE(fallback.failed(kKey, 0));
}

TEST(CudaAlgoFallback, AnExceptionFromTheLastAttemptPropagates) {
  AlgoFallback<Key> fallback;
  Script script;
  script.outcome = [](size_t, bool last) -> AttemptResult {
    if (last) throw std::runtime_error("out of memory after emptying the cache");
    return AttemptResult::kNoWorkspace;
  };
  EXPECT_THROW(fallback.run(kKey, 2, std::ref(script)), std::runtime_error);
  EXPECT_TRUE(fallback.failed(kKey, 0));  // remembered before the last one threw
}

}  // namespace
}  // namespace strata::cuda
