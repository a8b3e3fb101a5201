// The neural-network kernels of the CUDA backend against the CPU backend (STYLE rule 9), through
// the public functional API: one table of cases — convolutions (stride, padding, dilation,
// groups, bias, 1-D and unbatched), the pools, every activation, softmax and log-softmax over
// several dims, batch norm in training and eval with running statistics, layer norm, dropout
// with a seeded Generator, embedding, linear and the losses — each run on the CPU and on CUDA,
// float32 and float64, odd sizes. Compared: every output (running statistics included) and the
// gradients of the inputs and weights for one random upstream gradient. Then deterministic
// mode (bitwise-repeatable convolution and max-pooling backward), TF32 for convolutions, and
// the caching allocator under cuDNN workspaces. Every CUDA case skips with the reason when no
// device is present; CpuSideRuns checks the table itself on any machine.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "strata/detail/cuda_hooks.h"
#include "strata/detail/cuda_memory.h"
#include "strata/strata.h"
#include "cuda_test_util.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

using test::cuda_unavailable_reason;
using test::kCpuDevice;
using test::kCudaDevice;

// Restores the global flags a test changes, whatever happens in it.
struct DeterministicGuard {
  explicit DeterministicGuard(bool on) { set_deterministic(on); }
  ~DeterministicGuard() { set_deterministic(false); }
};
struct Tf32Guard {
  ~Tf32Guard() { set_allow_tf32(false); }
};

// ---- host data -------------------------------------------------------------------------------

// The table's default input range.
Tensor host_random(const Shape& shape, DType dtype, uint32_t seed, double lo = -1.0,
                   double hi = 1.0) {
  return test::host_random(shape, dtype, seed, lo, hi);
}

// Integers in [0, count), as floats of `dtype` (max pooling full of ties).
Tensor host_small_integers(const Shape& shape, DType dtype, uint32_t seed, int count) {
  std::vector<double> v =
      test::uniform_values(static_cast<size_t>(numel_of(shape)), 0.0, count, seed);
  for (double& x : v) x = std::floor(x);
  return from_vector<double>(v, shape).to(dtype);
}

// Targets in {-1, +1}.
Tensor host_signs(const Shape& shape, DType dtype, uint32_t seed) {
  std::vector<double> v = test::uniform_values(static_cast<size_t>(numel_of(shape)), -1, 1, seed);
  for (double& x : v) x = x > 0 ? 1.0 : -1.0;
  return from_vector<double>(v, shape).to(dtype);
}

Tensor host_index(const std::vector<int64_t>& values, const Shape& shape) {
  return from_vector<int64_t>(values, shape);
}

// ---- tolerances (atol + rtol * |cpu|, STYLE rule 11) -----------------------------------------

// Pointwise results (activations, max pooling's routing, dropout, embedding rows): CUDA's
// expf, erff, tanhf, log1pf are within 2 ulps of glibc's, so the test_util.h defaults hold.
test::Tolerance pointwise_tol(DType dtype) { return test::default_tolerance(dtype); }

// Results that add many products (convolution, linear, averages, softmax, normalization, the
// losses, and every weight gradient): cuDNN/cuBLAS and OpenBLAS/our loops add in different
// orders. The largest sums here have ~1000 terms of magnitude <= 1 (conv weight gradients over
// N*P*Q); each order is within 1000 * 6e-8 = 6e-5 of the exact value in float32, and within
// 1000 * 1.1e-16 = 1.1e-13 in float64.
test::Tolerance sum_tol(DType dtype) {
  if (dtype == kFloat32) return {2e-4, 1e-4};
  return {1e-10, 1e-11};
}

// Max pooling's forward selects an element: it must be exact.
test::Tolerance exact_tol(DType) { return {0.0, 0.0}; }

// ---- the table -------------------------------------------------------------------------------

using Inputs = std::vector<Tensor>;
using Outputs = std::vector<Tensor>;
// Runs the op on inputs living on `device`. outputs[0] is the differentiable result; further
// outputs (updated running statistics) are compared too.
using OpFn = std::function<Outputs(const Inputs&, Device)>;

struct NnCase {
  std::string name;
  std::function<Inputs()> inputs;    // host tensors; moved to CUDA for the CUDA run
  std::vector<size_t> grad_inputs;   // which inputs require grad and have their grad compared
  OpFn op;
  test::Tolerance tol;       // outputs
  test::Tolerance grad_tol;  // gradients
};

void PrintTo(const NnCase& c, std::ostream* out) { *out << c.name; }

std::string tag(DType dtype) { return dtype_name(dtype); }

