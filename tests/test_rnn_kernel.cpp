// The CPU backend's fused recurrent kernel (cpu_backend().rnn_forward / rnn_backward) against a
// reference unrolled from the recurrent cells (nn::functional::rnn_tanh_cell, rnn_relu_cell,
// lstm_cell, gru_cell; checked against PyTorch in test_nn_recurrent.cpp) with autograd, in
// float64: per layer and direction, one cell per step, rows past their length masked (state
// kept, output zero). The kernel's y, hy, cy and the gradients of x, hx, cx and every weight
// for the loss sum(y*dy) + sum(hy*dhy) + sum(cy*dcy) must match the reference's.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;

struct RnnCase {
  RnnMode mode = RnnMode::Lstm;
  int64_t steps = 5, batch = 3, input = 4, hidden = 9;
  int64_t layers = 1;
  bool bidirectional = false;
  std::vector<int64_t> lengths;  // empty: all steps
  bool bias = true;

  RnnParams params() const {
    RnnParams p;
    p.mode = mode;
    p.seq_len = steps;
    p.batch = batch;
    p.input_size = input;
    p.hidden_size = hidden;
    p.num_layers = layers;
    p.bidirectional = bidirectional;
    p.lengths = lengths;
    return p;
  }
  int64_t dirs() const { return bidirectional ? 2 : 1; }
  int64_t gates() const { return rnn_gate_count(mode); }
  std::string name() const {
    static const char* const kModes[] = {"tanh", "relu", "lstm", "gru"};
    std::ostringstream out;
    out << kModes[static_cast<int>(mode)] << " T" << steps << " B" << batch << " I" << input
        << " H" << hidden << " L" << layers << (bidirectional ? " bi" : " uni")
        << (bias ? "" : " no-bias");
    if (!lengths.empty()) {
      out << " lengths";
      for (int64_t l : lengths) out << " " << l;
    }
    return out.str();
  }
};

// Float64 leaves (requires_grad) and the output gradients of one case.
struct RnnInputs {
  Tensor x, hx, cx;             // cx undefined unless Lstm
  std::vector<Tensor> weights;  // w_ih, w_hh, b_ih, b_hh per (layer, direction)
  Tensor dy, dhy, dcy;
};

RnnInputs make_inputs(const RnnCase& c, uint32_t seed) {
  RnnInputs in;
  const int64_t d = c.dirs(), gh = c.gates() * c.hidden;
  in.x = random_f64({c.steps, c.batch, c.input}, -1, 1, seed++, true);
  in.hx = random_f64({c.layers * d, c.batch, c.hidden}, -1, 1, seed++, true);
  if (c.mode == RnnMode::Lstm) {
    in.cx = random_f64({c.layers * d, c.batch, c.hidden}, -1, 1, seed++, true);
  }
  // PyTorch's init range, ±1/sqrt(H), doubled so the gates leave their linear region.
  const double bound = 2.0 / std::sqrt(static_cast<double>(c.hidden));
  for (int64_t layer = 0; layer < c.layers; ++layer) {
    const int64_t in_size = layer == 0 ? c.input : d * c.hidden;
    for (int64_t dir = 0; dir < d; ++dir) {
      in.weights.push_back(random_f64({gh, in_size}, -bound, bound, seed++, true));
      in.weights.push_back(random_f64({gh, c.hidden}, -bound, bound, seed++, true));
      in.weights.push_back(c.bias ? random_f64({gh}, -bound, bound, seed++, true) : Tensor());
      in.weights.push_back(c.bias ? random_f64({gh}, -bound, bound, seed++, true) : Tensor());
    }
  }
  // dy is nonzero at padded steps too: the kernel must ignore it there.
  in.dy = random_f64({c.steps, c.batch, d * c.hidden}, -1, 1, seed++);
  in.dhy = random_f64({c.layers * d, c.batch, c.hidden}, -1, 1, seed++);
  if (c.mode == RnnMode::Lstm) in.dcy = random_f64({c.layers * d, c.batch, c.hidden}, -1, 1, seed++);
  return in;
}

struct RnnOutputs {
  Tensor y, hy, cy;
  Tensor dx, dhx, dcx;
  std::vector<Tensor> dweights;
};

