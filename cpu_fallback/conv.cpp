// 2-D convolution of the CPU backend (float32 and float64) through OpenBLAS GEMMs.
// x [N, C, H, W], w [K, C/G, R, S], out [N, K, P, Q], all contiguous (backend.h).
// - General case, im2col: per image and group the column matrix col [C/G * R * S, P * Q] turns
//   the convolution into one GEMM: forward out_g = w_g @ col; backward data col = w_g^T @
//   grad_out_g, then col2im adds col into grad_x; backward filter grad_w_g += grad_out_g @ col^T.
//   A 1x1, stride-1, unpadded convolution uses x (or grad_x) as the column matrix itself.
// - 3x3, stride 1, undilated, ungrouped, >= 16 channels each side: Winograd F(2x2, 3x3), 16
//   GEMMs with 4 multiplications per output instead of 9 (all three passes; see below).
// Threads: a batch of at least as many images as threads (and enough work) is split by whole
// images, each OpenMP thread running single-threaded GEMMs on its own scratch buffers
// (OpenBLAS's OpenMP build runs one thread inside a parallel region); otherwise the images go
// one by one with multi-threaded GEMMs. The filter gradient gives each thread its own partial
// sum, added in thread order, so a given thread count always gives the same bits.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "blas.h"
#include "cpu_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// Sizes of one convolution, from the tensors' shapes and the params.
struct ConvShape {
  int64_t n, c, h, w;   // input
  int64_t k, r, s;      // filter
  int64_t p, q;         // output
  int64_t groups, c_per_group, k_per_group;
  int64_t col_rows;     // c_per_group * r * s
  int64_t hw, pq;
  int64_t macs;         // multiply-adds of one pass of im2col + GEMM
  bool direct;          // 1x1, stride 1, no padding: col is x itself
  Conv2dParams params;
};

ConvShape conv_shape(const Tensor& x, const Tensor& w, const Tensor& out_like,
                     const Conv2dParams& params) {
  ConvShape g{};
  g.n = x.shape()[0];
  g.c = x.shape()[1];
  g.h = x.shape()[2];
  g.w = x.shape()[3];
  g.k = w.shape()[0];
  g.r = w.shape()[2];
  g.s = w.shape()[3];
  g.p = out_like.shape()[2];
  g.q = out_like.shape()[3];
  g.groups = params.groups;
  g.c_per_group = g.c / g.groups;
  g.k_per_group = g.k / g.groups;
  g.col_rows = g.c_per_group * g.r * g.s;
  g.hw = g.h * g.w;
  g.pq = g.p * g.q;
  g.macs = g.n * g.k * g.pq * g.col_rows;
  g.direct = g.r == 1 && g.s == 1 && params.stride_h == 1 && params.stride_w == 1 &&
             params.pad_h == 0 && params.pad_w == 0;
  g.params = params;
  return g;
}

// Per-thread scratch memory kept between calls (slots 0, 1 and 2 are distinct buffers), so a
// training loop neither page-faults nor zero-fills fresh column buffers on every call.
// NOTE: the contents are garbage on entry; every user writes before it reads.
template <typename T>
T* scratch(size_t elements, int slot) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& buffer = buffers[slot];
  if (buffer.size() < elements) buffer.resize(elements);
  return buffer.data();
}

// Split the batch over OpenMP threads (single-threaded GEMMs), or not (multi-threaded GEMMs)?
// `macs` is the whole call's multiply-adds: below about 2^18 a parallel region costs more than
// it saves.
// NOTE: only OpenBLAS's OpenMP build (openblas_get_parallel() == 2) or a sequential one runs
// single-threaded when called from inside a parallel region; the pthreads build would serialize
// the threads' calls on its own pool, so with it the batch goes image by image.
bool split_batch(int64_t batch, int64_t macs) {
  static const bool blas_nests = openblas_get_parallel() != 1;
  const int threads = omp_get_max_threads();
  return blas_nests && threads > 1 && batch >= threads && macs >= (int64_t{1} << 18);
}

// [lo, hi): the output positions o in [0, out_size) whose input position o * stride + offset
// lies in [0, size).
inline void valid_range(int64_t out_size, int64_t size, int64_t stride, int64_t offset,
                        int64_t& lo, int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = size - 1 - offset < 0 ? 0 : (size - 1 - offset) / stride + 1;
  lo = std::min(lo, out_size);
  hi = std::clamp(hi, lo, out_size);
}