std::vector<NnCase> nn_cases() {
  std::vector<NnCase> cases;
  std::set<std::string> names;
  uint32_t seed = 1000;
  auto add = [&](std::string name, std::function<Inputs()> inputs, std::vector<size_t> grads,
                 OpFn op, test::Tolerance tol, test::Tolerance grad_tol) {
    cases.push_back({test::unique_case_name(std::move(name), names), std::move(inputs),
                     std::move(grads), std::move(op), tol, grad_tol});
  };
  // Inputs of random tensors with these shapes (uniform in [lo, hi)).
  auto randoms = [&](std::vector<Shape> shapes, DType dtype, double lo = -1.0, double hi = 1.0) {
    return test::random_inputs(std::move(shapes), dtype, seed, lo, hi);
  };
  auto one = [](Tensor t) { return Outputs{std::move(t)}; };

  for (DType dt : {kFloat32, kFloat64}) {
    const std::string t = "_" + tag(dt);

    // ---- convolution: x, w (, b) ---------------------------------------------------------
    struct Conv2dCase {
      std::string name;
      Shape x, w;
      bool bias;
      F::Size2 stride, padding, dilation;
      int64_t groups;
    };
    const std::vector<Conv2dCase> convs = {
        {"basic", {2, 3, 7, 9}, {4, 3, 3, 3}, true, 1, 0, 1, 1},
        {"stride_pad_no_bias", {2, 3, 8, 7}, {5, 3, 3, 2}, false, {2, 1}, {1, 2}, 1, 1},
        {"dilation", {1, 2, 9, 10}, {3, 2, 3, 3}, true, 1, 2, 2, 1},
        {"dilation_hw", {2, 2, 11, 8}, {3, 2, 2, 3}, true, {2, 1}, {1, 0}, {3, 2}, 1},
        {"groups", {2, 6, 7, 7}, {9, 2, 3, 3}, true, 2, 1, 1, 3},
        {"depthwise", {2, 4, 6, 5}, {8, 1, 3, 3}, true, 1, 1, 1, 4},
        {"pointwise_1x1", {3, 5, 4, 6}, {7, 5, 1, 1}, true, 1, 0, 1, 1},
        {"kernel_5x5_pad_2", {2, 3, 7, 7}, {2, 3, 5, 5}, false, 1, 2, 1, 1},
        {"unbatched", {3, 7, 9}, {4, 3, 3, 3}, true, 1, 1, 1, 1},
        {"wider", {4, 16, 15, 17}, {32, 16, 3, 3}, true, 1, 1, 1, 1},
        {"wider_strided", {4, 16, 15, 17}, {24, 16, 3, 3}, false, 2, 1, 1, 1},
    };
    for (const auto& cc : convs) {
      std::vector<Shape> shapes = {cc.x, cc.w};
      if (cc.bias) shapes.push_back({cc.w[0]});
      std::vector<size_t> grads = {0, 1};
      if (cc.bias) grads.push_back(2);
      add("conv2d_" + cc.name + t, randoms(shapes, dt), grads,
          [cc](const Inputs& in, Device) {
            return Outputs{F::conv2d(in[0], in[1], cc.bias ? in[2] : Tensor(), cc.stride,
                                     cc.padding, cc.dilation, cc.groups)};
          },
          sum_tol(dt), sum_tol(dt));
    }
    struct Conv1dCase {
      std::string name;
      Shape x, w;
      bool bias;
      int64_t stride, padding, dilation, groups;
    };
    const std::vector<Conv1dCase> convs1d = {
        {"stride_pad", {2, 3, 11}, {4, 3, 3}, true, 2, 1, 1, 1},
        {"groups_dilation", {2, 4, 10}, {6, 2, 3}, false, 1, 2, 2, 2},
        {"unbatched", {3, 8}, {2, 3, 4}, true, 1, 0, 1, 1},
    };
    for (const auto& cc : convs1d) {
      std::vector<Shape> shapes = {cc.x, cc.w};
      if (cc.bias) shapes.push_back({cc.w[0]});
      std::vector<size_t> grads = {0, 1};
      if (cc.bias) grads.push_back(2);
      add("conv1d_" + cc.name + t, randoms(shapes, dt), grads,
          [cc](const Inputs& in, Device) {
            return Outputs{F::conv1d(in[0], in[1], cc.bias ? in[2] : Tensor(), cc.stride,
                                     cc.padding, cc.dilation, cc.groups)};
          },
          sum_tol(dt), sum_tol(dt));
    }

    // ---- transposed and 3-D convolution, double backward ----------------------------------
    add(
        "conv_transpose2d_output_padding" + t, randoms({{2, 4, 5, 6}, {4, 3, 3, 3}, {6}}, dt),
        {0, 1, 2},
        [one](const Inputs& in, Device) {
          return one(F::conv_transpose2d(in[0], in[1], in[2], {2, 3}, {1, 0}, {1, 2}, 2));
        },
        sum_tol(dt), sum_tol(dt));
    add(
        "conv_transpose2d_dilation" + t, randoms({{1, 3, 6, 5}, {3, 2, 2, 3}}, dt), {0, 1},
        [one](const Inputs& in, Device) {
          return one(F::conv_transpose2d(in[0], in[1], Tensor(), 1, 1, 0, 1, {2, 1}));
        },
        sum_tol(dt), sum_tol(dt));
    add(
        "conv3d" + t, randoms({{2, 4, 5, 6, 5}, {6, 2, 2, 3, 2}, {6}}, dt), {0, 1, 2},
        [one](const Inputs& in, Device) {
          return one(F::conv3d(in[0], in[1], in[2], {2, 1, 2}, {1, 1, 0}, 1, 2));
        },
        sum_tol(dt), sum_tol(dt));
    // The input gradient of sum(softplus(conv2d(x, w))^2), recorded: its own gradient runs the
    // conv's three maps (forward, backward data, backward filter) again.
    add(
        "conv2d_double_backward" + t, randoms({{2, 3, 6, 7}, {4, 3, 3, 3}}, dt), {0, 1},
        [one](const Inputs& in, Device) {
          const Tensor y = F::softplus(F::conv2d(in[0], in[1], Tensor(), 2, 1));
          return one(autograd::grad({sum(mul(y, y))}, {in[0]}, {}, std::nullopt,
                                    /*create_graph=*/true)[0]);
        },
        sum_tol(dt), sum_tol(dt));

    // ---- pooling -------------------------------------------------------------------------
    // Distinct random values: no ties, so max pooling routes each gradient to one element.
    add(
        "max_pool3d" + t, randoms({{2, 3, 4, 6, 5}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::max_pool3d(in[0], {2, 3, 2}, F::Size3(1, 2, 2), {1, 1, 0}));
        },
        exact_tol(dt), pointwise_tol(dt));
    add(
        "avg_pool3d_exclusive" + t, randoms({{1, 2, 4, 5, 5}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::avg_pool3d(in[0], 3, F::Size3(1, 2, 2), 1, false));
        },
        sum_tol(dt), sum_tol(dt));
    add(
        "adaptive_max_pool2d" + t, randoms({{2, 3, 7, 9}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::adaptive_max_pool2d(in[0], {3, 4}));
        },
        exact_tol(dt), pointwise_tol(dt));
    add(
        "interpolate_nearest" + t, randoms({{2, 3, 4, 5}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::interpolate(in[0], {.scale_factor = F::Scale2(1.5, 2.0)}));
        },
        exact_tol(dt), sum_tol(dt));
    add(
        "interpolate_bilinear" + t, randoms({{2, 3, 4, 5}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::interpolate(
              in[0], {.size = F::Size2(7, 3), .mode = F::InterpolateMode::Bilinear}));
        },
        sum_tol(dt), sum_tol(dt));
    add("max_pool2d_k2" + t, randoms({{2, 3, 7, 9}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::max_pool2d(in[0], 2)); }, exact_tol(dt),
        pointwise_tol(dt));
    add("max_pool2d_k3_s2_p1" + t, randoms({{2, 3, 8, 7}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::max_pool2d(in[0], 3, F::Size2(2), 1)); },
        exact_tol(dt), pointwise_tol(dt));
    add("max_pool2d_overlapping_rect" + t, randoms({{1, 2, 6, 7}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::max_pool2d(in[0], {3, 2}, F::Size2(1, 2), {1, 0}));
        },
        exact_tol(dt), pointwise_tol(dt));
    // Values in {0, 1}: most windows hold several maxima; the contract sends each window's
    // gradient to its first maximum, on CUDA too (overlapping windows and not).
    add("max_pool2d_ties_k2_s1" + t,
        [dt, s = seed++] { return Inputs{host_small_integers({2, 3, 6, 7}, dt, s, 2)}; }, {0},
        [one](const Inputs& in, Device) { return one(F::max_pool2d(in[0], 2, F::Size2(1))); },
        exact_tol(dt), pointwise_tol(dt));
    add("max_pool2d_ties_k2" + t,
        [dt, s = seed++] { return Inputs{host_small_integers({2, 3, 6, 8}, dt, s, 2)}; }, {0},
        [one](const Inputs& in, Device) { return one(F::max_pool2d(in[0], 2)); },
        exact_tol(dt), pointwise_tol(dt));
    add("max_pool2d_after_relu_p1" + t, randoms({{2, 2, 7, 7}}, dt), {0},
        [one](const Inputs& in, Device) {
          return one(F::max_pool2d(F::relu(in[0]), 3, F::Size2(2), 1));
        },
        exact_tol(dt), pointwise_tol(dt));
    add("max_pool1d_k3_s2_p1" + t, randoms({{2, 3, 11}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::max_pool1d(in[0], 3, 2, 1)); },
        exact_tol(dt), pointwise_tol(dt));
    // Values and indices (outputs 0 and 1) of Strata's own kernels, with their gradients:
    // ties, NaN (the last NaN of a window wins), ceil_mode and dilation. Upstream gradients
    // are random, so a gradient compares sums of up to 9 of them (overlapping windows).
    struct MaxPoolIndicesCase {
      std::string name;
      std::function<Inputs()> inputs;
      F::Size2 kernel, stride, padding, dilation;
      bool ceil_mode;
    };
    auto ties = [dt, &seed](Shape shape, int count) {
      return [dt, shape, count, s = seed++] {
        return Inputs{host_small_integers(shape, dt, s, count)};
      };
    };
    // Random values with NaN at every 7th element: windows holding one NaN, two, or none.
    auto with_nans = [dt, &seed](Shape shape) {
      return [dt, shape, s = seed++] {
        std::vector<double> v = test::uniform_values(static_cast<size_t>(numel_of(shape)), -1,
                                                     1, s);
        for (size_t i = 0; i < v.size(); i += 7) v[i] = std::numeric_limits<double>::quiet_NaN();
        return Inputs{from_vector<double>(v, shape).to(dt)};
      };
    };
    const std::vector<MaxPoolIndicesCase> max_pools = {
        {"ties_k3_s2_p1", ties({2, 3, 9, 10}, 3), 3, 2, 1, 1, false},
        {"ties_k2", ties({2, 3, 6, 9}, 2), 2, 2, 0, 1, false},
        {"ties_ceil_k3_s2", ties({2, 2, 8, 7}, 2), 3, 2, 0, 1, true},
        {"nan_k3_s1_p1", with_nans({2, 2, 7, 8}), 3, 1, 1, 1, false},
        {"nan_k2", with_nans({2, 2, 6, 8}), 2, 2, 0, 1, false},
        {"ceil_k2_odd", randoms({{2, 3, 7, 9}}, dt), 2, 2, 0, 1, true},
        {"ceil_k3_s2_p1", randoms({{2, 2, 8, 8}}, dt), 3, 2, 1, 1, true},
        {"dilation_2", randoms({{2, 2, 11, 10}}, dt), 3, 1, 1, 2, false},
        {"dilation_rect_ceil", randoms({{1, 3, 12, 11}}, dt), {3, 2}, {2, 1}, {1, 1}, {2, 3},
         true},
        {"dilation_ties", ties({2, 2, 9, 9}, 2), 2, 1, 1, 2, false},
    };
    for (const auto& mc : max_pools) {
      add("max_pool2d_indices_" + mc.name + t, mc.inputs, {0},
          [mc](const Inputs& in, Device) {
            auto [values, indices] = F::max_pool2d_with_indices(
                in[0], mc.kernel, mc.stride, mc.padding, mc.dilation, mc.ceil_mode);
            return Outputs{values, indices};
          },
          exact_tol(dt), sum_tol(dt));
    }
    add("max_pool1d_indices_dilation_ceil" + t, with_nans({2, 3, 13}), {0},
        [](const Inputs& in, Device) {
          auto [values, indices] = F::max_pool1d_with_indices(in[0], 3, 2, 1, 2, true);
          return Outputs{values, indices};
        },
        exact_tol(dt), sum_tol(dt));
    // max_unpool: indices from pooling the input itself (overlapping windows: repeats).
    add("max_unpool2d_overlapping" + t, ties({2, 2, 7, 8}, 3), {0},
        [](const Inputs& in, Device) {
          auto [values, indices] = F::max_pool2d_with_indices(in[0], 3, F::Size2(1), 1);
          return Outputs{F::max_unpool2d(values, indices, 3, F::Size2(1), 1), indices};
        },
        exact_tol(dt), sum_tol(dt));
    add("max_unpool2d_ceil_output_size" + t, randoms({{2, 3, 7, 9}}, dt), {0},
        [](const Inputs& in, Device) {
          auto [values, indices] =
              F::max_pool2d_with_indices(in[0], 2, std::nullopt, 0, 1, true);
          return Outputs{F::max_unpool2d(values, indices, 2, std::nullopt, 0, F::Size2(7, 9))};
        },
        exact_tol(dt), sum_tol(dt));
    for (bool include_pad : {true, false}) {
      const std::string pad_tag = include_pad ? "_include_pad" : "_exclude_pad";
      add("avg_pool2d_k3_s2_p1" + pad_tag + t, randoms({{2, 3, 8, 9}}, dt), {0},
          [one, include_pad](const Inputs& in, Device) {
            return one(F::avg_pool2d(in[0], 3, F::Size2(2), 1, include_pad));
          },
          sum_tol(dt), sum_tol(dt));
      add("avg_pool2d_rect_overlapping" + pad_tag + t, randoms({{1, 2, 7, 6}}, dt), {0},
          [one, include_pad](const Inputs& in, Device) {
            return one(F::avg_pool2d(in[0], {2, 3}, F::Size2(1, 2), {1, 1}, include_pad));
          },
          sum_tol(dt), sum_tol(dt));
      add("avg_pool1d_k3_s1_p1" + pad_tag + t, randoms({{2, 3, 10}}, dt), {0},
          [one, include_pad](const Inputs& in, Device) {
            return one(F::avg_pool1d(in[0], 3, 1, 1, include_pad));
          },
          sum_tol(dt), sum_tol(dt));
    }
    add("avg_pool2d_k2" + t, randoms({{2, 3, 7, 9}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::avg_pool2d(in[0], 2)); }, sum_tol(dt),
        sum_tol(dt));
    for (const F::Size2& size : {F::Size2(3, 4), F::Size2(1, 1), F::Size2(7, 9), F::Size2(4, 5)}) {
      add("adaptive_avg_pool2d_" + std::to_string(size.h) + "x" + std::to_string(size.w) + t,
          randoms({{2, 3, 7, 9}}, dt), {0},
          [one, size](const Inputs& in, Device) {
            return one(F::adaptive_avg_pool2d(in[0], size));
          },
          sum_tol(dt), sum_tol(dt));
    }

    // ---- activations ---------------------------------------------------------------------
    using Act = std::function<Tensor(const Tensor&)>;
    const std::vector<std::pair<std::string, Act>> activations = {
        {"relu", [](const Tensor& x) { return F::relu(x); }},
        {"sigmoid", [](const Tensor& x) { return F::sigmoid(x); }},
        {"tanh", [](const Tensor& x) { return F::tanh(x); }},
        {"leaky_relu", [](const Tensor& x) { return F::leaky_relu(x, 0.2); }},
        {"elu", [](const Tensor& x) { return F::elu(x, 1.3); }},
        {"softplus", [](const Tensor& x) { return F::softplus(x); }},
        // beta 2 on [-15, 15): beta * x crosses PyTorch's threshold of 20 (the linear branch).
        {"softplus_beta2", [](const Tensor& x) { return F::softplus(x, 2.0); }},
        {"gelu", [](const Tensor& x) { return F::gelu(x); }},
    };
    for (const auto& [act_name, act_fn] : activations) {
      const Act fn = act_fn;
      const double range = act_name == "softplus_beta2" ? 15.0 : 4.0;
      for (const Shape& shape : std::vector<Shape>{{7, 13}, {65537}}) {
        add(act_name + "_" + std::to_string(numel_of(shape)) + t,
            randoms({shape}, dt, -range, range), {0},
            [fn](const Inputs& in, Device) { return Outputs{fn(in[0])}; }, pointwise_tol(dt),
            pointwise_tol(dt));
      }
    }
    add("maxout_3" + t, randoms({{6, 12}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::maxout(in[0], 3)); }, exact_tol(dt),
        pointwise_tol(dt));

    // ---- softmax and log-softmax ---------------------------------------------------------
    struct SoftmaxCase {
      Shape shape;
      int64_t dim;
      double range;
    };
    const std::vector<SoftmaxCase> softmaxes = {
        {{7, 13}, 1, 3.0},     {{7, 13}, 0, 3.0},   {{3, 5, 7}, 1, 3.0}, {{3, 5, 7}, 0, 3.0},
        {{3, 5, 7}, -1, 3.0},  {{2, 1000}, 1, 3.0}, {{4, 1, 3}, 1, 3.0}, {{2, 20000}, 1, 3.0},
        {{5, 9}, 1, 60.0},  // large logits: exp overflows unless the max is subtracted first
    };
    for (const auto& sc : softmaxes) {
      std::string shape_tag;
      for (int64_t s : sc.shape) shape_tag += std::to_string(s) + "x";
      const std::string suffix = shape_tag + "dim" + std::to_string(sc.dim) +
                                 (sc.range > 10 ? "_large" : "") + t;
      const int64_t dim = sc.dim;
      add("softmax_" + suffix, randoms({sc.shape}, dt, -sc.range, sc.range), {0},
          [one, dim](const Inputs& in, Device) { return one(F::softmax(in[0], dim)); },
          sum_tol(dt), sum_tol(dt));
      add("log_softmax_" + suffix, randoms({sc.shape}, dt, -sc.range, sc.range), {0},
          [one, dim](const Inputs& in, Device) { return one(F::log_softmax(in[0], dim)); },
          sum_tol(dt), sum_tol(dt));
    }

    // ---- normalization -------------------------------------------------------------------
    // Inputs: x, weight, bias, running_mean, running_var (the last two updated in place and
    // compared after the call).
    auto bn_inputs = [&](Shape x_shape) {
      const int64_t c = x_shape[1];
      const uint32_t base = seed;
      seed += 5;
      return [=] {
        return Inputs{host_random(x_shape, dt, base, -2, 3),
                      host_random({c}, dt, base + 1, 0.5, 1.5),
                      host_random({c}, dt, base + 2, -0.5, 0.5),
                      host_random({c}, dt, base + 3, -0.2, 0.2),
                      host_random({c}, dt, base + 4, 0.5, 2.0)};
      };
    };
    for (const Shape& shape : std::vector<Shape>{{4, 3, 5, 7}, {6, 5}, {5, 4, 9}, {3, 4, 1, 1}}) {
      std::string shape_tag;
      for (int64_t s : shape) shape_tag += std::to_string(s) + "x";
      add("batch_norm_train_running_" + shape_tag + t, bn_inputs(shape), {0, 1, 2},
          [](const Inputs& in, Device) {
            Tensor out = F::batch_norm(in[0], in[3], in[4], in[1], in[2], true, 0.1, 1e-5);
            return Outputs{out, in[3], in[4]};
          },
          sum_tol(dt), sum_tol(dt));
      add("batch_norm_eval_" + shape_tag + t, bn_inputs(shape), {0, 1, 2},
          [](const Inputs& in, Device) {
            return Outputs{F::batch_norm(in[0], in[3], in[4], in[1], in[2], false, 0.1, 1e-5)};
          },
          sum_tol(dt), sum_tol(dt));
    }
    add("batch_norm_train_no_stats_no_affine" + t, bn_inputs({4, 3, 5, 7}), {0},
        [](const Inputs& in, Device) {
          const Tensor none;
          return Outputs{F::batch_norm(in[0], none, none, none, none, true, 0.1, 1e-3)};
        },
        sum_tol(dt), sum_tol(dt));
    add("batch_norm_train_momentum_0_3" + t, bn_inputs({8, 2, 3}), {0, 1, 2},
        [](const Inputs& in, Device) {
          Tensor out = F::batch_norm(in[0], in[3], in[4], in[1], in[2], true, 0.3, 1e-4);
          return Outputs{out, in[3], in[4]};
        },
        sum_tol(dt), sum_tol(dt));
    // A large eps (the variance of x here is about 2): the backward must use the forward's
    // eps, not a default of its own, or grad_x and grad_weight are visibly off.
    add("batch_norm_train_eps_0_5" + t, bn_inputs({4, 3, 5, 7}), {0, 1, 2},
        [](const Inputs& in, Device) {
          Tensor out = F::batch_norm(in[0], in[3], in[4], in[1], in[2], true, 0.1, 0.5);
          return Outputs{out, in[3], in[4]};
        },
        sum_tol(dt), sum_tol(dt));
    add("layer_norm_last" + t, randoms({{4, 5, 6}, {6}, {6}}, dt), {0, 1, 2},
        [one](const Inputs& in, Device) { return one(F::layer_norm(in[0], {6}, in[1], in[2])); },
        sum_tol(dt), sum_tol(dt));
    add("layer_norm_two_dims_no_affine" + t, randoms({{4, 5, 6}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::layer_norm(in[0], {5, 6})); },
        sum_tol(dt), sum_tol(dt));

    // ---- dropout, embedding, linear ------------------------------------------------------
    // A Generator made inside the op: both backends start from the same seed and offset.
    for (double p : {0.3, 0.0}) {
      add("dropout_p" + std::to_string(static_cast<int>(p * 10)) + t, randoms({{7, 1000}}, dt),
          {0},
          [one, p](const Inputs& in, Device) {
            Generator gen(42);
            return one(F::dropout(in[0], p, true, &gen));
          },
          pointwise_tol(dt), pointwise_tol(dt));
    }
    add("dropout_eval" + t, randoms({{7, 13}}, dt), {0},
        [one](const Inputs& in, Device) { return one(F::dropout(in[0], 0.5, false)); },
        pointwise_tol(dt), pointwise_tol(dt));
    for (bool padded : {false, true}) {
      add(std::string("embedding") + (padded ? "_padding_idx" : "") + t,
          [w = randoms({{10, 5}}, dt)] {
            return Inputs{host_index({3, 2, 9, 3, 0, 2, 2, 7, 3, 1, 9, 4}, {3, 4}), w()[0]};
          },
          {1},
          [one, padded](const Inputs& in, Device) {
            const std::optional<int64_t> padding_idx =
                padded ? std::optional<int64_t>(2) : std::nullopt;
            return one(F::embedding(in[0], in[1], padding_idx));
          },
          // Gradient rows add repeated indices with atomics in any order.
          pointwise_tol(dt), sum_tol(dt));
    }
    add("linear" + t, randoms({{7, 13}, {5, 13}, {5}}, dt), {0, 1, 2},
        [one](const Inputs& in, Device) { return one(F::linear(in[0], in[1], in[2])); },
        sum_tol(dt), sum_tol(dt));
    add("linear_batched_no_bias" + t, randoms({{2, 3, 13}, {6, 13}}, dt), {0, 1},
        [one](const Inputs& in, Device) { return one(F::linear(in[0], in[1])); }, sum_tol(dt),
        sum_tol(dt));

    // ---- losses --------------------------------------------------------------------------
    const std::vector<std::pair<std::string, F::Reduction>> reductions = {
        {"mean", F::Reduction::Mean}, {"sum", F::Reduction::Sum}, {"none", F::Reduction::None}};
    auto logits_and_classes = [&](Shape logits, std::vector<int64_t> classes, Shape target) {
      auto x = randoms({logits}, dt, -3, 3);
      return [=] { return Inputs{x()[0], host_index(classes, target)}; };
    };
    const std::vector<int64_t> classes6 = {4, 0, 2, 2, 1, 3};
    for (const auto& [red_name, red] : reductions) {
      const F::Reduction reduction = red;
      add("cross_entropy_" + red_name + t, logits_and_classes({6, 5}, classes6, {6}), {0},
          [one, reduction](const Inputs& in, Device) {
            F::CrossEntropyOptions options;
            options.reduction = reduction;
            return one(F::cross_entropy(in[0], in[1], options));
          },
          sum_tol(dt), sum_tol(dt));
      add("cross_entropy_weight_ignore_smooth_" + red_name + t,
          [x = randoms({{6, 5}, {5}}, dt, 0.5, 2.0)] {
            Inputs in = x();
            in.insert(in.begin() + 1, host_index({4, -100, 2, 2, 1, 3}, {6}));
            return in;  // logits, target, weight
          },
          {0},
          [one, reduction](const Inputs& in, Device) {
            F::CrossEntropyOptions options;
            options.weight = in[2];
            options.ignore_index = -100;
            options.label_smoothing = 0.1;
            options.reduction = reduction;
            return one(F::cross_entropy(in[0], in[1], options));
          },
          sum_tol(dt), sum_tol(dt));
      add("nll_loss_weight_" + red_name + t,
          [x = randoms({{6, 5}, {5}}, dt, -3, -0.1)] {
            Inputs in = x();
            in.insert(in.begin() + 1, host_index({0, 4, 4, 1, 3, 2}, {6}));
            return in;  // log_probs, target, weight
          },
          {0},
          [one, reduction](const Inputs& in, Device) {
            return one(F::nll_loss(in[0], in[1], in[2], reduction));
          },
          sum_tol(dt), sum_tol(dt));
    }
    add("cross_entropy_spatial" + t,
        logits_and_classes({2, 4, 3, 3}, {0, 1, 2, 3, 3, 2, 1, 0, 0, 3, 3, 1, 1, 2, 0, 0, 2, 1},
                           {2, 3, 3}),
        {0},
        [one](const Inputs& in, Device) { return one(F::cross_entropy(in[0], in[1])); },
        sum_tol(dt), sum_tol(dt));
    add("cross_entropy_probabilities" + t,
        [x = randoms({{6, 5}, {6, 5}}, dt, -3, 3)] {
          Inputs in = x();
          in[1] = F::softmax(in[1], 1);  // soft targets: rows summing to 1
          return in;
        },
        {0},
        [one](const Inputs& in, Device) { return one(F::cross_entropy(in[0], in[1])); },
        sum_tol(dt), sum_tol(dt));
    add("binary_cross_entropy_weight" + t,
        [p = randoms({{4, 7}}, dt, 0.05, 0.95), y = randoms({{4, 7}, {7}}, dt, 0.0, 1.0)] {
          Inputs in = p();
          for (const Tensor& x : y()) in.push_back(x);
          return in;  // probs, target, weight
        },
        {0},
        [one](const Inputs& in, Device) {
          return one(F::binary_cross_entropy(in[0], in[1], in[2]));
        },
        sum_tol(dt), sum_tol(dt));
    add("bce_with_logits_pos_weight" + t,
        [z = randoms({{4, 7}}, dt, -4, 4), y = randoms({{4, 7}, {7}, {7}}, dt, 0.0, 1.5)] {
          Inputs in = z();
          for (const Tensor& x : y()) in.push_back(x);
          return in;  // logits, target, weight, pos_weight
        },
        {0},
        [one](const Inputs& in, Device) {
          return one(F::binary_cross_entropy_with_logits(in[0], in[1], in[2], F::Reduction::Sum,
                                                         in[3]));
        },
        sum_tol(dt), sum_tol(dt));
    using Regression = std::function<Tensor(const Tensor&, const Tensor&)>;
    const std::vector<std::pair<std::string, Regression>> regressions = {
        {"mse_loss", [](const Tensor& a, const Tensor& b) { return F::mse_loss(a, b); }},
        {"l1_loss",
         [](const Tensor& a, const Tensor& b) { return F::l1_loss(a, b, F::Reduction::Sum); }},
        {"huber_loss",
         [](const Tensor& a, const Tensor& b) {
           return F::huber_loss(a, b, F::Reduction::Mean, 0.5);
         }},
        {"smooth_l1_loss",
         [](const Tensor& a, const Tensor& b) {
           return F::smooth_l1_loss(a, b, F::Reduction::None, 0.7);
         }},
    };
    for (const auto& [loss_name, loss_fn] : regressions) {
      const Regression fn = loss_fn;
      add(loss_name + t, randoms({{5, 6}, {5, 6}}, dt, -2, 2), {0},
          [fn](const Inputs& in, Device) { return Outputs{fn(in[0], in[1])}; }, sum_tol(dt),
          sum_tol(dt));
    }
    using SignLoss = std::function<Tensor(const Tensor&, const Tensor&)>;
    const std::vector<std::pair<std::string, SignLoss>> sign_losses = {
        {"hinge_loss", [](const Tensor& f, const Tensor& y) { return F::hinge_loss(f, y); }},
        {"exponential_loss",
         [](const Tensor& f, const Tensor& y) {
           return F::exponential_loss(f, y, F::Reduction::Sum);
         }},
        {"perceptron_loss",
         [](const Tensor& f, const Tensor& y) {
           return F::perceptron_loss(f, y, F::Reduction::None);
         }},
    };
    for (const auto& [loss_name, loss_fn] : sign_losses) {
      const SignLoss fn = loss_fn;
      add(loss_name + t,
          [dt, f = randoms({{9}}, dt, -2, 2), s = seed++] {
            return Inputs{f()[0], host_signs({9}, dt, s)};
          },
          {0}, [fn](const Inputs& in, Device) { return Outputs{fn(in[0], in[1])}; }, sum_tol(dt),
          sum_tol(dt));
    }
    add("multi_margin_loss_weight" + t,
        [x = randoms({{6, 5}, {5}}, dt, -2, 2)] {
          Inputs in = x();
          in.insert(in.begin() + 1, host_index({4, 0, 2, 2, 1, 3}, {6}));
          return in;  // scores, target, weight
        },
        {0},
        [one](const Inputs& in, Device) {
          return one(F::multi_margin_loss(in[0], in[1], F::Reduction::Mean, 0.8, in[2]));
        },
        sum_tol(dt), sum_tol(dt));
    add("zero_one_error_classes" + t, logits_and_classes({6, 5}, classes6, {6}), {},
        [one](const Inputs& in, Device) { return one(F::zero_one_error(in[0], in[1])); },
        pointwise_tol(dt), pointwise_tol(dt));
    add("zero_one_error_signs" + t,
        [dt, f = randoms({{9}}, dt, -2, 2), s = seed++] {
          return Inputs{f()[0], host_signs({9}, dt, s)};
        },
        {}, [one](const Inputs& in, Device) { return one(F::zero_one_error(in[0], in[1])); },
        pointwise_tol(dt), pointwise_tol(dt));
  }
  return cases;
}

