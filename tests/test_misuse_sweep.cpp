// The misuse sweep: every public op, given every tensor of a zoo of awkward ones (undefined,
// 0-dim, empty, each dtype, strided views, NaN, mismatched shapes) and out-of-range axes and
// hyperparameters, must either return or throw strata::Error naming the op; never crash,
// read out of bounds (the sanitizer build checks that) or throw anything else. Whether an
// answer is right is for the ops' own tests; this one checks that no input breaks them.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

struct Specimen {
  std::string label;
  Tensor tensor;
};

std::vector<Specimen> zoo() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  Tensor grad = test::f64({0.5, -1, 2, 0, 3, -4}, {2, 3});
  grad.set_requires_grad(true);
  return {
      {"undefined", Tensor()},
      {"0-dim f32", scalar_tensor(1.5)},
      {"[0] f32", zeros({0})},
      {"[2,0] f32", zeros({2, 0})},
      {"[2,3] f32", test::f32({0.5f, -1, 2, 0, 3, -4}, {2, 3})},
      {"[2,3] f64 requires_grad", grad},
      {"[3] f32", test::f32({1, 0, 2}, {3})},
      {"[2,3] i64", test::i64({0, 1, 2, 2, 1, 0}, {2, 3})},
      {"[2] i64 out of range", test::i64({-7, 9}, {2})},
      {"[2,3] bool", gt(test::f32({0.5f, -1, 2, 0, 3, -4}, {2, 3}), 0.0)},
      {"[2,3] u8", test::i64({0, 1, 2, 3, 4, 255}, {2, 3}).to(kUInt8)},
      {"[3,2] f32 transposed", test::f32({0.5f, -1, 2, 0, 3, -4}, {2, 3}).t()},
      {"[1,3] f32", test::f32({1, 2, 3}, {1, 3})},
      {"[2,3,4] f32", arange(0, 24, 1, kFloat32).view({2, 3, 4})},
      {"[1,1,2,2] f32", test::f32({1, 2, 3, 4}, {1, 1, 2, 2})},
      {"[2,3] f32 nan inf", test::f64({nan, inf, -inf, 1, 0, -1}, {2, 3}).to(kFloat32)},
  };
}

struct Op {
  std::string name;                       // the op, as its error messages must name it
  std::function<void(const std::vector<Tensor>&)> call;
  int arity;
};

// Runs `op` on every tuple of zoo tensors; collects what went wrong.
void sweep(const Op& op, const std::vector<Specimen>& specimens, std::vector<std::string>& problems,
           int64_t& calls) {
  std::vector<size_t> pick(static_cast<size_t>(op.arity), 0);
  for (;;) {
    std::vector<Tensor> args;
    std::string labels;
    for (size_t i = 0; i < pick.size(); ++i) {
      args.push_back(specimens[pick[i]].tensor);
      labels += (i > 0 ? ", " : "") + specimens[pick[i]].label;
    }
    ++calls;
    try {
      op.call(args);
    } catch (const Error& e) {
      const std::string message = e.what();
      if (message.find(op.name) == std::string::npos) {
        problems.push_back(op.name + "(" + labels + "): the error does not name the op: " +
                           message);
      }
    } catch (const std::exception& e) {
      problems.push_back(op.name + "(" + labels + "): threw a non-strata exception: " + e.what());
    }
    size_t i = 0;
    while (i < pick.size() && ++pick[i] == specimens.size()) pick[i++] = 0;
    if (i == pick.size()) break;
  }
}

#define UNARY(name, expr) Op{name, [](const std::vector<Tensor>& a) { (void)(expr); }, 1}
#define BINARY(name, expr) Op{name, [](const std::vector<Tensor>& a) { (void)(expr); }, 2}

