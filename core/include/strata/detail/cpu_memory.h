// What the CPU backend hands out while tracking is on, for benchmarks and memory reports (the
// CPU's side of detail/cuda_memory.h). Counts the bytes tensors ask for, not the cache's
// rounding. Off by default: the counting costs every allocation an atomic update, which a
// one-element op notices.
#pragma once

#include <cstdint>

namespace strata::detail {

struct CpuMemoryStats {
  // Net bytes handed out since tracking started: blocks allocated before it and freed during
  // it count against it, so it can be negative.
  int64_t allocated_bytes = 0;
  int64_t peak_allocated_bytes = 0;  // the most allocated_bytes has been
};

// Zeroes the counts and counts every allocation and free from now on (process-wide).
void start_cpu_memory_tracking();
void stop_cpu_memory_tracking();
CpuMemoryStats cpu_memory_stats();

}  // namespace strata::detail
