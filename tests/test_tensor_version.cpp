// Tensor::version (PyTorch's _version): a counter of in-place writes shared by every view of a
// storage. Each in-place path of core/ bumps it (fill_, zero_, copy_, add_, mul_, the
// initializers, optimizer steps, batch_norm's running statistics, load_state_dict and
// safetensors loading, set_data); views and detach() share it; out-of-place ops and reads leave
// it alone. Caches of derived data (the CUDA RNN's packed weights) rely on all of this; their
// own tests are in test_cuda_rnn.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "strata/io/safetensors.h"
#include "strata/nn/init.h"
#include "strata/strata.h"
#include "test_files.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;

Tensor sample(const Shape& shape = {3, 4}) {
  return test::random_f64(shape, -1, 1, 7, false).to(kFloat32);
}

TEST(TensorVersion, StartsAtZero) {
  EXPECT_EQ(empty({2, 3}).version(), 0u);
  EXPECT_EQ(zeros({2, 3}).version(), 0u);  // made by a fill inside the op, not in place
  EXPECT_EQ(from_vector<float>({1, 2, 3}).version(), 0u);
  EXPECT_EQ(sample().clone().version(), 0u);
}

TEST(TensorVersion, EachInPlaceMethodBumpsByOne) {
  Tensor t = sample();
  t.fill_(2.0);
  EXPECT_EQ(t.version(), 1u);
  t.zero_();
  EXPECT_EQ(t.version(), 2u);
  t.copy_(sample());
  EXPECT_EQ(t.version(), 3u);
  t.copy_(scalar_tensor(1.0));  // broadcast
  EXPECT_EQ(t.version(), 4u);
  t.add_(sample());  // the fast path: same shape, dtype and device
  EXPECT_EQ(t.version(), 5u);
  t.add_(sample(), 0.5);
  EXPECT_EQ(t.version(), 6u);
  t.add_(ones({4}));  // the general path: broadcast
  EXPECT_EQ(t.version(), 7u);
  t.mul_(3.0);
  EXPECT_EQ(t.version(), 8u);
  Tensor strided = sample({4, 3}).t();  // not contiguous: the general paths
  strided.mul_(2.0);
  strided.fill_(1.0);
  strided.add_(sample());
  EXPECT_EQ(strided.version(), 3u);
}

TEST(TensorVersion, ViewsAndDetachShareOneCounter) {
  Tensor base = sample({4, 6});
  const Tensor row = base.select(0, 1);
  const Tensor block = base.narrow(1, 2, 3);
  const Tensor transposed = base.t();
  const Tensor reshaped = base.view({24});
  const Tensor detached = base.detach();
  Tensor(row).fill_(1.0);
  for (const Tensor& t : {base, row, block, transposed, reshaped, detached}) {
    EXPECT_EQ(t.version(), 1u);
  }
  Tensor(detached).mul_(2.0);
  Tensor(block).copy_(zeros({4, 3}));
  for (const Tensor& t : {base, row, block, transposed, reshaped, detached}) {
    EXPECT_EQ(t.version(), 3u);
  }
  // A write to another storage is not counted here.
  Tensor other = base.clone();
  other.fill_(0.0);
  EXPECT_EQ(base.version(), 3u);
  EXPECT_EQ(other.version(), 1u);
}

TEST(TensorVersion, OutOfPlaceOpsAndReadsLeaveItAlone) {
  Tensor t = sample();
  t.fill_(0.25);
  ASSERT_EQ(t.version(), 1u);
  const Tensor results[] = {add(t, 1.0),         mul(t, t),        t.exp(),
                            t.sum(),             t.mean({0}),      t.t().contiguous(),
                            t.to(kFloat64),      t.clone(),        t.reshape({12}),
                            F::relu(t),          F::softmax(t, 1), t.matmul(t.t())};
  for (const Tensor& r : results) EXPECT_EQ(r.version(), r.storage() == t.storage() ? 1u : 0u);
  static_cast<void>(t.to_vector<float>());
  static_cast<void>(t.str());
  EXPECT_EQ(t.version(), 1u);
}

TEST(TensorVersion, InitializersBumpTheParameter) {
  Tensor w = empty({4, 5});
  nn::init::uniform_(w, -1, 1);
  EXPECT_EQ(w.version(), 1u);
  nn::init::kaiming_uniform_(w);
  EXPECT_EQ(w.version(), 2u);
  nn::init::zeros_(w);
  EXPECT_EQ(w.version(), 3u);
}

