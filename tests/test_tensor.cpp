// Tensor basics on the CPU: creation, dtypes and conversions, host access, views that share
// storage (checked by storage pointer and by writing through them), copies, in-place updates,
// printing, devices and seeded random fills.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "strata/philox.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_close;
using test::expect_tensor;
using test::expect_values;
using test::f32;
using test::f64;
using test::i64;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// 0, 1, ..., n-1 as float32 of `shape`.
Tensor iota_f32(const Shape& shape) {
  std::vector<float> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return f32(v, shape);
}

// ---- the helpers in test_util.h must be able to fail --------------------------------------
TEST(TestUtil, ExpectValuesCatchesWrongValuesShapesAndDtypes) {
  Tensor t = f64({1, 2, 3}, {3});
  expect_values(t, {3}, {1, 2, 3});
  EXPECT_NONFATAL_FAILURE(expect_values(t, {3}, {1, 2, 3.001}), "worst at [2]");
  EXPECT_NONFATAL_FAILURE(expect_values(t, {1, 3}, {1, 2, 3}), "shape mismatch");
  EXPECT_NONFATAL_FAILURE(expect_tensor(t, kFloat32, {3}, {1, 2, 3}), "dtype mismatch");
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NONFATAL_FAILURE(expect_values(t, {3}, {1, 2, kNaN}), "differ");
  // Tolerance is atol + rtol * |expected|.
  expect_values(f64({100.5}), {1}, {100}, 0.005, 0.0);
  EXPECT_NONFATAL_FAILURE(expect_values(f64({100.6}), {1}, {100}, 0.005, 0.0), "differ");
  expect_close(f32({1, 2}), f64({1, 2}));
  EXPECT_NONFATAL_FAILURE(expect_close(f32({1, 2}), f64({1, 2.1})), "worst at [1]");
}

TEST(TestUtil, ExpectErrorAndGradcheckCanFail) {
  EXPECT_NONFATAL_FAILURE(test::expect_error([] {}, {}), "did not throw");
  EXPECT_NONFATAL_FAILURE(test::expect_error([] { zeros({2, 3}).view({4}); }, {"no such text"}),
                          "lacks");
  Tensor x = f64({0.5, 1.5}, {2}, true);
  EXPECT_NONFATAL_FAILURE(
      test::expect_gradcheck([](const std::vector<Tensor>& in) { return in[0] * in[0].detach(); },
                             {x}),
      "gradcheck failed");
}

// ---- creation -----------------------------------------------------------------------------
TEST(TensorCreation, ZerosDefaultsToFloat32Cpu) {
  Tensor t = zeros({2, 3});
  ASSERT_TRUE(t.defined());
  EXPECT_EQ(t.dtype(), kFloat32);
  EXPECT_EQ(t.device(), Device(kCPU));
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(), 2);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_FALSE(t.requires_grad());
  expect_values(t, {2, 3}, {0, 0, 0, 0, 0, 0});
}

// Found by fuzzing read_idx: a tensor with a 0-size dimension in the middle was not contiguous.
TEST(TensorCreation, EmptyTensorsAreContiguous) {
  for (const Shape& shape : {Shape{0}, Shape{3, 0, 2}, Shape{0, 4}, Shape{5, 0}}) {
    const Tensor t = Tensor::empty(shape);
    EXPECT_TRUE(t.is_contiguous()) << shape_str(shape);
    EXPECT_EQ(t.contiguous().impl(), t.impl()) << "contiguous() copied an empty tensor";
    EXPECT_EQ(t.view({-1}).numel(), 0);
  }
}

// Found by fuzzing read_idx: a shape holding no element can still have strides past int64.
TEST(TensorCreation, ShapesTooLargeToAddressAreErrors) {
  test::expect_error([] { (void)Tensor::empty({4294902535, 2324335359, 0}); },
                     {"empty", "[4294902535,2324335359,0]", "too large"});
  test::expect_error([] { (void)zeros({int64_t{1} << 40, int64_t{1} << 40}); },
                     {"empty", "too large"});
  EXPECT_EQ(Tensor::empty({int64_t{1} << 40, 0}).numel(), 0);  // addressable, and empty
}

TEST(TensorCreation, OnesAndFullWithDtypes) {
  expect_tensor(ones({3}, kFloat64), kFloat64, {3}, {1, 1, 1});
  expect_tensor(ones({2}, kInt64), kInt64, {2}, {1, 1});
  expect_tensor(full({2, 2}, 1.5), kFloat32, {2, 2}, {1.5, 1.5, 1.5, 1.5});
  expect_tensor(full({3}, 7, kInt64), kInt64, {3}, {7, 7, 7});
  expect_tensor(full({2}, 200, kUInt8), kUInt8, {2}, {200, 200});
  expect_tensor(full({2}, 1, kBool), kBool, {2}, {1, 1});
  expect_tensor(zeros({2}, kBool), kBool, {2}, {0, 0});
}

