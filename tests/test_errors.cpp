// User errors: each must throw strata::Error whose message names the op and shows the values
// involved (STYLE rule 7), checked by substrings such as "matmul", "[3,4]", "[5,6]".
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::expect_error;
using test::expect_tensor;
using test::f32;
using test::f64;
using test::i64;

Tensor iota(const Shape& shape, DType dtype = kFloat32) {
  return arange(0, static_cast<double>(numel_of(shape)), 1, dtype).view(shape);
}

// ---- shapes -------------------------------------------------------------------------------
TEST(Errors, AddNotBroadcastable) {
  expect_error([] { add(zeros({2, 3}), zeros({4})); }, {"add", "[2,3]", "[4]"});
  expect_error([] { zeros({2, 3}) - zeros({3, 2}); }, {"sub", "[2,3]", "[3,2]"});
  expect_error([] { mul(zeros({2}), zeros({3})); }, {"mul", "[2]", "[3]"});
  expect_error([] { div(zeros({2}), zeros({3})); }, {"div", "[2]", "[3]"});
  expect_error([] { maximum(zeros({2}), zeros({3})); }, {"maximum", "[2]", "[3]"});
  expect_error([] { strata::pow(zeros({2}), zeros({3})); }, {"pow", "[2]", "[3]"});
  expect_error([] { eq(zeros({2}), zeros({3})); }, {"eq", "[2]", "[3]"});
}

TEST(Errors, WhereNotBroadcastable) {
  expect_error([] { where(zeros({2}, kBool), zeros({3}), zeros({3})); }, {"where", "[2]", "[3]"});
}

TEST(Errors, MatmulInnerDimensionMismatch) {
  expect_error([] { matmul(zeros({3, 4}), zeros({5, 6})); }, {"matmul", "[3,4]", "[5,6]"});
  expect_error([] { matmul(zeros({3}), zeros({4})); }, {"matmul", "[3]", "[4]"});
  expect_error([] { matmul(zeros({2, 3}), zeros({4})); }, {"matmul", "[2,3]", "[4]"});
  expect_error([] { matmul(zeros({2, 3, 4}), zeros({2, 5, 6})); },
               {"matmul", "[2,3,4]", "[2,5,6]"});
}

TEST(Errors, MatmulBatchNotBroadcastable) {
  expect_error([] { matmul(zeros({2, 3, 4}), zeros({3, 4, 5})); },
               {"matmul", "[2,3,4]", "[3,4,5]"});
}

TEST(Errors, MatmulOfZeroDim) {
  expect_error([] { matmul(scalar_tensor(1), zeros({2})); }, {"matmul"});
}

TEST(Errors, MatmulMixedFloatDtypes) {
  // ops.h does not say matmul promotes; either an error naming matmul or a correct f64 result.
  try {
    Tensor out = matmul(f32({1, 2}, {1, 2}), f64({3, 4}, {2, 1}));
    expect_tensor(out, kFloat64, {1, 1}, {11});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul"), std::string::npos) << e.what();
  }
}

// ---- dtypes -------------------------------------------------------------------------------
TEST(Errors, WhereNeedsBoolCondition) {
  expect_error([] { where(zeros({2}), zeros({2}), zeros({2})); }, {"where", "f32"});
  expect_error([] { where(zeros({2}, kInt64), zeros({2}), zeros({2})); }, {"where", "i64"});
}

TEST(Errors, IndexNeedsInt64) {
  expect_error([] { index_select(zeros({3}), 0, f32({0, 1})); }, {"index_select", "f32"});
  expect_error([] { gather(zeros({2, 2}), 1, zeros({2, 2})); }, {"gather", "f32"});
  expect_error([] { one_hot(f32({0, 1})); }, {"one_hot", "f32"});
}

TEST(Errors, IndexShapes) {
  expect_error([] { index_select(zeros({3, 2}), 0, i64({0, 1, 0, 1}, {2, 2})); },
               {"index_select", "[2,2]"});
  expect_error([] { gather(zeros({2, 3}), 1, i64({0, 1})); }, {"gather", "[2,3]", "[2]"});
}

TEST(Errors, CatMismatchedDtypes) {
  // The brief expects an error; promoting (as recent PyTorch does) is accepted if correct.
  try {
    Tensor out = cat({f32({1}), f64({2})});
    expect_tensor(out, kFloat64, {2}, {1, 2});
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("cat"), std::string::npos) << message;
    EXPECT_NE(message.find("f64"), std::string::npos) << message;
  }
}

// ---- devices ------------------------------------------------------------------------------
TEST(Errors, DeviceMismatch) {
  if (!cuda_is_available()) GTEST_SKIP() << "no CUDA device";
  expect_error([] { add(zeros({2}), zeros({2}, Device(kCUDA))); }, {"add", "cpu", "cuda"});
  expect_error([] { matmul(zeros({2, 2}), zeros({2, 2}, Device(kCUDA))); },
               {"matmul", "cpu", "cuda"});
}