std::string describe_inputs(const Inputs& inputs) {
  std::ostringstream out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    out << (i ? ", " : "") << shape_str(inputs[i].shape()) << " " << dtype_name(inputs[i].dtype());
  }
  return inputs.empty() ? "none" : out.str();
}

struct RunResult {
  Outputs outputs;            // on the CPU
  std::vector<Tensor> grads;  // on the CPU, one per grad_inputs entry (undefined if none)
};

// Runs a case on `device`: inputs copied there (cloned on the CPU so the host tensors stay
// untouched by in-place updates), the op, then backward of sum(out * upstream) for a fixed
// random upstream gradient.
RunResult run_case(const NnCase& c, const Inputs& host, Device device) {
  Inputs in;
  for (size_t i = 0; i < host.size(); ++i) {
    Tensor x = device.is_cpu() ? host[i].clone() : host[i].to(device);
    for (size_t g : c.grad_inputs) {
      if (g == i) x.set_requires_grad(true);
    }
    in.push_back(x);
  }
  RunResult result;
  Outputs outputs = c.op(in, device);
  if (!c.grad_inputs.empty()) {
    const Tensor& out = outputs.at(0);
    const Tensor upstream = host_random(out.shape(), out.dtype(), 4242, -1, 1).to(device);
    sum(mul(out, upstream)).backward();
    for (size_t g : c.grad_inputs) {
      const Tensor& grad = in[g].grad();
      result.grads.push_back(grad.defined() ? grad.cpu() : Tensor());
    }
  }
  for (const Tensor& out : outputs) result.outputs.push_back(out.detach().cpu());
  return result;
}