// col [c_per_group * r * s, p * q] from the c_per_group channels at x_g ([c_per_group, h, w]).
template <typename T>
void im2col(const ConvShape& g, const T* x_g, T* col) {
  const Conv2dParams& cp = g.params;
  for (int64_t ch = 0; ch < g.c_per_group; ++ch) {
    const T* plane = x_g + ch * g.hw;
    for (int64_t ri = 0; ri < g.r; ++ri) {
      const int64_t h_offset = ri * cp.dilation_h - cp.pad_h;
      int64_t oh_lo, oh_hi;
      valid_range(g.p, g.h, cp.stride_h, h_offset, oh_lo, oh_hi);
      for (int64_t si = 0; si < g.s; ++si) {
        const int64_t w_offset = si * cp.dilation_w - cp.pad_w;
        int64_t ow_lo, ow_hi;
        valid_range(g.q, g.w, cp.stride_w, w_offset, ow_lo, ow_hi);
        T* row = col + ((ch * g.r + ri) * g.s + si) * g.pq;
        for (int64_t j = 0; j < oh_lo * g.q; ++j) row[j] = T(0);
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* dst = row + oh * g.q;
          const T* src = plane + (oh * cp.stride_h + h_offset) * g.w + w_offset;
          for (int64_t ow = 0; ow < ow_lo; ++ow) dst[ow] = T(0);
          if (cp.stride_w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] = src[ow * cp.stride_w];
          }
          for (int64_t ow = ow_hi; ow < g.q; ++ow) dst[ow] = T(0);
        }
        for (int64_t j = oh_hi * g.q; j < g.pq; ++j) row[j] = T(0);
      }
    }
  }
}

// grad_x_g ([c_per_group, h, w], already holding a value) += col2im(col).
template <typename T>
void col2im_add(const ConvShape& g, const T* col, T* grad_x_g) {
  const Conv2dParams& cp = g.params;
  for (int64_t ch = 0; ch < g.c_per_group; ++ch) {
    T* plane = grad_x_g + ch * g.hw;
    for (int64_t ri = 0; ri < g.r; ++ri) {
      const int64_t h_offset = ri * cp.dilation_h - cp.pad_h;
      int64_t oh_lo, oh_hi;
      valid_range(g.p, g.h, cp.stride_h, h_offset, oh_lo, oh_hi);
      for (int64_t si = 0; si < g.s; ++si) {
        const int64_t w_offset = si * cp.dilation_w - cp.pad_w;
        int64_t ow_lo, ow_hi;
        valid_range(g.q, g.w, cp.stride_w, w_offset, ow_lo, ow_hi);
        const T* row = col + ((ch * g.r + ri) * g.s + si) * g.pq;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          const T* src = row + oh * g.q;
          T* dst = plane + (oh * cp.stride_h + h_offset) * g.w + w_offset;
          if (cp.stride_w == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * cp.stride_w] += src[ow];
          }
        }
      }
    }
  }
}

// Runs body(image, col_buffer) for every image, splitting the batch over threads when
// split_batch says so. Each thread owns a column buffer of col_size elements.
template <typename T, typename Body>
void for_each_image(int64_t batch, int64_t macs, int64_t col_size, const Body& body) {
  if (split_batch(batch, macs)) {
#pragma omp parallel
    {
      T* col = scratch<T>(static_cast<size_t>(col_size), 0);
#pragma omp for schedule(static)
      for (int64_t i = 0; i < batch; ++i) body(i, col);
    }
  } else {
    T* col = scratch<T>(static_cast<size_t>(col_size), 0);
    for (int64_t i = 0; i < batch; ++i) body(i, col);
  }
}

// ---- Winograd F(2x2, 3x3) -----------------------------------------------------------------
// For 3x3, stride-1, undilated, ungrouped convolutions with enough channels: each 2x2 output
// tile comes from a 4x4 input tile d as A^T [(G g G^T) .* (B^T d B)] A, so the sum over input
// channels becomes 16 GEMMs (one per position of the transformed 4x4 tile) doing 4
// multiplications per output instead of 9. The backward data pass is the same convolution of
// grad_out with the flipped, transposed filter and padding 2 - pad.

bool use_winograd(const ConvShape& g) {
  const Conv2dParams& cp = g.params;
  // NOTE: with few channels the GEMMs are too thin to win back the tile transforms.
  return g.r == 3 && g.s == 3 && cp.stride_h == 1 && cp.stride_w == 1 && cp.dilation_h == 1 &&
         cp.dilation_w == 1 && g.groups == 1 && cp.pad_h <= 2 && cp.pad_w <= 2 && g.c >= 16 &&
         g.k >= 16;
}

