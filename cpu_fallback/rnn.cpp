// Fused recurrent stacks of the CPU backend (Tanh/Relu Elman, LSTM, GRU; float32 and float64;
// every tensor contiguous; the contract is backend.h's rnn_forward / rnn_backward).
// Per layer and direction the forward pass is one GEMM for the input projection of every step
// ([T*B, in] x W_ihᵀ, biases folded in), then per step one GEMM h_{t-1} W_hhᵀ and one fused
// loop of gate math (vec_math.h's branch-free float32 sigmoid/tanh). The reserve keeps, per
// (layer, direction), the activated gates, the states h (and c) of every step as one
// [T+1, B, H] block, GRU's W_hn h + b_hn, and every layer's output but the last. The backward
// pass runs the steps in reverse with one GEMM per step for dh_{t-1}, keeps dgates of every
// step, and then forms dW_hh, dW_ih and dx with one GEMM each over all T*B rows.
// Row b is active at step t iff t < lengths[b]; an inactive row keeps its state, outputs 0,
// passes its state gradient through unchanged and gets dgates = 0 (so dx = 0 there).
// Threads: the big GEMMs (input projection, dW, dx) use every thread through BLAS. The step
// loops do not call multi-threaded BLAS (a fork and join per small GEMM, and the gate math
// single-threaded in between): the two directions of a bidirectional layer run on two OpenMP
// threads, and a one-way layer's step loop runs on a team that splits the hidden units, each
// thread doing the GEMM and the gate math of its slice with one barrier per step. Inside a
// parallel region OpenBLAS's OpenMP build runs single-threaded (blas.h).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blas.h"
#include "cpu_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"
#include "vec_math.h"

namespace strata::cpu {
namespace {

// The sizes of one call, from params.
struct RnnDims {
  RnnMode mode;
  int64_t steps, batch, input, hidden, layers, dirs, gates;
  int64_t gate_width;  // gates * hidden
  bool bias;
  int64_t layer_input(int64_t layer) const { return layer == 0 ? input : dirs * hidden; }
};

RnnDims rnn_dims(const RnnParams& p, const std::vector<Tensor>& weights) {
  RnnDims d{};
  d.mode = p.mode;
  d.steps = p.seq_len;
  d.batch = p.batch;
  d.input = p.input_size;
  d.hidden = p.hidden_size;
  d.layers = p.num_layers;
  d.dirs = p.directions();
  d.gates = p.gates();
  d.gate_width = d.gates * d.hidden;
  STRATA_ASSERT(static_cast<int64_t>(weights.size()) == 4 * d.layers * d.dirs,
                "cpu rnn: expected ", 4 * d.layers * d.dirs, " weights, got ", weights.size());
  d.bias = weights[2].defined();
  return d;
}

// Where things live in the reserve (offsets in elements). One slot per (layer, direction):
//   gates  [T, B, G*H]  the activated gates of each step (Elman: h itself)
//   states [T+1, B, H]  forward: h0, h_0 .. h_{T-1}; reverse: h_0 .. h_{T-1}, h0 (time order)
//   cells  [T+1, B, H]  the same for c (Lstm only)
//   hn     [T, B, H]    W_hn h_{t-1} + b_hn (Gru only)
// then the outputs [T, B, D*H] of layers 0 .. L-2 (the inputs of layers 1 .. L-1).
struct ReserveLayout {
  int64_t gates = 0, states = 0, cells = 0, hn = 0, slot = 0, outputs = 0, total = 0;

  explicit ReserveLayout(const RnnDims& d) {
    const int64_t step_rows = d.steps * d.batch;
    states = step_rows * d.gate_width;
    cells = states + (d.steps + 1) * d.batch * d.hidden;
    hn = cells + (d.mode == RnnMode::Lstm ? (d.steps + 1) * d.batch * d.hidden : 0);
    slot = hn + (d.mode == RnnMode::Gru ? step_rows * d.hidden : 0);
    outputs = d.layers * d.dirs * slot;
    total = outputs + (d.layers - 1) * step_rows * d.dirs * d.hidden;
  }
  int64_t slot_offset(const RnnDims& d, int64_t layer, int64_t dir) const {
    return (layer * d.dirs + dir) * slot;
  }
  int64_t output_offset(const RnnDims& d, int64_t layer) const {
    return outputs + layer * d.steps * d.batch * d.dirs * d.hidden;
  }
};

// One (layer, direction)'s weights and reserve blocks.
template <typename T>
struct Direction {
  const T* w_ih = nullptr;  // [G*H, in]
  const T* w_hh = nullptr;  // [G*H, H]
  const T* b_ih = nullptr;  // [G*H] or null (no bias)
  const T* b_hh = nullptr;
  T* gates = nullptr;
  T* states = nullptr;
  T* cells = nullptr;
  T* hn = nullptr;
  bool reverse = false;
  int64_t in = 0;  // input features of the layer