class CudaNnParity : public ::testing::TestWithParam<NnCase> {};

TEST_P(CudaNnParity, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const NnCase& c = GetParam();
  const Inputs host = c.inputs();
  const std::string what = "case " + c.name + " (inputs: " + describe_inputs(host) + ")";
  const RunResult expected = run_case(c, host, kCpuDevice);
  RunResult actual;
  ASSERT_NO_THROW(actual = run_case(c, host, kCudaDevice)) << what;
  ASSERT_EQ(actual.outputs.size(), expected.outputs.size()) << what;
  for (size_t i = 0; i < expected.outputs.size(); ++i) {
    const Tensor& e = expected.outputs[i];
    EXPECT_EQ(actual.outputs[i].dtype(), e.dtype()) << what << ", output " << i;
    EXPECT_TRUE(test::values_close(actual.outputs[i], e.shape(), e.to_vector<double>(),
                                   c.tol.rtol, c.tol.atol))
        << what << ", output " << i;
  }
  ASSERT_EQ(actual.grads.size(), expected.grads.size()) << what;
  for (size_t i = 0; i < expected.grads.size(); ++i) {
    const Tensor& e = expected.grads[i];
    const std::string which = what + ", gradient of input " + std::to_string(c.grad_inputs[i]);
    ASSERT_EQ(actual.grads[i].defined(), e.defined()) << which;
    if (!e.defined()) continue;
    EXPECT_TRUE(test::values_close(actual.grads[i], e.shape(), e.to_vector<double>(),
                                   c.grad_tol.rtol, c.grad_tol.atol))
        << which;
  }
}

