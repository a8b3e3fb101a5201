// The cuDNN recurrent kernels against the CPU backend's (STYLE rule 9): backend.h's rnn_forward
// and rnn_backward called directly on cpu_backend() and on the CUDA backend with the same host
// inputs, for every mode x {1, 2} layers x {uni, bi}directional x {full length, lengths
// {5, 2, 4}} x {bias, no bias}, float64 and float32. Compared: y, hy, cy (training forward), y,
// hy, cy again from the inference forward (no reserve), and dx, dhx, dcx and every weight
// gradient from one random upstream gradient (random at padded steps too: both backends must
// ignore those). Outputs start as NaN, so an element a kernel forgets to write fails; padded
// steps of y and dx are also checked to be exactly zero. Every CUDA case skips with the reason
// when no CUDA device is present; CpuSideOfTableRuns checks the table itself on any machine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::kCpuDevice;
using test::kCudaDevice;

constexpr int64_t kSeqLen = 5, kBatch = 3, kInputSize = 4, kHiddenSize = 3;
const std::vector<int64_t> kLengths = {5, 2, 4};  // unsorted, one full, one short

const char* mode_name(RnnMode mode) {
  switch (mode) {
    case RnnMode::Tanh: return "tanh";
    case RnnMode::Relu: return "relu";
    case RnnMode::Lstm: return "lstm";
    case RnnMode::Gru: return "gru";
  }
  return "?";
}

struct RnnCase {
  RnnMode mode = RnnMode::Lstm;
  int64_t layers = 1;
  bool bidirectional = false;
  bool lengths = false;
  bool bias = true;
  DType dtype = kFloat64;
  uint32_t seed = 0;
  std::string name;

  RnnParams params() const {
    RnnParams p;
    p.mode = mode;
    p.seq_len = kSeqLen;
    p.batch = kBatch;
    p.input_size = kInputSize;
    p.hidden_size = kHiddenSize;
    p.num_layers = layers;
    p.bidirectional = bidirectional;
    if (lengths) p.lengths = kLengths;
    return p;
  }
};

std::ostream& operator<<(std::ostream& out, const RnnCase& c) { return out << c.name; }

std::vector<RnnCase> rnn_cases() {
  std::vector<RnnCase> cases;
  std::set<std::string> taken;
  uint32_t seed = 1000;
  for (DType dtype : {kFloat64, kFloat32}) {
    for (RnnMode mode : {RnnMode::Tanh, RnnMode::Relu, RnnMode::Lstm, RnnMode::Gru}) {
      for (int64_t layers : {1, 2}) {
        for (bool bidirectional : {false, true}) {
          for (bool lengths : {false, true}) {
            for (bool bias : {true, false}) {
              RnnCase c;
              c.mode = mode;
              c.layers = layers;
              c.bidirectional = bidirectional;
              c.lengths = lengths;
              c.bias = bias;
              c.dtype = dtype;
              c.seed = seed;
              seed += 100;
              c.name = test::unique_case_name(
                  std::string(mode_name(mode)) + "_" + std::to_string(layers) + "layer_" +
                      (bidirectional ? "bi" : "uni") + (lengths ? "_lengths" : "") +
                      (bias ? "" : "_nobias") + "_" + dtype_name(dtype),
                  taken);
              cases.push_back(c);
            }
          }
        }
      }
    }
  }
  return cases;
}

// The host inputs of one case, in the case's dtype.
struct RnnInputs {
  RnnParams params;
  std::vector<Tensor> weights;  // 4 per (layer, direction); biases undefined without bias
  Tensor x, hx, cx, dy, dhy, dcy;
};

RnnInputs make_inputs(const RnnCase& c) {
  RnnInputs in;
  in.params = c.params();
  const RnnParams& p = in.params;
  const int64_t d = p.directions(), g = p.gates(), h = p.hidden_size;
  const bool lstm = p.mode == RnnMode::Lstm;
  uint32_t seed = c.seed;
  const auto random = [&](const Shape& shape, double scale) {
    return test::host_random(shape, c.dtype, seed++, -scale, scale);
  };
  for (int64_t layer = 0; layer < p.num_layers; ++layer) {
    const int64_t in_cols = layer == 0 ? p.input_size : d * h;
    for (int64_t dir = 0; dir < d; ++dir) {
      // Weights of PyTorch's default scale (1/sqrt(H)) keep relu stacks bounded.
      in.weights.push_back(random({g * h, in_cols}, 0.5));
      in.weights.push_back(random({g * h, h}, 0.5));
      in.weights.push_back(c.bias ? random({g * h}, 0.5) : Tensor());
      in.weights.push_back(c.bias ? random({g * h}, 0.5) : Tensor());
    }
  }
  in.x = random({p.seq_len, p.batch, p.input_size}, 1.0);
  in.hx = random({p.num_layers * d, p.batch, h}, 1.0);
  if (lstm) in.cx = random({p.num_layers * d, p.batch, h}, 1.0);
  in.dy = random({p.seq_len, p.batch, d * h}, 1.0);
  in.dhy = random({p.num_layers * d, p.batch, h}, 1.0);
  if (lstm) in.dcy = random({p.num_layers * d, p.batch, h}, 1.0);
  return in;
}

