// sort, argsort, topk, kthvalue, cumsum, cumprod, floor_divide and remainder: values, indices
// and gradients against PyTorch (tests/data/gen_ops_sort_scan.py), float64 gradchecks, every
// dtype the kernels take, rows of 1 and 5000 elements (across the CUDA kernels' block sizes),
// and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using Inputs = std::vector<Tensor>;
using PairFn = std::function<ValuesAndIndices(const Tensor&)>;

const test::Fixture& fixture() {
  static const test::Fixture f("ops_sort_scan.txt");
  return f;
}

// Sorting moves values without arithmetic: float32 differs from the float64 reference only by
// the one rounding of its inputs (and of the upstream gradient).
test::Tolerance tolerance(DType dtype) {
  return dtype == kFloat64 ? test::Tolerance{0.0, 0.0} : test::Tolerance{1e-7, 1e-30};
}

// A (values, indices) case in float64 and float32: values and gradients as
// expect_fixture_case compares them, then the indices exactly.
void expect_pair_case(const std::string& name, const PairFn& fn) {
  for (DType dtype : {kFloat64, kFloat32}) {
    Tensor indices;
    test::expect_fixture_case(
        fixture(), name, {"a"}, {"a"},
        [&](const Inputs& in) {
          ValuesAndIndices result = fn(in[0]);
          indices = result.indices;
          return result.values;
        },
        dtype, tolerance(dtype));
    SCOPED_TRACE(name + " indices, " + dtype_name(dtype));
    EXPECT_EQ(indices.dtype(), kInt64);
    test::expect_close(indices, fixture()[name + "_indices"], 0.0, 0.0);
  }
}

TEST(OpsSort, SortMatchesPyTorch) {
  expect_pair_case("sort_last", [](const Tensor& x) { return sort(x); });
  expect_pair_case("sort_desc_dim0", [](const Tensor& x) { return sort(x, 0, true); });
  expect_pair_case("sort_mid", [](const Tensor& x) { return x.sort(1); });
  // NaN last ascending and first descending; -0.0 ties with 0.0 and keeps its place.
  expect_pair_case("sort_special", [](const Tensor& x) { return sort(x); });
  expect_pair_case("sort_special_desc", [](const Tensor& x) { return sort(x, -1, true); });
}