// Needs no GPU: the CPU half of every case runs and yields the gradients it claims to compare,
// so a failure on a GPU machine is about CUDA, not about the table.
TEST_P(CudaNnParity, CpuSideRuns) {
  const NnCase& c = GetParam();
  const Inputs host = c.inputs();
  RunResult result;
  ASSERT_NO_THROW(result = run_case(c, host, kCpuDevice)) << c.name;
  ASSERT_FALSE(result.outputs.empty()) << c.name;
  for (const Tensor& out : result.outputs) EXPECT_TRUE(out.defined()) << c.name;
  for (size_t i = 0; i < result.grads.size(); ++i) {
    EXPECT_TRUE(result.grads[i].defined()) << c.name << ": no gradient for input "
                                           << c.grad_inputs[i];
  }
}

INSTANTIATE_TEST_SUITE_P(NnKernels, CudaNnParity, ::testing::ValuesIn(nn_cases()),
                         [](const ::testing::TestParamInfo<NnCase>& param_info) {
                           return param_info.param.name;
                         });

// ---- deterministic mode, TF32, memory ----------------------------------------------------------

struct ConvGrads {
  std::vector<float> out, grad_x, grad_w;
};

// A convolution large enough that cuDNN's heuristics offer non-deterministic backward
// algorithms (atomics over N*P*Q for the filter gradient), run forward and backward on CUDA.
ConvGrads conv_forward_backward_cuda(const Tensor& x_host, const Tensor& w_host,
                                     const Tensor& upstream_host) {
  Tensor x = x_host.cuda();
  Tensor w = w_host.cuda();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  const Tensor out = F::conv2d(x, w, Tensor(), 1, 1);
  sum(mul(out, upstream_host.cuda())).backward();
  return {out.cpu().to_vector<float>(), x.grad().cpu().to_vector<float>(),
          w.grad().cpu().to_vector<float>()};
}