  // The states block index before and after the step at time t.
  int64_t prev(int64_t t) const { return reverse ? t + 1 : t; }
  int64_t next(int64_t t) const { return reverse ? t : t + 1; }
  int64_t initial(int64_t steps) const { return reverse ? steps : 0; }
  int64_t final_state(int64_t steps) const { return reverse ? 0 : steps; }
  // The states of the steps' inputs, h_prev of every t in time order: [T, B, H].
  const T* prev_states(const RnnDims& d) const {
    return states + (reverse ? d.batch * d.hidden : 0);
  }
};

template <typename T>
Direction<T> direction_of(const RnnDims& d, const ReserveLayout& layout,
                          const std::vector<Tensor>& weights, T* reserve, int64_t layer,
                          int64_t dir) {
  const size_t k = static_cast<size_t>(4 * (layer * d.dirs + dir));
  Direction<T> v;
  v.w_ih = weights[k].data<T>();
  v.w_hh = weights[k + 1].data<T>();
  if (d.bias) {
    v.b_ih = weights[k + 2].data<T>();
    v.b_hh = weights[k + 3].data<T>();
  }
  T* slot = reserve + layout.slot_offset(d, layer, dir);
  v.gates = slot + layout.gates;
  v.states = slot + layout.states;
  v.cells = d.mode == RnnMode::Lstm ? slot + layout.cells : nullptr;
  v.hn = d.mode == RnnMode::Gru ? slot + layout.hn : nullptr;
  v.reverse = dir == 1;
  v.in = d.layer_input(layer);
  return v;
}

// One step of the batch, for the hidden units [j0, j0 + n) of one thread's slice: which rows
// are active, where the layer's output rows go.
struct StepRows {
  int64_t batch, hidden, j0, n, t;
  const int64_t* lengths;  // per row
  int64_t out_stride;      // row stride of the layer output / its gradient (D*H)
  bool active(int64_t b) const { return t < lengths[b]; }
};

// The thread policy of the step loops: both directions at once, or one direction after the
// other, each on a team of `team` threads splitting its hidden units.
struct StepThreads {
  bool directions_in_parallel = false;
  int team = 1;
};

// NOTE: only OpenBLAS's OpenMP build (openblas_get_parallel() == 2) or a sequential one runs
// single-threaded inside a parallel region; with the pthreads build the step loops stay on
// the calling thread (and BLAS threads each GEMM).
StepThreads step_threads(const RnnDims& d) {
  static const bool blas_nests = openblas_get_parallel() != 1;
  const int threads = omp_get_max_threads();
  StepThreads policy;
  if (!blas_nests || threads < 2 || omp_in_parallel()) return policy;
  // Below about 2^15 multiply-adds per step and thread, a barrier per step costs more than
  // the split saves.
  const int64_t step_macs = d.batch * d.gate_width * d.hidden;
  if (d.dirs == 2) {
    policy.directions_in_parallel = step_macs >= (int64_t{1} << 15);
    return policy;
  }
  // Slices of at least 16 hidden units (two AVX2 vectors).
  const int64_t most = std::min<int64_t>({threads, d.hidden / 16, step_macs >> 15});
  policy.team = static_cast<int>(std::max<int64_t>(1, most));
  return policy;
}

// body(dir) for each direction, both at once on two threads when the policy says so.
template <typename Body>
void for_each_direction(const RnnDims& d, const StepThreads& policy, const Body& body) {
  if (policy.directions_in_parallel) {
#pragma omp parallel num_threads(2)
    {
      // NOTE: the team may be smaller than asked; then one thread runs both.
      const int team = omp_get_num_threads();
      for (int64_t dir = omp_get_thread_num(); dir < d.dirs; dir += team) body(dir);
    }
  } else {
    for (int64_t dir = 0; dir < d.dirs; ++dir) body(dir);
  }
}

// body(p, team) on a team of `team` threads (the calling thread alone when 1); body calls
// sync() between phases that read what other threads wrote.
template <typename Body>
void on_team(int team, const Body& body) {
  if (team <= 1) {
    body(0, 1);
    return;
  }
#pragma omp parallel num_threads(team)
  {
    // NOTE: the team may be smaller than asked; body splits by the actual size.
    body(omp_get_thread_num(), omp_get_num_threads());
  }
}

// The hidden units [begin, end) of thread p of `team`, on multiples of 8 where possible.
void slice_of(int64_t hidden, int p, int team, int64_t& begin, int64_t& end) {
  auto edge = [&](int q) {
    const int64_t e = hidden * q / team;
    return q == team ? hidden : std::min(hidden, (e + 7) / 8 * 8);
  };
  begin = edge(p);
  end = std::max(begin, edge(p + 1));
}

// ---- gate math ------------------------------------------------------------------------------
// One row (one batch entry, H hidden units) per call, in AVX2 and baseline clones (vec_math.h).
// NOTE: every array is its own __restrict parameter: when the gate chunks are offsets from one
// pointer (gates + n, gates + 2n) GCC cannot prove they are apart and leaves the loop scalar
// (4-5x slower), and the row functions must not be inlined into a caller that shows it.

// Elman: gate holds the input projection on entry (hh: the hidden one), h on exit.
template <typename T>
STRATA_VECTOR_CLONES void elman_row_forward(int64_t n, bool relu, T* __restrict gate,
                                            const T* __restrict hh, T* __restrict h_next,
                                            T* __restrict out) {
  if (relu) {
    // NOTE: `x < 0 ? 0 : x`, not std::max: NaN passes through as in the relu op.
    for (int64_t j = 0; j < n; ++j) {
      const T pre = gate[j] + hh[j];
      const T h = pre < T(0) ? T(0) : pre;
      gate[j] = h;
      h_next[j] = h;
      out[j] = h;
    }
  } else {
    for (int64_t j = 0; j < n; ++j) {
      const T h = vecmath::tanh(gate[j] + hh[j]);
      gate[j] = h;
      h_next[j] = h;
      out[j] = h;
    }
  }
}

// Lstm: gi, gf, gg, go hold the input projections on entry (hi, hf, hg, ho: the hidden ones),
// σ(i), σ(f), tanh(g), σ(o) on exit.
template <typename T>
STRATA_VECTOR_CLONES void lstm_row_forward(
    int64_t n, T* __restrict gi, T* __restrict gf, T* __restrict gg, T* __restrict go,
    const T* __restrict hi, const T* __restrict hf, const T* __restrict hg,
    const T* __restrict ho, const T* __restrict c_prev, T* __restrict c_next,
    T* __restrict h_next, T* __restrict out) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = vecmath::sigmoid(gi[j] + hi[j]);
    const T f = vecmath::sigmoid(gf[j] + hf[j]);
    const T g = vecmath::tanh(gg[j] + hg[j]);
    const T o = vecmath::sigmoid(go[j] + ho[j]);
    gi[j] = i;
    gf[j] = f;
    gg[j] = g;
    go[j] = o;
    const T c = f * c_prev[j] + i * g;
    const T h = o * vecmath::tanh(c);
    c_next[j] = c;
    h_next[j] = h;
    out[j] = h;
  }
}

