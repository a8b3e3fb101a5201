// Softmax and log-softmax kernels of the CPU backend (float32 and float64; contiguous tensors
// read as [outer, size, inner], normalized along size).
// - Stable: each slice subtracts its maximum before exp, so logits of 1000 stay finite; the
//   sum of exponentials accumulates in double.
// - inner == 1 (the last axis, the common case) walks contiguous rows; inner > 1 walks blocks
//   of up to kColumnBlock adjacent columns at once, so every read is still contiguous and the
//   per-column max and sums live on the stack.
// - Rows / column blocks split over OpenMP threads when the tensor is large.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

constexpr int64_t kColumnBlock = 64;

// ---- forward --------------------------------------------------------------------------------

// One contiguous row x[0, size) into y[0, size).
template <typename T>
void softmax_row(T* y, const T* x, int64_t size, bool log) {
  T max = x[0];
  for (int64_t k = 1; k < size; ++k) max = x[k] > max ? x[k] : max;
  double sum = 0.0;
  if (log) {
    for (int64_t k = 0; k < size; ++k) sum += static_cast<double>(std::exp(x[k] - max));
    // NOTE: (x - max) - log(sum), not x - (max + log(sum)): with logits near 1000 the
    // latter rounds the shift to float32's spacing there (6e-5) and loses digits.
    const T log_sum = static_cast<T>(std::log(sum));
    for (int64_t k = 0; k < size; ++k) y[k] = (x[k] - max) - log_sum;
  } else {
    for (int64_t k = 0; k < size; ++k) {
      const T e = std::exp(x[k] - max);
      y[k] = e;
      sum += static_cast<double>(e);
    }
    const T scale = static_cast<T>(1.0 / sum);
    for (int64_t k = 0; k < size; ++k) y[k] *= scale;
  }
}

// Columns [0, width) of a [size, inner] slice starting at x (rows `inner` apart).
template <typename T>
void softmax_columns(T* y, const T* x, int64_t size, int64_t inner, int64_t width, bool log) {
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
      const T e = std::exp(row[j] - max[j]);
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
void softmax_backward_row(T* dx, const T* g, const T* y, int64_t size, bool log) {
  double sum = 0.0;
  if (log) {
    for (int64_t k = 0; k < size; ++k) sum += static_cast<double>(g[k]);
    const T s = static_cast<T>(sum);
    for (int64_t k = 0; k < size; ++k) dx[k] = g[k] - std::exp(y[k]) * s;
  } else {
    for (int64_t k = 0; k < size; ++k) sum += static_cast<double>(g[k]) * static_cast<double>(y[k]);
    const T s = static_cast<T>(sum);
    for (int64_t k = 0; k < size; ++k) dx[k] = y[k] * (g[k] - s);
  }
}

template <typename T>
void softmax_backward_columns(T* dx, const T* g, const T* y, int64_t size, int64_t inner,
                              int64_t width, bool log) {
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
      for (int64_t j = 0; j < width; ++j) dk[j] = gk[j] - std::exp(yk[j]) * s[j];
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