// One step of `optimizer` on w with a gradient: w and the state tensors are written in place.
TEST(TensorVersion, OptimizerStepsBumpParameters) {
  for (const std::string kind : {"sgd", "sgd_momentum", "adam"}) {
    SCOPED_TRACE(kind);
    Tensor w = sample();
    w.set_requires_grad(true);
    std::unique_ptr<optim::Optimizer> opt;
    if (kind == "sgd") opt = std::make_unique<optim::SGD>(std::vector<Tensor>{w});
    if (kind == "sgd_momentum") {
      opt = std::make_unique<optim::SGD>(std::vector<Tensor>{w},
                                         optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
    }
    if (kind == "adam") opt = std::make_unique<optim::Adam>(std::vector<Tensor>{w});
    const Tensor view_of_w = w.detach().narrow(0, 1, 2);
    for (uint64_t step = 1; step <= 2; ++step) {
      opt->zero_grad();
      sum(mul(w, w)).backward();
      const uint64_t before = w.version();
      opt->step();
      EXPECT_GT(w.version(), before) << "step " << step;
      EXPECT_EQ(view_of_w.version(), w.version());
    }
  }
}

TEST(TensorVersion, ZeroGradBumpsTheGradient) {
  Tensor w = sample();
  w.set_requires_grad(true);
  sum(w).backward();
  const Tensor grad = w.grad();
  const uint64_t before = grad.version();
  optim::SGD opt({w});
  opt.zero_grad(/*set_to_none=*/false);
  EXPECT_GT(grad.version(), before);
}

TEST(TensorVersion, BatchNormTrainingBumpsRunningStatistics) {
  nn::BatchNorm1d bn(3);
  const Tensor x = test::random_f64({5, 3}, -1, 1, 9, false).to(kFloat32);
  const uint64_t mean_before = bn.running_mean.version();
  const uint64_t var_before = bn.running_var.version();
  bn.train(true);
  bn.forward(x);
  EXPECT_GT(bn.running_mean.version(), mean_before);
  EXPECT_GT(bn.running_var.version(), var_before);
  // Evaluation only reads them.
  const uint64_t mean_after = bn.running_mean.version();
  bn.train(false);
  bn.forward(x);
  EXPECT_EQ(bn.running_mean.version(), mean_after);
  // Strided running statistics (a slice of a bigger buffer) are written back and bumped too.
  Tensor buffer = zeros({2, 3});
  Tensor rm = buffer.select(1, 0), rv = ones({4}).slice(0, 0, 4, 2);
  ASSERT_FALSE(rm.is_contiguous());
  F::batch_norm(x.narrow(1, 0, 2), rm, rv, Tensor(), Tensor(), true);
  EXPECT_GE(rm.version(), 1u);
  EXPECT_GE(rv.version(), 1u);
}

TEST(TensorVersion, LoadStateDictAndSafetensorsBumpParameters) {
  nn::Linear source(3, 2), target(3, 2);
  const uint64_t before = target.weight.version();
  target.load_state_dict(source.state_dict());
  EXPECT_GT(target.weight.version(), before);
  EXPECT_GT(target.bias.version(), 0u);

  test::TempDir dir;
  const std::string path = dir.file("linear.safetensors");
  io::save(source, path);
  const uint64_t loaded_before = target.weight.version();
  io::load(target, path);
  EXPECT_GT(target.weight.version(), loaded_before);
}

TEST(TensorVersion, SetDataNeverGoesBack) {
  Tensor p = sample();
  p.fill_(1.0);
  p.fill_(2.0);
  ASSERT_EQ(p.version(), 2u);
  const Tensor fresh = sample();  // version 0
  p.set_data(fresh);
  EXPECT_GT(p.version(), 2u);
  EXPECT_EQ(p.storage(), fresh.storage());
  // Module::to(dtype) goes through set_data.
  nn::Linear layer(2, 2);
  const uint64_t before = layer.weight.version();
  layer.to(kFloat64);
  EXPECT_GT(layer.weight.version(), before);
}

TEST(TensorVersion, BumpVersionForRawWrites) {
  Tensor t = sample();
  t.data<float>()[0] = 5.0f;  // a raw write: the writer must say so
  EXPECT_EQ(t.version(), 0u);
  t.bump_version();
  EXPECT_EQ(t.version(), 1u);
  EXPECT_EQ(t.detach().version(), 1u);
}

}  // namespace
}  // namespace strata