// U [16, k_out, c_in] = G g G^T for each 3x3 filter g. With `flip_transpose`, filter (k, c)
// is w[c][k] rotated by 180 degrees (the backward data pass); w is [c_in, k_out, 3, 3] then,
// else [k_out, c_in, 3, 3].
template <typename T>
std::vector<T> winograd_filters(const T* w, int64_t k_out, int64_t c_in, bool flip_transpose) {
  std::vector<T> u(static_cast<size_t>(16 * k_out * c_in));
  const T half = T(0.5);
  for (int64_t k = 0; k < k_out; ++k) {
    for (int64_t c = 0; c < c_in; ++c) {
      T g[3][3];
      const T* src = flip_transpose ? w + (c * k_out + k) * 9 : w + (k * c_in + c) * 9;
      for (int i = 0; i < 3; ++i) {
        for (int j = 0; j < 3; ++j) {
          g[i][j] = flip_transpose ? src[(2 - i) * 3 + (2 - j)] : src[i * 3 + j];
        }
      }
      T t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[0][j];
        t[1][j] = half * (g[0][j] + g[1][j] + g[2][j]);
        t[2][j] = half * (g[0][j] - g[1][j] + g[2][j]);
        t[3][j] = g[2][j];
      }
      T* dst = u.data() + k * c_in + c;
      const int64_t step = k_out * c_in;
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        dst[(i * 4 + 0) * step] = t[i][0];
        dst[(i * 4 + 1) * step] = half * (t[i][0] + t[i][1] + t[i][2]);
        dst[(i * 4 + 2) * step] = half * (t[i][0] - t[i][1] + t[i][2]);
        dst[(i * 4 + 3) * step] = t[i][2];
      }
    }
  }
  return u;
}

// How a Winograd convolution with output [n, *, p, q] is cut: 2x2 output tiles, and chunks of
// images whose tiles make up one GEMM's width.
struct WinogradTiling {
  int64_t tiles_h, tiles_w, tiles;   // per image
  int64_t per_chunk, chunks;         // images per chunk, number of chunks
  int64_t padded_w;                  // length of one zero-padded row of the transforms
  int64_t rows_size;                 // row scratch of the transforms, in elements
};

WinogradTiling winograd_tiling(int64_t n, int64_t p, int64_t q) {
  WinogradTiling wt{};
  wt.tiles_h = (p + 1) / 2;
  wt.tiles_w = (q + 1) / 2;
  wt.tiles = wt.tiles_h * wt.tiles_w;
  // Images per chunk: about 256 tiles, wide enough for GEMM, small enough for the L2 cache.
  wt.per_chunk = std::clamp<int64_t>((256 + wt.tiles - 1) / wt.tiles, 1, 16);
  wt.chunks = (n + wt.per_chunk - 1) / wt.per_chunk;
  wt.padded_w = 2 * wt.tiles_w + 2;
  wt.rows_size = std::max(8 * wt.padded_w, 12 * wt.tiles_w);
  return wt;
}

// V [16, c_in, tt] (tt = count * tiles) = B^T d B for every 4x4 input tile d of images
// [first, first + count) of in [n, c_in, h, w] padded by (pad_h, pad_w).
template <typename T>
void winograd_input_transform(const T* in, int64_t first, int64_t count, int64_t c_in, int64_t h,
                              int64_t w, int64_t pad_h, int64_t pad_w, const WinogradTiling& wt,
                              T* v, T* rows) {
  const int64_t tiles_h = wt.tiles_h, tiles_w = wt.tiles_w, tiles = wt.tiles;
  const int64_t padded_w = wt.padded_w, tt = count * tiles;
  // A row of tiles at a time, each step a loop over the row's tiles so that it vectorizes:
  // first B^T on four zero-padded input rows, then B on each tile's four columns.
  T* padded = rows;                // [4, padded_w]: input rows 2 th - pad_h + a
  T* bt = rows + 4 * padded_w;     // [4, padded_w]: B^T applied to them
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t c = 0; c < c_in; ++c) {
      const T* plane = in + ((first + j) * c_in + c) * h * w;
      T* vc = v + c * tt + j * tiles;
      const int64_t xi_step = c_in * tt;
      for (int64_t th = 0; th < tiles_h; ++th) {
        for (int a = 0; a < 4; ++a) {
          const int64_t ih = 2 * th - pad_h + a;
          T* dst = padded + a * padded_w;
          if (ih < 0 || ih >= h) {
            for (int64_t x = 0; x < padded_w; ++x) dst[x] = T(0);
            continue;
          }
          const T* src = plane + ih * w;
          const int64_t copy_end = std::min(padded_w, pad_w + w);
          for (int64_t x = 0; x < pad_w; ++x) dst[x] = T(0);
          for (int64_t x = pad_w; x < copy_end; ++x) dst[x] = src[x - pad_w];
          for (int64_t x = copy_end; x < padded_w; ++x) dst[x] = T(0);
        }
        const T* d0 = padded;
        const T* d1 = padded + padded_w;
        const T* d2 = padded + 2 * padded_w;
        const T* d3 = padded + 3 * padded_w;
        T* t0 = bt;
        T* t1 = bt + padded_w;
        T* t2 = bt + 2 * padded_w;
        T* t3 = bt + 3 * padded_w;
        for (int64_t x = 0; x < padded_w; ++x) {
          t0[x] = d0[x] - d2[x];
          t1[x] = d1[x] + d2[x];
          t2[x] = d2[x] - d1[x];
          t3[x] = d1[x] - d3[x];
        }
        T* dst = vc + th * tiles_w;
        for (int a = 0; a < 4; ++a) {
          const T* ta = bt + a * padded_w;
          T* out0 = dst + (a * 4 + 0) * xi_step;
          T* out1 = dst + (a * 4 + 1) * xi_step;
          T* out2 = dst + (a * 4 + 2) * xi_step;
          T* out3 = dst + (a * 4 + 3) * xi_step;
          for (int64_t tw = 0; tw < tiles_w; ++tw) {
            const T e0 = ta[2 * tw], e1 = ta[2 * tw + 1], e2 = ta[2 * tw + 2], e3 = ta[2 * tw + 3];
            out0[tw] = e0 - e2;
            out1[tw] = e1 + e2;
            out2[tw] = e2 - e1;
            out3[tw] = e1 - e3;
          }
        }
      }
    }
  }
}

