// Reductions of the CPU backend: in is contiguous [outer, size, inner], out is [outer, inner].
// - Sum accumulates floating types in double (integers in wrapping 64-bit), Max/Min propagate
//   NaN, ArgMax/ArgMin give the first index on ties and treat NaN as the extreme (the index
//   of the first NaN wins), as PyTorch does.
// - inner == 1 reads each row with 16 independent accumulators (so the compiler vectorizes);
//   inner > 1 keeps a block of accumulators along inner, the contiguous dim, and walks size.
// - Large work runs over OpenMP: over rows / column blocks when there are enough of them, else
//   over chunks of `size` whose partial results are merged afterwards in a fixed order.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// ---- accumulator policies ------------------------------------------------------------------
// Each policy has acc_t, out_t, init(x, k) for the first element (at index k), update(acc, x, k)
// for later elements (k increasing), merge(acc, other) for two partial results (in any order),
// and finish(acc).

template <typename T>
struct SumReduce {
  // Floating sums in double; integer sums in uint64_t, which wraps without undefined behavior.
  using acc_t = std::conditional_t<std::is_floating_point_v<T>, double, uint64_t>;
  using out_t = T;
  static acc_t init(T x, int64_t) { return static_cast<acc_t>(x); }
  static void update(acc_t& acc, T x, int64_t) { acc += static_cast<acc_t>(x); }
  static void merge(acc_t& acc, const acc_t& other) { acc += other; }
  static out_t finish(const acc_t& acc) {
    if constexpr (std::is_floating_point_v<T>) return static_cast<T>(acc);
    else return static_cast<T>(static_cast<int64_t>(acc));
  }
};

template <typename T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(x);
  else return false;
}

// x replaces best when it is strictly more extreme; NaN beats every number.
template <typename T, bool kMax>
bool more_extreme(T x, T best) {
  if (is_nan(x)) return !is_nan(best);
  if constexpr (kMax) return x > best;
  else return x < best;
}

template <typename T, bool kMax>
struct ExtremeReduce {
  using acc_t = T;
  using out_t = T;
  static acc_t init(T x, int64_t) { return x; }
  static void update(acc_t& acc, T x, int64_t) {
    if (more_extreme<T, kMax>(x, acc)) acc = x;
  }
  static void merge(acc_t& acc, const acc_t& other) { update(acc, other, 0); }
  static out_t finish(const acc_t& acc) { return acc; }
};

template <typename T, bool kMax>
struct ArgExtremeReduce {
  struct acc_t {
    T value;
    int64_t index;
  };
  using out_t = int64_t;
  static acc_t init(T x, int64_t k) { return {x, k}; }
  static void update(acc_t& acc, T x, int64_t k) {
    if (more_extreme<T, kMax>(x, acc.value)) acc = {x, k};  // ties keep the earlier index
  }
  static void merge(acc_t& acc, const acc_t& other) {
    const bool tie = !more_extreme<T, kMax>(acc.value, other.value);
    if (more_extreme<T, kMax>(other.value, acc.value) || (tie && other.index < acc.index)) {
      acc = other;
    }
  }
  static out_t finish(const acc_t& acc) { return acc.index; }
};

// ---- reading rows and columns --------------------------------------------------------------

constexpr int64_t kLanes = 16;         // independent accumulators along a row
constexpr int64_t kColumnBlock = 256;  // accumulators along inner, kept on the stack

// Reduces x[begin, end) (begin < end) of one contiguous row; indices are positions in the row.
template <typename R, typename T>
typename R::acc_t reduce_row(const T* x, int64_t begin, int64_t end) {
  using acc_t = typename R::acc_t;
  if (end - begin < 2 * kLanes) {
    acc_t acc = R::init(x[begin], begin);
    for (int64_t k = begin + 1; k < end; ++k) R::update(acc, x[k], k);
    return acc;
  }
  acc_t lanes[kLanes];
  for (int64_t j = 0; j < kLanes; ++j) lanes[j] = R::init(x[begin + j], begin + j);
  int64_t k = begin + kLanes;
  for (; k + kLanes <= end; k += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) R::update(lanes[j], x[k + j], k + j);
  }
  for (; k < end; ++k) R::update(lanes[0], x[k], k);
  for (int64_t j = 1; j < kLanes; ++j) R::merge(lanes[0], lanes[j]);
  return lanes[0];
}

// Reduces rows [begin, end) (begin < end) of `width` columns starting at x, whose rows are
// `inner` apart, into acc[0, width).
template <typename R, typename T>
void reduce_columns(const T* x, int64_t inner, int64_t begin, int64_t end, int64_t width,
                    typename R::acc_t* acc) {
  const T* first = x + begin * inner;
  for (int64_t j = 0; j < width; ++j) acc[j] = R::init(first[j], begin);
  for (int64_t k = begin + 1; k < end; ++k) {
    const T* row = x + k * inner;
    for (int64_t j = 0; j < width; ++j) R::update(acc[j], row[j], k);
  }
}

// ---- drivers -------------------------------------------------------------------------------

