// autograd::Function: custom forward/backward pairs recorded as one node — gradients against
// float64 finite differences and the built-in ops, several outputs, non-differentiable outputs,
// non-tensor arguments, the saved-tensor version check, and the errors of a wrong backward.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using autograd::FunctionCtx;
using Grads = std::vector<Tensor>;

// y = x * k for a number k (a non-tensor argument).
struct MulConstant : autograd::Function<MulConstant> {
  static Tensor forward(FunctionCtx* ctx, const Tensor& x, double k) {
    ctx->saved_data["k"] = k;
    return mul(x, k);
  }
  static Grads backward(FunctionCtx* ctx, const Grads& grad_outputs) {
    return {mul(grad_outputs[0], ctx->saved_data["k"].to_double()), Tensor()};
  }
};

// y = x @ w + b, with the gradients written out by hand.
struct LinearFunction : autograd::Function<LinearFunction> {
  static Tensor forward(FunctionCtx* ctx, const Tensor& x, const Tensor& w, const Tensor& b) {
    ctx->save_for_backward({x, w});
    return add(matmul(x, w), b);
  }
  static Grads backward(FunctionCtx* ctx, const Grads& grad_outputs) {
    const std::vector<Tensor> saved = ctx->get_saved_variables();
    const Tensor& g = grad_outputs[0];
    return {ctx->needs_input_grad(0) ? matmul(g, saved[1].t()) : Tensor(),
            ctx->needs_input_grad(1) ? matmul(saved[0].t(), g) : Tensor(), sum(g, {0})};
  }
};

// Two outputs: (2x, x^2).
struct DoubleAndSquare : autograd::Function<DoubleAndSquare> {
  static std::vector<Tensor> forward(FunctionCtx* ctx, const Tensor& x) {
    ctx->save_for_backward({x});
    return {mul(x, 2.0), mul(x, x)};
  }
  static Grads backward(FunctionCtx* ctx, const Grads& g) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {add(mul(g[0], 2.0), mul(g[1], mul(x, 2.0)))};
  }
};

// The largest value of each row and where it is: the index is int64 (non-differentiable by
// itself), and a float "is positive" flag marked non-differentiable.
struct RowMax : autograd::Function<RowMax> {
  static std::vector<Tensor> forward(FunctionCtx* ctx, const Tensor& x) {
    const Tensor index = argmax(x, 1, /*keepdim=*/true);
    const Tensor value = gather(x, 1, index);
    const Tensor positive = gt(value, 0.0).to(x.dtype());
    ctx->save_for_backward({index});
    ctx->saved_data["columns"] = x.size(1);
    ctx->mark_non_differentiable({positive});
    return {value, index, positive};
  }
  static Grads backward(FunctionCtx* ctx, const Grads& g) {
    EXPECT_FALSE(g[1].defined()) << "an int64 output gets no gradient";
    EXPECT_FALSE(g[2].defined()) << "a non-differentiable output gets no gradient";
    const Tensor index = ctx->get_saved_variables()[0];
    const Tensor zero = zeros({g[0].size(0), ctx->saved_data["columns"].to_int()}, g[0].options());
    return {scatter_add(zero, 1, index, g[0])};
  }
};

// Returns its argument itself.
struct Identity : autograd::Function<Identity> {
  static Tensor forward(FunctionCtx*, const Tensor& x) { return x; }
  static Grads backward(FunctionCtx*, const Grads& g) { return {g[0]}; }
};

TEST(AutogradFunction, ANumberArgumentAndItsGradient) {
  Tensor x = test::f64({1, -2, 3}, {3}).set_requires_grad(true);
  const Tensor y = MulConstant::apply(x, 2.5);
  ASSERT_TRUE(y.requires_grad());
  EXPECT_NE(y.grad_fn()->name.find("MulConstant"), std::string::npos) << y.grad_fn()->name;
  sum(y).backward();
  test::expect_close(x.grad(), test::f64({2.5, 2.5, 2.5}, {3}));
}

TEST(AutogradFunction, HandWrittenLinearPassesGradcheckAndMatchesTheBuiltIn) {
  Generator gen(7);
  const auto input = [&](const Shape& shape) {
    return randn(shape, TensorOptions(kFloat64), &gen).set_requires_grad(true);
  };
  const std::vector<Tensor> inputs = {input({4, 3}), input({3, 5}), input({5})};
  const GradcheckResult result = gradcheck(
      [](const std::vector<Tensor>& in) { return LinearFunction::apply(in[0], in[1], in[2]); },
      inputs);
  EXPECT_TRUE(result.ok) << result.message;

  const Tensor custom = LinearFunction::apply(inputs[0], inputs[1], inputs[2]);
  sum(mul(custom, custom)).backward();
  std::vector<Tensor> custom_grads;
  for (const Tensor& t : inputs) custom_grads.push_back(t.grad().clone());
  for (const Tensor& t : inputs) const_cast<Tensor&>(t).zero_grad();
  const Tensor builtin = add(matmul(inputs[0], inputs[1]), inputs[2]);
  sum(mul(builtin, builtin)).backward();
  test::expect_close(custom, builtin);
  for (size_t i = 0; i < inputs.size(); ++i) test::expect_close(custom_grads[i], inputs[i].grad());
}

TEST(AutogradFunction, OnlyTheInputsThatNeedAGradientGetOne) {
  const Tensor x = test::f64({1, 2, 3, 4}, {2, 2});
  Tensor w = test::f64({1, 0, 0, 1}, {2, 2}).set_requires_grad(true);
  const Tensor b = test::f64({0, 0}, {2});
  sum(LinearFunction::apply(x, w, b)).backward();
  test::expect_close(w.grad(), test::f64({4, 4, 6, 6}, {2, 2}));
  EXPECT_FALSE(x.grad().defined());
}