TEST(TensorCreation, LikeKeepsShapeAndDtype) {
  Tensor base = zeros({2, 3}, kFloat64);
  expect_tensor(zeros_like(base), kFloat64, {2, 3}, std::vector<double>(6, 0.0));
  expect_tensor(ones_like(base), kFloat64, {2, 3}, std::vector<double>(6, 1.0));
  expect_tensor(full_like(i64({1, 2}), 4), kInt64, {2}, {4, 4});
}

TEST(TensorCreation, ZeroSizedTensor) {
  Tensor t = zeros({0, 3});
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.shape(), (Shape{0, 3}));
  EXPECT_TRUE(t.to_vector<float>().empty());
}

TEST(TensorCreation, ArangeIntegerDefault) {
  expect_tensor(arange(5), kInt64, {5}, {0, 1, 2, 3, 4});
  expect_tensor(arange(2, 9, 3), kInt64, {3}, {2, 5, 8});
}

TEST(TensorCreation, ArangeFloatSteps) {
  expect_tensor(arange(1, 2, 0.25, kFloat32), kFloat32, {4}, {1, 1.25, 1.5, 1.75});
  // 0.1 is not exact in binary; PyTorch and NumPy give ceil((1 - 0) / 0.1) = 10 elements.
  Tensor t = arange(0, 1, 0.1, kFloat64);
  std::vector<double> expected(10);
  for (int i = 0; i < 10; ++i) expected[i] = 0.1 * i;
  expect_tensor(t, kFloat64, {10}, expected);
  // A step that does not divide the range: ceil(2.5 / 1) = 3 elements.
  expect_tensor(arange(0, 2.5, 1, kFloat64), kFloat64, {3}, {0, 1, 2});
}

TEST(TensorCreation, ArangeNegativeStep) {
  expect_tensor(arange(5, 0, -1.5, kFloat64), kFloat64, {4}, {5, 3.5, 2, 0.5});
  expect_tensor(arange(3, -1, -1), kInt64, {4}, {3, 2, 1, 0});
}

TEST(TensorCreation, FromVectorShapes) {
  Tensor a = f32({1, 2, 3, 4, 5, 6}, {2, 3});
  expect_tensor(a, kFloat32, {2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(a.strides(), (Strides{3, 1}));
  Tensor b = from_vector<double>({1, 2, 3});
  expect_tensor(b, kFloat64, {3}, {1, 2, 3});  // 1-D by default, dtype of T
  expect_tensor(from_vector<int64_t>({-5, 7}), kInt64, {2}, {-5, 7});
  expect_tensor(from_vector<uint8_t>({0, 255}), kUInt8, {2}, {0, 255});
  expect_tensor(from_vector<bool>({true, false, true}), kBool, {3}, {1, 0, 1});
  expect_tensor(f64({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2}), kFloat64, {2, 2, 2},
                {1, 2, 3, 4, 5, 6, 7, 8});
}

TEST(TensorCreation, FromVectorWithOptionsConverts) {
  Tensor t = from_vector<double>({1.5, -2.0}, {2, 1}, TensorOptions(kFloat32));
  expect_tensor(t, kFloat32, {2, 1}, {1.5, -2.0});
  Tensor g = from_vector<double>({1, 2}, {2}, TensorOptions(kFloat64).requires_grad());
  EXPECT_TRUE(g.requires_grad());
  EXPECT_TRUE(g.is_leaf());
}

TEST(TensorCreation, ScalarTensorIsZeroDim) {
  Tensor s = scalar_tensor(2.5);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.shape(), Shape{});
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.dtype(), kFloat32);
  EXPECT_EQ(s.item<float>(), 2.5f);
  Tensor i = scalar_tensor(3, kInt64);
  EXPECT_EQ(i.dtype(), kInt64);
  EXPECT_EQ(i.item<int64_t>(), 3);
}

TEST(TensorCreation, EmptyHasShapeAndIsContiguous) {
  Tensor t = empty({2, 3, 4}, kFloat64);
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.dtype(), kFloat64);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.strides(), (Strides{12, 4, 1}));
  ASSERT_NE(t.storage(), nullptr);
  EXPECT_GE(t.storage()->nbytes(), 24 * sizeof(double));
  Tensor u = Tensor::empty({5}, kInt64);
  EXPECT_EQ(u.numel(), 5);
  EXPECT_EQ(u.dtype(), kInt64);
}

TEST(TensorCreation, DefaultConstructedIsUndefined) {
  Tensor t;
  EXPECT_FALSE(t.defined());
}

