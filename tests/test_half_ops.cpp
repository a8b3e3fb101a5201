// Every op and layer in float16 and bfloat16 against its float32 result, on the CPU: one table
// of cases, each run on inputs that hold exactly representable half-precision values, once in
// float32 and once in the half type. The half run must keep the dtype (outputs and input
// gradients) and agree with the float32 run within the dtype's tolerance, forward and
// backward. (The CPU computes the half types in float32 and rounds each stored result, so the
// differences are the roundings of intermediate results.) The same table runs on CUDA against
// the CPU's half-precision results (skipped without a device).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using In = const std::vector<Tensor>&;

struct HalfCase {
  std::string name;
  std::vector<Shape> shapes;  // the floating inputs, uniform in [lo, hi]
  std::function<Tensor(In)> fn;
  double lo = -2.0, hi = 2.0;
  bool differentiable = true;
  // Multiplies the dtype's tolerance, for ops whose result chains several stored roundings
  // (each case that sets it says why).
  double slack = 1.0;
};

// Tolerances of a result computed in float32 from the same inputs and stored in the half type,
// after a few stored intermediate results: a handful of the dtype's half-ulps (f16: 2^-11
// relative, bf16: 2^-8), with an absolute part for results that cancel to near zero.
test::Tolerance half_tolerance(DType dtype) {
  return dtype == kFloat16 ? test::Tolerance{4e-3, 2e-3} : test::Tolerance{3e-2, 1.5e-2};
}

// int64 indices on the device of `like`.
Tensor indices_on(const Tensor& like, const std::vector<int64_t>& values, const Shape& shape = {}) {
  return test::i64(values, shape).to(like.device());
}