TEST(CudaNnDeterministic, ConvBackwardIsBitwiseRepeatable) {
  SKIP_WITHOUT_CUDA();
  DeterministicGuard guard(true);
  const Tensor x = host_random({16, 32, 28, 28}, kFloat32, 1);
  const Tensor w = host_random({64, 32, 3, 3}, kFloat32, 2);
  const Tensor upstream = host_random({16, 64, 28, 28}, kFloat32, 3);
  const ConvGrads first = conv_forward_backward_cuda(x, w, upstream);
  const ConvGrads second = conv_forward_backward_cuda(x, w, upstream);
  // Bitwise: vectors of floats compare element by element with ==.
  EXPECT_TRUE(first.out == second.out) << "forward differs run to run";
  EXPECT_TRUE(first.grad_x == second.grad_x) << "grad_x differs run to run";
  EXPECT_TRUE(first.grad_w == second.grad_w) << "grad_w differs run to run";
  // And deterministic algorithms are still right: the filter gradient against the CPU's.
  Tensor xc = x.clone(), wc = w.clone();
  xc.set_requires_grad(true);
  wc.set_requires_grad(true);
  sum(mul(F::conv2d(xc, wc, Tensor(), 1, 1), upstream)).backward();
  // 16 * 28 * 28 = 12544 terms per filter-gradient element: 12544 * 6e-8 = 7.5e-4 bound.
  test::expect_close(from_vector<float>(first.grad_w, w.shape()), wc.grad(), 1e-3, 1e-3);
  test::expect_close(from_vector<float>(first.grad_x, x.shape()), xc.grad(), 2e-4, 1e-4);
}