std::vector<Op> unary_ops() {
  return {
      UNARY("neg", neg(a[0])),
      UNARY("abs", abs(a[0])),
      UNARY("sign", sign(a[0])),
      UNARY("exp", exp(a[0])),
      UNARY("log", log(a[0])),
      UNARY("sqrt", sqrt(a[0])),
      UNARY("reciprocal", reciprocal(a[0])),
      UNARY("pow", strata::pow(a[0], 2.5)),
      UNARY("pow", strata::pow(a[0], -1.0)),
      UNARY("clamp", clamp(a[0], 0.0, 1.0)),
      UNARY("clamp", clamp(a[0], 1.0, 0.0)),
      UNARY("clamp", clamp(a[0], std::nullopt, std::nullopt)),
      UNARY("add", add(a[0], 2.0)),
      UNARY("div", div(a[0], 0.0)),
      UNARY("rdiv", rdiv(a[0], 1.0)),
      UNARY("floor_divide", floor_divide(a[0], 0.0)),
      UNARY("remainder", remainder(a[0], -2.5)),
      UNARY("rsub", rsub(a[0], 1.0)),
      UNARY("lt", lt(a[0], 0.5)),
      UNARY("isnan", isnan(a[0])),
      UNARY("isinf", isinf(a[0])),
      UNARY("isfinite", isfinite(a[0])),
      UNARY("sum", sum(a[0])),
      UNARY("sum", sum(a[0], {-1}, true)),
      UNARY("sum", sum(a[0], {5})),
      UNARY("sum", sum(a[0], {0, 0})),
      UNARY("sum", sum(a[0], {-3})),
      UNARY("mean", mean(a[0])),
      UNARY("mean", mean(a[0], {1})),
      UNARY("max", max(a[0])),
      UNARY("max", max(a[0], {-3})),
      UNARY("min", min(a[0], {1}, true)),
      UNARY("argmax", argmax(a[0])),
      UNARY("argmax", argmax(a[0], 1)),
      UNARY("argmax", argmax(a[0], -5)),
      UNARY("argmin", argmin(a[0], 0, true)),
      UNARY("relu", F::relu(a[0])),
      UNARY("sigmoid", F::sigmoid(a[0])),
      UNARY("tanh", F::tanh(a[0])),
      UNARY("leaky_relu", F::leaky_relu(a[0], -2.0)),
      UNARY("elu", F::elu(a[0])),
      UNARY("softplus", F::softplus(a[0], 0.0)),
      UNARY("gelu", F::gelu(a[0])),
      UNARY("softmax", F::softmax(a[0], 1)),
      UNARY("softmax", F::softmax(a[0], -3)),
      UNARY("log_softmax", F::log_softmax(a[0], 0)),
      UNARY("maxout", F::maxout(a[0], 2)),
      UNARY("maxout", F::maxout(a[0], 0)),
      UNARY("maxout", F::maxout(a[0], 3, 7)),
      UNARY("transpose", a[0].transpose(0, 1)),
      UNARY("transpose", a[0].transpose(0, 5)),
      UNARY("permute", a[0].permute({1, 0})),
      UNARY("permute", a[0].permute({0, 0})),
      UNARY("t", a[0].t()),
      UNARY("reshape", a[0].reshape({-1})),
      UNARY("reshape", a[0].reshape({4, -1})),
      UNARY("reshape", a[0].reshape({-1, -1})),
      UNARY("view", a[0].view({3, 2})),
      UNARY("view", a[0].view({-1})),
      UNARY("flatten", a[0].flatten()),
      UNARY("flatten", a[0].flatten(1, 0)),
      UNARY("slice", a[0].slice(0, 0, 1)),
      UNARY("slice", a[0].slice(1, 5, 1)),
      UNARY("flip", flip(a[0], {0})),
      UNARY("flip", flip(a[0], {1, -1})),
      UNARY("roll", roll(a[0], {1})),
      UNARY("roll", roll(a[0], {-4}, {1})),
      UNARY("repeat", repeat(a[0], {2, 2})),
      UNARY("repeat", repeat(a[0], {0, 1, 3})),
      UNARY("tril", tril(a[0])),
      UNARY("triu", triu(a[0], 1)),
      UNARY("sort", sort(a[0]).values),
      UNARY("sort", a[0].sort(1, true)),
      UNARY("argsort", argsort(a[0], -2)),
      UNARY("topk", topk(a[0], 2)),
      UNARY("topk", topk(a[0], -1, 1, false)),
      UNARY("kthvalue", kthvalue(a[0], 2, 0, true)),
      UNARY("kthvalue", kthvalue(a[0], 0)),
      UNARY("nonzero", nonzero(a[0])),
      UNARY("cumsum", cumsum(a[0], 1)),
      UNARY("cumsum", cumsum(a[0], -3)),
      UNARY("cumprod", cumprod(a[0], 0)),
      UNARY("cumprod", a[0].cumprod(-1)),
      UNARY("einsum", einsum("ij->ji", {a[0]})),
      UNARY("einsum", einsum("ii->i", {a[0]})),
      UNARY("einsum", einsum("...i->...", {a[0]})),
      UNARY("slice", a[0].slice(0, 0, 2, 0)),
      UNARY("slice", a[0].slice(0, -9, 9, 2)),
      UNARY("narrow", a[0].narrow(0, 1, 5)),
      UNARY("narrow", a[0].narrow(-1, -1, 1)),
      UNARY("select", a[0].select(0, 2)),
      UNARY("select", a[0].select(-1, -1)),
      UNARY("expand", a[0].expand({4, 2, 3})),
      UNARY("expand", a[0].expand({3, 3})),
      UNARY("expand", a[0].expand({-1})),
      UNARY("squeeze", a[0].squeeze(0)),
      UNARY("squeeze", a[0].squeeze()),
      UNARY("unsqueeze", a[0].unsqueeze(3)),
      UNARY("unsqueeze", a[0].unsqueeze(-5)),
      UNARY("contiguous", a[0].contiguous()),
      UNARY("clone", a[0].clone()),
      UNARY("to", a[0].to(kInt64)),
      UNARY("to", a[0].to(kBool)),
      UNARY("item", a[0].item<double>()),
      UNARY("one_hot", one_hot(a[0])),
      UNARY("one_hot", one_hot(a[0], 3)),
      UNARY("dropout", F::dropout(a[0], 1.5)),
      UNARY("dropout", F::dropout(a[0], 0.5)),
      UNARY("dropout", F::dropout(a[0], 1.0)),
      UNARY("adaptive_avg_pool2d", F::adaptive_avg_pool2d(a[0], {2, 2})),
      UNARY("adaptive_avg_pool2d", F::adaptive_avg_pool2d(a[0], {0, 1})),
      UNARY("adaptive_max_pool2d", F::adaptive_max_pool2d(a[0], {2, 2})),
      UNARY("max_pool3d", F::max_pool3d(a[0], 2)),
      UNARY("avg_pool3d", F::avg_pool3d(a[0], 2)),
      UNARY("avg_pool3d", F::avg_pool3d(a[0], 1, 1, 0, false)),
      UNARY("adaptive_max_pool2d", F::adaptive_max_pool2d(a[0], {0, 1})),
      UNARY("interpolate", F::interpolate(a[0], {.scale_factor = 2.0})),
      UNARY("interpolate",
            F::interpolate(a[0], {.size = F::Size2(3), .mode = F::InterpolateMode::Bilinear})),
      UNARY("interpolate", F::interpolate(a[0], {})),
      UNARY("pad", F::pad(a[0], {1, 1})),
      UNARY("pad", F::pad(a[0], {2, 2}, F::PadMode::Reflect)),
      UNARY("group_norm", F::group_norm(a[0], 2)),
      UNARY("instance_norm", F::instance_norm(a[0])),
      UNARY("max_pool1d", F::max_pool1d(a[0], 2)),
      UNARY("max_pool1d", F::max_pool1d(a[0], 0)),
      UNARY("max_pool2d", F::max_pool2d(a[0], {2, 2})),
      UNARY("max_pool2d", F::max_pool2d(a[0], {3, 3}, nn::Size2{1, 1}, nn::Size2{2, 2})),
      UNARY("max_pool2d", F::max_pool2d(a[0], 2, nn::Size2{1}, 1, 2, true)),
      UNARY("max_pool2d", F::max_pool2d(a[0], 3, nn::Size2{2}, 0, 0)),
      UNARY("max_pool2d_with_indices",
            F::max_pool2d_with_indices(a[0], 3, std::nullopt, 1, 1, true)),
      UNARY("max_pool1d_with_indices", F::max_pool1d_with_indices(a[0], 2, 1, 1, 3)),
      UNARY("avg_pool1d", F::avg_pool1d(a[0], 2, -1)),
      UNARY("avg_pool2d", F::avg_pool2d(a[0], {2, 2})),
      UNARY("layer_norm", F::layer_norm(a[0], {3})),
      UNARY("layer_norm", F::layer_norm(a[0], {})),
      UNARY("layer_norm", F::layer_norm(a[0], {4}, Tensor(), Tensor(), -1.0)),
      UNARY("backward", a[0].backward()),
      UNARY("detach", a[0].detach()),
  };
}

