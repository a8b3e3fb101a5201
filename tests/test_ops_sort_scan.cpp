// sort, argsort, topk and kthvalue: values, indices and gradients against PyTorch
// (tests/data/gen_ops_sort_scan.py), float64 gradchecks, every dtype the kernels take, rows of
// 1 and 5000 elements (across the CUDA kernels' block sizes), and the errors.
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

}  // namespace
}  // namespace strata