// ---- dtypes -------------------------------------------------------------------------------
TEST(TensorDtype, NamesSizesAndPromotion) {
  EXPECT_STREQ(dtype_name(kFloat32), "f32");
  EXPECT_STREQ(dtype_name(kFloat64), "f64");
  EXPECT_STREQ(dtype_name(kInt64), "i64");
  EXPECT_STREQ(dtype_name(kUInt8), "u8");
  EXPECT_STREQ(dtype_name(kBool), "bool");
  EXPECT_EQ(zeros({1}, kFloat32).element_size(), 4u);
  EXPECT_EQ(zeros({1}, kFloat64).element_size(), 8u);
  EXPECT_EQ(zeros({1}, kInt64).element_size(), 8u);
  EXPECT_EQ(zeros({1}, kUInt8).element_size(), 1u);
  EXPECT_EQ(zeros({1}, kBool).element_size(), 1u);
  EXPECT_EQ(promote_types(kInt64, kFloat32), kFloat32);
  EXPECT_EQ(promote_types(kFloat32, kFloat64), kFloat64);
  EXPECT_EQ(promote_types(kBool, kUInt8), kUInt8);
  EXPECT_EQ(promote_types(kUInt8, kInt64), kInt64);
  EXPECT_EQ(promote_types(kBool, kBool), kBool);
  EXPECT_EQ(promote_types(kFloat64, kBool), kFloat64);
}

TEST(TensorDtype, FloatToIntTruncatesTowardZero) {
  Tensor t = f32({1.5f, -2.7f, 0.0f, 3.9f});
  expect_tensor(t.to(kInt64), kInt64, {4}, {1, -2, 0, 3});
}

TEST(TensorDtype, ToBoolIsNonZero) {
  expect_tensor(f32({1.5f, -2.0f, 0.0f, 0.25f}).to(kBool), kBool, {4}, {1, 1, 0, 1});
  expect_tensor(i64({0, 5, -1}).to(kBool), kBool, {3}, {0, 1, 1});
}

TEST(TensorDtype, FromBoolAndUInt8) {
  Tensor b = from_vector<bool>({true, false, true});
  expect_tensor(b.to(kFloat32), kFloat32, {3}, {1, 0, 1});
  expect_tensor(b.to(kInt64), kInt64, {3}, {1, 0, 1});
  Tensor u = from_vector<uint8_t>({0, 7, 255});
  expect_tensor(u.to(kFloat64), kFloat64, {3}, {0, 7, 255});
  expect_tensor(u.to(kInt64), kInt64, {3}, {0, 7, 255});
}

TEST(TensorDtype, FloatWidths) {
  Tensor d = f64({0.1, 1e10, -3.25});
  Tensor s = d.to(kFloat32);
  EXPECT_EQ(s.dtype(), kFloat32);
  std::vector<float> got = s.to_vector<float>();
  EXPECT_EQ(got[0], 0.1f);
  EXPECT_EQ(got[1], 1e10f);
  EXPECT_EQ(got[2], -3.25f);
  expect_tensor(s.to(kFloat64), kFloat64, {3},
                {static_cast<double>(0.1f), static_cast<double>(1e10f), -3.25});
  expect_tensor(i64({-3, 4}).to(kFloat64), kFloat64, {2}, {-3, 4});
}

TEST(TensorDtype, ToSameDtypeKeepsValues) {
  Tensor t = f64({1, 2}, {2});
  Tensor u = t.to(kFloat64);
  expect_tensor(u, kFloat64, {2}, {1, 2});
}

TEST(TensorDtype, ConversionOfNonContiguousView) {
  Tensor t = iota_f32({2, 3}).t();  // [3,2]: 0 3 / 1 4 / 2 5
  expect_tensor(t.to(kInt64), kInt64, {3, 2}, {0, 3, 1, 4, 2, 5});
}

// ---- host access --------------------------------------------------------------------------
TEST(TensorHostAccess, ItemConverts) {
  EXPECT_DOUBLE_EQ(f32({2.5f}).item<double>(), 2.5);
  EXPECT_EQ(f64({3.0}).item<int64_t>(), 3);
  EXPECT_EQ(i64({-4}).item<float>(), -4.0f);
  EXPECT_EQ(f64({7.0}, {1, 1}).item<double>(), 7.0);  // any one-element shape
  EXPECT_TRUE(from_vector<bool>({true}).item<bool>());
  EXPECT_EQ(from_vector<uint8_t>({9}).item<uint8_t>(), 9);
}

TEST(TensorHostAccess, ItemOfSelectedElement) {
  Tensor t = iota_f32({3, 4});
  EXPECT_EQ(t.select(0, 2).select(0, 1).item<float>(), 9.0f);
}

TEST(TensorHostAccess, ToVectorConvertsAndFollowsViews) {
  Tensor t = f32({1.5f, 2.5f, -3.5f});
  EXPECT_EQ(t.to_vector<double>(), (std::vector<double>{1.5, 2.5, -3.5}));
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, -3}));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1.5f, 2.5f, -3.5f}));
  Tensor m = iota_f32({2, 3});
  EXPECT_EQ(m.t().to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  std::vector<bool> b = from_vector<bool>({false, true}).to_vector<bool>();
  EXPECT_EQ(b, (std::vector<bool>{false, true}));
}

TEST(TensorHostAccess, DataPointerMatchesDtype) {
  Tensor t = f64({1, 2, 3, 4}, {2, 2});
  double* p = t.data<double>();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p[3], 4.0);
  Tensor row = t.select(0, 1);  // element 0 of the view is element 2 of storage
  EXPECT_EQ(row.raw_data(), static_cast<void*>(p + 2));
  EXPECT_EQ(row.data<double>()[1], 4.0);
}