TEST(CudaNnDeterministic, MaxPoolBackwardIsBitwiseRepeatable) {
  SKIP_WITHOUT_CUDA();
  DeterministicGuard guard(true);
  // Overlapping windows (kernel 3, stride 1): several windows route into one input element.
  const Tensor x = host_random({8, 16, 33, 35}, kFloat32, 4);
  const Tensor upstream = host_random({8, 16, 33, 35}, kFloat32, 5);
  auto grad_of_x = [&] {
    Tensor xd = x.cuda();
    xd.set_requires_grad(true);
    sum(mul(F::max_pool2d(xd, 3, F::Size2(1), 1), upstream.cuda())).backward();
    return xd.grad().cpu().to_vector<float>();
  };
  const std::vector<float> first = grad_of_x();
  EXPECT_TRUE(first == grad_of_x()) << "max-pool grad_x differs run to run";
}

TEST(CudaNnConv, Tf32OnlyWhenAllowed) {
  SKIP_WITHOUT_CUDA();
  Tf32Guard guard;
  const Tensor x = host_random({8, 64, 20, 20}, kFloat32, 6);
  const Tensor w = host_random({64, 64, 3, 3}, kFloat32, 7);
  const Tensor expected = F::conv2d(x, w, Tensor(), 1, 1);
  ASSERT_FALSE(allow_tf32());
  // 576 products per output: summation order only.
  test::expect_close(F::conv2d(x.cuda(), w.cuda(), Tensor(), 1, 1).cpu(), expected, 2e-4, 2e-4);
  set_allow_tf32(true);
  // TF32 keeps 10 mantissa bits: each product errs by ~1e-3 relative, 576 of them add up.
  test::expect_close(F::conv2d(x.cuda(), w.cuda(), Tensor(), 1, 1).cpu(), expected, 2e-2, 1e-1);
  set_allow_tf32(false);
  // The algorithm cache is keyed by the TF32 flag: full precision again.
  test::expect_close(F::conv2d(x.cuda(), w.cuda(), Tensor(), 1, 1).cpu(), expected, 2e-4, 2e-4);
}

