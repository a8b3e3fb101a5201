// The CUDA backend against the CPU backend (STYLE rule 9): one table of cases — dtypes, odd
// sizes (1, 7, 1000, 65537), broadcasting, non-contiguous views — each run through the public
// ops on the CPU and on CUDA and compared with `atol + rtol * |cpu|` tied to the dtype. Every
// kernel of backend.h is reached: copy (dtype conversions, strided), fill, arange, unary,
// binary, binary_scalar, where, reduce, matmul, index_select, index_add and scatter_add
// (through backward), gather, and the random fills. Then the caching allocator, TF32, and
// what asking for CUDA does on a machine without it (the one test here that needs no GPU).
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

using test::cuda_unavailable_reason;
using test::kCpuDevice;
using test::kCudaDevice;

// ---- the table -----------------------------------------------------------------------------

using Inputs = std::vector<Tensor>;
// Runs the op on inputs living on `device` (views and creation happen inside, on that device).
using OpFn = std::function<Tensor(const Inputs&, Device)>;

struct ParityCase {
  std::string name;
  std::function<Inputs()> inputs;  // host tensors; moved to CUDA for the CUDA run
  OpFn op;
  test::Tolerance tol;
};

void PrintTo(const ParityCase& c, std::ostream* out) { *out << c.name; }

std::string dtype_tag(DType dtype) { return dtype_name(dtype); }

std::string shape_tag(const Shape& shape) {
  std::string tag;
  for (int64_t s : shape) {
    if (!tag.empty()) tag += 'x';
    tag += std::to_string(s);
  }
  return tag.empty() ? "scalar" : tag;
}

Tensor host_index(const std::vector<int64_t>& values, const Shape& shape = {}) {
  return from_vector<int64_t>(values, shape.empty() ? Shape{static_cast<int64_t>(values.size())}
                                                    : shape);
}

// Tolerances. Elementwise and reductions: the dtype defaults of test_util.h (CUDA's expf,
// logf and powf are within 2 ulps of glibc's; both backends sum floats in double).
test::Tolerance elementwise_tol(DType dtype) { return test::default_tolerance(dtype); }
// Matrix products: cuBLAS and OpenBLAS add the K products in different orders; with
// |a|, |b| < 1 and K <= 1000 each is within K * eps(f32) = 6e-5 of the exact value.
test::Tolerance matmul_tol(DType dtype) {
  if (dtype == kFloat32) return {1e-4, 2e-4};
  if (dtype == kFloat64) return {1e-10, 1e-10};
  return {0.0, 0.0};
}
// Atomic adds of repeated indices happen in any order.
test::Tolerance atomic_tol(DType dtype) {
  if (dtype == kFloat32) return {1e-5, 1e-5};
  return test::default_tolerance(dtype);
}