// The reference: the cells unrolled over time with autograd (float64).
RnnOutputs reference(const RnnCase& c, const RnnInputs& in) {
  const int64_t d = c.dirs();
  std::vector<Tensor> h_final(static_cast<size_t>(c.layers * d));
  std::vector<Tensor> c_final(h_final.size());
  Tensor layer_in = in.x;
  for (int64_t layer = 0; layer < c.layers; ++layer) {
    // outputs[dir][t]: [B, H]
    std::vector<std::vector<Tensor>> outputs(static_cast<size_t>(d),
                                             std::vector<Tensor>(static_cast<size_t>(c.steps)));
    for (int64_t dir = 0; dir < d; ++dir) {
      const size_t k = static_cast<size_t>(4 * (layer * d + dir));
      const Tensor& w_ih = in.weights[k];
      const Tensor& w_hh = in.weights[k + 1];
      const Tensor& b_ih = in.weights[k + 2];
      const Tensor& b_hh = in.weights[k + 3];
      const int64_t state = layer * d + dir;
      Tensor h = in.hx.select(0, state);
      Tensor cell = c.mode == RnnMode::Lstm ? in.cx.select(0, state) : Tensor();
      for (int64_t k_step = 0; k_step < c.steps; ++k_step) {
        const int64_t t = dir == 1 ? c.steps - 1 - k_step : k_step;
        std::vector<double> mask_values(static_cast<size_t>(c.batch), 1.0);
        for (int64_t b = 0; b < c.batch; ++b) {
          if (!c.lengths.empty() && t >= c.lengths[static_cast<size_t>(b)]) {
            mask_values[static_cast<size_t>(b)] = 0.0;
          }
        }
        const Tensor mask = f64(mask_values, {c.batch, 1});
        const Tensor keep = 1.0 - mask;
        const Tensor xt = layer_in.select(0, t);
        Tensor h_new, c_new;
        switch (c.mode) {
          case RnnMode::Tanh: h_new = F::rnn_tanh_cell(xt, h, w_ih, w_hh, b_ih, b_hh); break;
          case RnnMode::Relu: h_new = F::rnn_relu_cell(xt, h, w_ih, w_hh, b_ih, b_hh); break;
          case RnnMode::Lstm:
            std::tie(h_new, c_new) = F::lstm_cell(xt, h, cell, w_ih, w_hh, b_ih, b_hh);
            break;
          case RnnMode::Gru: h_new = F::gru_cell(xt, h, w_ih, w_hh, b_ih, b_hh); break;
        }
        outputs[static_cast<size_t>(dir)][static_cast<size_t>(t)] = mask * h_new;
        h = mask * h_new + keep * h;
        if (c.mode == RnnMode::Lstm) cell = mask * c_new + keep * cell;
      }
      h_final[static_cast<size_t>(state)] = h;
      c_final[static_cast<size_t>(state)] = cell;
    }
    std::vector<Tensor> steps;
    for (int64_t t = 0; t < c.steps; ++t) {
      std::vector<Tensor> parts;
      for (int64_t dir = 0; dir < d; ++dir) {
        parts.push_back(outputs[static_cast<size_t>(dir)][static_cast<size_t>(t)]);
      }
      steps.push_back(cat(parts, 1));
    }
    layer_in = stack(steps, 0);
  }
  RnnOutputs out;
  out.y = layer_in;
  out.hy = stack(h_final, 0);
  Tensor loss = sum(out.y * in.dy) + sum(out.hy * in.dhy);
  if (c.mode == RnnMode::Lstm) {
    out.cy = stack(c_final, 0);
    loss = loss + sum(out.cy * in.dcy);
  }
  loss.backward();
  out.dx = in.x.grad();
  out.dhx = in.hx.grad();
  if (c.mode == RnnMode::Lstm) out.dcx = in.cx.grad();
  for (const Tensor& w : in.weights) out.dweights.push_back(w.defined() ? w.grad() : Tensor());
  return out;
}

// A contiguous detached copy in dtype (undefined stays undefined).
Tensor as(const Tensor& t, DType dtype) {
  return t.defined() ? t.detach().to(dtype).contiguous().clone() : Tensor();
}