TEST(OpsSort, IntegerTiesKeepTheirOrder) {
  const Tensor x = fixture()["sort_int_ties_a"];
  for (DType dtype : {kInt64, kFloat32, kFloat64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const auto [values, indices] = sort(x.to(dtype));
    EXPECT_EQ(values.dtype(), dtype);
    test::expect_close(values, fixture()["sort_int_ties_out"], 0.0, 0.0);
    test::expect_close(indices, fixture()["sort_int_ties_indices"], 0.0, 0.0);
    const auto [desc_values, desc_indices] = sort(x.to(dtype), 0, true);
    test::expect_close(desc_values, fixture()["sort_int_ties_desc_out"], 0.0, 0.0);
    test::expect_close(desc_indices, fixture()["sort_int_ties_desc_indices"], 0.0, 0.0);
    test::expect_close(argsort(x.to(dtype), 1), fixture()["argsort_int_out"], 0.0, 0.0);
  }
}

TEST(OpsSort, TopkAndKthvalueMatchPyTorch) {
  expect_pair_case("topk_largest", [](const Tensor& x) { return topk(x, 3, 1); });
  expect_pair_case("topk_smallest", [](const Tensor& x) { return x.topk(2, -1, false); });
  expect_pair_case("topk_nan", [](const Tensor& x) { return topk(x, 3); });
  expect_pair_case("kthvalue_dim1", [](const Tensor& x) { return kthvalue(x, 3, 1); });
  expect_pair_case("kthvalue_keepdim", [](const Tensor& x) { return x.kthvalue(2, 0, true); });
}

// uint8, bool and the 16-bit floats against the same values sorted as float64 (the halves hold
// small integers and halves exactly, with ties; the sort is stable on both).
TEST(OpsSort, EveryDtypeSortsAsFloat64Does) {
  Generator gen(5);
  const Tensor base = mul(randint(-8, 8, {6, 50}, kInt64, &gen).to(kFloat64), 0.5);
  for (DType dtype : {kFloat16, kBFloat16, kInt64, kUInt8, kBool, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = base.to(dtype);  // uint8 wraps the negatives, bool keeps != 0
    for (bool descending : {false, true}) {
      for (int64_t dim : {0, 1}) {
        const auto [values, indices] = sort(x, dim, descending);
        const auto [ref_values, ref_indices] = sort(x.to(kFloat64), dim, descending);
        EXPECT_EQ(values.dtype(), dtype);
        test::expect_close(values.to(kFloat64), ref_values, 0.0, 0.0);
        test::expect_close(indices, ref_indices, 0.0, 0.0);
      }
    }
  }
}

// Rows of 1 and of 5000 (more than a CUDA block), sorted along the last and the first axis:
// values ascend, indices are a permutation, and values == x at indices.
TEST(OpsSort, LongAndSingleElementRows) {
  Generator gen(6);
  for (const Shape& shape : std::vector<Shape>{{5000, 1}, {3, 5000}, {5000}}) {
    const Tensor x = randn(shape, TensorOptions(kFloat32), &gen);
    for (int64_t dim : {int64_t{0}, int64_t{-1}}) {
      SCOPED_TRACE(shape_str(shape) + " dim " + std::to_string(dim));
      const auto [values, indices] = sort(x, dim);
      test::expect_close(values, gather(x, dim, indices), 0.0, 0.0);
      const int64_t size = x.size(dim);
      if (size > 1) {
        const Tensor ascending =
            le(values.narrow(dim, 0, size - 1), values.narrow(dim, 1, size - 1));
        EXPECT_EQ(ascending.to(kInt64).min().item<int64_t>(), 1);
      }
      // A permutation: sorting the indices gives 0, 1, ..., size - 1 along dim.
      Shape along(static_cast<size_t>(x.dim()), 1);
      along[static_cast<size_t>(dim < 0 ? dim + x.dim() : dim)] = size;
      const Tensor expected = arange(static_cast<double>(size)).reshape(along).expand(x.shape());
      test::expect_close(sort(indices, dim).values, expected, 0.0, 0.0);
    }
  }
}

TEST(OpsSort, ZeroDimAndEmptyInputs) {
  const Tensor scalar = test::f64({2.5}, {}).reshape({});
  const auto [values, indices] = sort(scalar);
  EXPECT_EQ(values.dim(), 0);
  EXPECT_EQ(indices.item<int64_t>(), 0);
  EXPECT_EQ(topk(scalar, 1).values.item<double>(), 2.5);
  EXPECT_EQ(kthvalue(scalar, 1).indices.dim(), 0);
  EXPECT_EQ(argsort(scalar).dim(), 0);
  const Tensor empty = zeros({3, 0});
  EXPECT_EQ(sort(empty, 1).values.shape(), (Shape{3, 0}));
  EXPECT_EQ(topk(empty, 0).indices.shape(), (Shape{3, 0}));
  EXPECT_EQ(topk(zeros({0, 4}), 2).values.shape(), (Shape{0, 2}));
  // -0.0 keeps its sign bit: values are the input's own bits.
  const Tensor signed_zeros = test::f64({0.0, -0.0}, {2});
  EXPECT_TRUE(std::signbit(sort(signed_zeros).values.to_vector<double>()[1]));
}

TEST(OpsSort, GradcheckInFloat64) {
  Generator gen(7);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"sort", [](const Inputs& in) { return sort(in[0], 0).values; }},
      {"sort_desc", [](const Inputs& in) { return sort(in[0], -1, true).values; }},
      {"topk", [](const Inputs& in) { return topk(in[0], 2, 1).values; }},
      {"topk_smallest", [](const Inputs& in) { return topk(in[0], 3, 0, false).values; }},
      {"kthvalue", [](const Inputs& in) { return kthvalue(in[0], 2, 1).values; }},
      {"kthvalue_keepdim", [](const Inputs& in) { return kthvalue(in[0], 3, 0, true).values; }},
  };
  for (const auto& [name, fn] : ops) {
    SCOPED_TRACE(name);
    test::expect_gradcheck(fn, {input({4, 5})});
  }
}

TEST(OpsSort, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_error([&] { (void)sort(x, 2); }, {"sort", "dimension 2"});
  test::expect_error([&] { (void)sort(Tensor()); }, {"sort", "undefined"});
  test::expect_error([&] { (void)argsort(x, -3); }, {"argsort", "dimension -3"});
  test::expect_error([&] { (void)topk(x, 4); }, {"topk", "k = 4", "size 3"});
  test::expect_error([&] { (void)topk(x, -1, 0); }, {"topk", "k = -1", "size 2"});
  test::expect_error([&] { (void)kthvalue(x, 0); }, {"kthvalue", "k = 0", "from 1 to 3"});
  test::expect_error([&] { (void)kthvalue(x, 3, 0); }, {"kthvalue", "k = 3", "size 2"});
}

// ---- running sums and products ----------------------------------------------------------

// Float32 runs the backward's arithmetic in float32 (the forward accumulates in float64).
test::Tolerance arithmetic_tolerance(DType dtype) {
  return dtype == kFloat64 ? test::Tolerance{1e-12, 1e-12} : test::Tolerance{1e-5, 1e-5};
}