F::CrossEntropyOptions smoothing(double label_smoothing) {
  F::CrossEntropyOptions options;
  options.label_smoothing = label_smoothing;
  return options;
}

F::CrossEntropyOptions class_weights(const Tensor& weight) {
  F::CrossEntropyOptions options;
  options.weight = weight;
  return options;
}

std::vector<Op> binary_ops() {
  return {
      BINARY("add", add(a[0], a[1])),
      BINARY("sub", sub(a[0], a[1])),
      BINARY("mul", mul(a[0], a[1])),
      BINARY("div", div(a[0], a[1])),
      BINARY("floor_divide", floor_divide(a[0], a[1])),
      BINARY("remainder", remainder(a[0], a[1])),
      BINARY("maximum", maximum(a[0], a[1])),
      BINARY("minimum", minimum(a[0], a[1])),
      BINARY("pow", strata::pow(a[0], a[1])),
      BINARY("eq", eq(a[0], a[1])),
      BINARY("ge", ge(a[0], a[1])),
      BINARY("matmul", matmul(a[0], a[1])),
      BINARY("where", where(a[0], a[1], a[1])),
      BINARY("where", where(a[1], a[0], a[0])),
      BINARY("cat", cat({a[0], a[1]}, 0)),
      BINARY("cat", cat({a[0], a[1]}, 1)),
      BINARY("cat", cat({a[0], a[1]}, -4)),
      BINARY("stack", stack({a[0], a[1]}, 0)),
      BINARY("stack", stack({a[0], a[1]}, 3)),
      BINARY("index_select", index_select(a[0], 0, a[1])),
      BINARY("index_select", index_select(a[0], -1, a[1])),
      BINARY("gather", gather(a[0], 1, a[1])),
      BINARY("gather", gather(a[0], 0, a[1])),
      BINARY("scatter_add", scatter_add(a[0], 0, a[1], a[0])),
      BINARY("scatter", scatter(a[0], 0, a[1], a[0])),
      BINARY("scatter", scatter(a[0], 1, a[1], 2.0)),
      BINARY("masked_fill", masked_fill(a[0], a[1], 1.0)),
      BINARY("masked_select", masked_select(a[0], a[1])),
      BINARY("index", index(a[0], {a[1]})),
      BINARY("index", a[0].index({a[1], a[1]})),
      BINARY("index_put", index_put(a[0], {a[1]}, a[0])),
      BINARY("index_put", index_put(a[0], {a[1]}, a[0], true)),
      BINARY("einsum", einsum("ij,jk->ik", {a[0], a[1]})),
      BINARY("einsum", einsum("i,i", {a[0], a[1]})),
      BINARY("allclose", allclose(a[0], a[1])),
      BINARY("linear", F::linear(a[0], a[1])),
      BINARY("linear", F::linear(a[0], a[1], a[1])),
      BINARY("conv1d", F::conv1d(a[0], a[1])),
      BINARY("conv2d", F::conv2d(a[0], a[1])),
      BINARY("conv2d", F::conv2d(a[0], a[1], Tensor(), 0, -1, 0, 0)),
      BINARY("conv_transpose2d", F::conv_transpose2d(a[0], a[1])),
      BINARY("conv3d", F::conv3d(a[0], a[1])),
      BINARY("conv_transpose2d", F::conv_transpose2d(a[0], a[1], Tensor(), 1, 0, 1)),
      BINARY("max_unpool1d", F::max_unpool1d(a[0], a[1], 2)),
      BINARY("max_unpool1d", F::max_unpool1d(a[0], a[1], 2, 1, 0, 99)),
      BINARY("max_unpool2d", F::max_unpool2d(a[0], a[1], 2)),
      BINARY("max_unpool2d", F::max_unpool2d(a[0], a[1], {1, 3}, nn::Size2{0}, -1)),
      BINARY("embedding", F::embedding(a[0], a[1])),
      BINARY("embedding", F::embedding(a[0], a[1], 7)),
      BINARY("batch_norm", F::batch_norm(a[0], a[1], a[1], Tensor(), Tensor(), false)),
      BINARY("batch_norm", F::batch_norm(a[0], Tensor(), Tensor(), a[1], a[1], true)),
      BINARY("layer_norm", F::layer_norm(a[0], {3}, a[1], a[1])),
      BINARY("cross_entropy", F::cross_entropy(a[0], a[1])),
      BINARY("cross_entropy", F::cross_entropy(a[0], a[1], smoothing(2.0))),
      BINARY("cross_entropy", F::cross_entropy(a[0], a[1], class_weights(a[1]))),
      BINARY("nll_loss", F::nll_loss(a[0], a[1])),
      BINARY("binary_cross_entropy", F::binary_cross_entropy(a[0], a[1])),
      BINARY("binary_cross_entropy_with_logits",
             F::binary_cross_entropy_with_logits(a[0], a[1], Tensor(), F::Reduction::Mean, a[1])),
      BINARY("mse_loss", F::mse_loss(a[0], a[1], F::Reduction::None)),
      BINARY("l1_loss", F::l1_loss(a[0], a[1])),
      BINARY("huber_loss", F::huber_loss(a[0], a[1], F::Reduction::Sum, -1.0)),
      BINARY("smooth_l1_loss", F::smooth_l1_loss(a[0], a[1], F::Reduction::Mean, 0.0)),
      BINARY("hinge_loss", F::hinge_loss(a[0], a[1])),
      BINARY("multi_margin_loss", F::multi_margin_loss(a[0], a[1])),
      BINARY("exponential_loss", F::exponential_loss(a[0], a[1])),
      BINARY("perceptron_loss", F::perceptron_loss(a[0], a[1])),
      BINARY("zero_one_error", F::zero_one_error(a[0], a[1])),
      BINARY("backward", a[0].backward(a[1])),
  };
}

