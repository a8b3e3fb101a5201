// The library-backed ops of the CUDA backend on data that is contiguous but not 16-byte
// aligned — a view starting one element into its storage, as a sliced batch, a time chunk or
// the RNN's packed h_n/c_n are — against the CPU on ordinary tensors (STYLE rule 9). cuDNN 9
// refuses such pointers (CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER) unless cuda/aligned.h
// hands it an aligned copy; cuBLAS takes them as they are.
// - CudaMisalignedParity: one table of cases through the public API — convolutions, linear,
//   matmul and bmm (also a transposed misaligned operand), batch norm (misaligned running
//   statistics, written in place), softmax and log-softmax, average pooling, LSTM and GRU
//   (misaligned x, states and weights) — every input and the upstream gradient misaligned;
//   outputs, in-place updated inputs and gradients are compared.
// - CudaMisalignedKernels: the backend's kernels called directly with misaligned OUTPUTS (core
//   never passes those for these kernels, but the contract allows them), also checking that
//   the element just before each output view is left untouched.
// CUDA cases skip with the reason when no device is present; the CpuSide tests run the same
// table on the CPU with misaligned inputs, so the table itself is checked on any machine.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

using test::kCpuDevice;
using test::kCudaDevice;
using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;

// `host` copied to `device` into a view that starts one element into its storage: its data
// pointer is 4 (f32) or 8 (f64) bytes past an aligned block, so never 16-byte aligned.
Tensor misaligned_copy(const Tensor& host, Device device) {
  const int64_t n = host.numel();
  const Tensor storage = Tensor::empty({1 + n}, TensorOptions(host.dtype()).device(device));
  Tensor view = storage.narrow(0, 1, n).view(host.shape());
  view.copy_(host);
  return view;
}

bool is_16_byte_aligned(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0;
}

// Results that add many products in a library's own order (cuDNN, cuBLAS vs OpenBLAS and our
// loops): at most ~1000 terms of magnitude <= 1 here, so 1000 * 6e-8 in float32 and
// 1000 * 1.1e-16 in float64, with margin (as test_cuda_nn.cpp's sum_tol).
test::Tolerance sum_tol(DType dtype) {
  if (dtype == kFloat32) return {2e-4, 1e-4};
  return {1e-10, 1e-11};
}

struct MisalignedCase {
  std::string name;
  std::function<Inputs()> inputs;   // host tensors
  std::vector<size_t> grad_inputs;  // which inputs require grad (their gradients are compared)
  std::function<Outputs(const Inputs&)> op;
  test::Tolerance tol;
};

void PrintTo(const MisalignedCase& c, std::ostream* out) { *out << c.name; }