TEST(OpsScan, CumsumAndCumprodMatchPyTorch) {
  const std::vector<std::pair<std::string, std::function<Tensor(const Inputs&)>>> cases = {
      {"cumsum_last", [](const Inputs& in) { return cumsum(in[0], -1); }},
      {"cumsum_dim0", [](const Inputs& in) { return in[0].cumsum(0); }},
      {"cumprod_mid", [](const Inputs& in) { return cumprod(in[0], 1); }},
      // One zero per row (first, middle and last position), two per row, along dim 0.
      {"cumprod_one_zero", [](const Inputs& in) { return cumprod(in[0], 1); }},
      {"cumprod_two_zeros", [](const Inputs& in) { return cumprod(in[0], -1); }},
      {"cumprod_zero_dim0", [](const Inputs& in) { return in[0].cumprod(0); }},
  };
  for (const auto& [name, fn] : cases) {
    for (DType dtype : {kFloat64, kFloat32}) {
      test::expect_fixture_case(fixture(), name, {"a"}, {"a"}, fn, dtype,
                                arithmetic_tolerance(dtype));
    }
  }
}

TEST(OpsScan, IntegersAndBoolGiveInt64) {
  const Tensor ints = fixture()["cumsum_int_a"];
  test::expect_tensor(cumsum(ints, 1), kInt64, ints.shape(),
                      fixture()["cumsum_int_out"].to_vector<double>(), 0.0, 0.0);
  const Tensor factors = fixture()["cumprod_int_a"];
  test::expect_tensor(cumprod(factors, 0), kInt64, factors.shape(),
                      fixture()["cumprod_int_out"].to_vector<double>(), 0.0, 0.0);
  const Tensor flags = fixture()["cumsum_bool_a"].to(kBool);
  test::expect_tensor(cumsum(flags, 0), kInt64, flags.shape(),
                      fixture()["cumsum_bool_out"].to_vector<double>(), 0.0, 0.0);
  // uint8 does not wrap at 256: it is summed as int64.
  const Tensor bytes = full({300}, 200.0, kUInt8);
  const Tensor sums = cumsum(bytes, 0);
  EXPECT_EQ(sums.dtype(), kInt64);
  EXPECT_EQ(sums.to_vector<int64_t>().back(), 60000);
}

// bfloat16 as PyTorch's CPU kernel: the running value in float32, rounded once per output
// (exactly PyTorch's values). float16 (PyTorch 1.13 has no CPU cumsum for it) likewise: the
// running float32 value of the float16 inputs, rounded to float16.
TEST(OpsScan, HalvesAccumulateInFloat32) {
  const Tensor x = fixture()["cumsum_bf16_a"].to(kBFloat16);
  const Tensor sums = cumsum(x, 1);
  EXPECT_EQ(sums.dtype(), kBFloat16);
  test::expect_close(sums, fixture()["cumsum_bf16_out"], 0.0, 0.0);
  Generator gen(8);
  const Tensor h = randn({3, 300}, TensorOptions(kFloat16), &gen);
  std::vector<double> expected;
  const std::vector<float> values = h.to_vector<float>();
  for (int64_t r = 0; r < 3; ++r) {
    float running = 0.0f;
    for (int64_t k = 0; k < 300; ++k) {
      running += values[static_cast<size_t>(r * 300 + k)];
      expected.push_back(static_cast<double>(static_cast<float>(Half(running))));
    }
  }
  test::expect_tensor(cumsum(h, 1), kFloat16, {3, 300}, expected, 0.0, 0.0);
}

// Rows of 1 and 5000 elements along the first and the last axis. float32 keeps a float64
// running value, so each output is the float64 sum rounded once: within half an ulp.
TEST(OpsScan, LongRowsAccumulateInFloat64) {
  Generator gen(9);
  for (const Shape& shape : std::vector<Shape>{{5000, 1}, {3, 5000}, {5000, 3}, {5000}}) {
    const Tensor x = randn(shape, TensorOptions(kFloat32), &gen);
    const Tensor factors = add(mul(rand(shape, TensorOptions(kFloat32), &gen), 0.2), 0.9);
    for (int64_t dim : {int64_t{0}, int64_t{-1}}) {
      SCOPED_TRACE(shape_str(shape) + " dim " + std::to_string(dim));
      test::expect_close(cumsum(x, dim), cumsum(x.to(kFloat64), dim), 6e-8, 1e-30);
      test::expect_close(cumprod(factors, dim), cumprod(factors.to(kFloat64), dim), 6e-8, 1e-30);
    }
  }
}

TEST(OpsScan, ZeroDimAndEmptyInputs) {
  Tensor scalar = test::f64({2.5}, {}).reshape({});
  scalar.set_requires_grad(true);
  const Tensor product = cumprod(scalar, 0);
  EXPECT_EQ(product.dim(), 0);
  EXPECT_EQ(product.item<double>(), 2.5);
  product.backward();
  EXPECT_EQ(scalar.grad().item<double>(), 1.0);
  EXPECT_EQ(cumsum(scalar, -1).item<double>(), 2.5);
  EXPECT_EQ(cumsum(zeros({2, 0}), 1).shape(), (Shape{2, 0}));
  EXPECT_EQ(cumprod(zeros({0, 3}, kInt64), 0).dtype(), kInt64);
}