std::vector<HalfCase> cases() {
  const auto positive = [](HalfCase c) {
    c.lo = 0.25;
    c.hi = 3.0;
    return c;
  };
  std::vector<HalfCase> table = {
      // ---- elementwise
      {"neg", {{3, 5}}, [](In x) { return neg(x[0]); }},
      {"abs", {{3, 5}}, [](In x) { return abs(x[0]); }},
      {"exp", {{3, 5}}, [](In x) { return exp(x[0]); }},
      positive({"log", {{3, 5}}, [](In x) { return log(x[0]); }}),
      positive({"sqrt", {{3, 5}}, [](In x) { return sqrt(x[0]); }}),
      positive({"reciprocal", {{3, 5}}, [](In x) { return reciprocal(x[0]); }}),
      {"pow_scalar", {{3, 5}}, [](In x) { return pow(x[0], 3.0); }},
      positive({"pow_tensor", {{3, 5}, {3, 5}}, [](In x) { return pow(x[0], x[1]); }}),
      {"clamp", {{3, 5}}, [](In x) { return clamp(x[0], -0.5, 0.75); }},
      {"add_broadcast", {{3, 5}, {5}}, [](In x) { return add(x[0], x[1]); }},
      {"sub", {{3, 5}, {3, 5}}, [](In x) { return sub(x[0], x[1]); }},
      {"mul", {{3, 5}, {3, 1}}, [](In x) { return mul(x[0], x[1]); }},
      {"div", {{3, 5}, {3, 5}}, [](In x) { return div(x[0], add(abs(x[1]), 0.5)); }},
      {"add_scalar", {{3, 5}}, [](In x) { return add(mul(x[0], 1.5), 0.25); }},
      {"rdiv", {{3, 5}}, [](In x) { return rdiv(add(abs(x[0]), 0.5), 2.0); }},
      {"maximum", {{3, 5}, {3, 5}}, [](In x) { return maximum(x[0], x[1]); }},
      {"minimum", {{3, 5}, {5}}, [](In x) { return minimum(x[0], x[1]); }},
      {"where", {{3, 5}, {3, 5}}, [](In x) { return where(gt(x[0], 0.0), x[0], x[1]); }},
      {"lt", {{3, 5}, {3, 5}}, [](In x) { return lt(x[0], x[1]); }, -2, 2, false},
      {"transpose_copy", {{4, 6}}, [](In x) { return x[0].t().contiguous(); }},
      // ---- reductions and shape ops
      // Sums of 40 stored values: the float32 accumulation rounds once at the end.
      {"sum_dim", {{4, 10}}, [](In x) { return sum(x[0], {1}); }},
      {"mean_all", {{4, 10}}, [](In x) { return mean(x[0]); }},
      {"max_dim", {{4, 10}}, [](In x) { return max(x[0], {0}); }},
      {"argmax", {{4, 10}}, [](In x) { return argmax(x[0], 1); }, -2, 2, false},
      {"cat", {{2, 3}, {4, 3}}, [](In x) { return cat({x[0], x[1]}, 0); }},
      {"stack", {{2, 3}, {2, 3}}, [](In x) { return stack({x[0], x[1]}, 1); }},
      {"index_select", {{5, 3}},
       [](In x) { return index_select(x[0], 0, indices_on(x[0], {4, 0, 4, 2})); }},
      {"gather", {{3, 4}},
       [](In x) { return gather(x[0], 1, indices_on(x[0], {0, 3, 1, 1, 2, 0}, {3, 2})); }},
      // ---- linear algebra: products of 8 terms accumulate in float32, one rounding stored
      {"matmul", {{2, 3, 8}, {8, 5}}, [](In x) { return matmul(x[0], x[1]); }},
      {"linear", {{4, 8}, {6, 8}, {6}}, [](In x) { return F::linear(x[0], x[1], x[2]); }},
      // ---- activations
      {"relu", {{3, 5}}, [](In x) { return F::relu(x[0]); }},
      {"sigmoid", {{3, 5}}, [](In x) { return F::sigmoid(x[0]); }},
      {"tanh", {{3, 5}}, [](In x) { return F::tanh(x[0]); }},
      {"leaky_relu", {{3, 5}}, [](In x) { return F::leaky_relu(x[0], 0.1); }},
      {"elu", {{3, 5}}, [](In x) { return F::elu(x[0]); }},
      {"softplus", {{3, 5}}, [](In x) { return F::softplus(x[0]); }},
      {"gelu", {{3, 5}}, [](In x) { return F::gelu(x[0]); }},
      {"softmax", {{3, 7}}, [](In x) { return F::softmax(x[0], 1); }},
      {"log_softmax", {{3, 7}}, [](In x) { return F::log_softmax(x[0], 1); }},
      // ---- convolution and pooling
      {"conv2d", {{2, 3, 6, 6}, {4, 3, 3, 3}, {4}},
       [](In x) { return F::conv2d(x[0], x[1], x[2], 1, 1); }},
      {"max_pool2d", {{2, 3, 6, 6}}, [](In x) { return F::max_pool2d(x[0], F::Size2(2, 2)); }},
      {"avg_pool2d", {{2, 3, 6, 6}},
       [](In x) { return F::avg_pool2d(x[0], {3, 3}, F::Size2(1, 1)); }},
      // Large enough that the CPU stages them in several pieces of images (or elements), the
      // last one short (float32_staging.h: about 256K elements a piece). The convolution's
      // gradients sum thousands of terms: positive inputs keep those sums from cancelling.
      positive({"conv2d_in_pieces", {{12, 4, 48, 48}, {16, 4, 3, 3}, {16}},
                [](In x) { return F::conv2d(x[0], x[1], x[2], 1, 1); }}),
      {"max_pool2d_in_pieces", {{12, 16, 48, 48}},
       [](In x) { return F::max_pool2d(x[0], F::Size2(2, 2)); }},
      {"relu_in_pieces", {{300001}}, [](In x) { return F::relu(x[0]); }},
      // ---- normalization, embedding, recurrent cells
      // Normalization divides by a standard deviation computed from stored values: a few
      // extra roundings.
      {"batch_norm", {{6, 3}, {3}, {3}},
       [](In x) { return F::batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); },
       -2, 2, true, 2.0},
      {"layer_norm", {{4, 6}, {6}, {6}},
       [](In x) { return F::layer_norm(x[0], {6}, x[1], x[2]); }, -2, 2, true, 2.0},
      {"embedding", {{5, 3}},
       [](In x) { return F::embedding(indices_on(x[0], {1, 4, 1}), x[0]); }},
      // An LSTM step chains two products, four gate activations and the cell update.
      {"lstm_cell", {{2, 3}, {2, 4}, {2, 4}, {16, 3}, {16, 4}, {16}, {16}},
       [](In x) {
         auto [h, c] = F::lstm_cell(x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
         return add(h, c);
       },
       -1, 1, true, 2.0},
      // ---- losses (the mean of per-sample losses)
      {"cross_entropy", {{4, 5}},
       [](In x) { return F::cross_entropy(x[0], indices_on(x[0], {0, 4, 2, 2})); }},
      {"mse_loss", {{4, 5}, {4, 5}}, [](In x) { return F::mse_loss(x[0], x[1]); }},
      {"bce_with_logits", {{4, 5}, {4, 5}},
       [](In x) { return F::binary_cross_entropy_with_logits(x[0], F::sigmoid(x[1])); }},
  };
  return table;
}