// Images [first, first + count) of out [n, k_out, p, q] = A^T M A (+ bias) for every tile of
// M [16, k_out, tt], cut at the output's edge.
template <typename T>
void winograd_output_transform(const T* m, int64_t first, int64_t count, int64_t k_out, int64_t p,
                               int64_t q, const T* bias, const WinogradTiling& wt, T* out,
                               T* rows) {
  const int64_t tiles_h = wt.tiles_h, tiles_w = wt.tiles_w, tiles = wt.tiles;
  const int64_t tt = count * tiles;
  // A row of tiles at a time, as in winograd_input_transform.
  const int64_t xi_step = k_out * tt;
  T* s_rows = rows;                     // [2, 4, tiles_w]: A^T M
  T* y_rows = rows + 8 * tiles_w;       // [2, 2 * tiles_w]: output rows 2 th and 2 th + 1
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t k = 0; k < k_out; ++k) {
      T* o = out + ((first + j) * k_out + k) * p * q;
      const T* mk = m + k * tt + j * tiles;
      const T b = bias != nullptr ? bias[k] : T(0);
      for (int64_t th = 0; th < tiles_h; ++th) {
        const T* src = mk + th * tiles_w;
        for (int b2 = 0; b2 < 4; ++b2) {
          const T* m0 = src + (0 * 4 + b2) * xi_step;
          const T* m1 = src + (1 * 4 + b2) * xi_step;
          const T* m2 = src + (2 * 4 + b2) * xi_step;
          const T* m3 = src + (3 * 4 + b2) * xi_step;
          T* s0 = s_rows + b2 * tiles_w;
          T* s1 = s_rows + (4 + b2) * tiles_w;
          for (int64_t tw = 0; tw < tiles_w; ++tw) {
            s0[tw] = m0[tw] + m1[tw] + m2[tw];
            s1[tw] = m1[tw] - m2[tw] - m3[tw];
          }
        }
        for (int a = 0; a < 2; ++a) {
          const T* sa0 = s_rows + (a * 4 + 0) * tiles_w;
          const T* sa1 = s_rows + (a * 4 + 1) * tiles_w;
          const T* sa2 = s_rows + (a * 4 + 2) * tiles_w;
          const T* sa3 = s_rows + (a * 4 + 3) * tiles_w;
          T* y = y_rows + a * 2 * tiles_w;
          for (int64_t tw = 0; tw < tiles_w; ++tw) {
            y[2 * tw] = sa0[tw] + sa1[tw] + sa2[tw] + b;
            y[2 * tw + 1] = sa1[tw] - sa2[tw] - sa3[tw] + b;
          }
        }
        for (int a = 0; a < 2 && 2 * th + a < p; ++a) {
          const T* y = y_rows + a * 2 * tiles_w;
          T* row = o + (2 * th + a) * q;
          for (int64_t x = 0; x < q; ++x) row[x] = y[x];
        }
      }
    }
  }
}