TEST(OpsScan, GradcheckInFloat64) {
  Generator gen(10);
  const Tensor x = randn({3, 5}, TensorOptions(kFloat64), &gen);
  // Zeros: one per row at the start, middle and end; two in a row; two apart; none.
  const Tensor zero_mask = test::boolean({true, false, false, false, false,  //
                                          false, false, true, true, false,   //
                                          false, true, false, false, true},
                                         {3, 5});
  const Tensor with_zeros = where(zero_mask, zeros({}, kFloat64), x);
  const Tensor last_zero =
      where(test::boolean({false, false, false, false, true}, {5}), zeros({}, kFloat64), x);
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"cumsum_0", [](const Inputs& in) { return cumsum(in[0], 0); }},
      {"cumsum_1", [](const Inputs& in) { return cumsum(in[0], 1); }},
      {"cumprod_0", [](const Inputs& in) { return cumprod(in[0], 0); }},
      {"cumprod_1", [](const Inputs& in) { return cumprod(in[0], 1); }},
  };
  for (const auto& [name, fn] : ops) {
    for (const Tensor& input : {x, with_zeros, last_zero}) {
      SCOPED_TRACE(name);
      test::expect_gradcheck(fn, {input.clone().set_requires_grad(true)});
    }
  }
}

TEST(OpsScan, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_error([&] { (void)cumsum(x, 2); }, {"cumsum", "dimension 2"});
  test::expect_error([&] { (void)cumprod(x, -3); }, {"cumprod", "dimension -3"});
  test::expect_error([&] { (void)cumsum(Tensor(), 0); }, {"cumsum", "undefined"});
}

// ---- floor division and remainder ------------------------------------------------------------

TEST(OpsDivision, FloorDivideAndRemainderMatchPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    test::expect_fixture_case(
        fixture(), "remainder_tt", {"a", "b"}, {"a", "b"},
        [](const Inputs& in) { return remainder(in[0], in[1]); }, dtype,
        arithmetic_tolerance(dtype));
    test::expect_fixture_case(
        fixture(), "remainder_ts", {"a"}, {"a"},
        [](const Inputs& in) { return remainder(in[0], -1.5); }, dtype,
        arithmetic_tolerance(dtype));
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor a = fixture()["floor_divide_tt_a"].to(dtype);
    const Tensor b = fixture()["floor_divide_tt_b"].to(dtype);
    // Whole numbers: float32's rounded inputs land on the same ones (no quotient is that close
    // to an integer).
    test::expect_tensor(floor_divide(a, b), dtype, {4, 5},
                        fixture()["floor_divide_tt_out"].to_vector<double>(), 0.0, 0.0);
    test::expect_tensor(floor_divide(a, 0.75), dtype, {4, 5},
                        fixture()["floor_divide_ts_out"].to_vector<double>(), 0.0, 0.0);
  }
  // Signed zeros, infinities, NaN and a zero divisor, in float64 exactly as PyTorch.
  const Tensor x = fixture()["floor_divide_special_a"];
  const Tensor y = fixture()["floor_divide_special_b"];
  test::expect_close(floor_divide(x, y), fixture()["floor_divide_special_out"], 0.0, 0.0);
  test::expect_close(remainder(x, y), fixture()["remainder_special_out"], 0.0, 0.0);
  const std::vector<double> quotients = floor_divide(x, y).to_vector<double>();
  const std::vector<double> expected = fixture()["floor_divide_special_out"].to_vector<double>();
  for (size_t i = 0; i < quotients.size(); ++i) {
    if (std::isnan(expected[i])) continue;  // a NaN's sign means nothing
    EXPECT_EQ(std::signbit(quotients[i]), std::signbit(expected[i])) << "element " << i;
  }
}

TEST(OpsDivision, IntegersStayIntegers) {
  const Tensor a = fixture()["floor_divide_int_a"], b = fixture()["floor_divide_int_b"];
  test::expect_tensor(floor_divide(a, b), kInt64, a.shape(),
                      fixture()["floor_divide_int_out"].to_vector<double>(), 0.0, 0.0);
  test::expect_tensor(remainder(a, b), kInt64, a.shape(),
                      fixture()["remainder_int_out"].to_vector<double>(), 0.0, 0.0);
  test::expect_tensor(floor_divide(a, -3.0), kInt64, a.shape(),
                      fixture()["floor_divide_int_scalar_out"].to_vector<double>(), 0.0, 0.0);
  test::expect_tensor(remainder(a, 4.0), kInt64, a.shape(),
                      fixture()["remainder_int_scalar_out"].to_vector<double>(), 0.0, 0.0);
  // uint8 stays uint8; a fractional scalar gives float32; bool divides as int64.
  const Tensor bytes = test::u8({200, 7, 255}, {3});
  test::expect_tensor(floor_divide(bytes, test::u8({3, 2, 16}, {3})), kUInt8, {3}, {66, 3, 15});
  test::expect_tensor(remainder(bytes, 16.0), kUInt8, {3}, {8, 7, 15});
  test::expect_tensor(floor_divide(test::i64({7, -7}, {2}), 2.5), kFloat32, {2}, {2, -3});
  test::expect_tensor(remainder(test::boolean({true, false}, {2}), test::i64({2, 2}, {2})), kInt64,
                      {2}, {1, 0});
  // INT64_MIN // -1 wraps (as every integer overflow here); INT64_MIN % -1 is 0.
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(floor_divide(test::i64({lowest}, {1}), -1.0).item<int64_t>(), lowest);
  EXPECT_EQ(remainder(test::i64({lowest}, {1}), -1.0).item<int64_t>(), 0);
}