// Inputs of `c` holding values exactly representable in `dtype`, as float32.
std::vector<Tensor> representable_inputs(const HalfCase& c, DType dtype) {
  std::vector<Tensor> inputs;
  uint32_t seed = 11;
  for (const Shape& shape : c.shapes) {
    inputs.push_back(test::random_f32(shape, c.lo, c.hi, seed++).to(dtype).to(kFloat32));
  }
  return inputs;
}

struct CaseRun {
  Tensor output;
  std::vector<Tensor> grads;
};

CaseRun run_case(const HalfCase& c, const std::vector<Tensor>& values, DType dtype,
                 Device device = Device(kCPU)) {
  std::vector<Tensor> inputs;
  for (const Tensor& v : values) {
    Tensor input = v.to(dtype).to(device).detach();
    if (c.differentiable) input.set_requires_grad(true);
    inputs.push_back(input);
  }
  CaseRun run;
  run.output = c.fn(inputs);
  if (!c.differentiable) return run;
  // A fixed weighting of the outputs, so each output element sends a different gradient.
  const Tensor weights = test::random_f32(run.output.shape(), 0.5, 1.5, 99)
                            .to(dtype)
                            .to(run.output.dtype())
                            .to(device);
  sum(mul(run.output, weights)).backward();
  for (const Tensor& input : inputs) run.grads.push_back(input.grad());
  return run;
}

class HalfOps : public ::testing::TestWithParam<std::tuple<HalfCase, DType>> {};

TEST_P(HalfOps, MatchesFloat32WithinTheDtypesTolerance) {
  const auto& [c, dtype] = GetParam();
  const std::vector<Tensor> values = representable_inputs(c, dtype);
  const CaseRun reference = run_case(c, values, kFloat32);
  const CaseRun half = run_case(c, values, dtype);
  const test::Tolerance tol = half_tolerance(dtype);

  if (is_floating(reference.output.dtype())) {
    EXPECT_EQ(half.output.dtype(), dtype) << "the output keeps the inputs' dtype";
    test::expect_close(half.output, reference.output, tol.rtol * c.slack, tol.atol * c.slack);
  } else {
    EXPECT_EQ(half.output.dtype(), reference.output.dtype());
    test::expect_close(half.output, reference.output, 0.0, 0.0);
  }
  for (size_t i = 0; i < half.grads.size(); ++i) {
    SCOPED_TRACE("gradient of input " + std::to_string(i));
    ASSERT_TRUE(half.grads[i].defined());
    EXPECT_EQ(half.grads[i].dtype(), dtype) << "a gradient has its input's dtype";
    // The backward pass stores its own intermediate results: twice the forward's slack.
    test::expect_close(half.grads[i], reference.grads[i], 2 * tol.rtol * c.slack,
                       2 * tol.atol * c.slack);
  }
}

// CUDA against the CPU, both in the half type: the same values up to the order of float32
// accumulation (cuBLAS and cuDNN sum in another order), so within one half-precision rounding.
TEST_P(HalfOps, CudaMatchesTheCpu) {
  if (!cuda_is_available()) GTEST_SKIP() << test::cuda_unavailable_reason();
  const auto& [c, dtype] = GetParam();
  const std::vector<Tensor> values = representable_inputs(c, dtype);
  const CaseRun cpu = run_case(c, values, dtype);
  const CaseRun cuda = run_case(c, values, dtype, test::kCudaDevice);
  const test::Tolerance tol = half_tolerance(dtype);
  EXPECT_EQ(cuda.output.dtype(), cpu.output.dtype());
  test::expect_close(cuda.output.cpu(), cpu.output, tol.rtol * c.slack, tol.atol * c.slack);
  for (size_t i = 0; i < cpu.grads.size(); ++i) {
    SCOPED_TRACE("gradient of input " + std::to_string(i));
    EXPECT_EQ(cuda.grads[i].dtype(), dtype);
    test::expect_close(cuda.grads[i].cpu(), cpu.grads[i], 2 * tol.rtol * c.slack,
                       2 * tol.atol * c.slack);
  }
}