// Gru: gr, gz, gn hold the input projections on entry, r, z, n on exit; hr, hz, hn are the
// chunks of h_prev W_hhᵀ + b_hh, hn saved to hn_saved.
template <typename T>
STRATA_VECTOR_CLONES void gru_row_forward(int64_t n, T* __restrict gr, T* __restrict gz,
                                          T* __restrict gn, const T* __restrict hr,
                                          const T* __restrict hz, const T* __restrict hn,
                                          const T* __restrict h_prev, T* __restrict hn_saved,
                                          T* __restrict h_next, T* __restrict out) {
  for (int64_t j = 0; j < n; ++j) {
    const T r = vecmath::sigmoid(gr[j] + hr[j]);
    const T z = vecmath::sigmoid(gz[j] + hz[j]);
    const T nn = vecmath::tanh(gn[j] + r * hn[j]);
    gr[j] = r;
    gz[j] = z;
    gn[j] = nn;
    hn_saved[j] = hn[j];
    const T h = nn + z * (h_prev[j] - nn);  // (1 - z) n + z h
    h_next[j] = h;
    out[j] = h;
  }
}

// The backward rows write the pre-activation gradients and the part of dh_prev that does not
// go through W_hh (GRU's z ⊙ dh, else 0); dh is the state gradient, dy the output's.
template <typename T>
STRATA_VECTOR_CLONES void elman_row_backward(int64_t n, bool relu, const T* __restrict h,
                                             const T* __restrict dy, const T* __restrict dh,
                                             T* __restrict dgate, T* __restrict dh_prev) {
  if (relu) {
    for (int64_t j = 0; j < n; ++j) dgate[j] = h[j] > T(0) ? dh[j] + dy[j] : T(0);
  } else {
    for (int64_t j = 0; j < n; ++j) dgate[j] = (dh[j] + dy[j]) * (T(1) - h[j] * h[j]);
  }
  for (int64_t j = 0; j < n; ++j) dh_prev[j] = T(0);
}

// dc: d/dc_t on entry, d/dc_{t-1} on exit.
template <typename T>
STRATA_VECTOR_CLONES void lstm_row_backward(
    int64_t n, const T* __restrict gi, const T* __restrict gf, const T* __restrict gg,
    const T* __restrict go, const T* __restrict c_prev, const T* __restrict c_next,
    const T* __restrict dy, const T* __restrict dh, T* __restrict dc, T* __restrict di,
    T* __restrict df, T* __restrict dg, T* __restrict d_o, T* __restrict dh_prev) {
  for (int64_t j = 0; j < n; ++j) {
    const T i = gi[j], f = gf[j], g = gg[j], o = go[j];
    const T dhj = dh[j] + dy[j];
    const T tc = vecmath::tanh(c_next[j]);
    const T dcj = dc[j] + dhj * o * (T(1) - tc * tc);
    di[j] = dcj * g * i * (T(1) - i);
    df[j] = dcj * c_prev[j] * f * (T(1) - f);
    dg[j] = dcj * i * (T(1) - g * g);
    d_o[j] = dhj * tc * o * (T(1) - o);
    dc[j] = dcj * f;
    dh_prev[j] = T(0);
  }
}

