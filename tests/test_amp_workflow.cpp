// Mixed precision in the workflow: fit() and evaluate() with bf16 and f16 (autocast, and a
// GradScaler for f16), the scaler's state in ModelCheckpoint's checkpoints and back through
// resume_from_latest, the precision names, and loading state of another dtype (an error
// unless cast).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "strata/detail/cpu_memory.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
namespace fs = std::filesystem;
using namespace train;  // NOLINT(google-build-using-namespace)

// Points on either side of the line x0 + x1 = 0, with a margin.
std::shared_ptr<data::Dataset> blobs(int64_t n, uint32_t seed) {
  const std::vector<double> raw =
      test::uniform_values(static_cast<size_t>(2 * n), -1.0, 1.0, seed);
  std::vector<float> inputs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    const double x0 = raw[static_cast<size_t>(2 * i)], x1 = raw[static_cast<size_t>(2 * i + 1)];
    const int64_t label = x0 + x1 > 0.0 ? 1 : 0;
    const double shift = (label == 1 ? 0.3 : -0.3) / std::sqrt(2.0);
    inputs.push_back(static_cast<float>(x0 + shift));
    inputs.push_back(static_cast<float>(x1 + shift));
    labels.push_back(label);
  }
  return std::make_shared<data::TensorDataset>(test::f32(inputs, {n, 2}),
                                               test::i64(labels, {n}));
}

nn::Sequential mlp() {
  manual_seed(7);
  return nn::Sequential(nn::Linear(2, 16), nn::ReLU(), nn::Linear(16, 2));
}

// What the forward pass and the scaler look like in the middle of a run.
class PrecisionProbe : public Callback {
 public:
  void on_batch_end(TrainContext& context) override {
    has_scaler = context.grad_scaler != nullptr;
    if (has_scaler) {
      scales.push_back(context.grad_scaler->get_scale());
      trackers.push_back(context.grad_scaler->growth_tracker());
    }
    loss_dtype = context.batch_loss.dtype();
    for (const Tensor& p : context.model.parameters()) param_dtypes.push_back(p.dtype());
  }
  bool has_scaler = false;
  std::vector<double> scales;
  std::vector<int64_t> trackers;
  DType loss_dtype = kInt64;
  std::vector<DType> param_dtypes;
};

History train_with(MixedPrecision precision, nn::Module& model,
                   std::shared_ptr<PrecisionProbe> probe = nullptr,
                   std::shared_ptr<amp::GradScaler> scaler = nullptr,
                   std::vector<std::shared_ptr<Callback>> callbacks = {}) {
  if (probe) callbacks.push_back(probe);
  optim::Adam optimizer(model.parameters(), {.lr = 0.05});
  return fit(model, nn::CrossEntropyLoss{}, optimizer, blobs(256, 11),
             {.epochs = 8, .batch_size = 32, .seed = 3, .validation = blobs(64, 12),
              .metrics = {"accuracy"}, .callbacks = callbacks, .verbose = Verbosity::Silent,
              .precision = precision, .grad_scaler = scaler});
}

TEST(AmpWorkflow, Bfloat16FitLearnsAsFloat32Does) {
  nn::Sequential reference_model = mlp();
  const History reference = train_with(MixedPrecision::Float32, reference_model);
  nn::Sequential model = mlp();
  auto probe = std::make_shared<PrecisionProbe>();
  const History history = train_with(MixedPrecision::BFloat16, model, probe);
  EXPECT_FALSE(probe->has_scaler) << "bf16 needs no loss scaling";
  EXPECT_EQ(probe->loss_dtype, kFloat32) << "the loss runs in float32 under autocast";
  for (DType dtype : probe->param_dtypes) EXPECT_EQ(dtype, kFloat32) << "parameters stay f32";
  EXPECT_GE(history.back().at("val_accuracy"), 0.97);
  EXPECT_NEAR(history.back().at("val_accuracy"), reference.back().at("val_accuracy"), 0.03);
  EXPECT_LT(history.back().at("loss"), 0.3 * history.series("loss").front());
}

TEST(AmpWorkflow, Float16FitScalesTheLossAndGrowsTheScale) {
  nn::Sequential model = mlp();
  auto probe = std::make_shared<PrecisionProbe>();
  auto scaler = std::make_shared<amp::GradScaler>(amp::GradScalerOptions{.growth_interval = 16});
  const History history = train_with(MixedPrecision::Float16, model, probe, scaler);
  ASSERT_TRUE(probe->has_scaler);
  EXPECT_EQ(probe->scales.front(), 65536.0);
  // 64 clean steps with growth every 16: the scale doubled four times, unless a step overflowed
  // in f16 (then it backed off): either way it moved, and the caller's scaler is the one used.
  EXPECT_NE(scaler->get_scale(), 65536.0);
  EXPECT_EQ(scaler->get_scale(), probe->scales.back());
  EXPECT_GE(history.back().at("val_accuracy"), 0.97);
}

