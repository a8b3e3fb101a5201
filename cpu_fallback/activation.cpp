// Pointwise activation kernels of the CPU backend (float32 and float64; every tensor
// contiguous, `out` may be `in`). Each activation is one plain loop over a flat range whose
// body is a lambda the compiler inlines, so every loop vectorizes: Relu and LeakyRelu into
// compare-and-blend, the transcendental ones through the branch-free float32 exp, tanh, erf and
// log1p of vec_math.h (float64 calls libm). The switch on the activation sits outside the
// loop. Large tensors split into chunks over OpenMP threads (parallel.h); small ones stay on
// the calling thread.
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

// Elements per parallel work item: large enough that a thread streams through memory, small
// enough that both cores get work on a 64K-element activation.
constexpr int64_t kChunk = 16384;

// body(begin, end) over [0, n) in chunks, split over threads when n is large.
template <typename Body>
void for_chunks(int64_t n, const Body& body) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel_for(chunks, worth_threads(n), [&](int64_t c) {
    body(c * kChunk, std::min(n, (c + 1) * kChunk));
  });
}

// The loops themselves, in AVX2 and baseline clones (vec_math.h). NOTE: f is a by-value
// parameter, not read through a reference: a captured alpha behind a reference could alias
// out[i] (both float), and GCC would then leave the loop scalar.
template <typename T, typename F>
STRATA_VECTOR_CLONES void map1_range(T* out, const T* in, int64_t begin, int64_t end, F f) {
  for (int64_t i = begin; i < end; ++i) out[i] = f(in[i]);
}

template <typename T, typename F>
STRATA_VECTOR_CLONES void map2_range(T* out, const T* a, const T* b, int64_t begin, int64_t end,
                                     F f) {
  for (int64_t i = begin; i < end; ++i) out[i] = f(a[i], b[i]);
}

// out[i] = f(in[i]). out may equal in (each element is read before it is written).
template <typename T, typename F>
void map1(T* out, const T* in, int64_t n, F f) {
  for_chunks(n, [&](int64_t begin, int64_t end) { map1_range(out, in, begin, end, f); });
}

// out[i] = f(a[i], b[i]).
template <typename T, typename F>
void map2(T* out, const T* a, const T* b, int64_t n, F f) {
  for_chunks(n, [&](int64_t begin, int64_t end) { map2_range(out, a, b, begin, end, f); });
}

// PyTorch's softplus threshold: where beta * x exceeds it, softplus(x) is x itself.
constexpr double kSoftplusThreshold = 20.0;

template <typename T>
void forward_typed(Activation act, T* out, const T* in, int64_t n, double alpha) {
  const T a = static_cast<T>(alpha);
  switch (act) {
    case Activation::Relu:
      // NOTE: `x < 0 ? 0 : x`, not std::max(x, 0): NaN passes through, as in PyTorch.
      return map1(out, in, n, [](T x) { return x < T(0) ? T(0) : x; });
    case Activation::Sigmoid:
      return map1(out, in, n, [](T x) { return vecmath::sigmoid(x); });
    case Activation::Tanh:
      return map1(out, in, n, [](T x) { return vecmath::tanh(x); });
    case Activation::LeakyRelu:
      return map1(out, in, n, [a](T x) { return x > T(0) ? x : x * a; });
    case Activation::Elu:
      return map1(out, in, n, [a](T x) { return x > T(0) ? x : a * vecmath::expm1(x); });
    case Activation::Softplus: {
      const T threshold = static_cast<T>(kSoftplusThreshold);
      return map1(out, in, n, [a, threshold](T x) {
        const T z = a * x;
        return z > threshold ? x : vecmath::log1p(vecmath::exp(z)) / a;
      });
    }
    case Activation::Gelu: {
      const T inv_sqrt2 = static_cast<T>(0.70710678118654752440);
      return map1(out, in, n, [inv_sqrt2](T x) {
        return T(0.5) * x * (T(1) + vecmath::erf(x * inv_sqrt2));
      });
    }
  }
  STRATA_ASSERT(false, "cpu activation_forward: unknown activation ", static_cast<int>(act));
}