// D [16, k_out, tt] = A dy A^T for every 2x2 tile dy of images [first, first + count) of
// grad_out [n, k_out, p, q] (zero past the output's edge): the gradient with respect to the
// transformed products that winograd_output_transform sums.
template <typename T>
void winograd_grad_transform(const T* grad_out, int64_t first, int64_t count, int64_t k_out,
                             int64_t p, int64_t q, const WinogradTiling& wt, T* d, T* rows) {
  const int64_t tiles_h = wt.tiles_h, tiles_w = wt.tiles_w, tiles = wt.tiles;
  const int64_t tt = count * tiles, xi_step = k_out * tt, width = 2 * tiles_w;
  T* y = rows;               // [2, width]: grad_out rows 2 th and 2 th + 1, zero-padded
  T* r = rows + 2 * width;   // [4, width]: A applied to them
  for (int64_t j = 0; j < count; ++j) {
    for (int64_t k = 0; k < k_out; ++k) {
      const T* plane = grad_out + ((first + j) * k_out + k) * p * q;
      T* dk = d + k * tt + j * tiles;
      for (int64_t th = 0; th < tiles_h; ++th) {
        for (int a = 0; a < 2; ++a) {
          T* dst = y + a * width;
          const int64_t oh = 2 * th + a;
          const int64_t copy_end = oh < p ? q : 0;
          for (int64_t x = 0; x < copy_end; ++x) dst[x] = plane[oh * q + x];
          for (int64_t x = copy_end; x < width; ++x) dst[x] = T(0);
        }
        const T* y0 = y;
        const T* y1 = y + width;
        for (int64_t x = 0; x < width; ++x) {
          r[x] = y0[x];
          r[width + x] = y0[x] + y1[x];
          r[2 * width + x] = y0[x] - y1[x];
          r[3 * width + x] = -y1[x];
        }
        T* dst = dk + th * tiles_w;
        for (int a = 0; a < 4; ++a) {
          const T* ra = r + a * width;
          T* out0 = dst + (a * 4 + 0) * xi_step;
          T* out1 = dst + (a * 4 + 1) * xi_step;
          T* out2 = dst + (a * 4 + 2) * xi_step;
          T* out3 = dst + (a * 4 + 3) * xi_step;
          for (int64_t tw = 0; tw < tiles_w; ++tw) {
            const T e0 = ra[2 * tw], e1 = ra[2 * tw + 1];
            out0[tw] = e0;
            out1[tw] = e0 + e1;
            out2[tw] = e0 - e1;
            out3[tw] = -e1;
          }
        }
      }
    }
  }
}

// out [n, k_out, p, q] (+ bias) = the 3x3 stride-1 convolution of in [n, c_in, h, w] padded by
// (pad_h, pad_w), with filters already transformed to u [16, k_out, c_in].
template <typename T>
void winograd_conv(const T* in, int64_t n, int64_t c_in, int64_t h, int64_t w, const T* u,
                   int64_t k_out, int64_t p, int64_t q, int64_t pad_h, int64_t pad_w,
                   const T* bias, T* out) {
  const WinogradTiling wt = winograd_tiling(n, p, q);
  const int64_t v_size = 16 * c_in * wt.per_chunk * wt.tiles;
  const int64_t m_size = 16 * k_out * wt.per_chunk * wt.tiles;
  auto run_chunk = [&](int64_t chunk, T* v, T* m, T* rows) {
    const int64_t first = chunk * wt.per_chunk, count = std::min(wt.per_chunk, n - first);
    const int64_t tt = count * wt.tiles;
    winograd_input_transform(in, first, count, c_in, h, w, pad_h, pad_w, wt, v, rows);
    // M_xi [k_out, tt] = U_xi [k_out, c_in] @ V_xi [c_in, tt]
    for (int64_t xi = 0; xi < 16; ++xi) {
      gemm(CblasNoTrans, CblasNoTrans, k_out, tt, c_in, u + xi * k_out * c_in, c_in,
           v + xi * c_in * tt, tt, false, m + xi * k_out * tt, tt);
    }
    winograd_output_transform(m, first, count, k_out, p, q, bias, wt, out, rows);
  };
  const int64_t macs = n * k_out * p * q * c_in * 9;
  if (split_batch(n, macs) && wt.chunks >= omp_get_max_threads()) {
#pragma omp parallel
    {
      T* v = scratch<T>(static_cast<size_t>(v_size), 0);
      T* m = scratch<T>(static_cast<size_t>(m_size), 1);
      T* rows = scratch<T>(static_cast<size_t>(wt.rows_size), 2);
#pragma omp for schedule(static)
      for (int64_t chunk = 0; chunk < wt.chunks; ++chunk) run_chunk(chunk, v, m, rows);
    }
  } else {
    T* v = scratch<T>(static_cast<size_t>(v_size), 0);
    T* m = scratch<T>(static_cast<size_t>(m_size), 1);
    T* rows = scratch<T>(static_cast<size_t>(wt.rows_size), 2);
    for (int64_t chunk = 0; chunk < wt.chunks; ++chunk) run_chunk(chunk, v, m, rows);
  }
}

