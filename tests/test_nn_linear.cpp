// nn::functional::linear and embedding: values and gradients against PyTorch (the lin.* and
// emb.* entries of tests/data/nn_loss.txt, written by gen_nn_loss.py) in float64 and float32,
// float64 gradchecks (1-D, 2-D and 3-D inputs, with and without bias; embedding with a
// padding row), strided inputs, empty sizes, and the validation errors.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = strata::nn::functional;
using test::expect_close;
using test::expect_error;
using test::expect_gradcheck;
using test::expect_values;
using test::f64;
using test::Fixture;
using test::i64;
using test::random_f64;

const Fixture& fixture() {
  static const Fixture f("nn_loss.txt");
  return f;
}

// Fresh leaves in `dtype` from fixture entries; requires_grad where `grad` is set.
std::vector<Tensor> leaves(const std::vector<std::string>& keys, DType dtype,
                           const std::vector<bool>& grad) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < keys.size(); ++i) {
    Tensor t = fixture()[keys[i]].to(dtype).detach();
    if (grad[i]) t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

// Compares <name>.out and, after backward of sum(out * <name>.gout), each <name>.grad_<g>.
void check_against_fixture(const std::string& name, const Tensor& out,
                           const std::vector<Tensor>& inputs,
                           const std::vector<std::string>& grad_names) {
  const Fixture& f = fixture();
  expect_close(out, f[name + ".out"]);
  sum(mul(out, f[name + ".gout"].to(out.dtype()))).backward();
  for (size_t i = 0; i < grad_names.size(); ++i) {
    SCOPED_TRACE("gradient " + grad_names[i]);
    expect_close(inputs[i].grad(), f[name + ".grad_" + grad_names[i]]);
  }
}

// ---- linear ---------------------------------------------------------------------------------

TEST(NNLinear, MatchesPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    for (const char* rank : {"2", "3"}) {
      SCOPED_TRACE(rank);
      auto a = leaves({std::string("lin.x") + rank, "lin.w", "lin.b"}, dtype, {true, true, true});
      const Tensor out = F::linear(a[0], a[1], a[2]);
      EXPECT_EQ(out.dtype(), dtype);
      check_against_fixture(std::string("lin") + rank, out, a, {"x", "w", "b"});
    }
    for (const char* rank : {"1", "3"}) {
      SCOPED_TRACE(rank);
      auto a = leaves({std::string("lin.x") + rank, "lin.w"}, dtype, {true, true});
      check_against_fixture(std::string("lin") + rank + "_nobias", F::linear(a[0], a[1]), a,
                            {"x", "w"});
    }
  }
}

TEST(NNLinear, IsOneRecordedOp) {
  const Tensor x = random_f64({2, 3}, -1, 1, 1, true);
  const Tensor w = random_f64({4, 3}, -1, 1, 2, true);
  const Tensor b = random_f64({4}, -1, 1, 3, true);
  const Tensor out = F::linear(x, w, b);
  ASSERT_NE(out.grad_fn(), nullptr);
  EXPECT_EQ(out.grad_fn()->name, "linear");
  EXPECT_EQ(out.grad_fn()->next.size(), 3u);
}

TEST(NNLinear, StridedInputAndWeight) {
  // The same values as lin.x2 / lin.w held transposed in memory: the GEMM reads the strides.
  const Fixture& f = fixture();
  for (DType dtype : {kFloat64, kFloat32}) {
    const Tensor x = f["lin.x2"].to(dtype).t().contiguous().t();
    const Tensor w = f["lin.w"].to(dtype).t().contiguous().t();
    ASSERT_FALSE(x.is_contiguous());
    ASSERT_FALSE(w.is_contiguous());
    expect_close(F::linear(x, w, f["lin.b"].to(dtype)), f["lin2.out"]);
    // A 3-D input whose leading dims cannot be folded into one stride (a permuted view).
    const Tensor x3 = f["lin.x3"].to(dtype).permute({1, 0, 2}).contiguous().permute({1, 0, 2});
    ASSERT_FALSE(x3.is_contiguous());
    expect_close(F::linear(x3, f["lin.w"].to(dtype), f["lin.b"].to(dtype)), f["lin3.out"]);
  }
}

TEST(NNLinear, GradcheckEveryRankWithAndWithoutBias) {
  const Tensor w = random_f64({3, 4}, -1, 1, 10, true);
  const Tensor b = random_f64({3}, -1, 1, 11, true);
  for (const Shape& shape : {Shape{4}, Shape{2, 4}, Shape{2, 3, 4}}) {
    SCOPED_TRACE(shape_str(shape));
    const Tensor x = random_f64(shape, -1, 1, 12, true);
    expect_gradcheck([](const std::vector<Tensor>& a) { return F::linear(a[0], a[1], a[2]); },
                     {x, w, b});
    expect_gradcheck([](const std::vector<Tensor>& a) { return F::linear(a[0], a[1]); }, {x, w});
  }
  // Only some inputs requiring grad (the backward skips the others).
  const Tensor x = random_f64({2, 4}, -1, 1, 13);
  expect_gradcheck([&](const std::vector<Tensor>& a) { return F::linear(x, a[0], a[1]); },
                   {w, b});
  const Tensor w_const = random_f64({3, 4}, -1, 1, 14);
  const Tensor x_grad = random_f64({2, 4}, -1, 1, 15, true);
  expect_gradcheck([&](const std::vector<Tensor>& a) { return F::linear(a[0], w_const); },
                   {x_grad});
}