std::vector<std::tuple<HalfCase, DType>> all_cases() {
  std::vector<std::tuple<HalfCase, DType>> out;
  for (const HalfCase& c : cases()) {
    out.emplace_back(c, kFloat16);
    out.emplace_back(c, kBFloat16);
  }
  return out;
}

// The bf16 product kernel itself (oneDNN on CPUs with AVX512-BF16, float32 OpenBLAS
// elsewhere) on the layouts matmul hands it: odd sizes, transposed operands, a broadcast
// batch, accumulation. Against the float32 product of the same values, rounded once to bf16:
// within one bf16 rounding (the two sum in different orders).
TEST(HalfMatmulKernel, Bfloat16MatchesTheRoundedFloat32Product) {
  struct Case {
    int64_t batch, m, n, k;
    bool a_transposed, b_transposed, b_broadcast, accumulate;
  };
  const Case cases[] = {{1, 1, 1, 1, false, false, false, false},
                        {1, 7, 33, 19, false, false, false, false},
                        {3, 17, 5, 64, true, false, false, false},
                        {2, 9, 40, 31, false, true, false, true},
                        {4, 16, 16, 3, true, true, true, false},
                        {2, 65, 130, 257, false, true, true, true}};
  Backend& cpu = cpu_backend();
  uint32_t seed = 5;
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << c.batch << "x" << c.m << "x" << c.n << "x" << c.k
                 << (c.a_transposed ? " a^T" : "") << (c.b_transposed ? " b^T" : "")
                 << (c.b_broadcast ? " b broadcast" : "") << (c.accumulate ? " accumulate" : ""));
    const auto operand = [&](int64_t batch, int64_t rows, int64_t cols, bool transposed) {
      Tensor t = test::random_f32(transposed ? Shape{batch, cols, rows} : Shape{batch, rows, cols},
                                  -2, 2, seed++)
                     .to(kBFloat16);
      return transposed ? t.transpose(1, 2) : t;
    };
    const Tensor a = operand(c.batch, c.m, c.k, c.a_transposed);
    Tensor b = operand(c.b_broadcast ? 1 : c.batch, c.k, c.n, c.b_transposed);
    if (c.b_broadcast) b = b.expand({c.batch, c.k, c.n});
    const Tensor start = test::random_f32({c.batch, c.m, c.n}, -1, 1, seed++).to(kBFloat16);
    Tensor out = start.clone();
    cpu.matmul(out, a, b, c.accumulate);
    Tensor expected = start.to(kFloat32);
    cpu.matmul(expected, a.to(kFloat32), b.to(kFloat32), c.accumulate);
    test::expect_close(out, expected.to(kBFloat16), 1.0 / 128, 1e-2);
  }
}

// Optimizers update half-precision parameters too (through float32, state included): two steps
// of SGD with momentum and of Adam from the same values as a float32 run.
TEST(HalfOptimizer, StepsMatchFloat32WithinTheDtypesTolerance) {
  for (DType dtype : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor start = test::random_f32({3, 4}, -1, 1, 21).to(dtype).to(kFloat32);
    const Tensor grad = test::random_f32({3, 4}, -1, 1, 22).to(dtype).to(kFloat32);
    const auto run = [&](DType param_dtype, bool adam) {
      Tensor p = start.to(param_dtype).clone().detach();  // never start's own storage
      p.set_requires_grad(true);
      std::unique_ptr<optim::Optimizer> opt;
      if (adam) {
        opt = std::make_unique<optim::Adam>(std::vector<Tensor>{p}, optim::AdamOptions{.lr = 0.1});
      } else {
        opt = std::make_unique<optim::SGD>(std::vector<Tensor>{p},
                                           optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
      }
      for (int step = 0; step < 2; ++step) {
        p.mutable_grad() = grad.to(param_dtype);
        opt->step();
      }
      EXPECT_EQ(p.dtype(), param_dtype);
      return p.detach().to(kFloat32);
    };
    const test::Tolerance tol = half_tolerance(dtype);
    for (bool adam : {false, true}) {
      test::expect_close(run(dtype, adam), run(kFloat32, adam), tol.rtol, tol.atol);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, HalfOps, ::testing::ValuesIn(all_cases()),
    [](const ::testing::TestParamInfo<std::tuple<HalfCase, DType>>& param_info) {
      return std::get<0>(param_info.param).name + "_" + dtype_name(std::get<1>(param_info.param));
    });

}  // namespace
}  // namespace strata