// ---- shape and strides --------------------------------------------------------------------
TEST(TensorLayout, ShapeStridesAndSizes) {
  Tensor t = zeros({2, 3, 4});
  EXPECT_EQ(t.strides(), (Strides{12, 4, 1}));
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 4);
  EXPECT_EQ(t.size(-3), 2);
  EXPECT_EQ(t.stride(0), 12);
  EXPECT_EQ(t.stride(-2), 4);
  EXPECT_EQ(t.offset(), 0);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(shape_str({2, 3}), "[2,3]");
  EXPECT_EQ(numel_of({2, 3, 4}), 24);
  EXPECT_EQ(numel_of({}), 1);
  EXPECT_EQ(contiguous_strides({2, 3, 4}), (Strides{12, 4, 1}));
}

TEST(TensorLayout, BroadcastShapesAndNormalizeAxis) {
  EXPECT_EQ(broadcast_shapes({3, 1}, {4}, "test"), (Shape{3, 4}));
  EXPECT_EQ(broadcast_shapes({2, 1, 3}, {5, 1}, "test"), (Shape{2, 5, 3}));
  EXPECT_EQ(broadcast_shapes({}, {2, 2}, "test"), (Shape{2, 2}));
  EXPECT_EQ(normalize_axis(-1, 3, "test"), 2);
  EXPECT_EQ(normalize_axis(1, 3, "test"), 1);
  EXPECT_THROW(normalize_axis(3, 3, "test"), Error);
  EXPECT_THROW(normalize_axis(-4, 3, "test"), Error);
}