// The 16-bit floats compute in float32 and round once.
TEST(OpsDivision, HalvesComputeInFloat32) {
  Generator gen(11);
  const Tensor a = mul(randn({50}, TensorOptions(kFloat32), &gen), 8.0);
  const Tensor b = add(rand({50}, TensorOptions(kFloat32), &gen), 0.5);
  for (DType dtype : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor ha = a.to(dtype), hb = b.to(dtype);
    test::expect_close(floor_divide(ha, hb),
                       floor_divide(ha.to(kFloat32), hb.to(kFloat32)).to(dtype), 0.0, 0.0);
    test::expect_close(remainder(ha, hb), remainder(ha.to(kFloat32), hb.to(kFloat32)).to(dtype),
                       0.0, 0.0);
  }
}

TEST(OpsDivision, IntegerDivisionByZeroIsAnError) {
  const Tensor a = test::i64({5, -5, 7}, {3});
  test::expect_error(
      [&] {
        (void)floor_divide(a, test::i64({1, 0, 2}, {3}));
      },
      {"floor_divide", "integer division by zero", "[3] i64"});
  test::expect_error([&] { (void)remainder(a, test::i64({0}, {1})); },
                     {"remainder", "integer division by zero"});
  test::expect_error([&] { (void)floor_divide(a, 0.0); }, {"floor_divide", "division by zero"});
  test::expect_error([&] { (void)remainder(a.to(kUInt8), 0.0); }, {"remainder", "by zero"});
  test::expect_error(
      [&] {
        (void)remainder(a, test::boolean({true, false, true}, {3}));
      },
      {"remainder", "by zero"});
  // Floats divide by zero as IEEE does: +-inf (or NaN) and NaN.
  const Tensor f = test::f64({5, -5, 0}, {3});
  test::expect_values(
      floor_divide(f, 0.0), {3},
      {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
       std::numeric_limits<double>::quiet_NaN()});
  EXPECT_TRUE(std::isnan(remainder(f, 0.0).to_vector<double>()[0]));
}

TEST(OpsDivision, GradientsOfRemainder) {
  Generator gen(12);
  // a = b * (k + f) with f in [0.2, 0.8]: every quotient stays off the integers where the
  // remainder jumps.
  const Tensor b = mul(add(rand({3, 4}, TensorOptions(kFloat64), &gen), 1.0),
                       sign(sub(rand({3, 4}, TensorOptions(kFloat64), &gen), 0.5)));
  const Tensor k = randint(-3, 4, {3, 4}, kInt64, &gen).to(kFloat64);
  const Tensor f = add(mul(rand({3, 4}, TensorOptions(kFloat64), &gen), 0.6), 0.2);
  const Tensor a = mul(b, add(k, f));
  test::expect_gradcheck([](const Inputs& in) { return remainder(in[0], in[1]); },
                         {a.clone().set_requires_grad(true), b.clone().set_requires_grad(true)});
  // A broadcast divisor (its gradient summed over the rows), and a scalar one.
  Tensor row = b.select(0, 0).clone();
  test::expect_gradcheck(
      [](const Inputs& in) { return remainder(in[0], in[1]); },
      {mul(row, add(k, f)).set_requires_grad(true), row.set_requires_grad(true)});
  test::expect_gradcheck([](const Inputs& in) { return remainder(in[0], 0.7); },
                         {mul(add(k, f), 0.7).set_requires_grad(true)});
  // floor_divide records nothing: its gradient is zero wherever it exists.
  const Tensor leaf = a.clone().set_requires_grad(true);
  EXPECT_FALSE(floor_divide(leaf, b).requires_grad());
  EXPECT_FALSE(floor_divide(leaf, 2.0).requires_grad());
}

// ---- scatter ---------------------------------------------------------------------------------

TEST(OpsScatter, MatchesPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    for (const auto& [name, dim] :
         std::vector<std::pair<std::string, int64_t>>{{"scatter_0", 0}, {"scatter_1", 1}}) {
      const Tensor index = fixture()[name + "_index"];
      test::expect_fixture_case(
          fixture(), name, {"a", "b"}, {"a", "b"},
          [&, dim = dim](const Inputs& in) { return scatter(in[0], dim, index, in[1]); }, dtype,
          tolerance(dtype));
    }
    const Tensor index = fixture()["scatter_value_index"];
    test::expect_fixture_case(
        fixture(), "scatter_value", {"a"}, {"a"},
        [&](const Inputs& in) { return scatter(in[0], 1, index, 2.5); }, dtype, tolerance(dtype));
  }
}