// The input-side and hidden-side gradients differ in the n chunk only: x_n's is dn', h_n's is
// r ⊙ dn' (the r and z chunks are written to both).
template <typename T>
STRATA_VECTOR_CLONES void gru_row_backward(
    int64_t n, const T* __restrict gr, const T* __restrict gz, const T* __restrict gn,
    const T* __restrict hn, const T* __restrict h_prev, const T* __restrict dy,
    const T* __restrict dh, T* __restrict dxr, T* __restrict dxz, T* __restrict dxn,
    T* __restrict dhr, T* __restrict dhz, T* __restrict dhn, T* __restrict dh_prev) {
  for (int64_t j = 0; j < n; ++j) {
    const T r = gr[j], z = gz[j], nn = gn[j];
    const T dhj = dh[j] + dy[j];
    const T dn = dhj * (T(1) - z) * (T(1) - nn * nn);
    const T dr = dn * hn[j] * r * (T(1) - r);
    const T dz = dhj * (h_prev[j] - nn) * z * (T(1) - z);
    dxr[j] = dr;
    dxz[j] = dz;
    dxn[j] = dn;
    dhr[j] = dr;
    dhz[j] = dz;
    dhn[j] = dn * r;
    dh_prev[j] = dhj * z;
  }
}

// ---- one batch step: the rows, masked by the lengths ------------------------------------------
// Each works on the slice [j0, j0 + n) of the hidden units. gates, dgates: [B, G*H] (gate k of
// unit j at column k*H + j); hh: the slice's hidden projection [B, G*n] (gate k of unit j0 + jj
// at column k*n + jj); states and their gradients: [B, H]. An inactive row keeps its state,
// outputs zero, gets zero gate gradients and passes its state gradient through.

template <typename T>
void elman_step_forward(const StepRows& s, bool relu, T* gates, const T* hh, const T* h_prev,
                        T* h_next, T* out) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    T* o = out + b * s.out_stride + s.j0;
    if (s.active(b)) {
      elman_row_forward(n, relu, gates + row, hh + b * n, h_next + row, o);
    } else {
      std::copy(h_prev + row, h_prev + row + n, h_next + row);
      std::fill(o, o + n, T(0));
    }
  }
}

template <typename T>
void lstm_step_forward(const StepRows& s, T* gates, const T* hh, const T* c_prev,
                       const T* h_prev, T* c_next, T* h_next, T* out) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    T* g = gates + b * 4 * H + s.j0;
    const T* p = hh + b * 4 * n;
    T* o = out + b * s.out_stride + s.j0;
    if (s.active(b)) {
      lstm_row_forward(n, g, g + H, g + 2 * H, g + 3 * H, p, p + n, p + 2 * n, p + 3 * n,
                       c_prev + row, c_next + row, h_next + row, o);
    } else {
      std::copy(c_prev + row, c_prev + row + n, c_next + row);
      std::copy(h_prev + row, h_prev + row + n, h_next + row);
      std::fill(o, o + n, T(0));
    }
  }
}

// hh includes b_hh; its n chunk is saved to hn_saved [B, H].
template <typename T>
void gru_step_forward(const StepRows& s, T* gates, const T* hh, const T* h_prev, T* hn_saved,
                      T* h_next, T* out) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    T* g = gates + b * 3 * H + s.j0;
    const T* p = hh + b * 3 * n;
    T* o = out + b * s.out_stride + s.j0;
    if (s.active(b)) {
      gru_row_forward(n, g, g + H, g + 2 * H, p, p + n, p + 2 * n, h_prev + row,
                      hn_saved + row, h_next + row, o);
    } else {
      std::copy(h_prev + row, h_prev + row + n, h_next + row);
      std::fill(o, o + n, T(0));
    }
  }
}

template <typename T>
void elman_step_backward(const StepRows& s, bool relu, const T* gates, const T* dout,
                         const T* dh, T* dgates, T* dh_prev) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    if (s.active(b)) {
      elman_row_backward(n, relu, gates + row, dout + b * s.out_stride + s.j0, dh + row,
                         dgates + row, dh_prev + row);
    } else {
      std::fill(dgates + row, dgates + row + n, T(0));
      std::copy(dh + row, dh + row + n, dh_prev + row);
    }
  }
}

// dc: [B, H], d/dc_t on entry, d/dc_{t-1} on exit.
template <typename T>
void lstm_step_backward(const StepRows& s, const T* gates, const T* c_prev, const T* c_next,
                        const T* dout, const T* dh, T* dc, T* dgates, T* dh_prev) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    const T* g = gates + b * 4 * H + s.j0;
    T* dg = dgates + b * 4 * H + s.j0;
    if (s.active(b)) {
      lstm_row_backward(n, g, g + H, g + 2 * H, g + 3 * H, c_prev + row, c_next + row,
                        dout + b * s.out_stride + s.j0, dh + row, dc + row, dg, dg + H,
                        dg + 2 * H, dg + 3 * H, dh_prev + row);
    } else {
      for (int64_t k = 0; k < 4; ++k) std::fill(dg + k * H, dg + k * H + n, T(0));
      std::copy(dh + row, dh + row + n, dh_prev + row);
    }
  }
}