TEST(CudaNnConv, WorkspacesComeFromTheCache) {
  SKIP_WITHOUT_CUDA();
  const Tensor x = host_random({8, 32, 24, 24}, kFloat32, 8).cuda();
  const Tensor w = host_random({48, 32, 3, 3}, kFloat32, 9).cuda();
  auto step = [&] {
    Tensor xs = x.detach(), ws = w.detach();
    xs.set_requires_grad(true);
    ws.set_requires_grad(true);
    Tensor y = F::max_pool2d(F::relu(F::conv2d(xs, ws, Tensor(), 1, 1)), 2);
    sum(F::log_softmax(y.flatten(1), 1)).backward();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: algorithm choice and the cache fill
  backend_for(kCudaDevice).synchronize();
  const detail::CudaMemoryStats warm = detail::cuda_memory_stats(0);
  for (int i = 0; i < 10; ++i) step();
  backend_for(kCudaDevice).synchronize();
  const detail::CudaMemoryStats after = detail::cuda_memory_stats(0);
  EXPECT_EQ(after.malloc_calls, warm.malloc_calls) << "cudaMalloc called in the steady state";
  EXPECT_EQ(after.allocated_bytes, warm.allocated_bytes) << "blocks leaked across steps";
}

}  // namespace
}  // namespace strata