std::vector<MisalignedCase> misaligned_cases() {
  std::vector<MisalignedCase> cases;
  std::set<std::string> names;
  uint32_t seed = 7000;
  for (DType dt : {kFloat32, kFloat64}) {
    const std::string t = std::string("_") + dtype_name(dt);
    const test::Tolerance tol = sum_tol(dt);
    auto add_case = [&](std::string name, std::vector<Shape> shapes, std::vector<size_t> grads,
                        std::function<Outputs(const Inputs&)> op, test::Tolerance case_tol) {
      cases.push_back({test::unique_case_name(name + t, names),
                       test::random_inputs(std::move(shapes), dt, seed, -1.0, 1.0),
                       std::move(grads), std::move(op), case_tol});
    };
    auto one = [](Tensor out) { return Outputs{std::move(out)}; };

    // ---- convolution (cuDNN: forward, backward data, backward filter, bias add)
    add_case("conv2d_bias_pad", {{2, 3, 7, 9}, {4, 3, 3, 3}, {4}}, {0, 1, 2},
        [one](const Inputs& in) { return one(F::conv2d(in[0], in[1], in[2], 1, 1)); }, tol);
    add_case("conv2d_stride_groups", {{2, 6, 8, 7}, {9, 2, 3, 3}, {9}}, {0, 1, 2},
        [one](const Inputs& in) { return one(F::conv2d(in[0], in[1], in[2], 2, 1, 1, 3)); },
        tol);
    add_case("conv1d_stride_pad", {{2, 3, 11}, {4, 3, 3}, {4}}, {0, 1, 2},
        [one](const Inputs& in) { return one(F::conv1d(in[0], in[1], in[2], 2, 1)); }, tol);

    // ---- matrix products (cuBLAS: any element-aligned pointer)
    add_case("linear", {{5, 7}, {3, 7}, {3}}, {0, 1, 2},
        [one](const Inputs& in) { return one(F::linear(in[0], in[1], in[2])); }, tol);
    add_case("matmul_2d", {{5, 7}, {7, 3}}, {0, 1},
        [one](const Inputs& in) { return one(matmul(in[0], in[1])); }, tol);
    add_case("bmm", {{3, 4, 5}, {3, 5, 6}}, {0, 1},
        [one](const Inputs& in) { return one(matmul(in[0], in[1])); }, tol);
    add_case("matmul_transposed_operand", {{7, 5}, {7, 3}}, {0, 1},
        [one](const Inputs& in) { return one(matmul(in[0].t(), in[1])); }, tol);

    // ---- batch norm (cuDNN): x, weight, bias, running_mean, running_var (written in place)
    for (const Shape& x_shape : std::vector<Shape>{{4, 3, 5, 7}, {6, 5}}) {
      const int64_t c = x_shape[1];
      add_case("batch_norm_train_" + std::to_string(x_shape.size()) + "d",
          {x_shape, {c}, {c}, {c}, {c}}, {0, 1, 2},
          [](const Inputs& in) {
            // running_var must be positive: |v| + 0.5 from the random values, in place.
            Tensor rv = in[4];
            {
              NoGradGuard no_grad;
              rv.copy_(add(abs(rv), 0.5));
            }
            Tensor out = F::batch_norm(in[0], in[3], rv, in[1], in[2], true, 0.1, 1e-5);
            return Outputs{out, in[3], rv};
          },
          tol);
    }

    // ---- softmax and log-softmax (cuDNN)
    add_case("softmax_dim1", {{7, 13}}, {0},
        [one](const Inputs& in) { return one(F::softmax(in[0], 1)); }, tol);
    add_case("log_softmax_last", {{3, 5, 7}}, {0},
        [one](const Inputs& in) { return one(F::log_softmax(in[0], -1)); }, tol);
    add_case("softmax_dim0", {{3, 5, 7}}, {0},
        [one](const Inputs& in) { return one(F::softmax(in[0], 0)); }, tol);

    // ---- average pooling (the pooling kernels, whichever library runs them)
    add_case("avg_pool2d_k3_s2_p1", {{2, 3, 8, 9}}, {0},
        [one](const Inputs& in) { return one(F::avg_pool2d(in[0], 3, F::Size2(2), 1)); }, tol);

    // ---- recurrent stacks (cuDNN): x, h0 (, c0), then the weights; h_n and c_n come back as
    // views into one buffer with the output, so they are misaligned outputs of the kernel too.
    // f64: 1e-9 as test_cuda_rnn.cpp; f32: 1e-4 (FMA math, no TF32).
    const double rnn_tol = dt == kFloat64 ? 1e-9 : 1e-4;
    struct RnnConfig {
      std::string name;
      RnnMode mode;
      int64_t layers;
      bool bidirectional;
      std::vector<int64_t> lengths;
    };
    for (const RnnConfig& rc : std::vector<RnnConfig>{
             {"lstm_1layer", RnnMode::Lstm, 1, false, {}},
             {"lstm_2layer_bi_lengths", RnnMode::Lstm, 2, true, {5, 2, 4}},
             {"gru_2layer_bi", RnnMode::Gru, 2, true, {}}}) {
      const int64_t seq = 5, batch = 3, input = 4, hidden = 3;
      const int64_t dirs = rc.bidirectional ? 2 : 1, gates = rnn_gate_count(rc.mode);
      const bool lstm = rc.mode == RnnMode::Lstm;
      std::vector<Shape> shapes = {{seq, batch, input}, {rc.layers * dirs, batch, hidden}};
      if (lstm) shapes.push_back({rc.layers * dirs, batch, hidden});
      const size_t first_weight = shapes.size();
      for (int64_t layer = 0; layer < rc.layers; ++layer) {
        for (int64_t dir = 0; dir < dirs; ++dir) {
          const int64_t cols = layer == 0 ? input : dirs * hidden;
          for (const Shape& s : std::vector<Shape>{{gates * hidden, cols},
                                                   {gates * hidden, hidden},
                                                   {gates * hidden},
                                                   {gates * hidden}}) {
            shapes.push_back(s);
          }
        }
      }
      std::vector<size_t> grads;
      for (size_t i = 0; i < shapes.size(); ++i) grads.push_back(i);
      add_case(rc.name, shapes, grads,
          [rc, lstm, first_weight](const Inputs& in) {
            F::RecurrentOptions options;
            options.mode = rc.mode;
            options.num_layers = rc.layers;
            options.bidirectional = rc.bidirectional;
            options.lengths = rc.lengths;
            const std::vector<Tensor> weights(in.begin() + static_cast<int64_t>(first_weight),
                                              in.end());
            const F::RecurrentResult r =
                F::recurrent(in[0], in[1], lstm ? in[2] : Tensor(), weights, options);
            Outputs out = {r.output, r.h_n};
            if (lstm) out.push_back(r.c_n);
            return out;
          },
          {rnn_tol, rnn_tol});
    }
  }
  return cases;
}