std::vector<ParityCase> parity_cases() {
  std::vector<ParityCase> cases;
  std::set<std::string> names;
  uint32_t seed = 1;
  auto add_case = [&](std::string name, std::function<Inputs()> inputs, OpFn op,
                      test::Tolerance tol) {
    cases.push_back({test::unique_case_name(std::move(name), names), std::move(inputs),
                     std::move(op), tol});
  };
  // Inputs of random tensors with these shapes and dtypes.
  auto randoms = [&](std::vector<Shape> shapes, DType dtype, double lo = -2.0, double hi = 2.0) {
    return test::random_inputs(std::move(shapes), dtype, seed, lo, hi);
  };

  const std::vector<DType> floats = {kFloat32, kFloat64};
  const std::vector<DType> numeric = {kFloat32, kFloat64, kInt64, kUInt8};
  const std::vector<DType> all = {kFloat32, kFloat64, kInt64, kUInt8, kBool};

  // ---- creation: fill, arange --------------------------------------------------------------
  for (DType dt : all) {
    for (double value : {0.0, 1.0, -1.5, 3.7}) {
      add_case("full_" + dtype_tag(dt) + "_" + std::to_string(static_cast<int>(value * 10)),
               [] { return Inputs{}; },
               [=](const Inputs&, Device d) { return full({7, 1000}, value, TensorOptions(dt).device(d)); },
               elementwise_tol(dt));
    }
  }
  for (DType dt : numeric) {
    add_case("arange_" + dtype_tag(dt), [] { return Inputs{}; },
             [=](const Inputs&, Device d) { return arange(0, 65537, 1, TensorOptions(dt).device(d)); },
             elementwise_tol(dt));
  }
  for (DType dt : floats) {
    add_case("arange_fraction_" + dtype_tag(dt), [] { return Inputs{}; },
             [=](const Inputs&, Device d) { return arange(5, -5, -0.3, TensorOptions(dt).device(d)); },
             elementwise_tol(dt));
  }

  // ---- copy: every dtype pair, and strided sources ------------------------------------------
  for (DType from : all) {
    for (DType to : all) {
      add_case("convert_" + dtype_tag(from) + "_to_" + dtype_tag(to), randoms({{1000}}, from, -3, 3),
               [=](const Inputs& in, Device) { return in[0].to(to); }, elementwise_tol(to));
    }
  }
  for (DType dt : all) {
    add_case("contiguous_of_transpose_" + dtype_tag(dt), randoms({{7, 1000}}, dt),
             [](const Inputs& in, Device) { return in[0].transpose(0, 1).contiguous(); },
             elementwise_tol(dt));
  }
  add_case("convert_strided_slice", randoms({{9, 1000}}, kFloat32),
           [](const Inputs& in, Device) { return in[0].slice(0, 1, 9, 3).slice(1, 2, 1000, 7).to(kFloat64); },
           elementwise_tol(kFloat32));
  add_case("contiguous_of_expand", randoms({{1, 7, 1}}, kFloat64),
           [](const Inputs& in, Device) { return in[0].expand({5, 7, 11}).contiguous(); },
           elementwise_tol(kFloat64));

  // ---- unary ---------------------------------------------------------------------------------
  for (DType dt : floats) {
    for (const Shape& shape : std::vector<Shape>{{1}, {7}, {1000}, {65537}}) {
      const std::string tag = dtype_tag(dt) + "_" + shape_tag(shape);
      add_case("neg_" + tag, randoms({shape}, dt), [](const Inputs& in, Device) { return neg(in[0]); }, elementwise_tol(dt));
      add_case("abs_" + tag, randoms({shape}, dt), [](const Inputs& in, Device) { return abs(in[0]); }, elementwise_tol(dt));
      add_case("sign_" + tag, randoms({shape}, dt), [](const Inputs& in, Device) { return sign(in[0]); }, elementwise_tol(dt));
      add_case("exp_" + tag, randoms({shape}, dt), [](const Inputs& in, Device) { return exp(in[0]); }, elementwise_tol(dt));
      add_case("log_" + tag, randoms({shape}, dt, 0.01, 10.0), [](const Inputs& in, Device) { return log(in[0]); }, elementwise_tol(dt));
      add_case("sqrt_" + tag, randoms({shape}, dt, 0.0, 10.0), [](const Inputs& in, Device) { return sqrt(in[0]); }, elementwise_tol(dt));
      add_case("reciprocal_" + tag, randoms({shape}, dt, 0.1, 4.0), [](const Inputs& in, Device) { return reciprocal(in[0]); }, elementwise_tol(dt));
    }
    add_case("exp_of_transpose_" + dtype_tag(dt), randoms({{33, 65}}, dt),
             [](const Inputs& in, Device) { return exp(in[0].t()); }, elementwise_tol(dt));
    add_case("clamp_" + dtype_tag(dt), randoms({{1000}}, dt),
             [](const Inputs& in, Device) { return clamp(in[0], -0.5, 0.75); }, elementwise_tol(dt));
  }
  for (DType dt : {kInt64, kUInt8}) {
    add_case("neg_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9), [](const Inputs& in, Device) { return neg(in[0]); }, elementwise_tol(dt));
    add_case("abs_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9), [](const Inputs& in, Device) { return abs(in[0]); }, elementwise_tol(dt));
    add_case("sign_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9), [](const Inputs& in, Device) { return sign(in[0]); }, elementwise_tol(dt));
  }

  // ---- binary, with broadcasting and views --------------------------------------------------
  using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
  const std::vector<std::pair<std::string, BinaryFn>> arithmetic = {
      {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
      {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
      {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
      {"maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); }},
      {"minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); }},
  };
  const std::vector<std::pair<std::string, BinaryFn>> comparisons = {
      {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
      {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
      {"lt", [](const Tensor& a, const Tensor& b) { return lt(a, b); }},
      {"le", [](const Tensor& a, const Tensor& b) { return le(a, b); }},
      {"gt", [](const Tensor& a, const Tensor& b) { return gt(a, b); }},
      {"ge", [](const Tensor& a, const Tensor& b) { return ge(a, b); }},
  };
  const std::vector<std::pair<Shape, Shape>> broadcasts = {
      {{1}, {1}}, {{7}, {7}}, {{65537}, {65537}}, {{1000}, {1}}, {{3, 1, 5}, {4, 1}},
      {{7, 1000}, {1000}}, {{7, 1}, {1, 1000}}};
  const std::vector<std::pair<Shape, Shape>> few_broadcasts = {
      {{7}, {7}}, {{65537}, {65537}}, {{7, 1}, {1, 1000}}};
  auto add_binary_cases = [&](const std::vector<std::pair<std::string, BinaryFn>>& ops,
                              const std::vector<std::pair<Shape, Shape>>& shapes) {
    for (const auto& [name, binary_fn] : ops) {
      const BinaryFn fn = binary_fn;
      for (DType dt : numeric) {
        for (const auto& [sa, sb] : shapes) {
          add_case(name + "_" + dtype_tag(dt) + "_" + shape_tag(sa) + "_" + shape_tag(sb),
                   randoms({sa, sb}, dt, -3, 3),
                   [fn](const Inputs& in, Device) { return fn(in[0], in[1]); }, elementwise_tol(dt));
        }
      }
    }
  };
  add_binary_cases(arithmetic, broadcasts);
  add_binary_cases(comparisons, few_broadcasts);
  for (DType dt : floats) {
    add_case("div_" + dtype_tag(dt), randoms({{7, 1000}, {1000}}, dt, 0.5, 3),
             [](const Inputs& in, Device) { return div(in[0], in[1]); }, elementwise_tol(dt));
    add_case("pow_" + dtype_tag(dt), randoms({{7, 1000}, {7, 1}}, dt, 0.1, 3),
             [](const Inputs& in, Device) { return pow(in[0], in[1]); }, elementwise_tol(dt));
    add_case("add_transposed_" + dtype_tag(dt), randoms({{65, 33}, {33, 65}}, dt),
             [](const Inputs& in, Device) { return add(in[0].t(), in[1]); }, elementwise_tol(dt));
    add_case("mul_strided_" + dtype_tag(dt), randoms({{20, 30}, {10, 10}}, dt),
             [](const Inputs& in, Device) { return mul(in[0].slice(0, 0, 20, 2).slice(1, 1, 30, 3), in[1]); },
             elementwise_tol(dt));
    add_case("add_permuted_4d_" + dtype_tag(dt), randoms({{2, 3, 4, 5}, {5, 1, 3, 1}}, dt),
             [](const Inputs& in, Device) { return add(in[0].permute({3, 0, 1, 2}), in[1].transpose(1, 2)); },
             elementwise_tol(dt));
    add_case("add_inplace_" + dtype_tag(dt), randoms({{7, 1000}, {1000}}, dt),
             [](const Inputs& in, Device) { Tensor x = in[0].clone(); x.add_(in[1], 0.5); return x; },
             elementwise_tol(dt));
  }
  add_case("div_int64_promotes", randoms({{1000}, {1000}}, kInt64, 1, 9),
           [](const Inputs& in, Device) { return div(in[0], in[1]); }, elementwise_tol(kFloat32));
  add_case("add_mixed_dtypes", [a = randoms({{7, 1000}}, kFloat32), b = randoms({{1000}}, kInt64)] {
             return Inputs{a()[0], b()[0]}; },
           [](const Inputs& in, Device) { return add(in[0], in[1]); }, elementwise_tol(kFloat32));
  for (DType dt : {kBool}) {
    add_case("eq_bool", randoms({{1000}, {1000}}, dt), [](const Inputs& in, Device) { return eq(in[0], in[1]); },
             elementwise_tol(dt));
  }

  // ---- binary with a scalar ---------------------------------------------------------------
  for (DType dt : numeric) {
    const std::string tag = dtype_tag(dt);
    add_case("add_scalar_" + tag, randoms({{65537}}, dt, 0, 5), [](const Inputs& in, Device) { return add(in[0], 2.0); }, elementwise_tol(dt));
    add_case("rsub_scalar_" + tag, randoms({{1000}}, dt, 0, 5), [](const Inputs& in, Device) { return rsub(in[0], 7.0); }, elementwise_tol(dt));
    add_case("mul_scalar_" + tag, randoms({{7}}, dt, 0, 5), [](const Inputs& in, Device) { return mul(in[0], 3.0); }, elementwise_tol(dt));
    add_case("gt_scalar_" + tag, randoms({{1000}}, dt, 0, 5), [](const Inputs& in, Device) { return gt(in[0], 2.0); }, elementwise_tol(kBool));
    add_case("eq_scalar_" + tag, randoms({{1000}}, dt, 0, 5), [](const Inputs& in, Device) { return eq(in[0], 2.0); }, elementwise_tol(kBool));
  }
  for (DType dt : floats) {
    const std::string tag = dtype_tag(dt);
    add_case("rdiv_scalar_" + tag, randoms({{1000}}, dt, 0.5, 3), [](const Inputs& in, Device) { return rdiv(in[0], 1.5); }, elementwise_tol(dt));
    add_case("pow2_scalar_" + tag, randoms({{1000}}, dt), [](const Inputs& in, Device) { return pow(in[0], 2.0); }, elementwise_tol(dt));
    add_case("pow_frac_scalar_" + tag, randoms({{1000}}, dt, 0.1, 3), [](const Inputs& in, Device) { return pow(in[0], 0.37); }, elementwise_tol(dt));
    add_case("sub_scalar_of_view_" + tag, randoms({{33, 65}}, dt), [](const Inputs& in, Device) { return sub(in[0].t(), 0.25); }, elementwise_tol(dt));
  }

  // ---- where ---------------------------------------------------------------------------------
  for (DType dt : all) {
    add_case("where_" + dtype_tag(dt),
             [c = randoms({{7, 1000}}, kBool), ab = randoms({{1000}, {7, 1}}, dt)] {
               Inputs in = c();
               for (const Tensor& t : ab()) in.push_back(t);
               return in;
             },
             [](const Inputs& in, Device) { return where(in[0], in[1], in[2]); }, elementwise_tol(dt));
  }

  // ---- reductions ----------------------------------------------------------------------------
  struct ReduceShape {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<ReduceShape> reduce_shapes = {
      {{1}, {0}},          {{7}, {}},            {{65537}, {}},       {{300, 1000}, {}},
      {{1000, 7}, {1}},    {{7, 1000}, {0}},     {{3, 65537}, {1}},   {{65537, 3}, {0}},
      {{4, 5, 6}, {0, 2}}, {{4, 1000, 6}, {1}},  {{2, 7, 1}, {1}}};
  for (DType dt : {kFloat32, kFloat64, kInt64}) {
    for (const auto& rs : reduce_shapes) {
      const std::string tag = dtype_tag(dt) + "_" + shape_tag(rs.shape) + "_dims" +
                              (rs.dims.empty() ? std::string("all") : std::to_string(rs.dims[0]));
      const double lo = dt == kInt64 ? -5 : -2, hi = dt == kInt64 ? 5 : 2;
      const std::vector<int64_t> dims = rs.dims;
      add_case("sum_" + tag, randoms({rs.shape}, dt, lo, hi), [dims](const Inputs& in, Device) { return sum(in[0], dims); }, elementwise_tol(dt));
      add_case("max_" + tag, randoms({rs.shape}, dt, lo, hi), [dims](const Inputs& in, Device) { return max(in[0], dims); }, elementwise_tol(dt));
      add_case("min_" + tag, randoms({rs.shape}, dt, lo, hi), [dims](const Inputs& in, Device) { return min(in[0], dims, true); }, elementwise_tol(dt));
      // Integers in [-5, 5) tie often: the first index must win on both.
      const std::optional<int64_t> dim = rs.dims.size() == 1 ? std::optional<int64_t>(rs.dims[0]) : std::nullopt;
      add_case("argmax_" + tag, randoms({rs.shape}, dt, lo, hi), [dim](const Inputs& in, Device) { return argmax(in[0], dim); }, elementwise_tol(kInt64));
      add_case("argmin_" + tag, randoms({rs.shape}, dt, lo, hi), [dim](const Inputs& in, Device) { return argmin(in[0], dim, true); }, elementwise_tol(kInt64));
      if (dt != kInt64) {
        add_case("mean_" + tag, randoms({rs.shape}, dt), [dims](const Inputs& in, Device) { return mean(in[0], dims); }, elementwise_tol(dt));
      }
    }
  }
  for (DType dt : {kUInt8, kBool}) {
    add_case("max_" + dtype_tag(dt), randoms({{7, 1000}}, dt, 0, 9), [](const Inputs& in, Device) { return max(in[0], {1}); }, elementwise_tol(dt));
    add_case("argmax_" + dtype_tag(dt), randoms({{7, 1000}}, dt, 0, 9), [](const Inputs& in, Device) { return argmax(in[0], 1); }, elementwise_tol(kInt64));
    add_case("argmin_" + dtype_tag(dt), randoms({{1000, 7}}, dt, 0, 9), [](const Inputs& in, Device) { return argmin(in[0], 0); }, elementwise_tol(kInt64));
  }
  add_case("sum_of_transpose", randoms({{33, 1000}}, kFloat32),
           [](const Inputs& in, Device) { return sum(in[0].t(), {1}); }, elementwise_tol(kFloat32));
  for (DType dt : floats) {
    // NaN propagates through max/min; argmax/argmin pick the first NaN.
    add_case("nan_reductions_" + dtype_tag(dt),
             [dt] {
               const double nan = std::numeric_limits<double>::quiet_NaN();
               return Inputs{from_vector<double>({1, nan, 3, nan, 3, -1, 2, 2, 0, -7, 5, -7}, {4, 3}).to(dt)};
             },
             [](const Inputs& in, Device) {
               return stack({max(in[0], {1}).to(kFloat64), min(in[0], {1}).to(kFloat64),
                             argmax(in[0], 1).to(kFloat64), argmin(in[0], 1).to(kFloat64)});
             },
             elementwise_tol(kFloat64));
  }

  // ---- matmul --------------------------------------------------------------------------------
  struct MatmulCase {
    std::string name;
    Shape a, b;
    std::function<Tensor(const Tensor&, const Tensor&)> fn;
  };
  const auto plain = [](const Tensor& a, const Tensor& b) { return matmul(a, b); };
  const std::vector<MatmulCase> matmuls = {
      {"1x1x1", {1, 1}, {1, 1}, plain},
      {"7x13x5", {7, 13}, {13, 5}, plain},
      {"64x1000x33", {64, 1000}, {1000, 33}, plain},
      {"a_transposed", {13, 7}, {13, 5}, [](const Tensor& a, const Tensor& b) { return matmul(a.t(), b); }},
      {"b_transposed", {7, 13}, {5, 13}, [](const Tensor& a, const Tensor& b) { return matmul(a, b.t()); }},
      {"both_transposed", {13, 7}, {5, 13}, [](const Tensor& a, const Tensor& b) { return matmul(a.t(), b.t()); }},
      {"a_strided", {7, 26}, {13, 5}, [](const Tensor& a, const Tensor& b) { return matmul(a.slice(1, 0, 26, 2), b); }},
      {"b_column_slice", {7, 13}, {13, 9}, [](const Tensor& a, const Tensor& b) { return matmul(a, b.slice(1, 2, 7)); }},
      {"batched_broadcast_b", {4, 7, 13}, {13, 5}, plain},
      {"batched_broadcast_a", {7, 13}, {3, 13, 5}, plain},
      {"batched_both", {2, 1, 7, 13}, {3, 13, 5}, plain},
      {"batched_transposed", {4, 13, 7}, {4, 5, 13},
       [](const Tensor& a, const Tensor& b) { return matmul(a.transpose(1, 2), b.transpose(1, 2)); }},
      {"dot", {1000}, {1000}, plain},
      {"matrix_vector", {7, 1000}, {1000}, plain},
      {"vector_matrix", {13}, {13, 65}, plain},
  };
  for (DType dt : floats) {
    for (const auto& mc : matmuls) {
      auto fn = mc.fn;
      add_case("matmul_" + mc.name + "_" + dtype_tag(dt), randoms({mc.a, mc.b}, dt, -1, 1),
               [fn](const Inputs& in, Device) { return fn(in[0], in[1]); }, matmul_tol(dt));
    }
  }

  // ---- indexing ------------------------------------------------------------------------------
  for (DType dt : all) {
    add_case("index_select_dim0_" + dtype_tag(dt),
             [x = randoms({{5, 7, 3}}, dt)] { return Inputs{x()[0], host_index({4, 0, 4, 2})}; },
             [](const Inputs& in, Device) { return index_select(in[0], 0, in[1]); }, elementwise_tol(dt));
    add_case("index_select_dim1_" + dtype_tag(dt),
             [x = randoms({{5, 7, 3}}, dt)] { return Inputs{x()[0], host_index({6, 6, 1})}; },
             [](const Inputs& in, Device) { return index_select(in[0], 1, in[1]); }, elementwise_tol(dt));
    add_case("gather_dim1_" + dtype_tag(dt),
             [x = randoms({{5, 7}}, dt)] {
               return Inputs{x()[0], host_index({0, 6, 6, 1, 2, 2, 3, 0, 5, 4, 4, 4, 1, 0, 2, 6, 6, 6, 0, 1}, {5, 4})};
             },
             [](const Inputs& in, Device) { return gather(in[0], 1, in[1]); }, elementwise_tol(dt));
  }
  add_case("gather_dim0_smaller_index", [x = randoms({{6, 7}}, kFloat32)] {
             return Inputs{x()[0], host_index({5, 0, 3, 3, 1, 2, 5, 4}, {2, 4})}; },
           [](const Inputs& in, Device) { return gather(in[0], 0, in[1]); }, elementwise_tol(kFloat32));
  add_case("index_select_large", [x = randoms({{1000, 65}}, kFloat32)] {
             std::vector<int64_t> idx;
             for (int64_t i = 0; i < 1000; ++i) idx.push_back((i * 7919) % 1000);
             return Inputs{x()[0], host_index(idx)}; },
           [](const Inputs& in, Device) { return index_select(in[0], 0, in[1]); }, elementwise_tol(kFloat32));
  for (DType dt : floats) {
    // Backward of index_select is index_add; backward of gather is scatter_add (repeated
    // indices accumulate).
    add_case("index_add_via_backward_" + dtype_tag(dt),
             [xw = randoms({{5, 7, 3}, {5, 6, 3}}, dt)] {
               Inputs in = xw();
               in.push_back(host_index({6, 0, 6, 2, 6, 1}));
               return in;
             },
             [](const Inputs& in, Device) {
               Tensor x = in[0].detach();
               x.set_requires_grad(true);
               sum(mul(index_select(x, 1, in[2]), in[1])).backward();
               return x.grad();
             },
             atomic_tol(dt));
    add_case("scatter_add_via_backward_" + dtype_tag(dt),
             [xw = randoms({{5, 7}, {5, 4}}, dt)] {
               Inputs in = xw();
               in.push_back(host_index({0, 6, 6, 1, 2, 2, 3, 0, 5, 4, 4, 4, 1, 0, 2, 6, 6, 6, 0, 1}, {5, 4}));
               return in;
             },
             [](const Inputs& in, Device) {
               Tensor x = in[0].detach();
               x.set_requires_grad(true);
               sum(mul(gather(x, 1, in[2]), in[1])).backward();
               return x.grad();
             },
             atomic_tol(dt));
  }
  add_case("one_hot", [] { return Inputs{host_index({3, 0, 9, 9, 2, 5, 1})}; },
           [](const Inputs& in, Device) { return one_hot(in[0], 10); }, elementwise_tol(kInt64));
  add_case("cat_and_stack", randoms({{7, 3}, {7, 5}}, kFloat32),
           [](const Inputs& in, Device) { return stack({cat({in[0], in[1]}, 1), cat({in[1], in[0]}, 1)}); },
           elementwise_tol(kFloat32));

  // ---- random: the same seed draws the same numbers on both backends --------------------------
  for (DType dt : floats) {
    for (int64_t n : {1, 7, 1000, 65537}) {
      const std::string tag = dtype_tag(dt) + "_" + std::to_string(n);
      add_case("rand_" + tag, [] { return Inputs{}; },
               [=](const Inputs&, Device d) {
                 Generator gen(1234);
                 Tensor first = rand({n}, TensorOptions(dt).device(d), &gen);
                 Tensor second = rand({n}, TensorOptions(dt).device(d), &gen);  // offset moved on
                 return cat({first, second});
               },
               test::Tolerance{0.0, 0.0});
      // Box-Muller in double: CUDA's log and cos may differ from glibc's in the last bit.
      add_case("randn_" + tag, [] { return Inputs{}; },
               [=](const Inputs&, Device d) {
                 Generator gen(99);
                 return randn({n}, TensorOptions(dt).device(d), &gen);
               },
               dt == kFloat32 ? test::Tolerance{1e-6, 1e-6} : test::Tolerance{1e-13, 1e-13});
    }
  }
  for (DType dt : numeric) {
    add_case("randint_" + dtype_tag(dt), [] { return Inputs{}; },
             [=](const Inputs&, Device d) {
               Generator gen(7);
               gen.set_offset(12345);
               const int64_t low = dt == kUInt8 ? 0 : -3;
               return randint(low, 200, {65537}, TensorOptions(dt).device(d), &gen);
             },
             test::Tolerance{0.0, 0.0});
  }
  // ---- rearranging and einsum (composed of the primitives above) ---------------------------
  for (DType dt : all) {
    add_case(
        "flip_" + dtype_tag(dt), randoms({{4, 5, 6}}, dt),
        [](const Inputs& in, Device) {
          return flip(in[0], {0, 2});
        },
        elementwise_tol(dt));
    add_case(
        "roll_" + dtype_tag(dt), randoms({{4, 5, 6}}, dt),
        [](const Inputs& in, Device) {
          return roll(in[0], {2, -7}, {1, 2});
        },
        elementwise_tol(dt));
    add_case(
        "repeat_" + dtype_tag(dt), randoms({{3, 4}}, dt),
        [](const Inputs& in, Device) {
          return repeat(in[0], {2, 3, 1});
        },
        elementwise_tol(dt));
    add_case(
        "tril_" + dtype_tag(dt), randoms({{2, 5, 7}}, dt),
        [](const Inputs& in, Device) { return tril(in[0], 1); }, elementwise_tol(dt));
    add_case(
        "triu_" + dtype_tag(dt), randoms({{2, 5, 7}}, dt),
        [](const Inputs& in, Device) { return triu(in[0], -1); }, elementwise_tol(dt));
  }
  for (DType dt : floats) {
    add_case(
        "masked_fill_" + dtype_tag(dt), randoms({{6, 5}, {6, 1}}, dt),
        [](const Inputs& in, Device) { return masked_fill(in[0], gt(in[1], 0.0), -3.0); },
        elementwise_tol(dt));
    add_case(
        "scatter_add_" + dtype_tag(dt),
        [x = randoms({{4, 6}, {3, 6}}, dt)] {
          Inputs in = x();
          in.push_back(host_index({3, 0, 0, 1, 2, 3, 0, 0, 0, 3, 3, 1, 2, 2, 1, 0, 3, 0}, {3, 6}));
          return in;
        },
        [](const Inputs& in, Device) { return scatter_add(in[0], 0, in[2], in[1]); },
        atomic_tol(dt));
    add_case(
        "einsum_bilinear_" + dtype_tag(dt), randoms({{3, 4}, {2, 4, 5}, {3, 5}}, dt),
        [](const Inputs& in, Device) { return einsum("bn,anm,bm->ba", in); }, matmul_tol(dt));
    add_case(
        "einsum_diagonal_" + dtype_tag(dt), randoms({{3, 6, 6}}, dt),
        [](const Inputs& in, Device) { return einsum("bii->bi", in); }, elementwise_tol(dt));
  }

  // ---- sorting and selection ---------------------------------------------------------------
  // Every dtype the sort takes; rows of 1 and of 5000 (more than a block), along the last axis
  // and along others (inner > 1), both directions. Values and indices compare exactly: the sort
  // moves bits, and it is stable, so ties (integers in [-5, 5) converted to each dtype) must
  // give the CPU's indices.
  const std::vector<DType> sortable = {kFloat32, kFloat64, kFloat16, kBFloat16,
                                       kInt64,   kUInt8,   kBool};
  const std::vector<std::pair<Shape, int64_t>> sort_shapes = {
      {{5000}, 0}, {{3, 5000}, 1}, {{5000, 1}, 1}, {{5000, 3}, 0}, {{4, 7, 6}, 1}, {{1}, 0}};
  const auto values_and_indices = [](const ValuesAndIndices& result) {
    return stack({result.values.to(kFloat64), result.indices.to(kFloat64)});
  };
  for (DType dt : sortable) {
    for (const auto& [shape, sort_dim] : sort_shapes) {
      for (bool descending : {false, true}) {
        const std::string tag = dtype_tag(dt) + "_" + shape_tag(shape) + "_dim" +
                                std::to_string(sort_dim) + (descending ? "_desc" : "");
        add_case(
            "sort_" + tag, randoms({shape}, dt, -5, 5),
            [=, dim = sort_dim](const Inputs& in, Device) {
              return values_and_indices(sort(in[0], dim, descending));
            },
            test::Tolerance{0.0, 0.0});
        add_case(
            "sort_ties_" + tag, randoms({shape}, kInt64, -5, 5),
            [=, dim = sort_dim](const Inputs& in, Device) {
              return values_and_indices(sort(in[0].to(dt), dim, descending));
            },
            test::Tolerance{0.0, 0.0});
      }
    }
  }
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    add_case(
        "sort_nan_signed_zero_" + dtype_tag(dt),
        [dt] {
          const double nan = std::numeric_limits<double>::quiet_NaN();
          const double inf = std::numeric_limits<double>::infinity();
          return Inputs{from_vector<double>({1.5, nan, -0.0, inf, 0.0, -inf, nan, -2.0, 0.0, -0.0,
                                             3.0, 3.0, nan, 1.0, -1.0, 0.0},
                                            {2, 8})
                            .to(dt)};
        },
        [values_and_indices](const Inputs& in, Device) {
          return cat({values_and_indices(sort(in[0])), values_and_indices(sort(in[0], 1, true)),
                      values_and_indices(sort(in[0], 0))},
                     1);
        },
        test::Tolerance{0.0, 0.0});
  }
  for (DType dt : {kFloat32, kFloat64, kInt64}) {
    add_case(
        "topk_" + dtype_tag(dt), randoms({{7, 1000}}, dt, -5, 5),
        [values_and_indices](const Inputs& in, Device) {
          return cat({values_and_indices(topk(in[0], 5)).reshape({2, -1}),
                      values_and_indices(topk(in[0], 3, 0, false)).reshape({2, -1})},
                     1);
        },
        test::Tolerance{0.0, 0.0});
    add_case(
        "kthvalue_" + dtype_tag(dt), randoms({{6, 5000}}, dt, -5, 5),
        [values_and_indices](const Inputs& in, Device) {
          return values_and_indices(kthvalue(in[0], 2500, 1, true));
        },
        test::Tolerance{0.0, 0.0});
    add_case(
        "argsort_" + dtype_tag(dt), randoms({{5, 9, 4}}, dt, -5, 5),
        [](const Inputs& in, Device) { return argsort(in[0], 1, true); },
        test::Tolerance{0.0, 0.0});
  }
  for (DType dt : floats) {
    // The gradient lands where each value came from (scatter_add onto zeros).
    add_case(
        "sort_backward_" + dtype_tag(dt), randoms({{6, 500}, {6, 500}}, dt),
        [](const Inputs& in, Device) {
          Tensor x = in[0].detach();
          x.set_requires_grad(true);
          sum(mul(topk(x, 100, 1).values, in[1].narrow(1, 0, 100))).backward();
          return x.grad();
        },
        test::Tolerance{0.0, 0.0});
  }
  // ---- running sums and products -----------------------------------------------------------
  // Contiguous rows below, at and above the block scan's 256 (its chunks and the carry between
  // them), rows of 1 and 5000, and columns (inner > 1). Both backends keep the running value
  // in float64 for f32 (float32 for the halves) and differ only in the order of the adds.
  // NOTE: the halves' running float32 values may round to neighbouring f16 / bf16 values.
  const auto scan_tol = [&](DType dt) {
    if (dt == kFloat16) return test::Tolerance{2e-3, 2e-3};
    if (dt == kBFloat16) return test::Tolerance{1.6e-2, 1.6e-2};
    return elementwise_tol(dt);
  };
  const std::vector<std::pair<Shape, int64_t>> scan_shapes = {
      {{1}, 0},       {{255}, 0},     {{256}, 0},     {{257}, 0},     {{5000}, 0},
      {{3, 5000}, 1}, {{5000, 3}, 0}, {{5000, 1}, 1}, {{7, 1000}, 0}, {{4, 300, 5}, 1}};
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kUInt8, kBool}) {
    for (const auto& [shape, scan_dim] : scan_shapes) {
      const std::string tag =
          dtype_tag(dt) + "_" + shape_tag(shape) + "_dim" + std::to_string(scan_dim);
      // cumsum of integers in [-5, 5); cumprod of factors near 1 (no overflow over 5000), or
      // of integers in [0, 3) (int64 wraps alike on both).
      const bool integral = dt == kInt64 || dt == kUInt8 || dt == kBool;
      add_case(
          "cumsum_" + tag, randoms({shape}, dt, integral ? -5 : -2, integral ? 5 : 2),
          [dim = scan_dim](const Inputs& in, Device) { return cumsum(in[0], dim); },
          integral ? elementwise_tol(kInt64) : scan_tol(dt));
      add_case(
          "cumprod_" + tag, randoms({shape}, dt, integral ? 0 : 0.9, integral ? 3 : 1.1),
          [dim = scan_dim](const Inputs& in, Device) { return cumprod(in[0], dim); },
          integral ? elementwise_tol(kInt64) : scan_tol(dt));
    }
  }
  for (DType dt : floats) {
    // Backward: reversed cumsums (flip + scan), and cumprod's zero handling.
    add_case(
        "cumprod_backward_with_zeros_" + dtype_tag(dt), randoms({{6, 300}, {6, 300}}, dt),
        [](const Inputs& in, Device) {
          Tensor x = in[0].detach().clone();
          x.narrow(1, 7, 1).zero_();
          x.narrow(1, 200, 3).zero_();
          x.set_requires_grad(true);
          sum(mul(cumprod(mul(x, 0.5), 1), in[1])).backward();
          return x.grad();
        },
        elementwise_tol(dt));
    add_case(
        "cumsum_backward_" + dtype_tag(dt), randoms({{5, 7, 300}, {5, 7, 300}}, dt),
        [](const Inputs& in, Device) {
          Tensor x = in[0].detach();
          x.set_requires_grad(true);
          sum(mul(cumsum(x, 1), in[1])).backward();
          return x.grad();
        },
        elementwise_tol(dt));
  }
  // ---- floor division and remainder ----------------------------------------------------------
  // Divisors without zeros (a zero becomes 1): integer division by zero is refused on the host.
  const auto nonzero_divisor = [](const Tensor& b) { return where(eq(b, 0.0), ones_like(b), b); };
  for (DType dt : {kFloat32, kFloat64, kInt64, kUInt8}) {
    for (const auto& [sa, sb] : std::vector<std::pair<Shape, Shape>>{
             {{7}, {7}}, {{65537}, {65537}}, {{7, 1000}, {1000}}, {{3, 1, 5}, {4, 1}}}) {
      const std::string tag = dtype_tag(dt) + "_" + shape_tag(sa) + "_" + shape_tag(sb);
      add_case(
          "floor_divide_" + tag, randoms({sa, sb}, dt, -9, 9),
          [=](const Inputs& in, Device) { return floor_divide(in[0], nonzero_divisor(in[1])); },
          elementwise_tol(dt));
      add_case(
          "remainder_" + tag, randoms({sa, sb}, dt, -9, 9),
          [=](const Inputs& in, Device) { return remainder(in[0], nonzero_divisor(in[1])); },
          elementwise_tol(dt));
    }
    add_case(
        "floor_divide_scalar_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9),
        [](const Inputs& in, Device) { return floor_divide(in[0], 3.0); }, elementwise_tol(dt));
    add_case(
        "remainder_scalar_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9),
        [](const Inputs& in, Device) { return remainder(in[0], 4.0); }, elementwise_tol(dt));
  }
  for (DType dt : {kFloat32, kFloat64}) {
    add_case(
        "remainder_negative_scalar_" + dtype_tag(dt), randoms({{1000}}, dt, -9, 9),
        [](const Inputs& in, Device) { return remainder(in[0], -2.5); }, elementwise_tol(dt));
    add_case(
        "division_special_values_" + dtype_tag(dt),
        [dt] {
          const double nan = std::numeric_limits<double>::quiet_NaN();
          const double inf = std::numeric_limits<double>::infinity();
          return Inputs{
              from_vector<double>({5, -5, 5, -5, 0, -0.0, 7.5, inf, -inf, nan, 1, -1, 3}).to(dt),
              from_vector<double>({3, 3, -3, -3, 2, 2, 0, 2, 2, 2, inf, inf, -inf}).to(dt)};
        },
        [](const Inputs& in, Device) {
          return stack({floor_divide(in[0], in[1]), remainder(in[0], in[1])});
        },
        elementwise_tol(dt));
    add_case(
        "remainder_backward_" + dtype_tag(dt), randoms({{7, 100}, {100}}, dt, 0.5, 3),
        [](const Inputs& in, Device) {
          Tensor a = mul(in[0], 7.0).detach();
          Tensor b = in[1].detach();
          a.set_requires_grad(true);
          b.set_requires_grad(true);
          sum(remainder(a, b)).backward();
          return cat({a.grad().reshape({-1}), b.grad()});
        },
        elementwise_tol(dt));
  }
  for (DType dt : {kFloat16, kBFloat16}) {
    add_case(
        "floor_divide_" + dtype_tag(dt), randoms({{7, 1000}, {1000}}, dt, 0.5, 9),
        [](const Inputs& in, Device) {
          return stack({floor_divide(in[0], in[1]), remainder(in[0], in[1])});
        },
        test::Tolerance{0.0, 0.0});
  }
  // ---- scatter -------------------------------------------------------------------------------
  // No destination repeats (CUDA keeps any one of repeated ones); every dtype moves its bits.
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kUInt8, kBool}) {
    add_case(
        "scatter_dim0_" + dtype_tag(dt), randoms({{4, 6}, {3, 6}}, dt),
        [](const Inputs& in, Device d) {
          const Tensor index =
              from_vector<int64_t>({3, 0, 1, 1, 2, 3, 0, 2, 0, 3, 3, 1, 2, 1, 2, 0, 0, 0}, {3, 6})
                  .to(d);
          return scatter(in[0], 0, index, in[1]);
        },
        test::Tolerance{0.0, 0.0});
    add_case(
        "scatter_value_dim1_" + dtype_tag(dt), randoms({{1000, 7}}, dt),
        [](const Inputs& in, Device d) {
          // Row r writes columns (r % 7) and ((r + 3) % 7).
          const Tensor rows = arange(1000, TensorOptions(kInt64).device(d)).reshape({1000, 1});
          const Tensor index = remainder(cat({rows, add(rows, 3.0)}, 1), 7.0);
          return scatter(in[0], 1, index, 1.0);
        },
        test::Tolerance{0.0, 0.0});
  }
  for (DType dt : floats) {
    add_case(
        "scatter_backward_" + dtype_tag(dt), randoms({{4, 6}, {3, 7}, {4, 6}}, dt),
        [](const Inputs& in, Device d) {
          Tensor x = in[0].detach(), src = in[1].detach();
          x.set_requires_grad(true);
          src.set_requires_grad(true);
          const Tensor index =
              from_vector<int64_t>({3, 0, 1, 1, 2, 3, 0, 2, 0, 3, 3, 1, 2, 1, 2, 0, 0, 0}, {3, 6})
                  .to(d);
          sum(mul(scatter(x, 0, index, src), in[2])).backward();
          return cat({x.grad().reshape({-1}), src.grad().reshape({-1})});
        },
        test::Tolerance{0.0, 0.0});
  }
  // ---- nonzero and masked_select -------------------------------------------------------------
  // The positions come from a cumsum and a scatter; rows of 5000 cross the scan's blocks.
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kUInt8, kBool}) {
    for (const Shape& shape : std::vector<Shape>{{5000}, {3, 5000}, {7, 1, 9}, {1}}) {
      add_case(
          "nonzero_" + dtype_tag(dt) + "_" + shape_tag(shape), randoms({shape}, kInt64, -1, 2),
          [dt](const Inputs& in, Device) { return nonzero(in[0].to(dt)); },
          test::Tolerance{0.0, 0.0});
    }
  }
  for (DType dt : floats) {
    add_case(
        "masked_select_" + dtype_tag(dt), randoms({{7, 1000}, {1, 1000}}, dt),
        [](const Inputs& in, Device) { return masked_select(in[0], gt(in[1], 0.0)); },
        test::Tolerance{0.0, 0.0});
    add_case(
        "masked_select_backward_" + dtype_tag(dt), randoms({{7, 1}, {7, 1000}}, dt),
        [](const Inputs& in, Device) {
          Tensor x = in[0].detach();
          x.set_requires_grad(true);
          const Tensor picked = masked_select(x, gt(in[1], 0.0));
          sum(mul(picked, picked)).backward();
          return x.grad();
        },
        atomic_tol(dt));
  }
  // ---- advanced indexing ---------------------------------------------------------------------
  for (DType dt : {kFloat32, kFloat64, kFloat16, kInt64, kBool}) {
    add_case(
        "index_ints_and_mask_" + dtype_tag(dt), randoms({{6, 1000, 3}, {6, 1000}}, dt),
        [](const Inputs& in, Device d) {
          const Tensor rows = from_vector<int64_t>({5, 0, -1, 2}, {4, 1}).to(d);
          const Tensor columns =
              remainder(arange(0.0, 7000.0, 7.0, TensorOptions(kInt64).device(d)), 1000.0);
          return cat({index(in[0], {rows, columns}).reshape({-1}),
                      index(in[0], {ne(in[1], zeros({}, in[1].options()))}).reshape({-1})});
        },
        test::Tolerance{0.0, 0.0});
  }
  for (DType dt : floats) {
    // Distinct positions: what is written does not depend on the order.
    add_case(
        "index_put_" + dtype_tag(dt), randoms({{6, 1000}, {1000}}, dt),
        [](const Inputs& in, Device d) {
          const Tensor columns =
              remainder(arange(0.0, 7000.0, 7.0, TensorOptions(kInt64).device(d)), 1000.0);
          return index_put(in[0], {from_vector<int64_t>({3}, {1}).to(d), columns}, in[1]);
        },
        test::Tolerance{0.0, 0.0});
    // Repeated positions add up (atomics on CUDA), and the backward's index_add too.
    add_case(
        "index_put_accumulate_backward_" + dtype_tag(dt), randoms({{50, 4}, {500, 4}}, dt),
        [](const Inputs& in, Device d) {
          Tensor x = in[0].detach(), values = in[1].detach();
          x.set_requires_grad(true);
          values.set_requires_grad(true);
          const Tensor rows = remainder(arange(500, TensorOptions(kInt64).device(d)), 50.0);
          const Tensor out = index_put(x, {rows}, values, true);
          sum(mul(index(out, {rows}), values)).backward();
          return cat({out.reshape({-1}), x.grad().reshape({-1}), values.grad().reshape({-1})});
        },
        atomic_tol(dt));
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

class CudaParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(CudaParity, MatchesCpu) {
  SKIP_WITHOUT_CUDA();
  const ParityCase& c = GetParam();
  const Inputs host = c.inputs();
  const Tensor expected = c.op(host, kCpuDevice);
  Inputs on_device;
  for (const Tensor& t : host) on_device.push_back(t.to(kCudaDevice));
  const Tensor actual = c.op(on_device, kCudaDevice);
  const std::string what = "case " + c.name + " (inputs: " + describe_inputs(host) + ")";
  ASSERT_TRUE(actual.device().is_cuda()) << what << ": result is on " << actual.device().str();
  EXPECT_EQ(actual.dtype(), expected.dtype()) << what;
  EXPECT_TRUE(test::values_close(actual.cpu(), expected.shape(), expected.to_vector<double>(),
                                 c.tol.rtol, c.tol.atol))
      << what;
}

INSTANTIATE_TEST_SUITE_P(Kernels, CudaParity, ::testing::ValuesIn(parity_cases()),
                         [](const ::testing::TestParamInfo<ParityCase>& param_info) {
                           return param_info.param.name;
                         });

// ---- the backend itself --------------------------------------------------------------------

// Needs no GPU: this is what a machine without one sees.
TEST(CudaUnavailable, AskingForCudaThrowsWithTheReason) {
  if (cuda_is_available()) GTEST_SKIP() << "a CUDA device is present";
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  try {
    zeros({2}, Device(kCUDA));
    ADD_FAILURE() << "zeros on CUDA did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  const detail::CudaMemoryStats stats = detail::cuda_memory_stats(0);
  EXPECT_EQ(stats.allocated_bytes, 0u);
  EXPECT_EQ(stats.malloc_calls, 0u);
}

TEST(CudaBackend, DeviceIndexAndSynchronize) {
  SKIP_WITHOUT_CUDA();
  Backend& backend = backend_for(kCudaDevice);
  EXPECT_EQ(backend.device(), kCudaDevice);
  Tensor x = ones({1000}, kCudaDevice);
  EXPECT_EQ(x.device(), kCudaDevice);
  backend.synchronize();
  EXPECT_DOUBLE_EQ(sum(x).item<double>(), 1000.0);
  const int count = cuda_device_count();
  test::expect_error([count] { zeros({2}, Device(kCUDA, count)); }, {"CUDA"});
}

TEST(CudaBackend, CopiesAcrossDevices) {
  SKIP_WITHOUT_CUDA();
  Tensor host = test::random_f32({33, 65}, -1, 1, 5);
  Tensor dev = zeros({65, 33}, kCudaDevice);
  dev.copy_(host.t());  // host view -> device
  Tensor back = zeros({65, 33});
  back.copy_(dev);  // device -> host
  test::expect_close(back, host.t().contiguous(), 0.0, 0.0);
  Tensor dev2 = zeros({33, 65}, kCudaDevice);
  dev2.copy_(dev.t());  // device strided -> device
  test::expect_close(dev2.cpu(), host, 0.0, 0.0);
}

TEST(CudaAllocator, SteadyStateDoesNotCallCudaMalloc) {
  SKIP_WITHOUT_CUDA();
  auto step = [] {
    Tensor a = rand({1000}, kCudaDevice);
    Tensor b = rand({3, 1 << 20}, kCudaDevice);  // a large block
    Tensor c = add(a, 1.0);
    Tensor d = sum(b, {1});
    return c.numel() + d.numel();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up fills the cache
  backend_for(kCudaDevice).synchronize();
  const detail::CudaMemoryStats warm = detail::cuda_memory_stats(0);
  for (int i = 0; i < 20; ++i) step();
  backend_for(kCudaDevice).synchronize();
  const detail::CudaMemoryStats after = detail::cuda_memory_stats(0);
  EXPECT_EQ(after.malloc_calls, warm.malloc_calls) << "cudaMalloc called in the steady state";
  EXPECT_EQ(after.allocated_bytes, warm.allocated_bytes) << "blocks leaked across steps";
  EXPECT_GT(after.cached_bytes, 0u);
  {
    Tensor live = empty({1000}, kCudaDevice);
    EXPECT_GE(detail::cuda_memory_stats(0).allocated_bytes, after.allocated_bytes + 4000);
  }
  EXPECT_EQ(detail::cuda_memory_stats(0).allocated_bytes, after.allocated_bytes);
  detail::cuda_empty_cache(0);
  EXPECT_EQ(detail::cuda_memory_stats(0).cached_bytes, 0u);
}

TEST(CudaAllocator, OutOfMemoryThrowsAndRecovers) {
  SKIP_WITHOUT_CUDA();
  // 2^40 floats = 4 TiB: more than any device has.
  test::expect_error([] { empty({int64_t{1} << 40}, kCudaDevice); },
                     {"out of memory", "4398046511104 bytes"});
  Tensor x = ones({7}, kCudaDevice);  // the allocator still works
  EXPECT_DOUBLE_EQ(sum(x).item<double>(), 7.0);
}

TEST(CudaMatmul, Tf32OnlyWhenAllowed) {
  SKIP_WITHOUT_CUDA();
  struct Tf32Guard {
    ~Tf32Guard() { set_allow_tf32(false); }
  } guard;
  const Tensor a = test::random_f32({256, 512}, -1, 1, 11);
  const Tensor b = test::random_f32({512, 128}, -1, 1, 12);
  const Tensor expected = matmul(a, b);
  EXPECT_FALSE(allow_tf32());
  const Tensor full_precision = matmul(a.cuda(), b.cuda()).cpu();
  test::expect_close(full_precision, expected, 1e-4, 1e-4);  // summation order only
  set_allow_tf32(true);
  // TF32 keeps 10 mantissa bits: each product errs by ~1e-3, and K = 512 of them add up.
  const Tensor fast = matmul(a.cuda(), b.cuda()).cpu();
  test::expect_close(fast, expected, 2e-2, 1e-1);
}

// index_add (the backward of index_select and embedding) under deterministic mode: many
// repeated indices (20000 rows into 7, plus an index that never appears) would make atomics
// add in a different order run to run; the sorted path adds each row's sources in position
// order from its old value, as the CPU does, so two runs agree bit for bit and with the CPU.
TEST(CudaIndexAdd, DeterministicModeIsBitwiseRepeatableAndEqualsCpu) {
  SKIP_WITHOUT_CUDA();
  struct DeterministicGuard {
    DeterministicGuard() { set_deterministic(true); }
    ~DeterministicGuard() { set_deterministic(false); }
  } guard;
  for (DType dt : {kFloat32, kFloat64}) {
    SCOPED_TRACE(dtype_name(dt));
    constexpr int64_t kRows = 8, kCount = 20000;
    std::vector<int64_t> idx(static_cast<size_t>(kCount));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>((i * 7919) % 7);
    const Tensor index = from_vector<int64_t>(idx, {kCount});
    // Values of mixed magnitude: a different order of the float adds changes the last bits.
    const Tensor upstream = mul(test::host_random({3, kCount, 5}, dt, 31, -1, 1),
                                exp(test::host_random({3, kCount, 5}, dt, 32, -6, 6)));
    const Tensor x_host = test::host_random({3, kRows, 5}, dt, 33, -1, 1);
    auto grad_of_x = [&](Device device) {
      Tensor x = x_host.to(device).detach();
      x.set_requires_grad(true);
      sum(mul(index_select(x, 1, index.to(device)), upstream.to(device))).backward();
      return x.grad().cpu().to_vector<double>();
    };
    // Embedding's backward too: index_add along dim 0 with inner = embedding size.
    auto embedding_grad = [&](Device device) {
      Tensor w = x_host.reshape({3 * kRows, 5}).to(device).detach();
      w.set_requires_grad(true);
      const Tensor up = upstream.select(0, 0).to(device);
      sum(mul(nn::functional::embedding(index.to(device), w), up)).backward();
      return w.grad().cpu().to_vector<double>();
    };
    const std::vector<double> first = grad_of_x(kCudaDevice);
    const std::vector<double> second = grad_of_x(kCudaDevice);
    EXPECT_TRUE(first == second) << "index_add differs run to run";
    EXPECT_TRUE(first == grad_of_x(kCpuDevice)) << "index_add differs from the CPU's order";
    const std::vector<double> e1 = embedding_grad(kCudaDevice);
    EXPECT_TRUE(e1 == embedding_grad(kCudaDevice)) << "embedding backward differs run to run";
    EXPECT_TRUE(e1 == embedding_grad(kCpuDevice)) << "embedding backward differs from the CPU";
    // Row 7 is never indexed: its gradient is exactly zero.
    for (size_t j = 0; j < 5; ++j) EXPECT_EQ(first[7 * 5 + j], 0.0);
  }
}

}  // namespace
}  // namespace strata