TEST(Errors, CudaUnavailable) {
  if (cuda_is_available()) GTEST_SKIP() << "CUDA is available here";
  try {
    zeros({2}, Device(kCUDA));
    ADD_FAILURE() << "zeros on CUDA did not throw";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("CUDA"), std::string::npos) << message;
    // The reason: built without the backend, or no device found.
    EXPECT_TRUE(message.find("without") != std::string::npos ||
                message.find("no CUDA device") != std::string::npos ||
                message.find("not compiled") != std::string::npos)
        << message;
  }
  EXPECT_EQ(cuda_device_count(), 0);
  expect_error([] { backend_for(Device(kCUDA)); }, {"CUDA"});
  expect_error([] { ones({2}).cuda(); }, {"CUDA"});
}

TEST(Errors, DeviceParse) {
  expect_error([] { Device::parse("tpu"); }, {"tpu"});
  expect_error([] { Device::parse("cuda:x"); }, {"cuda:x"});
  expect_error([] { Device::parse(""); }, {});
}

// ---- axes ---------------------------------------------------------------------------------
TEST(Errors, AxisOutOfRange) {
  expect_error([] { sum(zeros({2, 3, 4}), {3}); }, {"sum", "3"});
  expect_error([] { sum(zeros({2, 3, 4}), {-4}); }, {"sum", "-4"});
  expect_error([] { mean(zeros({2, 3}), {2}); }, {"mean"});
  expect_error([] { strata::max(zeros({2, 3}), {5}); }, {"max"});
  expect_error([] { argmax(zeros({2, 3}), 2); }, {"argmax"});
  expect_error([] { zeros({2, 3}).transpose(0, 2); }, {"transpose", "2"});
  expect_error([] { zeros({2, 3}).squeeze(2); }, {"squeeze", "2"});
  expect_error([] { zeros({2, 3}).unsqueeze(3); }, {"unsqueeze", "3"});
  expect_error([] { zeros({2, 3}).size(2); }, {"2"});
  expect_error([] { cat({zeros({2, 3}), zeros({2, 3})}, 2); }, {"cat", "2"});
  expect_error([] { stack({zeros({2}), zeros({2})}, 2); }, {"stack", "2"});
  expect_error([] { index_select(zeros({2, 3}), 2, i64({0})); }, {"index_select"});
  expect_error([] { zeros({2, 3}).flatten(2); }, {"flatten"});
  expect_error([] { zeros({2, 3}).select(2, 0); }, {"select"});
}

TEST(Errors, PermuteNeedsAPermutation) {
  expect_error([] { zeros({2, 3, 4}).permute({0, 1}); }, {"permute"});
  expect_error([] { zeros({2, 3, 4}).permute({0, 1, 1}); }, {"permute"});
}

TEST(Errors, TOfThreeDims) {
  expect_error([] { zeros({2, 3, 4}).t(); }, {"t", "[2,3,4]"});
}

// ---- indices ------------------------------------------------------------------------------
TEST(Errors, IndexOutOfRange) {
  expect_error([] { index_select(zeros({3, 2}), 0, i64({0, 3})); }, {"index_select", "3"});
  expect_error([] { index_select(zeros({3, 2}), 0, i64({-1})); }, {"index_select", "-1"});
  expect_error([] { gather(zeros({2, 3}), 1, i64({0, 3}, {2, 1})); }, {"gather", "3"});
  expect_error([] { zeros({3, 4}).select(0, 3); }, {"select", "3"});
  expect_error([] { zeros({3, 4}).select(1, -5); }, {"select", "-5"});
  expect_error([] { zeros({3, 4}).narrow(1, 2, 3); }, {"narrow"});
  expect_error([] { zeros({3, 4}).narrow(0, -5, 1); }, {"narrow"});  // -3..3 wrap, as PyTorch
}

TEST(Errors, SliceStep) {
  expect_error([] { zeros({4}).slice(0, 0, 4, 0); }, {"slice"});
  expect_error([] { zeros({4}).slice(0, 0, 4, -1); }, {"slice"});
}

TEST(Errors, OneHotIndexOutOfRange) {
  expect_error([] { one_hot(i64({0, -1}), 3); }, {"one_hot", "-1"});
  expect_error([] { one_hot(i64({0, 3}), 3); }, {"one_hot", "3"});
  expect_error([] { one_hot(i64({-2})); }, {"one_hot"});
}

// ---- views --------------------------------------------------------------------------------
TEST(Errors, ViewIncompatibleShape) {
  expect_error([] { zeros({2, 3}).view({4}); }, {"view", "[2,3]", "[4]"});
  expect_error([] { zeros({2, 3}).view({-1, 4}); }, {"view", "[2,3]"});
  expect_error([] { zeros({2, 3}).view({-1, -1}); }, {"view"});
  expect_error([] { zeros({2, 3}).reshape({5}); }, {"reshape", "[2,3]", "[5]"});
}