struct RunResult {
  Outputs outputs;  // on the CPU
  std::vector<Tensor> grads;
};

// Runs a case on `device` with its inputs (and the upstream gradients) misaligned or not;
// backward of sum over outputs k of sum(out_k * upstream_k).
RunResult run_case(const MisalignedCase& c, Device device, bool misaligned) {
  const Inputs host = c.inputs();
  Inputs in;
  for (size_t i = 0; i < host.size(); ++i) {
    Tensor x = misaligned ? misaligned_copy(host[i], device)
                          : (device.is_cpu() ? host[i].clone() : host[i].to(device));
    if (misaligned) {
      EXPECT_FALSE(is_16_byte_aligned(x)) << c.name << ": input " << i;
    }
    for (size_t g : c.grad_inputs) {
      if (g == i) x.set_requires_grad(true);
    }
    in.push_back(x);
  }
  const Outputs outputs = c.op(in);
  Tensor loss;
  uint32_t seed = 4242;
  for (const Tensor& out : outputs) {
    const Tensor up_host = test::host_random(out.shape(), out.dtype(), seed++, -1, 1);
    const Tensor up = misaligned ? misaligned_copy(up_host, device) : up_host.to(device);
    const Tensor term = sum(mul(out, up));
    loss = loss.defined() ? add(loss, term) : term;
  }
  loss.backward();
  RunResult r;
  for (const Tensor& out : outputs) r.outputs.push_back(out.detach().cpu());
  for (size_t g : c.grad_inputs) {
    const Tensor& grad = in[g].grad();
    r.grads.push_back(grad.defined() ? grad.cpu() : Tensor());
  }
  return r;
}

void expect_same_results(const RunResult& actual, const RunResult& expected,
                         const MisalignedCase& c) {
  ASSERT_EQ(actual.outputs.size(), expected.outputs.size()) << c.name;
  for (size_t i = 0; i < expected.outputs.size(); ++i) {
    SCOPED_TRACE(c.name + ", output " + std::to_string(i));
    test::expect_close(actual.outputs[i], expected.outputs[i], c.tol.rtol, c.tol.atol);
  }
  ASSERT_EQ(actual.grads.size(), expected.grads.size()) << c.name;
  for (size_t i = 0; i < expected.grads.size(); ++i) {
    SCOPED_TRACE(c.name + ", gradient of input " + std::to_string(c.grad_inputs[i]));
    ASSERT_EQ(actual.grads[i].defined(), expected.grads[i].defined());
    if (expected.grads[i].defined()) {
      test::expect_close(actual.grads[i], expected.grads[i], c.tol.rtol, c.tol.atol);
    }
  }
}

class CudaMisalignedParity : public ::testing::TestWithParam<MisalignedCase> {};