// Splits [0, size) into one chunk per thread, reduces each with reduce_chunk(begin, end, acc)
// into its slot of `width` accumulators, and merges the slots in thread order into `result`.
template <typename R, typename ChunkFn>
void reduce_split(int64_t size, int64_t width, int threads, typename R::acc_t* result,
                  const ChunkFn& reduce_chunk) {
  using acc_t = typename R::acc_t;
  // Not std::vector: acc_t may be bool.
  const auto partial = std::make_unique<acc_t[]>(static_cast<size_t>(threads * width));
  std::vector<char> filled(static_cast<size_t>(threads), 0);
#pragma omp parallel num_threads(threads)
  {
    const int64_t count = omp_get_num_threads();
    const int64_t thread = omp_get_thread_num();
    const int64_t begin = size * thread / count, end = size * (thread + 1) / count;
    if (begin < end) {
      reduce_chunk(begin, end, partial.get() + thread * width);
      filled[thread] = 1;
    }
  }
  bool first = true;
  for (int t = 0; t < threads; ++t) {
    if (!filled[t]) continue;
    const acc_t* slot = partial.get() + t * width;
    for (int64_t j = 0; j < width; ++j) {
      if (first) result[j] = slot[j];
      else R::merge(result[j], slot[j]);
    }
    first = false;
  }
}

template <typename R, typename T>
void reduce_rows(typename R::out_t* out, const T* in, int64_t outer, int64_t size, int threads) {
  using acc_t = typename R::acc_t;
  if (threads == 1 || outer >= threads) {
    parallel_for(outer, threads > 1, [&](int64_t o) {
      out[o] = R::finish(reduce_row<R>(in + o * size, 0, size));
    });
    return;
  }
  // Few long rows: each row is split over the threads.
  for (int64_t o = 0; o < outer; ++o) {
    const T* row = in + o * size;
    acc_t acc{};
    reduce_split<R>(size, 1, threads, &acc, [&](int64_t begin, int64_t end, acc_t* slot) {
      *slot = reduce_row<R>(row, begin, end);
    });
    out[o] = R::finish(acc);
  }
}

template <typename R, typename T>
void reduce_inner(typename R::out_t* out, const T* in, int64_t outer, int64_t size, int64_t inner,
                  int threads) {
  using acc_t = typename R::acc_t;
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  const int64_t items = outer * blocks;  // (row of out, block of columns)
  auto block_of = [&](int64_t item, int64_t& o, int64_t& j0, int64_t& width) {
    o = item / blocks;
    j0 = item % blocks * kColumnBlock;
    width = std::min(kColumnBlock, inner - j0);
  };
  if (threads == 1 || items >= threads) {
    parallel_for(items, threads > 1, [&](int64_t item) {
      int64_t o, j0, width;
      block_of(item, o, j0, width);
      acc_t acc[kColumnBlock];
      reduce_columns<R>(in + o * size * inner + j0, inner, 0, size, width, acc);
      for (int64_t j = 0; j < width; ++j) out[o * inner + j0 + j] = R::finish(acc[j]);
    });
    return;
  }
  // Few column blocks but a long `size`: each block is split along size over the threads.
  for (int64_t item = 0; item < items; ++item) {
    int64_t o, j0, width;
    block_of(item, o, j0, width);
    const T* x = in + o * size * inner + j0;
    acc_t acc[kColumnBlock];
    reduce_split<R>(size, width, threads, acc, [&](int64_t begin, int64_t end, acc_t* slot) {
      reduce_columns<R>(x, inner, begin, end, width, slot);
    });
    for (int64_t j = 0; j < width; ++j) out[o * inner + j0 + j] = R::finish(acc[j]);
  }
}

template <typename R, typename T>
void reduce_with(const Tensor& out, const Tensor& in, int64_t outer, int64_t size, int64_t inner) {
  if (outer == 0 || inner == 0) return;
  auto* o = static_cast<typename R::out_t*>(out.raw_data());
  const auto* x = static_cast<const T*>(in.raw_data());
  const int threads = worth_threads(outer * size * inner) ? omp_get_max_threads() : 1;
  if (inner == 1) reduce_rows<R>(o, x, outer, size, threads);
  else reduce_inner<R>(o, x, outer, size, inner, threads);
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer,
                        int64_t size, int64_t inner) {
  if (detail::any_reduced_floating({&out, &in})) {
    detail::Float32Staging stage;
    reduce(op, stage.output(out), stage.input(in), outer, size, inner);
    return stage.finish();
  }
  STRATA_ASSERT(size >= 1, "cpu reduce: size must be >= 1, got ", size);
  STRATA_DISPATCH_ALL(in.dtype(), "reduce", [&] {
    using T = scalar_t;
    const auto run = [&](auto policy) {
      reduce_with<decltype(policy), T>(out, in, outer, size, inner);
    };
    switch (op) {
      case ReduceOp::Sum: return run(SumReduce<T>{});
      case ReduceOp::Max: return run(ExtremeReduce<T, true>{});
      case ReduceOp::Min: return run(ExtremeReduce<T, false>{});
      case ReduceOp::ArgMax: return run(ArgExtremeReduce<T, true>{});
      case ReduceOp::ArgMin: return run(ArgExtremeReduce<T, false>{});
    }
    STRATA_ASSERT(false, "cpu reduce: unknown op ", static_cast<int>(op));
  });
}

}  // namespace strata::cpu