// grad_w [k, c, 3, 3] of the 3x3 stride-1 convolution of x [n, c, h, w] padded by (pad_h,
// pad_w), given grad_out [n, k, p, q]: dU_xi [k, c] = sum over tiles of D_xi @ V_xi^T (each
// thread summing its own chunks, then the threads' sums added in order), then
// grad_w = G^T dU G for each filter.
template <typename T>
void winograd_filter_grad(const T* x, const T* grad_out, int64_t n, int64_t c, int64_t h,
                          int64_t w, int64_t k, int64_t p, int64_t q, int64_t pad_h,
                          int64_t pad_w, T* grad_w) {
  const WinogradTiling wt = winograd_tiling(n, p, q);
  const int64_t v_size = 16 * c * wt.per_chunk * wt.tiles;
  const int64_t d_size = 16 * k * wt.per_chunk * wt.tiles;
  const int64_t u_size = 16 * k * c;
  const int64_t macs = n * k * p * q * c * 9;
  const bool split = split_batch(n, macs) && wt.chunks >= omp_get_max_threads();
  const int threads = split ? omp_get_max_threads() : 1;
  std::vector<T> du(static_cast<size_t>(threads * u_size), T(0));
  auto run_chunks = [&](int64_t begin, int64_t end, T* du_thread) {
    T* v = scratch<T>(static_cast<size_t>(v_size), 0);
    T* d = scratch<T>(static_cast<size_t>(d_size), 1);
    T* rows = scratch<T>(static_cast<size_t>(wt.rows_size), 2);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t first = chunk * wt.per_chunk, count = std::min(wt.per_chunk, n - first);
      const int64_t tt = count * wt.tiles;
      winograd_input_transform(x, first, count, c, h, w, pad_h, pad_w, wt, v, rows);
      winograd_grad_transform(grad_out, first, count, k, p, q, wt, d, rows);
      // dU_xi [k, c] += D_xi [k, tt] @ V_xi^T [tt, c]
      for (int64_t xi = 0; xi < 16; ++xi) {
        gemm(CblasNoTrans, CblasTrans, k, c, tt, d + xi * k * tt, tt, v + xi * c * tt, tt, true,
             du_thread + xi * k * c, c);
      }
    }
  };
  if (split) {
#pragma omp parallel num_threads(threads)
    {
      // NOTE: the team may be smaller than asked (a nested region gets one thread).
      const int team = omp_get_num_threads(), t = omp_get_thread_num();
      run_chunks(wt.chunks * t / team, wt.chunks * (t + 1) / team, du.data() + t * u_size);
    }
    for (int t = 1; t < threads; ++t) {
      const T* part = du.data() + t * u_size;
      for (int64_t j = 0; j < u_size; ++j) du[static_cast<size_t>(j)] += part[j];
    }
  } else {
    run_chunks(0, wt.chunks, du.data());
  }
  // grad_w = G^T dU G, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
  const T half = T(0.5);
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t cc = 0; cc < c; ++cc) {
      T e[4][4];
      for (int xi = 0; xi < 16; ++xi) {
        e[xi / 4][xi % 4] = du[static_cast<size_t>(xi * k * c + kk * c + cc)];
      }
      T t[3][4];  // G^T dU
      for (int b = 0; b < 4; ++b) {
        t[0][b] = e[0][b] + half * (e[1][b] + e[2][b]);
        t[1][b] = half * (e[1][b] - e[2][b]);
        t[2][b] = half * (e[1][b] + e[2][b]) + e[3][b];
      }
      T* dst = grad_w + (kk * c + cc) * 9;
      for (int i = 0; i < 3; ++i) {  // (G^T dU) G
        dst[i * 3 + 0] = t[i][0] + half * (t[i][1] + t[i][2]);
        dst[i * 3 + 1] = half * (t[i][1] - t[i][2]);
        dst[i * 3 + 2] = half * (t[i][1] + t[i][2]) + t[i][3];
      }
    }
  }
}

// ---- im2col + GEMM ------------------------------------------------------------------------