TEST(AmpWorkflow, CheckpointsCarryTheScalerAndResumeRestoresIt) {
  const fs::path directory = fs::temp_directory_path() / "strata_amp_checkpoints";
  fs::remove_all(directory);
  nn::Sequential model = mlp();
  auto scaler = std::make_shared<amp::GradScaler>(amp::GradScalerOptions{.growth_interval = 5});
  train_with(MixedPrecision::Float16, model, nullptr, scaler,
             {std::make_shared<ModelCheckpoint>(directory.string())});
  const std::string latest = latest_checkpoint(directory.string());
  ASSERT_FALSE(latest.empty());
  const io::Checkpoint checkpoint = io::load_checkpoint(latest);
  EXPECT_EQ(checkpoint.grad_scaler, scaler->state_dict());

  nn::Sequential resumed_model = mlp();
  optim::Adam optimizer(resumed_model.parameters(), {.lr = 0.05});
  amp::GradScaler resumed_scaler;
  const Resumed resumed = resume_from_latest(directory.string(), resumed_model, optimizer,
                                             nullptr, Device(kCPU), &resumed_scaler);
  EXPECT_EQ(resumed.epoch, 8);
  EXPECT_EQ(resumed_scaler.get_scale(), scaler->get_scale());
  EXPECT_EQ(resumed_scaler.growth_tracker(), scaler->growth_tracker());
  EXPECT_EQ(resumed_scaler.options().growth_interval, 5);
  fs::remove_all(directory);
}

TEST(AmpWorkflow, EvaluateUnderAutocastAgreesWithFloat32) {
  nn::Sequential model = mlp();
  train_with(MixedPrecision::Float32, model);
  const auto data = blobs(128, 13);
  const Logs f32 = evaluate(model, nn::CrossEntropyLoss{}, data, {.metrics = {"accuracy"}});
  const Logs bf16 = evaluate(model, nn::CrossEntropyLoss{}, data,
                             {.metrics = {"accuracy"}, .precision = MixedPrecision::BFloat16});
  EXPECT_NEAR(bf16.at("loss"), f32.at("loss"), 0.02 + 0.02 * f32.at("loss"));
  EXPECT_NEAR(bf16.at("accuracy"), f32.at("accuracy"), 0.02);
}

// What the tape holds between forward and backward, counted by the CPU backend: autocast
// stores the convolutions' and activations' outputs in bf16, so about half as many bytes (the
// max-pool indices stay int64 and the weights' casts are added).
TEST(AmpWorkflow, AutocastHalvesTheMemorySavedForBackward) {
  const auto saved_bytes = [](bool autocast_on) {
    manual_seed(3);
    nn::Sequential net(nn::Conv2d(3, 16, 3, 1, 1), nn::ReLU(), nn::Conv2d(16, 16, 3, 1, 1),
                       nn::ReLU(), nn::Flatten(), nn::Linear(16 * 16 * 16, 10));
    const Tensor x = randn({32, 3, 16, 16});
    const Tensor labels = randint(0, 10, {32});
    detail::start_cpu_memory_tracking();
    Tensor loss;
    {
      amp::AutocastGuard autocast(kCPU, kBFloat16, autocast_on);
      loss = F::cross_entropy(net(x), labels);
    }
    const int64_t saved = detail::cpu_memory_stats().allocated_bytes;
    loss.backward();
    EXPECT_GE(detail::cpu_memory_stats().peak_allocated_bytes, saved);
    detail::stop_cpu_memory_tracking();
    return static_cast<double>(saved);
  };
  const double f32 = saved_bytes(false), bf16 = saved_bytes(true);
  // The two relus' outputs (each conv's output is freed: relu keeps only its result).
  EXPECT_GT(f32, 2 * 32 * 16 * 16 * 16 * 4.0) << "two [32,16,16,16] f32 activations at least";
  EXPECT_LT(f32, 2.5 * 32 * 16 * 16 * 16 * 4.0) << "the conv outputs are not kept";
  // Half of that, plus the input's bf16 cast; no copy of the weights.
  EXPECT_LT(bf16, 0.55 * f32) << "f32 " << f32 << " bytes, bf16 " << bf16;
}

TEST(AmpWorkflow, PrecisionNames) {
  EXPECT_EQ(parse_precision("bf16"), MixedPrecision::BFloat16);
  EXPECT_EQ(parse_precision("fp16"), MixedPrecision::Float16);
  EXPECT_EQ(parse_precision("float32"), MixedPrecision::Float32);
  EXPECT_STREQ(precision_name(MixedPrecision::Float16), "f16");
  test::expect_error([] { (void)parse_precision("f8"); }, {"precision", "f8", "bf16"});
}

TEST(AmpWorkflow, StateOfAnotherDtypeLoadsOnlyWithAnExplicitCast) {
  nn::Linear layer(3, 2);
  nn::StateDict half_state;
  for (const auto& [name, tensor] : layer.state_dict()) half_state[name] = tensor.to(kFloat16);
  test::expect_error([&] { layer.load_state_dict(half_state); },
                     {"load_state_dict", "weight", "f16", "f32", "cast"});
  layer.load_state_dict(half_state, true, /*cast=*/true);
  EXPECT_EQ(layer.weight.dtype(), kFloat32);
  test::expect_close(layer.weight, half_state.at("weight").to(kFloat32), 0.0, 0.0);

  // A half-precision file (as PyTorch's model.half() saves it) into a model made half.
  const fs::path path = fs::temp_directory_path() / "strata_half_model.safetensors";
  io::save_safetensors(path.string(), half_state);
  nn::Linear half_layer(3, 2);
  half_layer.to(kFloat16);
  io::load(half_layer, path.string());
  EXPECT_EQ(half_layer.weight.dtype(), kFloat16);
  test::expect_close(half_layer.weight, half_state.at("weight"), 0.0, 0.0);
  nn::Linear wide_layer(3, 2);
  test::expect_error([&] { io::load(wide_layer, path.string()); },
                     {"load", path.filename().string(), "f16", "f32"});
  io::load(wide_layer, path.string(), true, /*cast=*/true);
  fs::remove(path);
}

}  // namespace
}  // namespace strata