// What one backend gives, copied to the host.
struct RnnResults {
  Tensor y, hy, cy;                    // training forward
  Tensor y_inference, hy_inference, cy_inference;
  Tensor dx, dhx, dcx;
  std::vector<Tensor> dweights;
};

RnnResults run_on(Backend& backend, Device device, const RnnInputs& in) {
  const RnnParams& p = in.params;
  const DType dtype = in.x.dtype();
  const int64_t d = p.directions(), h = p.hidden_size;
  const bool lstm = p.mode == RnnMode::Lstm;
  const auto on_device = [&](const Tensor& t) { return t.defined() ? t.to(device) : Tensor(); };
  const auto nan_filled = [&](const Shape& shape) {
    return full(shape, std::numeric_limits<double>::quiet_NaN(),
                TensorOptions(dtype).device(device));
  };
  const auto host = [](const Tensor& t) { return t.defined() ? t.cpu() : Tensor(); };

  std::vector<Tensor> weights;
  for (const Tensor& w : in.weights) weights.push_back(on_device(w));
  const Tensor x = on_device(in.x), hx = on_device(in.hx), cx = on_device(in.cx);
  const Tensor dy = on_device(in.dy), dhy = on_device(in.dhy), dcy = on_device(in.dcy);
  const Shape y_shape = {p.seq_len, p.batch, d * h}, state_shape = {p.num_layers * d, p.batch, h};

  Tensor y = nan_filled(y_shape), hy = nan_filled(state_shape);
  Tensor cy = lstm ? nan_filled(state_shape) : Tensor();
  Tensor reserve;
  backend.rnn_forward(p, weights, x, hx, cx, y, hy, cy, &reserve);

  Tensor y_inf = nan_filled(y_shape), hy_inf = nan_filled(state_shape);
  Tensor cy_inf = lstm ? nan_filled(state_shape) : Tensor();
  backend.rnn_forward(p, weights, x, hx, cx, y_inf, hy_inf, cy_inf, nullptr);

  Tensor dx = nan_filled(x.shape()), dhx = nan_filled(state_shape);
  Tensor dcx = lstm ? nan_filled(state_shape) : Tensor();
  std::vector<Tensor> dweights;
  for (const Tensor& w : weights) dweights.push_back(w.defined() ? nan_filled(w.shape()) : Tensor());
  backend.rnn_backward(p, weights, x, hx, cx, y, reserve, dy, dhy, dcy, dx, dhx, dcx, dweights);

  RnnResults r;
  r.y = host(y);
  r.hy = host(hy);
  r.cy = host(cy);
  r.y_inference = host(y_inf);
  r.hy_inference = host(hy_inf);
  r.cy_inference = host(cy_inf);
  r.dx = host(dx);
  r.dhx = host(dhx);
  r.dcx = host(dcx);
  for (const Tensor& dw : dweights) r.dweights.push_back(host(dw));
  return r;
}

