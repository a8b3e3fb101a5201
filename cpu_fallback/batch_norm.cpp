// Batch-normalization kernels of the CPU backend (training mode; float32 and float64; every
// tensor contiguous). x is read as [N, C, S] with C = weight.numel() (S = 1 for [N, C] input).
// - Statistics accumulate in double (two passes: the mean, then the squared deviations), in
//   independent lanes so the loops vectorize without reassociating one running sum.
// - [N, C] input (S == 1) walks rows and keeps a block of per-channel accumulators, so reads
//   stay contiguous; [N, C, S] input walks each channel's N runs of S contiguous values.
// - Channels (or channel blocks) split over OpenMP threads when the tensor is large.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

constexpr int64_t kLanes = 8;
constexpr int64_t kChannelBlock = 64;  // channels per work item for [N, C] input

// sum over i in [0, n) of term(i), in kLanes independent double accumulators.
template <typename Term>
double lane_sum(int64_t n, const Term& term) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
  }
  double total = 0.0;
  for (; i < n; ++i) total += term(i);
  for (int64_t j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

struct Geometry {
  int64_t n, c, s;
  int64_t count() const { return n * s; }  // values per channel
};

Geometry geometry_of(const Tensor& x, const Tensor& weight) {
  Geometry g{x.shape()[0], weight.numel(), 1};
  g.s = g.n * g.c > 0 ? x.numel() / (g.n * g.c) : 0;
  return g;
}

// The per-channel mean and biased variance of x, in double.
template <typename T>
void channel_stats(const T* x, const Geometry& geo, double* mean, double* var) {
  const double count = static_cast<double>(geo.count());
  const bool parallel = worth_threads(geo.n * geo.c * geo.s);
  if (geo.s == 1) {
    const int64_t blocks = (geo.c + kChannelBlock - 1) / kChannelBlock;
    parallel_for(blocks, parallel, [&](int64_t b) {
      const int64_t c0 = b * kChannelBlock, c1 = std::min(geo.c, c0 + kChannelBlock);
      for (int64_t c = c0; c < c1; ++c) mean[c] = var[c] = 0.0;
      for (int64_t n = 0; n < geo.n; ++n) {
        const T* row = x + n * geo.c;
        for (int64_t c = c0; c < c1; ++c) mean[c] += static_cast<double>(row[c]);
      }
      for (int64_t c = c0; c < c1; ++c) mean[c] /= count;
      for (int64_t n = 0; n < geo.n; ++n) {
        const T* row = x + n * geo.c;
        for (int64_t c = c0; c < c1; ++c) {
          const double d = static_cast<double>(row[c]) - mean[c];
          var[c] += d * d;
        }
      }
      for (int64_t c = c0; c < c1; ++c) var[c] /= count;
    });
    return;
  }
  parallel_for(geo.c, parallel, [&](int64_t c) {
    double sum = 0.0;
    for (int64_t n = 0; n < geo.n; ++n) {
      const T* p = x + (n * geo.c + c) * geo.s;
      sum += lane_sum(geo.s, [p](int64_t i) { return static_cast<double>(p[i]); });
    }
    const double m = sum / count;
    double squares = 0.0;
    for (int64_t n = 0; n < geo.n; ++n) {
      const T* p = x + (n * geo.c + c) * geo.s;
      squares += lane_sum(geo.s, [p, m](int64_t i) {
        const double d = static_cast<double>(p[i]) - m;
        return d * d;
      });
    }
    mean[c] = m;
    var[c] = squares / count;
  });
}

// y = (x - shift[c]) * scale[c] + offset[c] over every element of channel c.
template <typename T>
void per_channel_affine(T* y, const T* x, const Geometry& geo, const T* shift, const T* scale,
                        const T* offset) {
  const bool parallel = worth_threads(geo.n * geo.c * geo.s);
  if (geo.s == 1) {
    parallel_for(geo.n, parallel, [&](int64_t n) {
      const T* row = x + n * geo.c;
      T* out = y + n * geo.c;
      for (int64_t c = 0; c < geo.c; ++c) out[c] = (row[c] - shift[c]) * scale[c] + offset[c];
    });
    return;
  }
  parallel_for(geo.n * geo.c, parallel, [&](int64_t nc) {
    const int64_t c = nc % geo.c;
    const T* p = x + nc * geo.s;
    T* out = y + nc * geo.s;
    const T sh = shift[c], sc = scale[c], of = offset[c];
    for (int64_t i = 0; i < geo.s; ++i) out[i] = (p[i] - sh) * sc + of;
  });
}

template <typename T>
void forward_typed(const Tensor& out, const Tensor& save_mean, const Tensor& save_invstd,
                   const Tensor& running_mean, const Tensor& running_var, const Tensor& x,
                   const Tensor& weight, const Tensor& bias, double momentum, double eps) {
  const Geometry geo = geometry_of(x, weight);
  const auto channels = static_cast<size_t>(geo.c);
  std::vector<double> mean(channels), var(channels);
  channel_stats(static_cast<const T*>(x.raw_data()), geo, mean.data(), var.data());

  T* saved_mean = static_cast<T*>(save_mean.raw_data());
  T* saved_invstd = static_cast<T*>(save_invstd.raw_data());
  const T* w = static_cast<const T*>(weight.raw_data());
  std::vector<T> scale(channels);
  for (size_t c = 0; c < channels; ++c) {
    const double invstd = 1.0 / std::sqrt(var[c] + eps);
    saved_mean[c] = static_cast<T>(mean[c]);
    saved_invstd[c] = static_cast<T>(invstd);
    scale[c] = static_cast<T>(invstd * static_cast<double>(w[c]));
  }
  per_channel_affine(static_cast<T*>(out.raw_data()), static_cast<const T*>(x.raw_data()), geo,
                     saved_mean, scale.data(), static_cast<const T*>(bias.raw_data()));

  if (running_mean.defined()) {
    // NOTE: the running variance takes the unbiased estimate (count / (count - 1) times the
    // batch variance used for normalizing), as PyTorch does; count > 1 is checked in core/.
    const double count = static_cast<double>(geo.count());
    const double unbias = count > 1.0 ? count / (count - 1.0) : 1.0;
    T* rm = static_cast<T*>(running_mean.raw_data());
    T* rv = static_cast<T*>(running_var.raw_data());
    for (size_t c = 0; c < channels; ++c) {
      rm[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(rm[c]) + momentum * mean[c]);
      rv[c] = static_cast<T>((1.0 - momentum) * static_cast<double>(rv[c]) +
                             momentum * var[c] * unbias);
    }
  }
}

// With xhat = (x - mean) * invstd and M values per channel:
//   grad_bias = sum(g), grad_weight = sum(g * xhat),
//   grad_x = weight * invstd * (g - sum(g) / M - xhat * sum(g * xhat) / M).
template <typename T>
void backward_typed(const Tensor& grad_x, const Tensor& grad_weight, const Tensor& grad_bias,
                    const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                    const Tensor& save_mean, const Tensor& save_invstd) {
  const Geometry geo = geometry_of(x, weight);
  const auto channels = static_cast<size_t>(geo.c);
  const T* g = static_cast<const T*>(grad_out.raw_data());
  const T* xs = static_cast<const T*>(x.raw_data());
  const T* mean = static_cast<const T*>(save_mean.raw_data());
  const T* invstd = static_cast<const T*>(save_invstd.raw_data());
  const T* w = static_cast<const T*>(weight.raw_data());
  const bool parallel = worth_threads(geo.n * geo.c * geo.s);

  // sum(g) and sum(g * (x - mean)) per channel, in double.
  std::vector<double> sum_g(channels, 0.0), sum_gx(channels, 0.0);
  if (geo.s == 1) {
    const int64_t blocks = (geo.c + kChannelBlock - 1) / kChannelBlock;
    parallel_for(blocks, parallel, [&](int64_t b) {
      const int64_t c0 = b * kChannelBlock, c1 = std::min(geo.c, c0 + kChannelBlock);
      for (int64_t n = 0; n < geo.n; ++n) {
        const T* gr = g + n * geo.c;
        const T* xr = xs + n * geo.c;
        for (int64_t c = c0; c < c1; ++c) {
          const auto gv = static_cast<double>(gr[c]);
          sum_g[c] += gv;
          sum_gx[c] += gv * (static_cast<double>(xr[c]) - static_cast<double>(mean[c]));
        }
      }
    });
  } else {
    parallel_for(geo.c, parallel, [&](int64_t c) {
      const auto m = static_cast<double>(mean[c]);
      double sg = 0.0, sgx = 0.0;
      for (int64_t n = 0; n < geo.n; ++n) {
        const T* gp = g + (n * geo.c + c) * geo.s;
        const T* xp = xs + (n * geo.c + c) * geo.s;
        sg += lane_sum(geo.s, [gp](int64_t i) { return static_cast<double>(gp[i]); });
        sgx += lane_sum(geo.s, [gp, xp, m](int64_t i) {
          return static_cast<double>(gp[i]) * (static_cast<double>(xp[i]) - m);
        });
      }
      sum_g[c] = sg;
      sum_gx[c] = sgx;
    });
  }

  // grad_x = (x - mean) * a[c] + (g * k[c] + b[c]), with k = weight * invstd,
  // a = -k * invstd^2 * sum_gx / M and b = -k * sum_g / M.
  const double count = static_cast<double>(geo.count());
  std::vector<T> k(channels), a(channels), b(channels);
  for (size_t c = 0; c < channels; ++c) {
    const double is = static_cast<double>(invstd[c]);
    const double kc = static_cast<double>(w[c]) * is;
    k[c] = static_cast<T>(kc);
    a[c] = static_cast<T>(-kc * is * is * sum_gx[c] / count);
    b[c] = static_cast<T>(-kc * sum_g[c] / count);
    if (grad_weight.defined()) static_cast<T*>(grad_weight.raw_data())[c] = static_cast<T>(sum_gx[c] * is);
    if (grad_bias.defined()) static_cast<T*>(grad_bias.raw_data())[c] = static_cast<T>(sum_g[c]);
  }
  if (!grad_x.defined()) return;
  T* dx = static_cast<T*>(grad_x.raw_data());
  if (geo.s == 1) {
    parallel_for(geo.n, parallel, [&](int64_t n) {
      const T* gr = g + n * geo.c;
      const T* xr = xs + n * geo.c;
      T* dr = dx + n * geo.c;
      for (int64_t c = 0; c < geo.c; ++c) dr[c] = (xr[c] - mean[c]) * a[c] + (gr[c] * k[c] + b[c]);
    });
    return;
  }
  parallel_for(geo.n * geo.c, parallel, [&](int64_t nc) {
    const int64_t c = nc % geo.c;
    const T* gp = g + nc * geo.s;
    const T* xp = xs + nc * geo.s;
    T* dp = dx + nc * geo.s;
    const T mc = mean[c], ac = a[c], kc = k[c], bc = b[c];
    for (int64_t i = 0; i < geo.s; ++i) dp[i] = (xp[i] - mc) * ac + (gp[i] * kc + bc);
  });
}

}  // namespace