// Repeated destinations: the CPU keeps the value last in index's row-major order.
TEST(OpsScatter, RepeatedIndicesKeepTheLastValueOnTheCpu) {
  const Tensor x = zeros({2, 3}, kInt64);
  const Tensor index = test::i64({0, 0, 2, 0, 2, 2}, {2, 3});
  const Tensor src = test::i64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_tensor(scatter(x, 1, index, src), kInt64, {2, 3}, {2, 0, 3, 4, 0, 6});
  test::expect_tensor(scatter(x, 0, test::i64({1, 0, 1, 1, 0, 1}, {2, 3}), src), kInt64, {2, 3},
                      {0, 5, 0, 4, 0, 6});
}

TEST(OpsScatter, EveryDtypeAndTheInputIsLeftAlone) {
  const Tensor index = test::i64({2, 0}, {2});
  for (DType dtype : {kFloat16, kBFloat16, kUInt8, kBool, kInt64, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor x = zeros({3}, dtype);
    test::expect_tensor(scatter(x, 0, index, test::f64({1, 1}, {2}).to(dtype)), dtype, {3},
                        {1, 0, 1});
    test::expect_tensor(scatter(x, -1, index, 1.0), dtype, {3}, {1, 0, 1});
    test::expect_tensor(x, dtype, {3}, {0, 0, 0});
  }
}

TEST(OpsScatter, GradcheckInFloat64) {
  Generator gen(13);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const Tensor index = test::i64({2, 0, 1, 3, 1, 2, 0, 0}, {2, 4});
  test::expect_gradcheck([&](const Inputs& in) { return scatter(in[0], 0, index, in[1]); },
                         {input({4, 4}), input({3, 5})});
  // No destination repeats: src's gradient would be gathered where another value won.
  const Tensor rows = test::i64({2, 0, 1, 3, 1, 2, 0, 3}, {2, 4});
  test::expect_gradcheck([&](const Inputs& in) { return scatter(in[0], 1, rows, in[1]); },
                         {input({2, 4}), input({2, 4})});
  test::expect_gradcheck([&](const Inputs& in) { return scatter(in[0], 0, index, -1.0); },
                         {input({4, 4})});
}

TEST(OpsScatter, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor index = test::i64({0, 2}, {1, 2});
  test::expect_error([&] { (void)scatter(x, 0, index, x); },
                     {"scatter", "index 2 is out of range", "size 2"});
  test::expect_error([&] { (void)scatter(x, 1, index, x.to(kFloat32)); }, {"scatter", "dtype"});
  test::expect_error([&] { (void)scatter(x, 1, index.to(kFloat32), x); }, {"scatter", "int64"});
  test::expect_error([&] { (void)scatter(x, 1, test::i64({0}, {1}), 1.0); },
                     {"scatter", "same number of dimensions"});
  test::expect_error(
      [&] {
        (void)scatter(x, 1, test::i64({0, 0, 0}, {3, 1}), 1.0);
      },
      {"scatter", "larger than", "dimension 0"});
  test::expect_error(
      [&] {
        (void)scatter(x, 0, test::i64({0, 0, 0, 0}, {1, 4}), x);
      },
      {"scatter", "larger than src"});
  test::expect_error([&] { (void)scatter(x, 2, index, 0.0); }, {"scatter", "dimension 2"});
}

// ---- nonzero and masked_select -------------------------------------------------------------

TEST(OpsSelect, NonzeroMatchesPyTorch) {
  const Tensor x = fixture()["nonzero_a"];
  const Tensor expected = fixture()["nonzero_out"];
  for (const Tensor& input : {x, x.to(kFloat32), x.to(kFloat16), x.to(kBFloat16), ne(x, 0.0)}) {
    SCOPED_TRACE(dtype_name(input.dtype()));
    const Tensor coordinates = nonzero(input);
    EXPECT_EQ(coordinates.dtype(), kInt64);
    test::expect_close(coordinates, expected, 0.0, 0.0);
  }
  // A strided view is read in its own row-major order.
  const Tensor view = x.permute({2, 1, 0});
  test::expect_close(view.nonzero(), nonzero(view.contiguous()), 0.0, 0.0);
}

TEST(OpsSelect, NonzeroEdgeCases) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  test::expect_tensor(nonzero(test::f64({0, nan, -0.0, 2}, {4})), kInt64, {2, 1}, {1, 3});
  EXPECT_EQ(nonzero(zeros({2, 3})).shape(), (Shape{0, 2}));
  EXPECT_EQ(nonzero(zeros({2, 0, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(nonzero(scalar_tensor(3.0)).shape(), (Shape{1, 0}));
  EXPECT_EQ(nonzero(scalar_tensor(0.0)).shape(), (Shape{0, 0}));
  // 5000 elements (across CUDA's blocks): every 7th is non-zero.
  const Tensor every_seventh = eq(remainder(arange(5000.0), 7.0), 0.0);
  test::expect_close(nonzero(every_seventh.reshape({5, 1000})).select(1, 1),
                     remainder(arange(0.0, 5000.0, 7.0), 1000.0), 0.0, 0.0);
  test::expect_close(nonzero(every_seventh).select(1, 0), arange(0.0, 5000.0, 7.0), 0.0, 0.0);
}

TEST(OpsSelect, MaskedSelectMatchesPyTorch) {
  for (const std::string name : {"masked_select", "masked_select_broadcast"}) {
    const Tensor mask = fixture()[name + "_mask"].to(kBool);
    for (DType dtype : {kFloat64, kFloat32}) {
      test::expect_fixture_case(
          fixture(), name, {"a"}, {"a"},
          [&](const Inputs& in) { return masked_select(in[0], mask); }, dtype, tolerance(dtype));
    }
  }
  const Tensor ints = test::i64({1, 2, 3, 4}, {2, 2});
  test::expect_tensor(ints.masked_select(test::boolean({false, true}, {2})), kInt64, {2}, {2, 4});
  EXPECT_EQ(masked_select(ints, zeros({2, 2}, kBool)).shape(), (Shape{0}));
}

TEST(OpsSelect, GradcheckInFloat64) {
  Generator gen(14);
  const Tensor mask = gt(randn({3, 1, 4}, TensorOptions(kFloat64), &gen), 0.0);
  test::expect_gradcheck([&](const Inputs& in) { return masked_select(in[0], mask); },
                         {randn({3, 5, 4}, TensorOptions(kFloat64), &gen).set_requires_grad(true)});
  test::expect_gradcheck([&](const Inputs& in) { return masked_select(in[0], mask); },
                         {randn({5, 1}, TensorOptions(kFloat64), &gen).set_requires_grad(true)});
}

TEST(OpsSelect, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_error([&] { (void)nonzero(Tensor()); }, {"nonzero", "undefined"});
  test::expect_error([&] { (void)masked_select(x, gt(x, 2.0).to(kUInt8)); },
                     {"masked_select", "bool", "u8"});
  test::expect_error(
      [&] {
        (void)masked_select(x, test::boolean({true, false}, {2}));
      },
      {"masked_select", "[2,3]", "[2]"});
  test::expect_error([&] { (void)masked_select(x, Tensor()); }, {"masked_select", "undefined"});
}

// ---- advanced indexing -----------------------------------------------------------------------

TEST(OpsIndex, IndexMatchesPyTorch) {
  const Tensor rows = fixture()["index_two_index0"], columns = fixture()["index_two_index1"];
  const Tensor repeated = fixture()["index_repeat_index0"];
  const Tensor mask = fixture()["index_mask_mask"].to(kBool);
  const Tensor row_mask = fixture()["index_mask_int_mask"].to(kBool);
  const Tensor picks = fixture()["index_mask_int_index1"];
  const std::vector<std::pair<std::string, std::function<Tensor(const Inputs&)>>> cases = {
      // Broadcast int64 indices, negative ones counting from the end.
      {"index_two",
       [&](const Inputs& in) {
         return index(in[0], {rows, columns});
       }},
      // Repeats: the gradient adds up.
      {"index_repeat", [&](const Inputs& in) { return in[0].index({repeated}); }},
      {"index_mask", [&](const Inputs& in) { return index(in[0], {mask}); }},
      {"index_mask_int",
       [&](const Inputs& in) {
         return index(in[0], {row_mask, picks});
       }},
  };
  for (const auto& [name, fn] : cases) {
    for (DType dtype : {kFloat64, kFloat32}) {
      // Repeated positions add their gradients, in another order than PyTorch's.
      const test::Tolerance tol =
          name == "index_repeat" ? arithmetic_tolerance(dtype) : tolerance(dtype);
      test::expect_fixture_case(fixture(), name, {"a"}, {"a"}, fn, dtype, tol);
    }
  }
  // x[mask] is masked_select's rows.
  const Tensor x = fixture()["index_mask_a"];
  test::expect_close(index(x, {mask}).reshape({-1}),
                     masked_select(x, mask.unsqueeze(2).expand({4, 5, 3})), 0.0, 0.0);
}

TEST(OpsIndex, IndexPutMatchesPyTorch) {
  const Tensor rows = fixture()["index_put_index0"], columns = fixture()["index_put_index1"];
  const Tensor repeated = fixture()["index_put_accumulate_index0"];
  const Tensor mask = fixture()["index_put_mask_mask"].to(kBool);
  for (DType dtype : {kFloat64, kFloat32}) {
    // Accumulated values and broadcast values' gradients add up in another order than
    // PyTorch's.
    const test::Tolerance tol = arithmetic_tolerance(dtype);
    test::expect_fixture_case(
        fixture(), "index_put", {"a", "b"}, {"a", "b"},
        [&](const Inputs& in) {
          return index_put(in[0], {rows, columns}, in[1]);
        },
        dtype, tol);
    test::expect_fixture_case(
        fixture(), "index_put_accumulate", {"a", "b"}, {"a", "b"},
        [&](const Inputs& in) { return index_put(in[0], {repeated}, in[1], true); }, dtype, tol);
    test::expect_fixture_case(
        fixture(), "index_put_mask", {"a", "b"}, {"a", "b"},
        [&](const Inputs& in) { return index_put(in[0], {mask}, in[1]); }, dtype, tol);
  }
}

TEST(OpsIndex, IndexPutInPlace) {
  // Repeated positions without accumulate: the CPU keeps the last value.
  Tensor x = zeros({4}, kInt64);
  x.index_put_({test::i64({1, 3, 1}, {3})}, test::i64({7, 8, 9}, {3}));
  test::expect_tensor(x, kInt64, {4}, {0, 9, 0, 8});
  x.index_put_({test::i64({1, 1, -1}, {3})}, test::i64({1}, {1}), true);
  test::expect_tensor(x, kInt64, {4}, {0, 11, 0, 9});
  // A strided view is updated through its strides; the version moves on.
  Tensor base = zeros({3, 2});
  Tensor view = base.t();
  const uint64_t version = base.version();
  view.index_put_({test::boolean({false, true}, {2}), test::i64({2}, {1})}, scalar_tensor(5.0));
  test::expect_values(base, {3, 2}, {0, 0, 0, 0, 0, 5});
  EXPECT_GT(base.version(), version);
  // Refused where the tape would lose track.
  Tensor leaf = zeros({3}).set_requires_grad(true);
  test::expect_error([&] { leaf.index_put_({test::i64({0}, {1})}, scalar_tensor(1.0)); },
                     {"index_put_", "requires grad", "index_put"});
  Tensor plain = zeros({3});
  const Tensor values = ones({1}).set_requires_grad(true);
  test::expect_error([&] { plain.index_put_({test::i64({0}, {1})}, values); },
                     {"index_put_", "values", "require grad"});
}

TEST(OpsIndex, GradcheckInFloat64) {
  Generator gen(15);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const Tensor rows = test::i64({2, 0, -1, 2}, {2, 2}), columns = test::i64({1, 3}, {2});
  const Tensor mask = test::boolean({true, false, true}, {3});
  const std::vector<std::pair<std::string, test::TensorFn>> ops = {
      {"index",
       [&](const Inputs& in) {
         return index(in[0], {rows, columns});
       }},
      {"index_mask", [&](const Inputs& in) { return index(in[0], {mask}); }},
      {"index_put",
       [&](const Inputs& in) {
         return index_put(in[0], {mask}, in[1].narrow(0, 0, 1).narrow(1, 0, 1));
       }},
      {"index_put_accumulate",
       [&](const Inputs& in) {
         return index_put(in[0], {rows, columns}, in[1].narrow(0, 0, 2).narrow(1, 0, 2), true);
       }},
  };
  for (const auto& [name, fn] : ops) {
    SCOPED_TRACE(name);
    test::expect_gradcheck(fn, {input({3, 4}), input({3, 4})});
  }
}

TEST(OpsIndex, MisuseIsAnErrorNamingTheOp) {
  const Tensor x = test::f64({1, 2, 3, 4, 5, 6}, {2, 3});
  test::expect_error([&] { (void)index(x, {}); }, {"index", "at least one"});
  test::expect_error([&] { (void)index(x, {test::i64({2}, {1})}); },
                     {"index", "index 2 is out of range", "dimension 0", "size 2"});
  test::expect_error(
      [&] {
        (void)index(x, {test::i64({0}, {1}), test::i64({-4}, {1})});
      },
      {"index", "-4", "dimension 1"});
  test::expect_error(
      [&] {
        (void)index(x, {test::i64({0}, {1}), test::i64({0}, {1}), test::i64({0}, {1})});
      },
      {"index", "too many indices"});
  test::expect_error([&] { (void)index(x, {test::f64({0}, {1})}); }, {"index", "int64", "f64"});
  test::expect_error(
      [&] {
        (void)index(x, {test::boolean({true, false, true}, {3})});
      },
      {"index", "mask", "[3]"});
  test::expect_error(
      [&] {
        (void)index(x, {test::i64({0, 1}, {2}), test::i64({0, 1, 2}, {3})});
      },
      {"index", "[2]", "[3]"});
  test::expect_error(
      [&] {
        (void)index_put(x, {test::i64({0}, {1})}, test::f64({1, 2}, {2}));
      },
      {"index_put", "cannot be broadcast", "[1,3]"});
  test::expect_error([&] { (void)index_put(x, {test::i64({0}, {1})}, test::f32({1}, {1})); },
                     {"index_put", "dtype"});
}

}  // namespace
}  // namespace strata