// Every element of `t` [T, B, F] at steps t >= lengths[b] is exactly zero.
void expect_zero_padding(const Tensor& t, const std::vector<int64_t>& lengths, const char* what) {
  const std::vector<double> v = t.to_vector<double>();
  const int64_t steps = t.size(0), batch = t.size(1), features = t.size(2);
  int64_t bad = 0;
  for (int64_t s = 0; s < steps; ++s) {
    for (int64_t b = 0; b < batch; ++b) {
      if (s < lengths[static_cast<size_t>(b)]) continue;
      for (int64_t f = 0; f < features; ++f) {
        bad += v[static_cast<size_t>((s * batch + b) * features + f)] != 0.0 ? 1 : 0;
      }
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " nonzero elements at padded steps";
}

class CudaRnnParity : public ::testing::TestWithParam<RnnCase> {};

TEST_P(CudaRnnParity, ForwardAndBackwardMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const RnnCase& c = GetParam();
  const RnnInputs in = make_inputs(c);
  const RnnResults cpu = run_on(cpu_backend(), kCpuDevice, in);
  const RnnResults gpu = run_on(backend_for(kCudaDevice), kCudaDevice, in);

  // f64: the backends sum in different orders (BLAS vs cuDNN's GEMMs) over <= 2 layers x 5
  // steps of O(1) values; 1e-9 leaves room for that and nothing for a wrong gate or step.
  // f32: the same with eps 1.2e-7 (cuDNN in FMA math, no TF32).
  const double tol = c.dtype == kFloat64 ? 1e-9 : 1e-4;
  const auto compare = [&](const Tensor& actual, const Tensor& expected, const std::string& what) {
    SCOPED_TRACE(c.name + ": " + what);
    ASSERT_EQ(actual.defined(), expected.defined());
    if (actual.defined()) test::expect_close(actual, expected, tol, tol);
  };
  compare(gpu.y, cpu.y, "y");
  compare(gpu.hy, cpu.hy, "hy");
  compare(gpu.cy, cpu.cy, "cy");
  compare(gpu.y_inference, cpu.y, "y (inference)");
  compare(gpu.hy_inference, cpu.hy, "hy (inference)");
  compare(gpu.cy_inference, cpu.cy, "cy (inference)");
  compare(gpu.dx, cpu.dx, "dx");
  compare(gpu.dhx, cpu.dhx, "dhx");
  compare(gpu.dcx, cpu.dcx, "dcx");
  ASSERT_EQ(gpu.dweights.size(), cpu.dweights.size());
  const char* slot_names[] = {"d w_ih", "d w_hh", "d b_ih", "d b_hh"};
  for (size_t i = 0; i < gpu.dweights.size(); ++i) {
    const size_t pseudo = i / 4;
    compare(gpu.dweights[i], cpu.dweights[i],
            std::string(slot_names[i % 4]) + " of layer " +
                std::to_string(pseudo / static_cast<size_t>(in.params.directions())) +
                ", direction " +
                std::to_string(pseudo % static_cast<size_t>(in.params.directions())));
  }
  if (c.lengths) {
    expect_zero_padding(gpu.y, kLengths, "cuda y");
    expect_zero_padding(gpu.y_inference, kLengths, "cuda y (inference)");
    expect_zero_padding(gpu.dx, kLengths, "cuda dx");
  }
}

INSTANTIATE_TEST_SUITE_P(RnnKernels, CudaRnnParity, ::testing::ValuesIn(rnn_cases()),
                         [](const ::testing::TestParamInfo<RnnCase>& param_info) {
                           return param_info.param.name;
                         });

// The table itself on any machine (no CUDA needed): the CPU side of every case runs, writes
// every output element (none is left NaN) and zeros the padded steps, so a broken case shows up
// before a GPU run.
TEST(CudaRnn, CpuSideOfTableRuns) {
  for (const RnnCase& c : rnn_cases()) {
    SCOPED_TRACE(c.name);
    const RnnResults cpu = run_on(cpu_backend(), kCpuDevice, make_inputs(c));
    std::vector<Tensor> outputs = {cpu.y,  cpu.hy,  cpu.cy,  cpu.y_inference, cpu.hy_inference,
                                   cpu.cy_inference, cpu.dx, cpu.dhx, cpu.dcx};
    outputs.insert(outputs.end(), cpu.dweights.begin(), cpu.dweights.end());
    for (const Tensor& t : outputs) {
      if (!t.defined()) continue;
      int64_t not_finite = 0;
      for (double v : t.to_vector<double>()) not_finite += std::isfinite(v) ? 0 : 1;
      EXPECT_EQ(not_finite, 0) << "an output " << shape_str(t.shape()) << " has " << not_finite
                               << " elements that are not finite";
    }
    if (c.lengths) {
      expect_zero_padding(cpu.y, kLengths, "cpu y");
      expect_zero_padding(cpu.dx, kLengths, "cpu dx");
    }
  }
}

RnnCase case_named(const std::string& name) {
  for (const RnnCase& c : rnn_cases()) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no case named " << name;
  return {};
}

// Calls that alternate between configurations (the weight-space copy plan is cached per
// configuration) and come back to the first: each still matches the CPU.
TEST(CudaRnn, AlternatingConfigurationsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const RnnCase lstm = case_named("lstm_2layer_bi_lengths_f64");
  const RnnCase gru = case_named("gru_1layer_uni_nobias_f32");
  for (const RnnCase& c : {lstm, gru, lstm, gru}) {
    SCOPED_TRACE(c.name);
    const RnnInputs in = make_inputs(c);
    const RnnResults cpu = run_on(cpu_backend(), kCpuDevice, in);
    const RnnResults gpu = run_on(backend_for(kCudaDevice), kCudaDevice, in);
    const double tol = c.dtype == kFloat64 ? 1e-9 : 1e-4;  // as in ForwardAndBackwardMatchCpu
    test::expect_close(gpu.y, cpu.y, tol, tol);
    test::expect_close(gpu.dx, cpu.dx, tol, tol);
    for (size_t i = 0; i < gpu.dweights.size(); ++i) {
      if (gpu.dweights[i].defined()) test::expect_close(gpu.dweights[i], cpu.dweights[i], tol, tol);
    }
  }
}

// ---- the cached packed weights ---------------------------------------------------------------
// The CUDA backend keeps the packed cuDNN weight space of recent weight sets and reuses it while
// the weights are the same storages at the same versions (Tensor::version). These check that a
// cache hit changes nothing and that every way of changing a weight is seen.

namespace F = nn::functional;

// An LSTM stack (2 layers, bidirectional, bias) through the public op: its outputs and the
// gradients of x and every weight for a fixed upstream gradient, on the host.
struct StackRun {
  std::vector<Tensor> values;  // output, h_n, c_n, dx, dweights...
};

StackRun run_stack(const std::vector<Tensor>& weights, const Tensor& x_host) {
  const Device device = weights.at(0).device();
  F::RecurrentOptions options;
  options.mode = RnnMode::Lstm;
  options.num_layers = 2;
  options.bidirectional = true;
  Tensor x = x_host.to(device).detach();
  x.set_requires_grad(true);
  for (const Tensor& w : weights) Tensor(w).zero_grad();
  const F::RecurrentResult r = F::recurrent(x, Tensor(), Tensor(), weights, options);
  const Tensor up = test::host_random(r.output.shape(), x.dtype(), 77, -1, 1).to(device);
  add(sum(mul(r.output, up)), add(sum(r.h_n), sum(r.c_n))).backward();
  StackRun run;
  for (const Tensor& t : {r.output, r.h_n, r.c_n, x.grad()}) run.values.push_back(t.detach().cpu());
  for (const Tensor& w : weights) run.values.push_back(w.grad().cpu());
  return run;
}

std::vector<Tensor> stack_weights(DType dtype, uint32_t seed, Device device) {
  constexpr int64_t kInput = 4, kHidden = 3, kGates = 4;
  std::vector<Tensor> weights;
  for (int64_t layer = 0; layer < 2; ++layer) {
    for (int64_t dir = 0; dir < 2; ++dir) {
      const int64_t cols = layer == 0 ? kInput : 2 * kHidden;
      for (const Shape& s : std::vector<Shape>{{kGates * kHidden, cols},
                                               {kGates * kHidden, kHidden},
                                               {kGates * kHidden},
                                               {kGates * kHidden}}) {
        Tensor w = test::host_random(s, dtype, seed++, -0.5, 0.5).to(device);
        w.set_requires_grad(true);
        weights.push_back(w);
      }
    }
  }
  return weights;
}

std::vector<Tensor> on_cpu(const std::vector<Tensor>& weights) {
  std::vector<Tensor> out;
  for (const Tensor& w : weights) {
    Tensor c = w.detach().cpu().clone();
    c.set_requires_grad(true);
    out.push_back(c);
  }
  return out;
}

void expect_runs_close(const StackRun& actual, const StackRun& expected, DType dtype,
                       const std::string& what) {
  const double tol = dtype == kFloat64 ? 1e-9 : 1e-4;  // as ForwardAndBackwardMatchCpu
  ASSERT_EQ(actual.values.size(), expected.values.size());
  for (size_t i = 0; i < actual.values.size(); ++i) {
    SCOPED_TRACE(what + ", value " + std::to_string(i));
    test::expect_close(actual.values[i], expected.values[i], tol, tol);
  }
}

bool bitwise_equal(const StackRun& a, const StackRun& b) {
  if (a.values.size() != b.values.size()) return false;
  for (size_t i = 0; i < a.values.size(); ++i) {
    if (a.values[i].to_vector<double>() != b.values[i].to_vector<double>()) return false;
  }
  return true;
}

TEST(CudaRnnWeightCache, SameWeightsTwiceGiveIdenticalResults) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {kFloat32, kFloat64}) {
    SCOPED_TRACE(dtype_name(dt));
    const std::vector<Tensor> weights = stack_weights(dt, 500, kCudaDevice);
    const Tensor x = test::host_random({5, 3, 4}, dt, 600, -1, 1);
    const StackRun first = run_stack(weights, x);
    const StackRun second = run_stack(weights, x);  // the packed space from the cache
    EXPECT_TRUE(bitwise_equal(first, second)) << "a cache hit changed the results";
    expect_runs_close(second, run_stack(on_cpu(weights), x), dt, "against the CPU");
  }
}