void CpuBackend::batch_norm_forward(const Tensor& out, const Tensor& save_mean,
                                    const Tensor& save_invstd, const Tensor& running_mean,
                                    const Tensor& running_var, const Tensor& x,
                                    const Tensor& weight, const Tensor& bias, double momentum,
                                    double eps) {
  if (detail::any_reduced_floating({&out, &save_mean, &save_invstd, &running_mean, &running_var,
                                    &x, &weight, &bias})) {
    detail::Float32Staging stage;
    batch_norm_forward(stage.output(out), stage.output(save_mean), stage.output(save_invstd),
                       stage.output(running_mean), stage.output(running_var), stage.input(x),
                       stage.input(weight), stage.input(bias), momentum, eps);
    return stage.finish();
  }
  STRATA_DISPATCH_FLOATING(x.dtype(), "cpu batch_norm_forward", [&] {
    forward_typed<scalar_t>(out, save_mean, save_invstd, running_mean, running_var, x, weight,
                            bias, momentum, eps);
  });
}

void CpuBackend::batch_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                     const Tensor& grad_bias, const Tensor& grad_out,
                                     const Tensor& x, const Tensor& weight,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     double eps) {
  if (detail::any_reduced_floating({&grad_x, &grad_weight, &grad_bias, &grad_out, &x, &weight,
                                    &save_mean, &save_invstd})) {
    detail::Float32Staging stage;
    batch_norm_backward(stage.output(grad_x), stage.output(grad_weight), stage.output(grad_bias),
                        stage.input(grad_out), stage.input(x), stage.input(weight),
                        stage.input(save_mean), stage.input(save_invstd), eps);
    return stage.finish();
  }
  // eps is already inside save_invstd = 1 / sqrt(var + eps), which is all this needs.
  STRATA_DISPATCH_FLOATING(x.dtype(), "cpu batch_norm_backward", [&] {
    backward_typed<scalar_t>(grad_x, grad_weight, grad_bias, grad_out, x, weight, save_mean,
                             save_invstd);
  });
}

}  // namespace strata::cpu