TEST(NNLinear, EmptySizes) {
  // No rows: an empty output of the right shape.
  const Tensor w = random_f64({4, 3}, -1, 1, 20);
  const Tensor b = f64({1, 2, 3, 4});
  EXPECT_EQ(F::linear(zeros({0, 3}, kFloat64), w, b).shape(), (Shape{0, 4}));
  // No input features: the product is an empty sum, so the output is the bias (or zeros).
  const Tensor w0 = zeros({4, 0}, kFloat64);
  expect_values(F::linear(zeros({2, 0}, kFloat64), w0, b), {2, 4}, {1, 2, 3, 4, 1, 2, 3, 4});
  expect_values(F::linear(zeros({2, 0}, kFloat64), w0), {2, 4}, std::vector<double>(8, 0.0));
}

TEST(NNLinear, Errors) {
  const Tensor w = zeros({10, 785});
  expect_error([&] { F::linear(zeros({64, 784}), w); },
               {"linear", "784 features", "expects 785", "[64,784] f32 cpu", "[10,785] f32 cpu"});
  expect_error([&] { F::linear(zeros({2, 3}), zeros({3})); }, {"linear", "weight", "2-D", "[3]"});
  expect_error([&] { F::linear(zeros({}), zeros({2, 1})); }, {"linear", "input", "[]"});
  expect_error([&] { F::linear(zeros({2, 3}), zeros({4, 3}), zeros({3})); },
               {"linear", "bias must be [4]", "[3] f32"});
  expect_error([&] { F::linear(zeros({2, 3}), zeros({4, 3}), zeros({4}, kFloat64)); },
               {"linear", "bias", "f64"});
  expect_error([&] { F::linear(zeros({2, 3}, kFloat64), zeros({4, 3})); },
               {"linear", "[2,3] f64", "[4,3] f32"});
  expect_error([&] { F::linear(zeros({2, 3}, kInt64), zeros({4, 3}, kInt64)); },
               {"linear", "floating", "i64"});
}

// ---- embedding ------------------------------------------------------------------------------

TEST(NNEmbedding, MatchesPyTorch) {
  const Fixture& f = fixture();
  for (DType dtype : {kFloat64, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    auto w = leaves({"emb.weight"}, dtype, {true});
    const Tensor out = F::embedding(f["emb.idx"], w[0]);
    EXPECT_EQ(out.shape(), (Shape{2, 4, 3}));
    check_against_fixture("emb", out, w, {"w"});
    auto wp = leaves({"emb.weight"}, dtype, {true});
    check_against_fixture("emb_pad", F::embedding(f["emb.idx"], wp[0], 2), wp, {"w"});
    // padding_idx counts from the end when negative: -4 of 6 rows is row 2.
    auto wn = leaves({"emb.weight"}, dtype, {true});
    check_against_fixture("emb_pad", F::embedding(f["emb.idx"], wn[0], -4), wn, {"w"});
  }
}

TEST(NNEmbedding, GradcheckWithPaddingRow) {
  const Tensor w = random_f64({5, 2}, -1, 1, 30, true);
  const Tensor idx = i64({4, 0, 4, 1, 3, 0}, {2, 3});
  expect_gradcheck([&](const std::vector<Tensor>& a) { return F::embedding(idx, a[0]); }, {w});
  // With padding_idx the padding row's gradient is 0 by definition, not the derivative, so
  // that row is held constant here (outside the checked inputs) and the others are checked.
  const Tensor pad_row = random_f64({1, 2}, -1, 1, 33);
  const Tensor rest = random_f64({4, 2}, -1, 1, 34, true);
  expect_gradcheck([&](const std::vector<Tensor>& a) {
    return F::embedding(idx, cat({pad_row, a[0]}, 0), 0);
  }, {rest});
}

TEST(NNEmbedding, PaddingRowGetsNoGradient) {
  Tensor w = random_f64({4, 2}, -1, 1, 31, true);
  sum(F::embedding(i64({1, 3, 1, 3, 3}), w, 3)).backward();
  // Row 1 was picked twice, row 3 (padding) three times, rows 0 and 2 never.
  expect_values(w.grad(), {4, 2}, {0, 0, 2, 2, 0, 0, 0, 0});
}

TEST(NNEmbedding, ScalarAndEmptyIndices) {
  const Tensor w = random_f64({4, 3}, -1, 1, 32);
  const Tensor row = F::embedding(scalar_tensor(2, kInt64), w);
  EXPECT_EQ(row.shape(), (Shape{3}));
  expect_close(row, w.select(0, 2));
  EXPECT_EQ(F::embedding(zeros({0, 5}, kInt64), w).shape(), (Shape{0, 5, 3}));
}

TEST(NNEmbedding, Errors) {
  const Tensor w = zeros({6, 3});
  expect_error([&] { F::embedding(i64({0, 6, 1}), w); },
               {"embedding", "index 6", "6 embeddings", "[3] i64", "[6,3] f32"});
  expect_error([&] { F::embedding(i64({-1}), w); }, {"embedding", "index -1"});
  expect_error([&] { F::embedding(zeros({3}), w); }, {"embedding", "int64", "[3] f32"});
  expect_error([&] { F::embedding(i64({0}), zeros({6})); }, {"embedding", "2-D", "[6]"});
  expect_error([&] { F::embedding(i64({0}), zeros({6, 3}, kInt64)); }, {"embedding", "i64"});
  expect_error([&] { F::embedding(i64({0}), w, 6); },
               {"embedding", "padding_idx 6", "6 embeddings"});
  expect_error([&] { F::embedding(i64({0}), w, -7); }, {"embedding", "padding_idx -7"});
}

}  // namespace
}  // namespace strata