TEST(CudaRnnWeightCache, InPlaceWeightChangesAreSeen) {
  SKIP_WITHOUT_CUDA();
  const DType dt = kFloat64;
  std::vector<Tensor> cuda_w = stack_weights(dt, 700, kCudaDevice);
  std::vector<Tensor> cpu_w = on_cpu(cuda_w);
  const Tensor x = test::host_random({5, 3, 4}, dt, 800, -1, 1);
  StackRun previous = run_stack(cuda_w, x);
  expect_runs_close(previous, run_stack(cpu_w, x), dt, "before any change");

  // Each change is made to both copies of the weights; CUDA must follow the CPU.
  const std::vector<std::pair<std::string, std::function<void(std::vector<Tensor>&)>>> changes = {
      {"copy_ into weight_hh_l1",
       [](std::vector<Tensor>& w) {
         NoGradGuard no_grad;
         w[5].copy_(test::host_random(w[5].shape(), w[5].dtype(), 901, -0.5, 0.5));
       }},
      {"mul_ of bias_ih_l0", [](std::vector<Tensor>& w) {
         NoGradGuard no_grad;
         w[2].mul_(-2.0);
       }},
      {"add_ through a view of weight_ih_l0_reverse", [](std::vector<Tensor>& w) {
         NoGradGuard no_grad;
         w[4].detach().narrow(0, 2, 3).add_(ones({3, 4}, TensorOptions(kFloat64).device(
                                                             w[4].device())));
       }},
      {"an SGD step",
       [](std::vector<Tensor>& w) {
         for (Tensor& t : w) t.mutable_grad() = full_like(t.detach(), 0.05);
         optim::SGD(w, optim::SGDOptions{.lr = 0.5}).step();
       }},
      {"an Adam step",
       [](std::vector<Tensor>& w) {
         for (Tensor& t : w) t.mutable_grad() = full_like(t.detach(), -0.05);
         optim::Adam(w, optim::AdamOptions{.lr = 0.1}).step();
       }},
      {"set_data to new values", [](std::vector<Tensor>& w) {
         w[1].set_data(mul(w[1].detach(), 0.5));
       }},
  };
  for (const auto& [what, change] : changes) {
    SCOPED_TRACE(what);
    change(cuda_w);
    change(cpu_w);
    const StackRun now = run_stack(cuda_w, x);
    EXPECT_FALSE(bitwise_equal(now, previous)) << "the change was not seen: stale packed weights";
    expect_runs_close(now, run_stack(cpu_w, x), dt, what);
    previous = now;
  }
}