template <typename T>
void backward_typed(Activation act, T* grad_in, const T* grad_out, const T* in, const T* out,
                    int64_t n, double alpha) {
  const T a = static_cast<T>(alpha);
  switch (act) {
    case Activation::Relu:
      // NOTE: the gradient at 0 is 0 (the output is 0 there), as PyTorch's threshold_backward.
      return map2(grad_in, grad_out, out, n, [](T g, T y) { return y > T(0) ? g : T(0); });
    case Activation::Sigmoid:
      return map2(grad_in, grad_out, out, n, [](T g, T y) { return g * y * (T(1) - y); });
    case Activation::Tanh:
      return map2(grad_in, grad_out, out, n, [](T g, T y) { return g * (T(1) - y * y); });
    case Activation::LeakyRelu:
      return map2(grad_in, grad_out, in, n, [a](T g, T x) { return x > T(0) ? g : g * a; });
    case Activation::Elu:
      // alpha * exp(x) from the input, not out + alpha: no cancellation for x near 0.
      return map2(grad_in, grad_out, in, n,
                  [a](T g, T x) { return x > T(0) ? g : g * a * vecmath::exp(x); });
    case Activation::Softplus: {
      const T threshold = static_cast<T>(kSoftplusThreshold);
      return map2(grad_in, grad_out, in, n, [a, threshold](T g, T x) {
        const T z = a * x;
        return z > threshold ? g : g / (T(1) + vecmath::exp(-z));  // g * sigmoid(beta * x)
      });
    }
    case Activation::Gelu: {
      // d/dx x * Phi(x) = Phi(x) + x * phi(x), phi the standard normal density.
      const T inv_sqrt2 = static_cast<T>(0.70710678118654752440);
      const T inv_sqrt_2pi = static_cast<T>(0.39894228040143267794);
      return map2(grad_in, grad_out, in, n, [inv_sqrt2, inv_sqrt_2pi](T g, T x) {
        const T cdf = T(0.5) * (T(1) + vecmath::erf(x * inv_sqrt2));
        const T pdf = inv_sqrt_2pi * vecmath::exp(T(-0.5) * x * x);
        return g * (cdf + x * pdf);
      });
    }
  }
  STRATA_ASSERT(false, "cpu activation_backward: unknown activation ", static_cast<int>(act));
}

// A contiguous tensor as a 1-D view (undefined stays undefined), for staging in pieces.
Tensor flat(const Tensor& t) { return t.defined() ? t.view({t.numel()}) : Tensor(); }

}  // namespace

void CpuBackend::activation_forward(Activation act, const Tensor& out, const Tensor& in,
                                    double alpha) {
  if (detail::any_reduced_floating({&out, &in})) {
    return detail::stage_in_pieces({flat(out)}, {flat(in)}, 1,
                                   [&](const auto& outs, const auto& ins) {
                                     activation_forward(act, outs[0], ins[0], alpha);
                                   });
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "cpu activation_forward", [&] {
    forward_typed<scalar_t>(act, static_cast<scalar_t*>(out.raw_data()),
                            static_cast<const scalar_t*>(in.raw_data()), out.numel(), alpha);
  });
}

void CpuBackend::activation_backward(Activation act, const Tensor& grad_in,
                                     const Tensor& grad_out, const Tensor& in, const Tensor& out,
                                     double alpha) {
  if (detail::any_reduced_floating({&grad_in, &grad_out, &in, &out})) {
    return detail::stage_in_pieces({flat(grad_in)}, {flat(grad_out), flat(in), flat(out)}, 1,
                                   [&](const auto& outs, const auto& ins) {
                                     activation_backward(act, outs[0], ins[0], ins[1], ins[2],
                                                         alpha);
                                   });
  }
  STRATA_DISPATCH_FLOATING(grad_in.dtype(), "cpu activation_backward", [&] {
    using T = scalar_t;
    // in or out may be left undefined by a caller whose activation does not read it.
    const T* in_data = in.defined() ? static_cast<const T*>(in.raw_data()) : nullptr;
    const T* out_data = out.defined() ? static_cast<const T*>(out.raw_data()) : nullptr;
    backward_typed<T>(act, static_cast<T*>(grad_in.raw_data()),
                      static_cast<const T*>(grad_out.raw_data()), in_data, out_data,
                      grad_in.numel(), alpha);
  });
}

}  // namespace strata::cpu