template <typename T>
void conv2d_forward_typed(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                          const Conv2dParams& params) {
  const ConvShape g = conv_shape(x, w, out, params);
  const T* x_data = static_cast<const T*>(x.raw_data());
  const T* w_data = static_cast<const T*>(w.raw_data());
  const T* b_data = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
  T* out_data = static_cast<T*>(out.raw_data());
  if (use_winograd(g)) {
    const std::vector<T> u = winograd_filters(w_data, g.k, g.c, false);
    winograd_conv(x_data, g.n, g.c, g.h, g.w, u.data(), g.k, g.p, g.q, params.pad_h,
                  params.pad_w, b_data, out_data);
    return;
  }
  // x_g [c_per_group, hw] is the column matrix of a direct convolution.
  for_each_image<T>(g.n, g.macs, g.direct ? 0 : g.col_rows * g.pq, [&](int64_t i, T* col) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* x_g = x_data + (i * g.c + grp * g.c_per_group) * g.hw;
      T* out_g = out_data + (i * g.k + grp * g.k_per_group) * g.pq;
      const T* cols = x_g;
      if (!g.direct) {
        im2col(g, x_g, col);
        cols = col;
      }
      // out_g [k_per_group, pq] = w_g [k_per_group, col_rows] @ cols [col_rows, pq]
      gemm(CblasNoTrans, CblasNoTrans, g.k_per_group, g.pq, g.col_rows,
           w_data + grp * g.k_per_group * g.col_rows, g.col_rows, cols, g.pq, false, out_g,
           g.pq);
    }
    if (b_data != nullptr) {
      T* out_i = out_data + i * g.k * g.pq;
      for (int64_t kk = 0; kk < g.k; ++kk) {
        const T b = b_data[kk];
        T* row = out_i + kk * g.pq;
        for (int64_t j = 0; j < g.pq; ++j) row[j] += b;
      }
    }
  });
}

template <typename T>
void conv2d_backward_data_typed(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w,
                                const Conv2dParams& params) {
  const ConvShape g = conv_shape(grad_x, w, grad_out, params);
  const T* go_data = static_cast<const T*>(grad_out.raw_data());
  const T* w_data = static_cast<const T*>(w.raw_data());
  T* gx_data = static_cast<T*>(grad_x.raw_data());
  if (use_winograd(g)) {
    // grad_x = grad_out convolved with w flipped and transposed, padded by 2 - pad.
    const std::vector<T> u = winograd_filters(w_data, g.c, g.k, true);
    winograd_conv(go_data, g.n, g.k, g.p, g.q, u.data(), g.c, g.h, g.w, 2 - params.pad_h,
                  2 - params.pad_w, static_cast<const T*>(nullptr), gx_data);
    return;
  }
  for_each_image<T>(g.n, g.macs, g.direct ? 0 : g.col_rows * g.pq, [&](int64_t i, T* col) {
    T* gx_i = gx_data + i * g.c * g.hw;
    if (!g.direct) std::fill(gx_i, gx_i + g.c * g.hw, T(0));
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const T* go_g = go_data + (i * g.k + grp * g.k_per_group) * g.pq;
      const T* w_g = w_data + grp * g.k_per_group * g.col_rows;
      T* gx_g = gx_i + grp * g.c_per_group * g.hw;
      // cols [col_rows, pq] = w_g^T [col_rows, k_per_group] @ go_g [k_per_group, pq]
      T* cols = g.direct ? gx_g : col;
      gemm(CblasTrans, CblasNoTrans, g.col_rows, g.pq, g.k_per_group, w_g, g.col_rows, go_g,
           g.pq, false, cols, g.pq);
      if (!g.direct) col2im_add(g, col, gx_g);
    }
  });
}

template <typename T>
void conv2d_backward_filter_typed(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x,
                                  const Conv2dParams& params) {
  const ConvShape g = conv_shape(x, grad_w, grad_out, params);
  const T* go_data = static_cast<const T*>(grad_out.raw_data());
  const T* x_data = static_cast<const T*>(x.raw_data());
  T* gw_data = static_cast<T*>(grad_w.raw_data());
  const int64_t w_size = g.k * g.col_rows;
  const int64_t col_size = g.direct ? 0 : g.col_rows * g.pq;

  // Adds images [begin, end) into acc [k, col_rows]; the first GEMM of each group overwrites.
  auto accumulate_images = [&](int64_t begin, int64_t end, T* acc, T* col) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t grp = 0; grp < g.groups; ++grp) {
        const T* x_g = x_data + (i * g.c + grp * g.c_per_group) * g.hw;
        const T* go_g = go_data + (i * g.k + grp * g.k_per_group) * g.pq;
        const T* cols = x_g;
        if (!g.direct) {
          im2col(g, x_g, col);
          cols = col;
        }
        // acc_g [k_per_group, col_rows] (+)= go_g [k_per_group, pq] @ cols^T [pq, col_rows]
        gemm(CblasNoTrans, CblasTrans, g.k_per_group, g.col_rows, g.pq, go_g, g.pq, cols, g.pq,
             i > begin, acc + grp * g.k_per_group * g.col_rows, g.col_rows);
      }
    }
  };

  if (g.n == 0) {
    std::fill(gw_data, gw_data + w_size, T(0));
    return;
  }
  if (use_winograd(g)) {
    winograd_filter_grad(x_data, go_data, g.n, g.c, g.h, g.w, g.k, g.p, g.q, params.pad_h,
                         params.pad_w, gw_data);
    return;
  }
  if (!split_batch(g.n, g.macs)) {
    accumulate_images(0, g.n, gw_data, scratch<T>(static_cast<size_t>(col_size), 0));
    return;
  }
  // One partial grad_w per thread (thread 0 writes grad_w itself), summed in thread order.
  const int threads = omp_get_max_threads();
  std::vector<T> partials(static_cast<size_t>((threads - 1) * w_size));