void check(const std::vector<Op>& ops) {
  const std::vector<Specimen> specimens = zoo();
  std::vector<std::string> problems;
  int64_t calls = 0;
  for (const Op& op : ops) sweep(op, specimens, problems, calls);
  std::ostringstream report;
  for (const std::string& problem : problems) report << "\n  " << problem;
  EXPECT_TRUE(problems.empty()) << problems.size() << " of " << calls << " calls:" << report.str();
  ::testing::Test::RecordProperty("calls", static_cast<int>(calls));
}

// Layers and optimizers built with an impossible hyperparameter: the constructor, or at the
// latest the first forward on a well-formed input, throws strata::Error naming the layer or
// its op (any of `names`).
struct BadSetting {
  std::vector<std::string> names;
  std::function<void()> build_and_run;
};

std::vector<BadSetting> bad_settings() {
  const Tensor images = zeros({2, 3, 8, 8}), rows = zeros({2, 4}), seq = zeros({5, 2, 4});
  std::vector<Tensor> params = {zeros({3}, TensorOptions(kFloat32))};
  params[0].set_requires_grad(true);
  return {
      {{"Linear"}, [] { nn::Linear(-1, 3); }},
      {{"Maxout", "maxout"}, [=] { nn::Maxout(4, 2, 0)(rows); }},
      {{"Embedding"}, [] { nn::Embedding(-5, 3); }},
      {{"Embedding", "padding_idx"}, [] { nn::Embedding(5, 3, 9); }},
      {{"Conv1d", "conv1d"},
       [] {
         nn::Conv1d(3, 4, 0)(zeros({2, 3, 8}));
       }},
      {{"Conv2d", "conv2d"}, [=] { nn::Conv2d(3, 4, 3, 0)(images); }},
      {{"Conv2d", "conv2d"}, [=] { nn::Conv2d(3, 4, 3, 1, -1)(images); }},
      {{"Conv2d", "conv2d"}, [=] { nn::Conv2d(3, 4, 3, 1, 0, 0)(images); }},
      {{"Conv2d", "conv2d"}, [=] { nn::Conv2d(3, 4, 3, 1, 0, 1, 2)(images); }},
      {{"MaxPool2d", "max_pool2d"}, [=] { nn::MaxPool2d(0)(images); }},
      {{"MaxPool2d", "max_pool2d"}, [=] { nn::MaxPool2d(2, 2, 3)(images); }},
      {{"MaxPool2d", "max_pool2d"}, [=] { nn::MaxPool2d(2, 2, 0, 0)(images); }},
      {{"MaxPool2d", "max_pool2d"},
       [=] { nn::MaxPool2d(2, 1, 1, 9).forward_with_indices(images); }},  // only padding
      {{"MaxUnpool2d", "max_unpool2d"},
       [=] { nn::MaxUnpool2d(2, 0).forward(images, zeros(images.shape(), kInt64)); }},
      {{"MaxUnpool1d", "max_unpool1d"},
       [=] { nn::MaxUnpool1d(0).forward(seq, zeros(seq.shape(), kInt64)); }},
      {{"AvgPool2d", "avg_pool2d"}, [=] { nn::AvgPool2d(2, -1)(images); }},
      {{"AdaptiveAvgPool2d", "adaptive_avg_pool2d"}, [=] { nn::AdaptiveAvgPool2d(0)(images); }},
      {{"AdaptiveMaxPool2d", "adaptive_max_pool2d"}, [=] { nn::AdaptiveMaxPool2d(0)(images); }},
      {{"ConvTranspose2d"}, [] { nn::ConvTranspose2d(3, 4, 0); }},
      {{"ConvTranspose2d", "conv_transpose2d"},
       [=] { nn::ConvTranspose2d(3, 4, 3, 1, 0, /*output_padding=*/2)(images); }},
      {{"Upsample"}, [] { nn::Upsample({}); }},
      {{"Upsample", "interpolate"}, [=] { nn::Upsample({.scale_factor = -2.0})(images); }},
      {{"BatchNorm2d"}, [] { nn::BatchNorm2d(3, 1e-5, 2.0); }},
      {{"Dropout", "dropout"}, [=] { nn::Dropout(1.5)(rows); }},
      {{"Dropout", "dropout"}, [=] { nn::Dropout(-0.1)(rows); }},
      {{"BatchNorm2d", "batch_norm"}, [=] { nn::BatchNorm2d(3, -1.0)(images); }},
      {{"BatchNorm1d"}, [] { nn::BatchNorm1d(0); }},
      {{"LayerNorm", "layer_norm"}, [=] { nn::LayerNorm({4}, -1.0)(rows); }},
      {{"LSTM"}, [] { nn::LSTM(4, 0); }},
      {{"GRU"}, [] { nn::GRU(4, 3, 0); }},
      {{"RNN", "rnn"}, [=] { nn::RNN(3, 8)(seq); }},
      {{"Flatten", "flatten"}, [=] { nn::Flatten(3, 1)(images); }},
      {{"SGD"}, [=] { optim::SGD(params, {.lr = -0.1}); }},
      {{"SGD"}, [=] { optim::SGD(params, {.lr = 0.1, .momentum = -1.0}); }},
      {{"Adam"},
       [=] {
         optim::Adam(params, {.betas = {1.5, 0.999}});
       }},
      {{"Adam"}, [=] { optim::Adam(params, {.eps = -1e-8}); }},
      {{"RMSprop"}, [=] { optim::RMSprop(params, {.alpha = -0.5}); }},
      {{"Adagrad"}, [=] { optim::Adagrad(params, {.lr_decay = -1.0}); }},
      {{"Adadelta"}, [=] { optim::Adadelta(params, {.rho = 1.5}); }},
      {{"SGD"}, [] { optim::SGD(std::vector<Tensor>{}, {.lr = 0.1}); }},
      {{"SGD"}, [] { optim::SGD(std::vector<Tensor>{Tensor()}, {.lr = 0.1}); }},
  };
}