TEST(AutogradFunction, SeveralOutputs) {
  Tensor x = test::f64({1, -2, 3}, {3}).set_requires_grad(true);
  const std::vector<Tensor> out = DoubleAndSquare::apply(x);
  ASSERT_EQ(out.size(), 2u);
  test::expect_close(out[0], test::f64({2, -4, 6}, {3}));
  test::expect_close(out[1], test::f64({1, 4, 9}, {3}));
  // Only the second output used: the first one's gradient is zeros.
  sum(out[1]).backward(Tensor(), /*retain_graph=*/true);
  test::expect_close(x.grad(), test::f64({2, -4, 6}, {3}));
  x.zero_grad();
  sum(add(mul(out[0], 3.0), out[1])).backward();
  test::expect_close(x.grad(), test::f64({8, 2, 12}, {3}));
  const GradcheckResult result = gradcheck(
      [](const std::vector<Tensor>& in) {
        const std::vector<Tensor> o = DoubleAndSquare::apply(in[0]);
        return add(mul(o[0], o[0]), o[1]);
      },
      {test::f64({0.5, -1.5, 2}, {3}).set_requires_grad(true)});
  EXPECT_TRUE(result.ok) << result.message;
}

TEST(AutogradFunction, NonDifferentiableOutputs) {
  Tensor x = test::f64({1, 5, -2, -7, -3, -9}, {2, 3}).set_requires_grad(true);
  const std::vector<Tensor> out = RowMax::apply(x);
  EXPECT_EQ(out[1].dtype(), kInt64);
  EXPECT_FALSE(out[1].requires_grad());
  EXPECT_FALSE(out[2].requires_grad());
  EXPECT_EQ(out[1].to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  sum(mul(out[0], 3.0)).backward();
  test::expect_close(x.grad(), test::f64({0, 3, 0, 0, 3, 0}, {2, 3}));
}

TEST(AutogradFunction, ReturningAnArgumentStillRecordsTheNode) {
  Tensor x = test::f64({1, 2}, {2}).set_requires_grad(true);
  const Tensor y = Identity::apply(x);
  EXPECT_FALSE(y.is_same(x));
  EXPECT_FALSE(y.is_leaf());
  sum(mul(y, y)).backward();
  test::expect_close(x.grad(), test::f64({2, 4}, {2}));
}

TEST(AutogradFunction, NothingIsRecordedWithoutGradients) {
  Tensor x = test::f64({1, 2}, {2}).set_requires_grad(true);
  {
    NoGradGuard no_grad;
    EXPECT_FALSE(MulConstant::apply(x, 2.0).requires_grad());
  }
  EXPECT_FALSE(MulConstant::apply(test::f64({1, 2}, {2}), 2.0).requires_grad());
}

TEST(AutogradFunction, ASavedTensorModifiedInPlaceIsAnError) {
  Tensor x = test::f64({1, 2}, {2}).set_requires_grad(true);
  Tensor w = test::f64({1, 0, 0, 1}, {2, 2});  // needs no gradient: in-place writes are allowed
  const Tensor y = LinearFunction::apply(x.reshape({1, 2}), w, test::f64({0, 0}, {2}));
  w.mul_(3.0);
  test::expect_error([&] { sum(y).backward(); },
                     {"LinearFunction", "saved tensor 1", "modified in place", "version"});
}

struct WrongCount : autograd::Function<WrongCount> {
  static Tensor forward(FunctionCtx*, const Tensor& x, double) { return mul(x, 2.0); }
  static Grads backward(FunctionCtx*, const Grads& g) { return {g[0]}; }
};

struct WrongShape : autograd::Function<WrongShape> {
  static Tensor forward(FunctionCtx*, const Tensor& x) { return sum(x); }
  static Grads backward(FunctionCtx*, const Grads& g) { return {g[0]}; }
};

struct GradientForANumber : autograd::Function<GradientForANumber> {
  static Tensor forward(FunctionCtx*, const Tensor& x, double) { return mul(x, 2.0); }
  static Grads backward(FunctionCtx*, const Grads& g) { return {g[0], g[0]}; }
};

TEST(AutogradFunction, AWrongBackwardIsAnErrorNamingTheFunction) {
  Tensor x = test::f64({1, 2}, {2}).set_requires_grad(true);
  test::expect_error([&] { sum(WrongCount::apply(x, 1.0)).backward(); },
                     {"WrongCount", "returned 1 gradients for 2 forward arguments"});
  test::expect_error([&] { WrongShape::apply(x).backward(); },
                     {"WrongShape", "gradient of forward argument 0", "[2]"});
  test::expect_error([&] { sum(GradientForANumber::apply(x, 1.0)).backward(); },
                     {"GradientForANumber", "argument 1", "not a tensor"});
}

TEST(AutogradFunction, SavedValuesSayWhatTheyHold) {
  const autograd::SavedValue number = 2.5, count = int64_t{3}, flag = true, list =
      std::vector<int64_t>{1, 2};
  EXPECT_EQ(number.to_double(), 2.5);
  EXPECT_EQ(count.to_double(), 3.0);
  EXPECT_EQ(count.to_int(), 3);
  EXPECT_TRUE(flag.to_bool());
  EXPECT_EQ(list.to_int_list(), (std::vector<int64_t>{1, 2}));
  test::expect_error([&] { (void)number.to_int(); }, {"SavedValue", "int", "double"});
  test::expect_error([&] { (void)flag.to_tensor(); }, {"SavedValue", "tensor", "bool"});
}

}  // namespace
}  // namespace strata