#pragma omp parallel num_threads(threads)
  {
    // NOTE: the team may be smaller than asked (a nested region gets one thread).
    const int team = omp_get_num_threads();
    const int t = omp_get_thread_num();
    const int64_t begin = g.n * t / team, end = g.n * (t + 1) / team;
    T* acc = t == 0 ? gw_data : partials.data() + (t - 1) * w_size;
    accumulate_images(begin, end, acc, scratch<T>(static_cast<size_t>(col_size), 0));
#pragma omp barrier
    // Sum the partials into grad_w, each thread taking a slice of its elements.
    const int64_t lo = w_size * t / team, hi = w_size * (t + 1) / team;
    for (int other = 1; other < team; ++other) {
      const T* part = partials.data() + (other - 1) * w_size;
      for (int64_t j = lo; j < hi; ++j) gw_data[j] += part[j];
    }
  }
}

}  // namespace

// Half precision: the filter is widened once, images a piece at a time (float32_staging.h),
// each piece at least an image per thread (the batch is split by whole images).
void CpuBackend::conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w,
                                const Tensor& bias, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&out, &x, &w, &bias})) {
    detail::Float32Staging whole;
    const Tensor w32 = whole.input(w), bias32 = whole.input(bias);
    return detail::stage_in_pieces({out}, {x}, omp_get_max_threads(),
                                   [&](const auto& outs, const auto& ins) {
                                     conv2d_forward(outs[0], ins[0], w32, bias32, params);
                                   });
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "conv2d_forward",
                           [&] { conv2d_forward_typed<scalar_t>(out, x, w, bias, params); });
}

void CpuBackend::conv2d_backward_data(const Tensor& grad_x, const Tensor& grad_out,
                                      const Tensor& w, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&grad_x, &grad_out, &w})) {
    detail::Float32Staging whole;
    const Tensor w32 = whole.input(w);
    return detail::stage_in_pieces({grad_x}, {grad_out}, omp_get_max_threads(),
                                   [&](const auto& outs, const auto& ins) {
                                     conv2d_backward_data(outs[0], ins[0], w32, params);
                                   });
  }
  STRATA_DISPATCH_FLOATING(grad_x.dtype(), "conv2d_backward_data", [&] {
    conv2d_backward_data_typed<scalar_t>(grad_x, grad_out, w, params);
  });
}

void CpuBackend::conv2d_backward_filter(const Tensor& grad_w, const Tensor& grad_out,
                                        const Tensor& x, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&grad_w, &grad_out, &x})) {
    // Each piece's filter gradient is summed into one float32 total, rounded once at the end.
    const Tensor total = Tensor::empty(grad_w.shape(), grad_w.options().dtype(DType::Float32));
    const Tensor part = Tensor::empty(grad_w.shape(), total.options());
    bool first = true;
    detail::stage_in_pieces({}, {grad_out, x}, omp_get_max_threads(),
                            [&](const auto&, const auto& ins) {
                              conv2d_backward_filter(first ? total : part, ins[0], ins[1], params);
                              if (!first) {
                                float* sum = static_cast<float*>(total.raw_data());
                                const float* add = static_cast<const float*>(part.raw_data());
                                for (int64_t i = 0; i < total.numel(); ++i) sum[i] += add[i];
                              }
                              first = false;
                            });
    copy(grad_w, total);
    return;
  }
  STRATA_DISPATCH_FLOATING(grad_w.dtype(), "conv2d_backward_filter", [&] {
    conv2d_backward_filter_typed<scalar_t>(grad_w, grad_out, x, params);
  });
}

}  // namespace strata::cpu