// ---- views --------------------------------------------------------------------------------
TEST(TensorViews, ViewSharesStorage) {
  Tensor base = iota_f32({12});
  Tensor v = base.view({3, 4});
  EXPECT_EQ(v.storage().get(), base.storage().get());
  EXPECT_EQ(v.shape(), (Shape{3, 4}));
  EXPECT_EQ(v.strides(), (Strides{4, 1}));
  expect_values(v, {3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  // Writing through the view changes the base.
  v.select(0, 1).fill_(-1);
  expect_values(base, {12}, {0, 1, 2, 3, -1, -1, -1, -1, 8, 9, 10, 11});
}

TEST(TensorViews, ViewInfersMinusOne) {
  Tensor base = iota_f32({12});
  EXPECT_EQ(base.view({-1, 6}).shape(), (Shape{2, 6}));
  EXPECT_EQ(base.view({2, -1, 3}).shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(base.view({-1}).shape(), (Shape{12}));
  EXPECT_EQ(base.view({2, -1, 3}).storage().get(), base.storage().get());
}

TEST(TensorViews, ViewOfNonContiguousWithCompatibleStrides) {
  // Splitting a dimension of a transposed tensor only needs that dimension to be splittable.
  Tensor base = iota_f32({4, 6});
  Tensor t = base.t();  // [6,4], strides [1,6]
  Tensor v = t.view({2, 3, 4});
  EXPECT_EQ(v.storage().get(), base.storage().get());
  EXPECT_EQ(v.strides(), (Strides{3, 1, 6}));
  expect_close(v, t.contiguous().view({2, 3, 4}));
}

TEST(TensorViews, ReshapeOfContiguousIsView) {
  Tensor base = iota_f32({2, 6});
  Tensor r = base.reshape({3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_EQ(r.storage().get(), base.storage().get());
  expect_values(r, {3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
}

TEST(TensorViews, ReshapeOfTransposedCopies) {
  Tensor base = iota_f32({2, 3});
  Tensor t = base.t();  // [3,2]: 0 3 / 1 4 / 2 5
  Tensor r = t.reshape({6});
  EXPECT_NE(r.storage().get(), base.storage().get());
  EXPECT_TRUE(r.is_contiguous());
  expect_values(r, {6}, {0, 3, 1, 4, 2, 5});
  // The copy is independent of the base.
  r.fill_(9);
  expect_values(base, {2, 3}, {0, 1, 2, 3, 4, 5});
}

TEST(TensorViews, TransposeSwapsStrides) {
  Tensor base = iota_f32({2, 3});
  Tensor t = base.transpose(0, 1);
  EXPECT_EQ(t.storage().get(), base.storage().get());
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.strides(), (Strides{1, 3}));
  EXPECT_FALSE(t.is_contiguous());
  expect_values(t, {3, 2}, {0, 3, 1, 4, 2, 5});
  Tensor n = iota_f32({2, 3, 4}).transpose(-1, 0);  // negative dims
  EXPECT_EQ(n.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(n.strides(), (Strides{1, 4, 12}));
}

TEST(TensorViews, TOfTwoD) {
  Tensor base = iota_f32({2, 3});
  Tensor t = base.t();
  EXPECT_EQ(t.storage().get(), base.storage().get());
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  expect_values(t, {3, 2}, {0, 3, 1, 4, 2, 5});
  expect_close(t.t(), base);
}

TEST(TensorViews, PermuteReordersDims) {
  Tensor base = iota_f32({2, 3, 4});
  Tensor p = base.permute({2, 0, 1});
  EXPECT_EQ(p.storage().get(), base.storage().get());
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  // p[k][i][j] = base[i][j][k] = 12 i + 4 j + k
  std::vector<double> expected;
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) expected.push_back(12 * i + 4 * j + k);
  expect_values(p, {4, 2, 3}, expected);
  EXPECT_EQ(base.permute({-1, 0, 1}).shape(), (Shape{4, 2, 3}));
}

TEST(TensorViews, SliceWithStep) {
  Tensor base = iota_f32({3, 6});
  Tensor s = base.slice(1, 1, 5, 2);  // columns 1 and 3
  EXPECT_EQ(s.storage().get(), base.storage().get());
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(s.strides(), (Strides{6, 2}));
  EXPECT_EQ(s.offset(), 1);
  expect_values(s, {3, 2}, {1, 3, 7, 9, 13, 15});
  Tensor r = base.slice(0, 1, 3);  // rows 1 and 2
  EXPECT_EQ(r.shape(), (Shape{2, 6}));
  EXPECT_EQ(r.offset(), 6);
  EXPECT_TRUE(r.is_contiguous());
  // A step that does not divide the length: columns 0, 4 (ceil(6 / 4) = 2).
  expect_values(base.slice(1, 0, 6, 4), {3, 2}, {0, 4, 6, 10, 12, 16});
  // Writing through the slice.
  s.fill_(-1);
  expect_values(base.select(0, 0), {6}, {0, -1, 2, -1, 4, 5});
}

TEST(TensorViews, SliceClampsAndCountsNegativeFromEnd) {
  // PyTorch semantics: an end past the size is clamped; negative bounds count from the end.
  Tensor base = iota_f32({6});
  expect_values(base.slice(0, 2, 100), {4}, {2, 3, 4, 5});
  expect_values(base.slice(0, -2, 6), {2}, {4, 5});
  expect_values(base.slice(-1, 1, -1), {4}, {1, 2, 3, 4});
}

TEST(TensorViews, Narrow) {
  Tensor base = iota_f32({2, 6});
  Tensor n = base.narrow(1, 2, 3);
  EXPECT_EQ(n.storage().get(), base.storage().get());
  EXPECT_EQ(n.shape(), (Shape{2, 3}));
  EXPECT_EQ(n.offset(), 2);
  EXPECT_EQ(n.strides(), (Strides{6, 1}));
  expect_values(n, {2, 3}, {2, 3, 4, 8, 9, 10});
  expect_values(base.narrow(-1, 5, 1), {2, 1}, {5, 11});
  expect_values(base.narrow(1, -2, 2), {2, 2}, {4, 5, 10, 11});  // negative start, as PyTorch
}

TEST(TensorViews, SelectRemovesDim) {
  Tensor base = iota_f32({3, 4});
  Tensor row = base.select(0, 1);
  EXPECT_EQ(row.storage().get(), base.storage().get());
  EXPECT_EQ(row.shape(), (Shape{4}));
  EXPECT_EQ(row.offset(), 4);
  expect_values(row, {4}, {4, 5, 6, 7});
  Tensor col = base.select(1, 2);
  EXPECT_EQ(col.shape(), (Shape{3}));
  EXPECT_EQ(col.strides(), (Strides{4}));
  expect_values(col, {3}, {2, 6, 10});
  Tensor scalar = row.select(0, 3);
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<float>(), 7.0f);
}

TEST(TensorViews, SelectNegativeIndexAndDim) {
  Tensor base = iota_f32({3, 4});
  expect_values(base.select(-1, -1), {3}, {3, 7, 11});
  expect_values(base.select(0, -3), {4}, {0, 1, 2, 3});
}

TEST(TensorViews, ExpandUsesStrideZero) {
  Tensor base = f32({1, 2, 3}, {3, 1});
  Tensor e = base.expand({3, 4});
  EXPECT_EQ(e.storage().get(), base.storage().get());
  EXPECT_EQ(e.shape(), (Shape{3, 4}));
  EXPECT_EQ(e.strides(), (Strides{1, 0}));
  expect_values(e, {3, 4}, {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
  EXPECT_EQ(base.expand({-1, 2}).shape(), (Shape{3, 2}));
  // New leading dims.
  Tensor v = f32({1, 2, 3});
  Tensor lead = v.expand({2, 3});
  EXPECT_EQ(lead.strides(), (Strides{0, 1}));
  expect_values(lead, {2, 3}, {1, 2, 3, 1, 2, 3});
  EXPECT_EQ(v.expand({2, 2, -1}).shape(), (Shape{2, 2, 3}));
}

TEST(TensorViews, SqueezeAll) {
  Tensor base = iota_f32({1, 3, 1, 2});
  Tensor s = base.squeeze();
  EXPECT_EQ(s.storage().get(), base.storage().get());
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  expect_values(s, {3, 2}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(f32({5}, {1, 1}).squeeze().shape(), Shape{});
}

TEST(TensorViews, SqueezeOneDim) {
  Tensor base = iota_f32({1, 3, 1, 2});
  EXPECT_EQ(base.squeeze(2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(base.squeeze(0).shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(base.squeeze(-2).shape(), (Shape{1, 3, 2}));
  // A dim whose size is not 1 is left alone, as in PyTorch.
  EXPECT_EQ(base.squeeze(1).shape(), (Shape{1, 3, 1, 2}));
  EXPECT_EQ(base.squeeze(2).storage().get(), base.storage().get());
}

TEST(TensorViews, Unsqueeze) {
  Tensor base = iota_f32({2, 3});
  Tensor u0 = base.unsqueeze(0);
  EXPECT_EQ(u0.storage().get(), base.storage().get());
  EXPECT_EQ(u0.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(base.unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(base.unsqueeze(2).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(base.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(base.unsqueeze(-3).shape(), (Shape{1, 2, 3}));
  expect_values(base.unsqueeze(1), {2, 1, 3}, {0, 1, 2, 3, 4, 5});
  EXPECT_EQ(scalar_tensor(1).unsqueeze(0).shape(), (Shape{1}));
}

TEST(TensorViews, Flatten) {
  Tensor base = iota_f32({2, 3, 4});
  Tensor all = base.flatten();
  EXPECT_EQ(all.shape(), (Shape{24}));
  EXPECT_EQ(all.storage().get(), base.storage().get());
  EXPECT_EQ(base.flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(base.flatten(0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(base.flatten(-2, -1).shape(), (Shape{2, 12}));
  EXPECT_EQ(base.flatten(1, 1).shape(), (Shape{2, 3, 4}));
  // Flattening a transposed tensor copies, in the view's row-major order.
  expect_values(iota_f32({2, 3}).t().flatten(), {6}, {0, 3, 1, 4, 2, 5});
}

TEST(TensorViews, ChainedViewsKeepOffsets) {
  Tensor base = iota_f32({4, 5});
  Tensor v = base.slice(0, 1, 4).t().narrow(0, 2, 2).select(1, 1);  // base[2][2..3]
  EXPECT_EQ(v.storage().get(), base.storage().get());
  expect_values(v, {2}, {12, 13});
}

TEST(TensorViews, ContiguousOfTransposedCopies) {
  Tensor base = iota_f32({2, 3});
  Tensor t = base.t();
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_NE(c.storage().get(), base.storage().get());
  EXPECT_EQ(c.strides(), (Strides{2, 1}));
  expect_values(c, {3, 2}, {0, 3, 1, 4, 2, 5});
  EXPECT_TRUE(base.contiguous().is_same(base));  // already contiguous: *this
}

TEST(TensorViews, IsContiguousCases) {
  EXPECT_TRUE(iota_f32({3, 4}).slice(0, 1, 3).is_contiguous());
  EXPECT_FALSE(iota_f32({3, 4}).slice(1, 1, 3).is_contiguous());
  EXPECT_FALSE(iota_f32({3, 1}).expand({3, 4}).is_contiguous());
  EXPECT_TRUE(iota_f32({1, 4}).t().squeeze().is_contiguous());
}

TEST(TensorCopy, CloneIsIndependent) {
  Tensor a = f32({1, 2, 3, 4}, {2, 2});
  Tensor b = a.clone();
  EXPECT_NE(b.storage().get(), a.storage().get());
  expect_close(b, a);
  b.fill_(0);
  expect_values(a, {2, 2}, {1, 2, 3, 4});
  Tensor ct = a.t().clone();  // clone of a view keeps the view's values
  expect_values(ct, {2, 2}, {1, 3, 2, 4});
}

TEST(TensorCopy, CopyBroadcastsAndConverts) {
  Tensor dst = zeros({2, 3});
  dst.copy_(f64({1.5, 2, 3}));
  EXPECT_EQ(dst.dtype(), kFloat32);
  expect_values(dst, {2, 3}, {1.5, 2, 3, 1.5, 2, 3});
  dst.copy_(f32({7, 8}, {2, 1}));
  expect_values(dst, {2, 3}, {7, 7, 7, 8, 8, 8});
  Tensor ints = zeros({3}, kInt64);
  ints.copy_(f32({1.9f, -1.9f, 0.5f}));
  expect_values(ints, {3}, {1, -1, 0});
}

TEST(TensorCopy, CopyIntoTransposedView) {
  Tensor base = zeros({2, 3});
  base.t().copy_(f32({1, 2, 3, 4, 5, 6}, {3, 2}));
  expect_values(base, {2, 3}, {1, 3, 5, 2, 4, 6});
}

TEST(TensorInPlace, FillZeroAddMul) {
  Tensor t = zeros({2, 2}, kFloat64);
  t.fill_(2.5);
  expect_values(t, {2, 2}, {2.5, 2.5, 2.5, 2.5});
  t.add_(f64({1, 2, 3, 4}, {2, 2}));
  expect_values(t, {2, 2}, {3.5, 4.5, 5.5, 6.5});
  t.add_(f64({1, 1, 1, 1}, {2, 2}), -2.0);
  expect_values(t, {2, 2}, {1.5, 2.5, 3.5, 4.5});
  t.mul_(2);
  expect_values(t, {2, 2}, {3, 5, 7, 9});
  Tensor& same = t.zero_();
  EXPECT_TRUE(same.is_same(t));
  expect_values(t, {2, 2}, {0, 0, 0, 0});
}

TEST(TensorInPlace, AddBroadcastsOther) {
  Tensor t = zeros({2, 3});
  t.add_(f32({1, 2, 3}), 0.5);
  expect_values(t, {2, 3}, {0.5, 1, 1.5, 0.5, 1, 1.5});
}

TEST(TensorInPlace, OnViewsWriteToBase) {
  Tensor base = zeros({3, 4});
  base.slice(1, 0, 4, 2).fill_(1);  // columns 0 and 2
  base.select(0, 2).mul_(3);
  base.t().select(0, 3).add_(f32({10, 20, 30}));  // column 3
  expect_values(base, {3, 4}, {1, 0, 1, 10, 1, 0, 1, 20, 3, 0, 3, 30});
}

TEST(TensorInPlace, IntegerFill) {
  Tensor t = zeros({3}, kInt64);
  t.fill_(4);
  t.mul_(3);
  expect_tensor(t, kInt64, {3}, {12, 12, 12});
}

// ---- printing -----------------------------------------------------------------------------
TEST(TensorPrinting, StrShowsValues) {
  Tensor t = f32({1.5f, -2.0f, 3.25f});
  const std::string s = t.str();
  EXPECT_TRUE(contains(s, "1.5")) << s;
  EXPECT_TRUE(contains(s, "-2")) << s;
  EXPECT_TRUE(contains(s, "3.25")) << s;
  std::ostringstream out;
  out << t;
  EXPECT_EQ(out.str(), s);
}

TEST(TensorPrinting, TwoDimsNestRowsAndNamesDtype) {
  Tensor t = f64({1, 2, 3, 4.5, 5, 6}, {2, 3});
  const std::string s = t.str();
  EXPECT_TRUE(contains(s, "4.5")) << s;
  // Rows appear as nested brackets or the shape is printed.
  const auto brackets = std::count(s.begin(), s.end(), '[');
  EXPECT_TRUE(brackets >= 3 || contains(s, "[2,3]") || contains(s, "[2, 3]")) << s;
  EXPECT_TRUE(contains(s, "f64") || contains(s, "float64")) << s;
  EXPECT_TRUE(contains(i64({7, 8}).str(), "7"));
  EXPECT_TRUE(contains(from_vector<bool>({true, false}).str(), "true") ||
              contains(from_vector<bool>({true, false}).str(), "True") ||
              contains(from_vector<bool>({true, false}).str(), "1"));
}

TEST(TensorPrinting, NonContiguousPrintsViewValues) {
  Tensor t = f32({1.5f, 2.5f, 3.5f, 4.5f}, {2, 2}).t();
  const std::string s = t.str();
  // Row-major order of the view: 1.5 3.5 2.5 4.5.
  const auto p15 = s.find("1.5"), p35 = s.find("3.5"), p25 = s.find("2.5");
  ASSERT_NE(p15, std::string::npos) << s;
  ASSERT_NE(p35, std::string::npos) << s;
  ASSERT_NE(p25, std::string::npos) << s;
  EXPECT_LT(p15, p35) << s;
  EXPECT_LT(p35, p25) << s;
}

// ---- devices ------------------------------------------------------------------------------
TEST(TensorDevice, ParseAndStr) {
  EXPECT_EQ(Device::parse("cpu"), Device(kCPU));
  EXPECT_EQ(Device::parse("cuda"), Device(kCUDA, 0));
  EXPECT_EQ(Device::parse("cuda:1"), Device(kCUDA, 1));
  EXPECT_EQ(Device(kCPU).str(), "cpu");
  EXPECT_EQ(Device(kCUDA).str(), "cuda:0");
  EXPECT_EQ(Device(kCUDA, 3).str(), "cuda:3");
  EXPECT_TRUE(Device::parse("cpu").is_cpu());
  EXPECT_TRUE(Device::parse("cuda:2").is_cuda());
  std::ostringstream out;
  out << Device(kCUDA, 1);
  EXPECT_EQ(out.str(), "cuda:1");
  EXPECT_EQ(Device::parse(Device(kCUDA, 2).str()), Device(kCUDA, 2));
}

TEST(TensorDevice, ToSameDeviceReturnsSelf) {
  Tensor t = ones({2});
  EXPECT_TRUE(t.to(Device(kCPU)).is_same(t));
  EXPECT_TRUE(t.cpu().is_same(t));
}

TEST(TensorDevice, Tf32IsOffByDefault) {
  EXPECT_FALSE(allow_tf32());
  set_allow_tf32(true);
  EXPECT_TRUE(allow_tf32());
  set_allow_tf32(false);
  EXPECT_FALSE(allow_tf32());
}

// ---- random -------------------------------------------------------------------------------
TEST(TensorRandom, SameSeedSameValues) {
  Generator g1(42), g2(42), g3(43);
  Tensor a = rand({1000}, {}, &g1);
  Tensor b = rand({1000}, {}, &g2);
  Tensor c = rand({1000}, {}, &g3);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  // Draws advance the generator, so the next draw differs.
  EXPECT_EQ(g1.offset(), 1000u);
  Tensor a2 = rand({1000}, {}, &g1);
  EXPECT_NE(a.to_vector<float>(), a2.to_vector<float>());
  // Rewinding the offset reproduces the second draw.
  g2.set_offset(1000);
  EXPECT_EQ(rand({1000}, {}, &g2).to_vector<float>(), a2.to_vector<float>());
}

TEST(TensorRandom, RandInUnitInterval) {
  Generator g(7);
  Tensor t = rand({10000}, kFloat64, &g);
  EXPECT_EQ(t.dtype(), kFloat64);
  double sum = 0;
  for (double v : t.to_vector<double>()) {
    ASSERT_GE(v, 0.0);
    ASSERT_LT(v, 1.0);
    sum += v;
  }
  // Mean of 10k uniforms: std error 0.29 / 100 = 0.003; 0.015 is 5 sigma.
  EXPECT_NEAR(sum / 10000, 0.5, 0.015);
}

TEST(TensorRandom, FollowsThePhiloxRule) {
  // backend.h / philox.h: element i of a fill with (seed, offset) uses philox(offset + i, seed).
  Generator g(1234);
  g.set_offset(10);
  std::vector<double> u = rand({5}, kFloat64, &g).to_vector<double>();
  std::vector<float> uf = rand({5}, kFloat32, &g).to_vector<float>();  // offset 15
  std::vector<double> n = randn({5}, kFloat64, &g).to_vector<double>();  // offset 20
  std::vector<int64_t> r = randint(-3, 9, {5}, kInt64, &g).to_vector<int64_t>();  // offset 25
  EXPECT_EQ(g.offset(), 30u);
  for (uint64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(u[i], philox::uniform_double(philox::philox4x32_10(10 + i, 1234))) << i;
    EXPECT_EQ(uf[i], philox::uniform_float(philox::philox4x32_10(15 + i, 1234))) << i;
    EXPECT_DOUBLE_EQ(n[i], philox::normal_double(philox::philox4x32_10(20 + i, 1234))) << i;
    EXPECT_EQ(r[i], philox::uniform_int(philox::philox4x32_10(25 + i, 1234), -3, 9)) << i;
  }
}

TEST(TensorRandom, RandnMeanAndStd) {
  Generator g(2024);
  Tensor t = randn({100000}, {}, &g);
  EXPECT_EQ(t.dtype(), kFloat32);
  double sum = 0, sq = 0;
  for (double v : t.to_vector<double>()) {
    sum += v;
    sq += v * v;
  }
  const double mean = sum / 1e5, var = sq / 1e5 - mean * mean;
  // Std error of the mean is 1/sqrt(1e5) = 0.0032 and of the std about 0.0022: 0.02 is > 6 sigma.
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(var), 1.0, 0.02);
}

TEST(TensorRandom, RandintInRange) {
  Generator g(5);
  Tensor t = randint(3, 7, {1000}, kInt64, &g);
  EXPECT_EQ(t.dtype(), kInt64);
  EXPECT_EQ(t.shape(), (Shape{1000}));
  std::set<int64_t> seen;
  for (int64_t v : t.to_vector<int64_t>()) {
    ASSERT_GE(v, 3);
    ASSERT_LT(v, 7);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 4u);  // 1000 draws hit each of 4 values (miss prob ~ 4 * 0.75^1000)
  Generator g2(5);
  EXPECT_EQ(randint(3, 7, {1000}, kInt64, &g2).to_vector<int64_t>(), t.to_vector<int64_t>());
}

TEST(TensorRandom, ManualSeedResetsDefaultGenerator) {
  manual_seed(77);
  EXPECT_EQ(default_generator().seed(), 77u);
  EXPECT_EQ(default_generator().offset(), 0u);
  std::vector<float> a = rand({64}).to_vector<float>();
  std::vector<float> a_next = rand({64}).to_vector<float>();
  manual_seed(77);
  std::vector<float> b = rand({64}).to_vector<float>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, a_next);
  manual_seed(78);
  EXPECT_NE(rand({64}).to_vector<float>(), a);
}

TEST(TensorRandom, GeneratorManualSeed) {
  Generator g(1);
  std::vector<double> first = randn({16}, kFloat64, &g).to_vector<double>();
  g.manual_seed(1);
  EXPECT_EQ(g.offset(), 0u);
  EXPECT_EQ(randn({16}, kFloat64, &g).to_vector<double>(), first);
}

TEST(TensorRandom, RequiresGradOption) {
  Generator g(3);
  Tensor t = randn({3}, TensorOptions(kFloat64).requires_grad(), &g);
  EXPECT_TRUE(t.requires_grad());
  EXPECT_TRUE(t.is_leaf());
  EXPECT_EQ(t.dtype(), kFloat64);
}

}  // namespace
}  // namespace strata
