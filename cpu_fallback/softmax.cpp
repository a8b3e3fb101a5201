// Softmax and log-softmax kernels of the CPU backend (float32 and float64; contiguous tensors
// read as [outer, size, inner], normalized along size).
// - Stable: each slice subtracts its maximum before exp, so logits of 1000 stay finite; the
//   sum of exponentials accumulates in double. exp is vec_math.h's branch-free one, and a
//   row's max and sums run in kLanes independent partial results, so every row loop vectorizes;
//   the slice functions come in AVX2 and baseline clones (vec_math.h).
// - inner == 1 (the last axis, the common case) walks contiguous rows; inner > 1 walks blocks
//   of up to kColumnBlock adjacent columns at once, so every read is still contiguous and the
//   per-column max and sums live on the stack.
// - Rows / column blocks split over OpenMP threads when the tensor is large.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"
#include "vec_math.h"

namespace strata::cpu {
namespace {

constexpr int64_t kColumnBlock = 64;

// ---- forward --------------------------------------------------------------------------------

// Partial results per row loop. NOTE: a single running max or double sum is a serial chain
// that GCC may not reorder (no -ffast-math), so those loops would stay scalar; kLanes
// independent partials vectorize. The sums' order changes, not their double precision.
constexpr int64_t kLanes = 16;
// Elements of one log-softmax row whose exponentials sit in a stack buffer at a time.
constexpr int64_t kExpBlock = 256;

// max(x[0, size)), size >= 1. A NaN may or may not win; either way the row's sum is NaN.
template <typename T>
inline T row_max(const T* x, int64_t size) {
  const int64_t full = size / kLanes * kLanes;
  T max = x[0];
  if (full > 0) {
    T lane[kLanes];
    for (int64_t j = 0; j < kLanes; ++j) lane[j] = x[j];
    for (int64_t k = kLanes; k < full; k += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) lane[j] = x[k + j] > lane[j] ? x[k + j] : lane[j];
    }
    for (int64_t j = 0; j < kLanes; ++j) max = lane[j] > max ? lane[j] : max;
  }
  for (int64_t k = full; k < size; ++k) max = x[k] > max ? x[k] : max;
  return max;
}

// sum(a[k] * b[k]) in double, or sum(a[k]) when b is null.
template <typename T>
inline double row_sum(const T* a, const T* b, int64_t size) {
  const int64_t full = size / kLanes * kLanes;
  double lane[kLanes] = {};
  if (b == nullptr) {
    for (int64_t k = 0; k < full; k += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) lane[j] += static_cast<double>(a[k + j]);
    }
  } else {
    for (int64_t k = 0; k < full; k += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) {
        lane[j] += static_cast<double>(a[k + j]) * static_cast<double>(b[k + j]);
      }
    }
  }
  double sum = 0.0;
  for (int64_t j = 0; j < kLanes; ++j) sum += lane[j];
  for (int64_t k = full; k < size; ++k) {
    sum += static_cast<double>(a[k]) * (b == nullptr ? 1.0 : static_cast<double>(b[k]));
  }
  return sum;
}

// One contiguous row x[0, size) into y[0, size). y may be x.
template <typename T>
STRATA_VECTOR_CLONES void softmax_row(T* y, const T* x, int64_t size, bool log) {
  const T max = row_max(x, size);
  double sum = 0.0;
  if (log) {
    // The exponentials go to a stack buffer, not y: the last loop still reads x.
    T e[kExpBlock];
    for (int64_t k0 = 0; k0 < size; k0 += kExpBlock) {
      const int64_t width = std::min(kExpBlock, size - k0);
      for (int64_t k = 0; k < width; ++k) e[k] = vecmath::exp(x[k0 + k] - max);
      sum += row_sum<T>(e, nullptr, width);
    }
    // NOTE: (x - max) - log(sum), not x - (max + log(sum)): with logits near 1000 the
    // latter rounds the shift to float32's spacing there (6e-5) and loses digits.
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t k = 0; k < size; ++k) y[k] = (x[k] - max) - log_sum;
  } else {
    for (int64_t k = 0; k < size; ++k) y[k] = vecmath::exp(x[k] - max);
    sum = row_sum<T>(y, nullptr, size);
    const T scale = static_cast<T>(1.0 / sum);
    for (int64_t k = 0; k < size; ++k) y[k] *= scale;
  }
}

// Columns [0, width) of a [size, inner] slice starting at x (rows `inner` apart).
template <typename T>
STRATA_VECTOR_CLONES void softmax_columns(T* y, const T* x, int64_t size, int64_t inner,
                                          int64_t width, bool log) {
  T max[kColumnBlock];
  double sum[kColumnBlock];
  for (int64_t j = 0; j < width; ++j) {
    max[j] = x[j];
    sum[j] = 0.0;
  }
  for (int64_t k = 1; k < size; ++k) {
    const T* row = x + k * inner;
    for (int64_t j = 0; j < width; ++j) max[j] = row[j] > max[j] ? row[j] : max[j];
  }
  for (int64_t k = 0; k < size; ++k) {
    const T* row = x + k * inner;
    T* out = y + k * inner;
    for (int64_t j = 0; j < width; ++j) {
      const T e = vecmath::exp(row[j] - max[j]);
      if (!log) out[j] = e;
      sum[j] += static_cast<double>(e);
    }
  }
  T fix[kColumnBlock];  // log: log(sum) to subtract after the max; softmax: 1 / sum
  for (int64_t j = 0; j < width; ++j) {
    fix[j] = static_cast<T>(log ? std::log(sum[j]) : 1.0 / sum[j]);
  }
  for (int64_t k = 0; k < size; ++k) {
    const T* row = x + k * inner;
    T* out = y + k * inner;
    if (log) {
      for (int64_t j = 0; j < width; ++j) out[j] = (row[j] - max[j]) - fix[j];
    } else {
      for (int64_t j = 0; j < width; ++j) out[j] *= fix[j];
    }
  }
}