TEST_P(CudaMisalignedParity, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const MisalignedCase& c = GetParam();
  const RunResult expected = run_case(c, kCpuDevice, /*misaligned=*/false);
  RunResult actual;
  ASSERT_NO_THROW(actual = run_case(c, kCudaDevice, /*misaligned=*/true)) << c.name;
  expect_same_results(actual, expected, c);
}

// No GPU needed: the CPU runs every case on misaligned views too, and agrees with itself on
// ordinary tensors, so the table is sound before a GPU run.
TEST_P(CudaMisalignedParity, CpuSideRuns) {
  const MisalignedCase& c = GetParam();
  const RunResult expected = run_case(c, kCpuDevice, /*misaligned=*/false);
  const RunResult actual = run_case(c, kCpuDevice, /*misaligned=*/true);
  expect_same_results(actual, expected, c);
  for (const Tensor& g : expected.grads) EXPECT_TRUE(g.defined()) << c.name;
}

INSTANTIATE_TEST_SUITE_P(LibraryOps, CudaMisalignedParity,
                         ::testing::ValuesIn(misaligned_cases()),
                         [](const ::testing::TestParamInfo<MisalignedCase>& param_info) {
                           return param_info.param.name;
                         });

// ---- the kernels with misaligned outputs ----------------------------------------------------

constexpr double kSentinel = 12345.0;

// An output view like misaligned_copy's, filled with NaN, whose storage's element 0 (just
// before the view) holds kSentinel; `sentinel_intact` checks it afterwards.
struct MisalignedOutput {
  Tensor storage, view;

  MisalignedOutput(const Shape& shape, DType dtype, Device device) {
    const int64_t n = numel_of(shape);
    storage = full({1 + n}, std::numeric_limits<double>::quiet_NaN(),
                   TensorOptions(dtype).device(device));
    storage.narrow(0, 0, 1).fill_(kSentinel);
    view = storage.narrow(0, 1, n).view(shape);
  }
  bool sentinel_intact() const { return storage.narrow(0, 0, 1).cpu().item<double>() == kSentinel; }
};

// Runs `kernel(backend, outputs, inputs)` on the CPU backend with ordinary tensors and on CUDA
// with misaligned inputs and outputs, and compares every output.
void expect_kernel_matches_cpu(const std::string& name, const std::vector<Tensor>& host_inputs,
                               const std::vector<Shape>& output_shapes, DType dtype,
                               const std::function<void(Backend&, const std::vector<Tensor>&,
                                                        const std::vector<Tensor>&)>& kernel) {
  SCOPED_TRACE(name + " " + dtype_name(dtype));
  std::vector<Tensor> cpu_out, cpu_in = host_inputs;
  for (const Shape& s : output_shapes) cpu_out.push_back(empty(s, dtype));
  kernel(cpu_backend(), cpu_out, cpu_in);

  std::vector<MisalignedOutput> cuda_out;
  std::vector<Tensor> cuda_out_views, cuda_in;
  for (const Shape& s : output_shapes) {
    cuda_out.emplace_back(s, dtype, kCudaDevice);
    cuda_out_views.push_back(cuda_out.back().view);
    ASSERT_FALSE(is_16_byte_aligned(cuda_out_views.back()));
  }
  for (const Tensor& t : host_inputs) cuda_in.push_back(misaligned_copy(t, kCudaDevice));
  ASSERT_NO_THROW(kernel(backend_for(kCudaDevice), cuda_out_views, cuda_in));
  const test::Tolerance tol = sum_tol(dtype);
  for (size_t i = 0; i < output_shapes.size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    test::expect_close(cuda_out_views[i].cpu(), cpu_out[i], tol.rtol, tol.atol);
    EXPECT_TRUE(cuda_out[i].sentinel_intact()) << "the element before the output was written";
  }
}