template <typename T>
void gru_step_backward(const StepRows& s, const T* gates, const T* hn_saved, const T* h_prev,
                       const T* dout, const T* dh, T* dgates_ih, T* dgates_hh, T* dh_prev) {
  const int64_t n = s.n, H = s.hidden;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t row = b * H + s.j0;
    const T* g = gates + b * 3 * H + s.j0;
    T* dx = dgates_ih + b * 3 * H + s.j0;
    T* dhh = dgates_hh + b * 3 * H + s.j0;
    if (s.active(b)) {
      gru_row_backward(n, g, g + H, g + 2 * H, hn_saved + row, h_prev + row,
                       dout + b * s.out_stride + s.j0, dh + row, dx, dx + H, dx + 2 * H, dhh,
                       dhh + H, dhh + 2 * H, dh_prev + row);
    } else {
      for (int64_t k = 0; k < 3; ++k) {
        std::fill(dx + k * H, dx + k * H + n, T(0));
        std::fill(dhh + k * H, dhh + k * H + n, T(0));
      }
      std::copy(dh + row, dh + row + n, dh_prev + row);
    }
  }
}

// sums[j] += src[b * ld + j] for b < rows, j < n.
template <typename T>
STRATA_VECTOR_CLONES void add_rows(int64_t rows, int64_t n, const T* __restrict src, int64_t ld,
                                   T* __restrict sums) {
  for (int64_t b = 0; b < rows; ++b) {
    for (int64_t j = 0; j < n; ++j) sums[j] += src[b * ld + j];
  }
}

// ---- forward ------------------------------------------------------------------------------

// Fills gates [T*B, G*H] with x W_ihᵀ plus the biases folded in: b_ih + b_hh (Lstm, Elman) or
// b_ih (Gru, whose b_hh stays inside r ⊙ (W_hn h + b_hn) and is added per step).
template <typename T>
void input_projection(const RnnDims& d, const Direction<T>& v, const T* x) {
  const int64_t rows = d.steps * d.batch, width = d.gate_width;
  if (v.b_ih != nullptr) {
    std::vector<T> bias(v.b_ih, v.b_ih + width);
    if (d.mode != RnnMode::Gru) {
      for (int64_t j = 0; j < width; ++j) bias[static_cast<size_t>(j)] += v.b_hh[j];
    }
    for (int64_t r = 0; r < rows; ++r) std::copy(bias.begin(), bias.end(), v.gates + r * width);
  }
  gemm(CblasNoTrans, CblasTrans, rows, width, v.in, x, v.in, v.w_ih, v.in, v.b_ih != nullptr,
       v.gates, width);
}

// Thread p's part of one direction's step loop: the hidden units [j0, j0 + n). w_slice:
// [G*n, H], the rows of W_hh of the slice's units, gate-major (W_hh itself for a whole-width
// slice); hh: [B, G*n] scratch for h_prev w_sliceᵀ (+ b_hh for Gru). out: the layer output at
// this direction's columns (row stride D*H).
template <typename T>
void forward_slice(const RnnDims& d, const Direction<T>& v, const int64_t* lengths, T* out,
                   int p, int team, T* w_slice_space, T* hh_space) {
  const int64_t H = d.hidden, G = d.gates, bh = d.batch * H, width = d.gate_width;
  int64_t j0, j1;
  slice_of(H, p, team, j0, j1);
  const int64_t n = j1 - j0;
  const T* w_slice = v.w_hh;
  T* hh = hh_space + d.batch * G * j0;
  std::vector<T> b_slice;  // Gru: b_hh of the slice, gate-major
  if (n != H) {
    T* w = w_slice_space + G * j0 * H;
    for (int64_t k = 0; k < G; ++k) {
      std::copy(v.w_hh + (k * H + j0) * H, v.w_hh + (k * H + j1) * H, w + k * n * H);
    }
    w_slice = w;
  }
  if (d.mode == RnnMode::Gru && v.b_hh != nullptr) {
    for (int64_t k = 0; k < G; ++k) {
      b_slice.insert(b_slice.end(), v.b_hh + k * H + j0, v.b_hh + k * H + j1);
    }
  }
  if (n == 0) {  // more threads than slices: still take part in the barriers
    for (int64_t k = 0; k < d.steps; ++k) {
#pragma omp barrier
    }
    return;
  }
  for (int64_t k = 0; k < d.steps; ++k) {
    const int64_t t = v.reverse ? d.steps - 1 - k : k;
    const StepRows s{d.batch, H, j0, n, t, lengths, d.dirs * H};
    T* gates = v.gates + t * d.batch * width;
    const T* h_prev = v.states + v.prev(t) * bh;
    T* h_next = v.states + v.next(t) * bh;
    T* out_t = out + t * d.batch * s.out_stride;
    // h_prev is whole once every thread has finished the previous step.
    if (team > 1) {
#pragma omp barrier
    }
    const bool with_bias = !b_slice.empty();
    if (with_bias) {
      for (int64_t b = 0; b < d.batch; ++b) std::copy(b_slice.begin(), b_slice.end(), hh + b * G * n);
    }
    // hh = h_prev w_sliceᵀ: [B, H] x [H, G*n].
    gemm(CblasNoTrans, CblasTrans, d.batch, G * n, H, h_prev, H, w_slice, H, with_bias, hh,
         G * n);
    switch (d.mode) {
      case RnnMode::Tanh:
      case RnnMode::Relu:
        elman_step_forward(s, d.mode == RnnMode::Relu, gates, hh, h_prev, h_next, out_t);
        break;
      case RnnMode::Lstm:
        lstm_step_forward(s, gates, hh, v.cells + v.prev(t) * bh, h_prev,
                          v.cells + v.next(t) * bh, h_next, out_t);
        break;
      case RnnMode::Gru:
        gru_step_forward(s, gates, hh, h_prev, v.hn + t * bh, h_next, out_t);
        break;
    }
  }
}