// ---- backward -------------------------------------------------------------------------------
// softmax:     dx = y * (g - sum(g * y))
// log-softmax: dx = g - exp(y) * sum(g)

template <typename T>
STRATA_VECTOR_CLONES void softmax_backward_row(T* dx, const T* g, const T* y, int64_t size,
                                              bool log) {
  if (log) {
    const T s = static_cast<T>(row_sum<T>(g, nullptr, size));
    for (int64_t k = 0; k < size; ++k) dx[k] = g[k] - vecmath::exp(y[k]) * s;
  } else {
    const T s = static_cast<T>(row_sum(g, y, size));
    for (int64_t k = 0; k < size; ++k) dx[k] = y[k] * (g[k] - s);
  }
}

template <typename T>
STRATA_VECTOR_CLONES void softmax_backward_columns(T* dx, const T* g, const T* y, int64_t size,
                                                  int64_t inner, int64_t width, bool log) {
  double sum[kColumnBlock];
  for (int64_t j = 0; j < width; ++j) sum[j] = 0.0;
  for (int64_t k = 0; k < size; ++k) {
    const T* gk = g + k * inner;
    const T* yk = y + k * inner;
    if (log) {
      for (int64_t j = 0; j < width; ++j) sum[j] += static_cast<double>(gk[j]);
    } else {
      for (int64_t j = 0; j < width; ++j) {
        sum[j] += static_cast<double>(gk[j]) * static_cast<double>(yk[j]);
      }
    }
  }
  T s[kColumnBlock];
  for (int64_t j = 0; j < width; ++j) s[j] = static_cast<T>(sum[j]);
  for (int64_t k = 0; k < size; ++k) {
    const T* gk = g + k * inner;
    const T* yk = y + k * inner;
    T* dk = dx + k * inner;
    if (log) {
      for (int64_t j = 0; j < width; ++j) dk[j] = gk[j] - vecmath::exp(yk[j]) * s[j];
    } else {
      for (int64_t j = 0; j < width; ++j) dk[j] = yk[j] * (gk[j] - s[j]);
    }
  }
}

// body(offset, width) for every slice [offset, offset + width) of columns: one per row when
// inner == 1 (width 1), else blocks of up to kColumnBlock columns; offset is the element index
// of the slice's first entry. Split over threads when the tensor is large.
template <typename Body>
void for_slices(int64_t outer, int64_t size, int64_t inner, const Body& body) {
  const bool parallel = worth_threads(outer * size * inner);
  if (inner == 1) {
    parallel_for(outer, parallel, [&](int64_t o) { body(o * size, 1); });
    return;
  }
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  parallel_for(outer * blocks, parallel, [&](int64_t item) {
    const int64_t o = item / blocks, j0 = (item % blocks) * kColumnBlock;
    body(o * size * inner + j0, std::min(kColumnBlock, inner - j0));
  });
}

}  // namespace

void CpuBackend::softmax_forward(const Tensor& out, const Tensor& in, int64_t outer,
                                 int64_t size, int64_t inner, bool log) {
  if (detail::any_reduced_floating({&out, &in})) {
    detail::Float32Staging stage;
    softmax_forward(stage.output(out), stage.input(in), outer, size, inner, log);
    return stage.finish();
  }
  if (outer * size * inner == 0) return;
  STRATA_DISPATCH_FLOATING(out.dtype(), "cpu softmax_forward", [&] {
    using T = scalar_t;
    T* y = static_cast<T*>(out.raw_data());
    const T* x = static_cast<const T*>(in.raw_data());
    for_slices(outer, size, inner, [&](int64_t offset, int64_t width) {
      if (inner == 1) softmax_row(y + offset, x + offset, size, log);
      else softmax_columns(y + offset, x + offset, size, inner, width, log);
    });
  });
}

void CpuBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out,
                                  const Tensor& out, int64_t outer, int64_t size, int64_t inner,
                                  bool log) {
  if (detail::any_reduced_floating({&grad_in, &grad_out, &out})) {
    detail::Float32Staging stage;
    softmax_backward(stage.output(grad_in), stage.input(grad_out), stage.input(out), outer, size,
                     inner, log);
    return stage.finish();
  }
  if (outer * size * inner == 0) return;
  STRATA_DISPATCH_FLOATING(grad_in.dtype(), "cpu softmax_backward", [&] {
    using T = scalar_t;
    T* dx = static_cast<T*>(grad_in.raw_data());
    const T* g = static_cast<const T*>(grad_out.raw_data());
    const T* y = static_cast<const T*>(out.raw_data());
    for_slices(outer, size, inner, [&](int64_t offset, int64_t width) {
      if (inner == 1) softmax_backward_row(dx + offset, g + offset, y + offset, size, log);
      else softmax_backward_columns(dx + offset, g + offset, y + offset, size, inner, width, log);
    });
  });
}

}  // namespace strata::cpu
