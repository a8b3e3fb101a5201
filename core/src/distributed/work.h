// What a Work handle shares with the group that made it: the collective's description, its
// completion (or failure) and what wait() does on a timeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "strata/distributed.h"

namespace strata::distributed {

// ---- what every rank must agree on before a collective's data moves ----------------------
// Both groups (MPI here, NCCL in the CUDA plugin) exchange one header per collective and
// compare them, so mismatched calls are reported, never run.

enum class CollectiveKind : int64_t { AllReduce, Broadcast, AllGather, ReduceScatter, Barrier };

const char* collective_name(CollectiveKind kind);

struct CollectiveHeader {
  int64_t sequence = 0;  // the collective's number on its group, from 1
  int64_t kind = 0;      // a CollectiveKind
  int64_t dtype = 0;
  int64_t count = 0;     // elements each rank sends (all_gather: its input's; reduce_scatter:
                         // its output's)
  int64_t argument = 0;  // the ReduceOp, or broadcast's root

  bool operator==(const CollectiveHeader&) const = default;
};
constexpr int64_t kHeaderWords = static_cast<int64_t>(sizeof(CollectiveHeader) / sizeof(int64_t));
static_assert(sizeof(CollectiveHeader) == kHeaderWords * sizeof(int64_t),
              "CollectiveHeader is whole int64 words (it travels as int64)");

// "all_reduce #3 of 1000 f32 elements (sum)".
std::string describe(const CollectiveHeader& header);

// An error listing what every rank called, when some rank's header differs from `mine`;
// empty when all agree. `all` is indexed by rank; `backend` names the group in the message.
std::string compare_headers(const CollectiveHeader& mine, const std::vector<CollectiveHeader>& all,
                            int rank, const char* backend);

// Throws naming `op` unless `whole` [size * n, ...] holds `part` [n, ...] once per rank, with one
// dtype and device (all_gather's output, reduce_scatter's input).
void check_concatenation(const char* op, const Tensor& whole, const Tensor& part, int size);

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