template <typename T>
void forward_typed(const RnnParams& params, const std::vector<Tensor>& weights, const Tensor& x,
                   const Tensor& hx, const Tensor& cx, const Tensor& y, const Tensor& hy,
                   const Tensor& cy, Tensor* reserve) {
  const RnnDims d = rnn_dims(params, weights);
  const ReserveLayout layout(d);
  const StepThreads policy = step_threads(d);
  Tensor space = Tensor::empty({layout.total}, x.options());
  T* base = space.data<T>();
  const std::vector<int64_t> lengths =
      params.lengths.empty() ? std::vector<int64_t>(static_cast<size_t>(d.batch), d.steps)
                             : params.lengths;
  const int64_t bh = d.batch * d.hidden;
  // Per direction: the hidden projection of a step [B, G*H], and W_hh's rows regrouped by
  // thread slice [G*H, H] (used only when a team splits the units).
  const int64_t hh_size = d.batch * d.gate_width;
  const int64_t w_size = policy.team > 1 ? d.gate_width * d.hidden : 0;
  Tensor scratch = Tensor::empty({d.dirs * (hh_size + w_size)}, x.options());
  T* scratch_base = scratch.data<T>();
  for (int64_t layer = 0; layer < d.layers; ++layer) {
    const T* in = layer == 0 ? x.data<T>() : base + layout.output_offset(d, layer - 1);
    T* out = layer == d.layers - 1 ? y.data<T>() : base + layout.output_offset(d, layer);
    for (int64_t dir = 0; dir < d.dirs; ++dir) {
      input_projection(d, direction_of(d, layout, weights, base, layer, dir), in);
    }
    for_each_direction(d, policy, [&](int64_t dir) {
      const Direction<T> v = direction_of(d, layout, weights, base, layer, dir);
      const int64_t state = layer * d.dirs + dir;
      const T* h0 = hx.data<T>() + state * bh;
      std::copy(h0, h0 + bh, v.states + v.initial(d.steps) * bh);
      if (v.cells != nullptr) {
        const T* c0 = cx.data<T>() + state * bh;
        std::copy(c0, c0 + bh, v.cells + v.initial(d.steps) * bh);
      }
      T* hh = scratch_base + dir * (hh_size + w_size);
      on_team(policy.team, [&](int p, int team) {
        forward_slice(d, v, lengths.data(), out + dir * d.hidden, p, team, hh + hh_size, hh);
      });
      const T* h_final = v.states + v.final_state(d.steps) * bh;
      std::copy(h_final, h_final + bh, hy.data<T>() + state * bh);
      if (v.cells != nullptr) {
        const T* c_final = v.cells + v.final_state(d.steps) * bh;
        std::copy(c_final, c_final + bh, cy.data<T>() + state * bh);
      }
    });
  }
  if (reserve != nullptr) *reserve = space;
}

// ---- backward -----------------------------------------------------------------------------

// Per-direction scratch of the backward pass.
template <typename T>
struct DirectionGrads {
  T* dgates_ih;  // [T, B, G*H]
  T* dgates_hh;  // the same block except for Gru, whose n chunk differs
  T* dh;         // [B, H] x 2 (ping-pong)
  T* dh_other;
  T* dc;         // [B, H] (Lstm)
  T* db_ih;      // [G*H] sums
  T* db_hh;
};