TEST(MisuseSweep, ImpossibleHyperparametersOfLayersAndOptimizers) {
  int index = 0;
  for (const BadSetting& setting : bad_settings()) {
    SCOPED_TRACE("setting " + std::to_string(index++) + " (" + setting.names.front() + ")");
    try {
      setting.build_and_run();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      bool named = false;
      for (const std::string& name : setting.names) named |= message.find(name) != std::string::npos;
      EXPECT_TRUE(named) << "the error names none of the expected: " << message;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw a non-strata exception: " << e.what();
    }
  }
}

// One example of each kind of check in docs/reliability.md's table, with the values the
// message must show.
TEST(MisuseSweep, TheKindsOfCheckTheDocsList) {
  using test::expect_error;
  const Tensor labels = from_vector<int64_t>({0, 3});
  // Shape.
  expect_error([] { (void)add(zeros({2, 3}), zeros({4})); }, {"add", "[2,3]", "[4]"});
  expect_error([] { (void)zeros({2, 3}).t().view({6}); }, {"view", "[3,2]", "[6]"});
  expect_error([] { (void)cat({zeros({2}), zeros({2, 1})}); }, {"cat", "[2]", "[2,1]"});
  expect_error([] { (void)nn::Linear(3, 2)(zeros({2, 4})); }, {"linear", "4 features", "3"});
  expect_error([] { (void)nn::Conv2d(1, 2, 3)(zeros({8, 8})); }, {"conv2d", "[8,8]"});
  expect_error([] { (void)F::mse_loss(zeros({2, 3}), zeros({3, 2})); },
               {"mse_loss", "[3,2]", "[2,3]"});
  // Dtype.
  expect_error([] { (void)mean(from_vector<int64_t>({1, 2})); }, {"mean", "i64"});
  expect_error([] { (void)where(zeros({2}), zeros({2}), zeros({2})); }, {"where", "bool", "f32"});
  expect_error([] { (void)matmul(zeros({2, 2}), zeros({2, 2}, kFloat64)); }, {"matmul", "f32", "f64"});
  expect_error([&] { (void)F::binary_cross_entropy(labels, labels); },
               {"binary_cross_entropy", "i64"});
  // Axis.
  expect_error([] { (void)sum(zeros({2, 3}), {5}); }, {"sum", "dimension 5", "rank 2"});
  expect_error([] { (void)zeros({2, 3}).permute({0, 0}); }, {"permute", "repeats"});
  expect_error([] { (void)zeros({2, 3}).flatten(1, 0); }, {"flatten", "start_dim 1"});
  expect_error([] { (void)scalar_tensor(1.0).select(0, 0); }, {"select", "0-dim"});
  // Index.
  expect_error([] { (void)zeros({2, 3}).narrow(1, 2, 4); }, {"narrow", "start 2", "size 3"});
  expect_error([] { (void)index_select(zeros({3}), 0, from_vector<int64_t>({5})); },
               {"index_select", "index 5", "size 3"});
  expect_error([] { (void)F::embedding(from_vector<int64_t>({9}), zeros({3, 2})); },
               {"embedding", "index 9", "3 embeddings"});
  expect_error([&] { (void)F::cross_entropy(zeros({2, 3}), labels); },
               {"cross_entropy", "class index 3", "3 classes"});
  expect_error([] { (void)one_hot(from_vector<int64_t>({-1, 2})); }, {"one_hot", "-1"});
  // Hyperparameters.
  expect_error([] { (void)F::max_pool2d(zeros({1, 1, 8, 8}), {2, 2}, std::nullopt, {3, 3}); },
               {"max_pool2d", "padding 3x3", "2x2"});
  expect_error([&] { (void)F::cross_entropy(zeros({2, 3}), labels, smoothing(2.0)); },
               {"cross_entropy", "label_smoothing", "2"});
  expect_error([] { (void)F::layer_norm(zeros({2, 4}), {4}, Tensor(), Tensor(), -1.0); },
               {"layer_norm", "eps", "-1"});
  // Undefined tensors.
  expect_error([] { (void)Tensor().transpose(0, 1); }, {"transpose", "undefined"});
  expect_error([] { (void)matmul(zeros({2, 2}), Tensor()); }, {"matmul", "undefined"});
}

TEST(MisuseSweep, UnaryOpsOnEveryKindOfTensor) { check(unary_ops()); }
TEST(MisuseSweep, BinaryOpsOnEveryPairOfTensors) { check(binary_ops()); }

}  // namespace
}  // namespace strata