// NaN-filled, so that an output the kernel forgets to write fails the comparison.
Tensor poisoned(const Shape& shape, DType dtype) {
  Tensor t = Tensor::empty(shape, dtype);
  t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

// The kernel: forward with a reserve, then backward. `with_reserve` false runs the inference
// forward (no reserve) only.
RnnOutputs run_kernel(const RnnCase& c, const RnnInputs& in, DType dtype,
                      bool with_reserve = true) {
  const RnnParams p = c.params();
  const int64_t d = c.dirs();
  const bool lstm = c.mode == RnnMode::Lstm;
  std::vector<Tensor> weights;
  for (const Tensor& w : in.weights) weights.push_back(as(w, dtype));
  const Tensor x = as(in.x, dtype), hx = as(in.hx, dtype), cx = as(in.cx, dtype);
  RnnOutputs out;
  out.y = poisoned({c.steps, c.batch, d * c.hidden}, dtype);
  out.hy = poisoned({c.layers * d, c.batch, c.hidden}, dtype);
  out.cy = lstm ? poisoned({c.layers * d, c.batch, c.hidden}, dtype) : Tensor();
  Tensor reserve;
  cpu_backend().rnn_forward(p, weights, x, hx, cx, out.y, out.hy, out.cy,
                            with_reserve ? &reserve : nullptr);
  if (!with_reserve) return out;
  EXPECT_TRUE(reserve.defined());
  out.dx = poisoned(x.shape(), dtype);
  out.dhx = poisoned(hx.shape(), dtype);
  out.dcx = lstm ? poisoned(cx.shape(), dtype) : Tensor();
  for (const Tensor& w : weights) out.dweights.push_back(w.defined() ? poisoned(w.shape(), dtype) : Tensor());
  cpu_backend().rnn_backward(p, weights, x, hx, cx, out.y, reserve, as(in.dy, dtype),
                             as(in.dhy, dtype), as(in.dcy, dtype), out.dx, out.dhx, out.dcx,
                             out.dweights);
  return out;
}

void expect_outputs_close(const RnnOutputs& actual, const RnnOutputs& expected, Tolerance tol,
                          bool check_grads = true) {
  {
    SCOPED_TRACE("y");
    expect_close(actual.y, expected.y, tol.rtol, tol.atol);
  }
  {
    SCOPED_TRACE("hy");
    expect_close(actual.hy, expected.hy, tol.rtol, tol.atol);
  }
  if (expected.cy.defined()) {
    SCOPED_TRACE("cy");
    expect_close(actual.cy, expected.cy, tol.rtol, tol.atol);
  }
  if (!check_grads) return;
  {
    SCOPED_TRACE("dx");
    expect_close(actual.dx, expected.dx, tol.rtol, tol.atol);
  }
  {
    SCOPED_TRACE("dhx");
    expect_close(actual.dhx, expected.dhx, tol.rtol, tol.atol);
  }
  if (expected.dcx.defined()) {
    SCOPED_TRACE("dcx");
    expect_close(actual.dcx, expected.dcx, tol.rtol, tol.atol);
  }
  ASSERT_EQ(actual.dweights.size(), expected.dweights.size());
  static const char* const kNames[] = {"dw_ih", "dw_hh", "db_ih", "db_hh"};
  for (size_t k = 0; k < expected.dweights.size(); ++k) {
    SCOPED_TRACE(std::string(kNames[k % 4]) + " of (layer, direction) " + std::to_string(k / 4));
    if (!expected.dweights[k].defined()) {
      EXPECT_FALSE(actual.dweights[k].defined());
      continue;
    }
    expect_close(actual.dweights[k], expected.dweights[k], tol.rtol, tol.atol);
  }
}

// f64 kernel vs f64 reference: the same math with sums (GEMMs over up to T*B rows, bias
// column sums) in another order, and vec_math's double path is libm's.
constexpr Tolerance kF64Tolerance{1e-9, 1e-11};

void check_case(const RnnCase& c, uint32_t seed) {
  SCOPED_TRACE(c.name());
  const RnnInputs in = make_inputs(c, seed);
  const RnnOutputs expected = reference(c, in);
  expect_outputs_close(run_kernel(c, in, kFloat64), expected, kF64Tolerance);
}

// Each mode over {1, 2 layers} x {uni, bi} x {all steps, unsorted lengths}.
void check_mode(RnnMode mode) {
  uint32_t seed = 100 * static_cast<uint32_t>(mode) + 1;
  for (int64_t layers : {1, 2}) {
    for (bool bidirectional : {false, true}) {
      for (bool with_lengths : {false, true}) {
        RnnCase c;
        c.mode = mode;
        c.layers = layers;
        c.bidirectional = bidirectional;
        if (with_lengths) c.lengths = {5, 2, 4};
        check_case(c, seed);
        seed += 50;
      }
    }
  }
}

TEST(RnnKernel, TanhMatchesUnrolledCells) { check_mode(RnnMode::Tanh); }
TEST(RnnKernel, ReluMatchesUnrolledCells) { check_mode(RnnMode::Relu); }
TEST(RnnKernel, LstmMatchesUnrolledCells) { check_mode(RnnMode::Lstm); }
TEST(RnnKernel, GruMatchesUnrolledCells) { check_mode(RnnMode::Gru); }

TEST(RnnKernel, NoBias) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
    RnnCase c;
    c.mode = mode;
    c.bias = false;
    c.layers = 2;
    c.bidirectional = true;
    c.lengths = {3, 5, 1};
    check_case(c, 700 + static_cast<uint32_t>(mode));
  }
}