// Thread p's part of one direction's reverse step loop, the hidden units [j0, j0 + n): the
// dgates columns of those units at every step, their bias sums, their columns of dh (and dc),
// left holding dh0 (dc0). Per step the gate math of the slice writes its dgates columns; after
// a barrier the slice's columns of dh_{t-1} = dgates_t W_hh need every column of dgates_t.
// dout: the layer output's gradient at this direction's columns (row stride D*H).
template <typename T>
void backward_slice(const RnnDims& d, const Direction<T>& v, const int64_t* lengths,
                    const T* dout, DirectionGrads<T> g, int p, int team) {
  const int64_t H = d.hidden, G = d.gates, bh = d.batch * H, width = d.gate_width;
  int64_t j0, j1;
  slice_of(H, p, team, j0, j1);
  const int64_t n = j1 - j0;
  for (int64_t k = 0; k < G; ++k) {
    std::fill(g.db_ih + k * H + j0, g.db_ih + k * H + j1, T(0));
    if (g.db_hh != g.db_ih) std::fill(g.db_hh + k * H + j0, g.db_hh + k * H + j1, T(0));
  }
  for (int64_t k = 0; k < d.steps; ++k) {
    const int64_t t = v.reverse ? k : d.steps - 1 - k;  // the forward steps, last first
    const StepRows s{d.batch, H, j0, n, t, lengths, d.dirs * H};
    const T* gates = v.gates + t * d.batch * width;
    const T* dout_t = dout + t * d.batch * s.out_stride;
    T* dg_ih = g.dgates_ih + t * d.batch * width;
    T* dg_hh = g.dgates_hh + t * d.batch * width;
    if (n > 0) {
      switch (d.mode) {
        case RnnMode::Tanh:
        case RnnMode::Relu:
          elman_step_backward(s, d.mode == RnnMode::Relu, gates, dout_t, g.dh, dg_ih,
                              g.dh_other);
          break;
        case RnnMode::Lstm:
          lstm_step_backward(s, gates, v.cells + v.prev(t) * bh, v.cells + v.next(t) * bh,
                             dout_t, g.dh, g.dc, dg_ih, g.dh_other);
          break;
        case RnnMode::Gru:
          gru_step_backward(s, gates, v.hn + t * bh, v.states + v.prev(t) * bh, dout_t, g.dh,
                            dg_ih, dg_hh, g.dh_other);
          break;
      }
    }
    if (team > 1) {
#pragma omp barrier
    }
    if (n > 0) {
      // dh_{t-1}[:, slice] += dgates_t W_hh[:, slice]: [B, G*H] x [G*H, n].
      gemm(CblasNoTrans, CblasNoTrans, d.batch, n, width, dg_hh, width, v.w_hh + j0, H, true,
           g.dh_other + j0, H);
      if (v.b_ih != nullptr) {
        for (int64_t c = 0; c < G; ++c) {
          add_rows(d.batch, n, dg_ih + c * H + j0, width, g.db_ih + c * H + j0);
          if (g.db_hh != g.db_ih) add_rows(d.batch, n, dg_hh + c * H + j0, width, g.db_hh + c * H + j0);
        }
      }
    }
    std::swap(g.dh, g.dh_other);
  }
}