TEST(Errors, ViewOfNonContiguous) {
  // A transposed [2,3] cannot be flattened without a copy; reshape can.
  expect_error([] { iota({2, 3}).t().view({6}); }, {"view", "[3,2]"});
  EXPECT_NO_THROW(iota({2, 3}).t().reshape({6}));
}

TEST(Errors, ExpandIncompatible) {
  expect_error([] { zeros({3, 2}).expand({3, 4}); }, {"expand", "[3,2]", "[3,4]"});
  expect_error([] { zeros({2, 3}).expand({3}); }, {"expand", "[2,3]", "[3]"});
  expect_error([] { zeros({3}).expand({-1, 3}); }, {"expand"});
}

// ---- joins --------------------------------------------------------------------------------
TEST(Errors, CatMismatchedShapes) {
  expect_error([] { cat({zeros({2, 3}), zeros({2, 4})}, 0); }, {"cat", "[2,3]", "[2,4]"});
  expect_error([] { cat({zeros({2, 3}), zeros({3})}, 0); }, {"cat", "[2,3]", "[3]"});
}

TEST(Errors, EmptyCatAndStack) {
  expect_error([] { cat({}); }, {"cat"});
  expect_error([] { stack({}); }, {"stack"});
}

TEST(Errors, StackMismatchedShapes) {
  expect_error([] { stack({zeros({2}), zeros({3})}); }, {"stack", "[2]", "[3]"});
}

// ---- host access and creation -------------------------------------------------------------
TEST(Errors, ItemOnManyElements) {
  expect_error([] { zeros({2, 3}).item<float>(); }, {"item", "[2,3]"});
}

TEST(Errors, DataWithWrongType) {
  expect_error([] { zeros({2}).data<double>(); }, {"f32"});
}

TEST(Errors, FromVectorCountMismatch) {
  expect_error([] { f32({1, 2, 3}, {2, 2}); }, {"from_vector", "[2,2]"});
}

TEST(Errors, CreationArguments) {
  expect_error([] { arange(0, 5, 0); }, {"arange"});
  expect_error([] { randint(5, 5, {3}); }, {"randint"});
  expect_error([] { zeros({2, -1}); }, {"-1"});
}

// ---- autograd -----------------------------------------------------------------------------
TEST(Errors, BackwardOnNonScalarWithoutGradient) {
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = x * 2.0;
  expect_error([&] { y.backward(); }, {"backward", "[2]"});
}

TEST(Errors, BackwardWithWrongGradientShape) {
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = x * 2.0;
  expect_error([&] { y.backward(f64({1, 2, 3})); }, {"backward", "[3]", "[2]"});
}

TEST(Errors, BackwardWithoutRequiresGrad) {
  Tensor y = f64({1, 2}).sum();
  expect_error([&] { y.backward(); }, {"backward"});
}

TEST(Errors, SecondBackwardAfterRelease) {
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = (x * x).sum();
  y.backward();
  expect_error([&] { y.backward(); }, {"retain_graph"});
}

TEST(Errors, RequiresGradOnNonFloat) {
  expect_error([] { zeros({2}, kInt64).set_requires_grad(true); }, {"requires_grad", "i64"});
  expect_error([] { zeros({2}, kBool).set_requires_grad(true); }, {"requires_grad", "bool"});
  expect_error([] { zeros({2}, TensorOptions(kInt64).requires_grad()); }, {"i64"});
}

TEST(Errors, RequiresGradOnNonLeaf) {
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = x * 2.0;
  expect_error([&] { y.set_requires_grad(false); }, {"requires_grad"});
}

TEST(Errors, InPlaceOnLeafRequiringGrad) {
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  expect_error([&] { x.fill_(0); }, {"fill"});
  expect_error([&] { x.zero_(); }, {"zero"});
  expect_error([&] { x.mul_(2); }, {"mul"});
  expect_error([&] { x.add_(f64({1, 1})); }, {"add"});
  expect_error([&] { x.copy_(f64({1, 1})); }, {"copy"});
  // A view of it needs grad too.
  expect_error([&] { x.select(0, 0).fill_(0); }, {"fill"});
  // The data is unchanged, and the same updates are allowed without grad mode.
  test::expect_values(x, {2}, {1, 2});
  {
    NoGradGuard guard;
    EXPECT_NO_THROW(x.mul_(2));
  }
  test::expect_values(x, {2}, {2, 4});
}

TEST(Errors, InPlaceOnNonLeafNeedingGrad) {
  // tensor.h: refused on tensors that need grad while grad mode is on.
  Tensor x = f64({1, 2}, {2});
  x.set_requires_grad(true);
  Tensor y = x * 2.0;
  expect_error([&] { y.mul_(2); }, {"mul"});
}

TEST(Errors, GradcheckNeedsFloat64) {
  Tensor x = from_vector<float>({1, 2}, {2}, TensorOptions(kFloat32).requires_grad());
  expect_error([&] { gradcheck([](const std::vector<Tensor>& in) { return in[0] * 2.0; }, {x}); },
               {"gradcheck", "f32"});
}

}  // namespace
}  // namespace strata