// Weights freed and new ones made in their place: the caching allocator hands out the same
// addresses, and fresh tensors all start at version 0, so only the storage's identity tells the
// new weights from the cached ones.
TEST(CudaRnnWeightCache, NewWeightsAtReusedAddressesAreNotConfused) {
  SKIP_WITHOUT_CUDA();
  const DType dt = kFloat32;
  const Tensor x = test::host_random({5, 3, 4}, dt, 950, -1, 1);
  for (uint32_t round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::vector<Tensor> weights = stack_weights(dt, 1000 + 100 * round, kCudaDevice);
    expect_runs_close(run_stack(weights, x), run_stack(on_cpu(weights), x), dt, "fresh weights");
  }
}

// The module path: an LSTM trained a few steps on CUDA and on the CPU from the same start
// follows the same trajectory (each step's update must reach the next forward).
TEST(CudaRnnWeightCache, TrainingStepsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  auto train = [](Device device) {
    manual_seed(5);
    nn::LSTM lstm(4, 3, 2);
    lstm.to(kFloat64);
    lstm.to(device);
    optim::SGD opt(lstm.parameters(), optim::SGDOptions{.lr = 0.3, .momentum = 0.9});
    const Tensor x = test::host_random({6, 2, 4}, kFloat64, 17, -1, 1).to(device);
    std::vector<double> losses;
    for (int step = 0; step < 4; ++step) {
      opt.zero_grad();
      const Tensor loss = sum(mul(lstm.forward(x), lstm.forward(x)));
      loss.backward();
      opt.step();
      losses.push_back(loss.item<double>());
    }
    return losses;
  };
  const std::vector<double> cpu = train(kCpuDevice), gpu = train(kCudaDevice);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) EXPECT_NEAR(gpu[i], cpu[i], 1e-8) << "step " << i;
}

}  // namespace
}  // namespace strata