template <typename T>
void backward_typed(const RnnParams& params, const std::vector<Tensor>& weights, const Tensor& x,
                    const Tensor& reserve, const Tensor& dy, const Tensor& dhy, const Tensor& dcy,
                    const Tensor& dx, const Tensor& dhx, const Tensor& dcx,
                    const std::vector<Tensor>& dweights) {
  const RnnDims d = rnn_dims(params, weights);
  const ReserveLayout layout(d);
  const StepThreads policy = step_threads(d);
  STRATA_ASSERT(reserve.numel() == layout.total, "cpu rnn_backward: the reserve has ",
                reserve.numel(), " elements, expected ", layout.total);
  T* base = reserve.data<T>();
  const std::vector<int64_t> lengths =
      params.lengths.empty() ? std::vector<int64_t>(static_cast<size_t>(d.batch), d.steps)
                             : params.lengths;
  const int64_t bh = d.batch * d.hidden, width = d.gate_width;
  const int64_t rows = d.steps * d.batch;
  const bool split_hh = d.mode == RnnMode::Gru;

  // Scratch, allocated once: per direction dgates (x2 for Gru), dh x2, dc, bias sums; and two
  // [T, B, D*H] buffers for the gradients of the hidden layers' outputs.
  const int64_t dgates_size = rows * width * (split_hh ? 2 : 1);
  const int64_t per_dir = dgates_size + 3 * bh + 2 * width;
  const int64_t layer_grad = d.layers > 1 ? rows * d.dirs * d.hidden : 0;
  Tensor scratch_tensor = Tensor::empty({d.dirs * per_dir + 2 * layer_grad}, x.options());
  T* scratch = scratch_tensor.data<T>();
  auto grads_of = [&](int64_t dir) {
    T* p = scratch + dir * per_dir;
    DirectionGrads<T> g{};
    g.dgates_ih = p;
    g.dgates_hh = split_hh ? p + rows * width : p;
    p += dgates_size;
    g.dh = p;
    g.dh_other = p + bh;
    g.dc = p + 2 * bh;
    g.db_ih = p + 3 * bh;
    g.db_hh = split_hh ? g.db_ih + width : g.db_ih;
    return g;
  };
  T* layer_grads[2] = {scratch + d.dirs * per_dir, scratch + d.dirs * per_dir + layer_grad};

  const T* dout = dy.data<T>();
  for (int64_t layer = d.layers - 1; layer >= 0; --layer) {
    const T* in = layer == 0 ? x.data<T>() : base + layout.output_offset(d, layer - 1);
    T* din = layer == 0 ? dx.data<T>() : layer_grads[layer % 2];
    for_each_direction(d, policy, [&](int64_t dir) {
      const Direction<T> v = direction_of(d, layout, weights, base, layer, dir);
      const DirectionGrads<T> g = grads_of(dir);
      const int64_t state = layer * d.dirs + dir;
      std::copy(dhy.data<T>() + state * bh, dhy.data<T>() + (state + 1) * bh, g.dh);
      if (v.cells != nullptr) {
        std::copy(dcy.data<T>() + state * bh, dcy.data<T>() + (state + 1) * bh, g.dc);
      }
      on_team(policy.team, [&](int p, int team) {
        backward_slice(d, v, lengths.data(), dout + dir * d.hidden, g, p, team);
      });
      // After T swaps the latest dh sits in g.dh for even T, g.dh_other for odd T.
      const T* dh0 = d.steps % 2 == 0 ? g.dh : g.dh_other;
      std::copy(dh0, dh0 + bh, dhx.data<T>() + state * bh);
      if (v.cells != nullptr) std::copy(g.dc, g.dc + bh, dcx.data<T>() + state * bh);
    });
    // The weight and input gradients: one GEMM each over all T*B rows.
    for (int64_t dir = 0; dir < d.dirs; ++dir) {
      const Direction<T> v = direction_of(d, layout, weights, base, layer, dir);
      const DirectionGrads<T> g = grads_of(dir);
      const size_t k = static_cast<size_t>(4 * (layer * d.dirs + dir));
      // dW_ih = dgates_ihᵀ X: [G*H, T*B] x [T*B, in].
      gemm(CblasTrans, CblasNoTrans, width, v.in, rows, g.dgates_ih, width, in, v.in, false,
           dweights[k].data<T>(), v.in);
      // dW_hh = dgates_hhᵀ H_prev: [G*H, T*B] x [T*B, H].
      gemm(CblasTrans, CblasNoTrans, width, d.hidden, rows, g.dgates_hh, width,
           v.prev_states(d), d.hidden, false, dweights[k + 1].data<T>(), d.hidden);
      // dX (+)= dgates_ih W_ih: [T*B, G*H] x [G*H, in], the directions summed.
      gemm(CblasNoTrans, CblasNoTrans, rows, v.in, width, g.dgates_ih, width, v.w_ih, v.in,
           dir > 0, din, v.in);
      if (d.bias) {
        std::copy(g.db_ih, g.db_ih + width, dweights[k + 2].data<T>());
        std::copy(g.db_hh, g.db_hh + width, dweights[k + 3].data<T>());
      }
    }
    dout = din;
  }
}

}  // namespace

void CpuBackend::rnn_forward(const RnnParams& params, const std::vector<Tensor>& weights,
                             const Tensor& x, const Tensor& hx, const Tensor& cx, const Tensor& y,
                             const Tensor& hy, const Tensor& cy, Tensor* reserve) {
  if (detail::any_reduced_floating({&x, &hx, &cx, &y, &hy, &cy}) ||
      detail::any_reduced_floating(weights)) {
    detail::Float32Staging stage;  // the reserve is then float32, as rnn_backward stages too
    rnn_forward(params, stage.inputs(weights), stage.input(x), stage.input(hx), stage.input(cx),
                stage.output(y), stage.output(hy), stage.output(cy), reserve);
    return stage.finish();
  }
  STRATA_DISPATCH_FLOATING(x.dtype(), "cpu rnn_forward", [&] {
    forward_typed<scalar_t>(params, weights, x, hx, cx, y, hy, cy, reserve);
  });
}

void CpuBackend::rnn_backward(const RnnParams& params, const std::vector<Tensor>& weights,
                              const Tensor& x, const Tensor& hx, const Tensor& cx,
                              const Tensor& y, const Tensor& reserve, const Tensor& dy,
                              const Tensor& dhy, const Tensor& dcy, const Tensor& dx,
                              const Tensor& dhx, const Tensor& dcx,
                              const std::vector<Tensor>& dweights) {
  if (detail::any_reduced_floating({&x, &dy, &dhy, &dcy, &dx, &dhx, &dcx}) ||
      detail::any_reduced_floating(weights) || detail::any_reduced_floating(dweights)) {
    detail::Float32Staging stage;  // hx, cx and y are not read: passed as they are
    rnn_backward(params, stage.inputs(weights), stage.input(x), hx, cx, y, reserve,
                 stage.input(dy), stage.input(dhy), stage.input(dcy), stage.output(dx),
                 stage.output(dhx), stage.output(dcx), stage.outputs(dweights));
    return stage.finish();
  }
  STRATA_DISPATCH_FLOATING(x.dtype(), "cpu rnn_backward", [&] {
    backward_typed<scalar_t>(params, weights, x, reserve, dy, dhy, dcy, dx, dhx, dcx, dweights);
  });
}

}  // namespace strata::cpu