TEST(CudaMisalignedKernels, OutputsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {kFloat32, kFloat64}) {
    uint32_t seed = 9100;
    auto random = [&](const Shape& shape) { return test::host_random(shape, dt, seed++, -1, 1); };
    Conv2dParams conv;
    conv.pad_h = conv.pad_w = 1;
    const Tensor x = random({2, 3, 6, 7}), w = random({4, 3, 3, 3}), b = random({4});
    const Tensor gy = random({2, 4, 6, 7});
    expect_kernel_matches_cpu("conv2d_forward", {x, w, b}, {{2, 4, 6, 7}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                be.conv2d_forward(out[0], in[0], in[1], in[2], conv);
                              });
    expect_kernel_matches_cpu("conv2d_backward_data", {gy, w}, {{2, 3, 6, 7}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                be.conv2d_backward_data(out[0], in[0], in[1], conv);
                              });
    expect_kernel_matches_cpu("conv2d_backward_filter", {gy, x}, {{4, 3, 3, 3}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                be.conv2d_backward_filter(out[0], in[0], in[1], conv);
                              });
    const Tensor logits = random({4, 9, 5});
    for (bool log : {false, true}) {
      expect_kernel_matches_cpu(log ? "log_softmax" : "softmax", {logits}, {{4, 9, 5}}, dt,
                                [&](Backend& be, const auto& out, const auto& in) {
                                  be.softmax_forward(out[0], in[0], 4, 9, 5, log);
                                });
      // Backward from the CPU's forward output (valid probabilities / log-probabilities).
      Tensor y = empty({4, 9, 5}, dt);
      cpu_backend().softmax_forward(y, logits, 4, 9, 5, log);
      expect_kernel_matches_cpu(log ? "log_softmax_backward" : "softmax_backward",
                                {random({4, 9, 5}), y}, {{4, 9, 5}}, dt,
                                [&](Backend& be, const auto& out, const auto& in) {
                                  be.softmax_backward(out[0], in[0], in[1], 4, 9, 5, log);
                                });
    }
    // Batch norm over x [N, C, S] = [5, 3, 4]: forward writes out, save_mean, save_invstd and
    // the running statistics (given as misaligned inputs, updated in place and compared too).
    const Tensor bx = random({5, 3, 4}), bw = random({3}), bb = random({3});
    const Tensor rm = random({3}), rv = add(abs(random({3})), 0.5);
    std::vector<Tensor> cpu_running = {rm.clone(), rv.clone()};
    std::vector<Tensor> cuda_running = {misaligned_copy(rm, kCudaDevice),
                                        misaligned_copy(rv, kCudaDevice)};
    bool on_cuda = false;
    expect_kernel_matches_cpu("batch_norm_forward", {bx, bw, bb}, {{5, 3, 4}, {3}, {3}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                const std::vector<Tensor>& running =
                                    on_cuda ? cuda_running : cpu_running;
                                be.batch_norm_forward(out[0], out[1], out[2], running[0],
                                                      running[1], in[0], in[1], in[2], 0.1, 0.5);
                                on_cuda = true;
                              });
    const test::Tolerance tol = sum_tol(dt);
    test::expect_close(cuda_running[0].cpu(), cpu_running[0], tol.rtol, tol.atol);
    test::expect_close(cuda_running[1].cpu(), cpu_running[1], tol.rtol, tol.atol);
    Tensor mean = empty({3}, dt), invstd = empty({3}, dt), unused = empty({5, 3, 4}, dt);
    cpu_backend().batch_norm_forward(unused, mean, invstd, Tensor(), Tensor(), bx, bw, bb, 0.1,
                                     0.5);
    expect_kernel_matches_cpu("batch_norm_backward", {random({5, 3, 4}), bx, bw, mean, invstd},
                              {{5, 3, 4}, {3}, {3}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                be.batch_norm_backward(out[0], out[1], out[2], in[0], in[1],
                                                       in[2], in[3], in[4], 0.5);
                              });
    // cuBLAS writes a misaligned out as it is (accumulate: out is read too).
    expect_kernel_matches_cpu("matmul", {random({2, 4, 5}), random({2, 5, 3})}, {{2, 4, 3}}, dt,
                              [&](Backend& be, const auto& out, const auto& in) {
                                be.fill(out[0], 0.0);
                                be.matmul(out[0], in[0], in[1], /*accumulate=*/true);
                              });
  }
}

}  // namespace
}  // namespace strata