TEST(RnnKernel, BatchOneAndSeqOne) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
    RnnCase batch_one;
    batch_one.mode = mode;
    batch_one.batch = 1;
    batch_one.bidirectional = true;
    check_case(batch_one, 800 + static_cast<uint32_t>(mode));
    RnnCase seq_one;
    seq_one.mode = mode;
    seq_one.steps = 1;
    seq_one.layers = 2;
    seq_one.bidirectional = true;
    check_case(seq_one, 900 + static_cast<uint32_t>(mode));
    RnnCase seq_one_lengths = seq_one;
    seq_one_lengths.lengths = {1, 1, 1};
    check_case(seq_one_lengths, 950 + static_cast<uint32_t>(mode));
  }
}

// Hidden sizes around the vector width (8 float32 lanes with AVX2): loop tails and bodies.
TEST(RnnKernel, OddHiddenSizes) {
  for (int64_t hidden : {1, 8, 17}) {
    for (RnnMode mode : {RnnMode::Lstm, RnnMode::Gru}) {
      RnnCase c;
      c.mode = mode;
      c.hidden = hidden;
      c.input = 6;
      c.lengths = {4, 5, 1};
      check_case(c, 1000 + static_cast<uint32_t>(hidden) * 4 + static_cast<uint32_t>(mode));
    }
  }
}

// float32 (vec_math's sigmoid/tanh, sgemm) against float64 on the same inputs.
TEST(RnnKernel, Float32MatchesFloat64) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
    RnnCase c;
    c.mode = mode;
    c.steps = 7;
    c.hidden = 20;
    c.layers = 2;
    c.bidirectional = true;
    c.lengths = {7, 3, 6};
    SCOPED_TRACE(c.name());
    const RnnInputs in = make_inputs(c, 1100 + static_cast<uint32_t>(mode));
    const RnnOutputs f64_out = run_kernel(c, in, kFloat64);
    const RnnOutputs f32_out = run_kernel(c, in, kFloat32);
    // f32 through 7 steps x 2 layers of GEMMs (sums of <= 40 products) and 1.5-ulp
    // sigmoid/tanh; gradients sum over T*B = 21 rows more: 1e-4 as the brief asks.
    expect_outputs_close(f32_out, f64_out, Tolerance{1e-4, 1e-4});
  }
}

// Without a reserve (inference) the forward gives the same outputs.
TEST(RnnKernel, ForwardWithoutReserve) {
  for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
    RnnCase c;
    c.mode = mode;
    c.layers = 2;
    c.bidirectional = true;
    c.lengths = {2, 5, 3};
    SCOPED_TRACE(c.name());
    const RnnInputs in = make_inputs(c, 1200 + static_cast<uint32_t>(mode));
    const RnnOutputs expected = run_kernel(c, in, kFloat32);
    expect_outputs_close(run_kernel(c, in, kFloat32, false), expected, Tolerance{0, 0}, false);
  }
}

// Outputs at padded steps are exactly zero, and so is dx there.
TEST(RnnKernel, PaddedStepsAreZero) {
  RnnCase c;
  c.mode = RnnMode::Lstm;
  c.bidirectional = true;
  c.layers = 2;
  c.lengths = {5, 2, 4};
  const RnnInputs in = make_inputs(c, 1300);
  const RnnOutputs out = run_kernel(c, in, kFloat32);
  const std::vector<double> y = out.y.to_vector<double>(), dx = out.dx.to_vector<double>();
  const int64_t yw = 2 * c.hidden;
  for (int64_t t = 0; t < c.steps; ++t) {
    for (int64_t b = 0; b < c.batch; ++b) {
      if (t < c.lengths[static_cast<size_t>(b)]) continue;
      for (int64_t j = 0; j < yw; ++j) {
        EXPECT_EQ(y[static_cast<size_t>((t * c.batch + b) * yw + j)], 0.0) << "t " << t << " b " << b;
      }
      for (int64_t j = 0; j < c.input; ++j) {
        EXPECT_EQ(dx[static_cast<size_t>((t * c.batch + b) * c.input + j)], 0.0)
            << "t " << t << " b " << b;
      }
    }
  }
}

}  // namespace
}  // namespace strata::test
