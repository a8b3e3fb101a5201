// Checkpoints: a run stopped at step k, saved, restored into fresh objects and continued gives
// the uninterrupted run's losses bit for bit (CPU; model with dropout, random batch choice and
// input noise from the default generator, Adam, a StepLR and a ReduceLROnPlateau); the file
// round-trips every field; a write interrupted before its rename, or a crash that leaves a
// partial temporary file, leaves the previous checkpoint loadable; misuse throws clearly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "strata/io/checkpoint.h"
#include "strata/io/safetensors.h"
#include "strata/strata.h"
#include "test_files.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A small regression problem and a model whose every step draws from default_generator():
// the batch rows, input noise and dropout masks.
struct TrainingRun {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> optimizer;
  std::unique_ptr<optim::StepLR> scheduler;
  Tensor inputs = random_f32({32, 4}, -1, 1, 5);
  Tensor targets = random_f32({32, 1}, -1, 1, 6);

  explicit TrainingRun(uint64_t seed) {
    manual_seed(seed);  // the initial weights
    model = std::make_shared<nn::Sequential>(nn::Linear(4, 16), nn::Tanh(), nn::Dropout(0.25),
                                             nn::Linear(16, 1));
    optimizer = std::make_unique<optim::Adam>(model->parameters(),
                                              optim::AdamOptions{.lr = 0.02, .weight_decay = 1e-4});
    scheduler = std::make_unique<optim::StepLR>(*optimizer, /*step_size=*/3, /*gamma=*/0.5);
  }

  float step() {
    const Tensor rows = randint(0, 32, {8});
    const Tensor x = index_select(inputs, 0, rows) + 0.05 * randn({8, 4});
    const Tensor y = index_select(targets, 0, rows);
    optimizer->zero_grad();
    const Tensor loss = nn::functional::mse_loss((*model)(x), y);
    loss.backward();
    optimizer->step();
    scheduler->step();
    return loss.item<float>();
  }
};

std::vector<uint32_t> bits(const std::vector<float>& values) {
  std::vector<uint32_t> out;
  for (float v : values) out.push_back(std::bit_cast<uint32_t>(v));
  return out;
}

TEST(IoCheckpoint, ResumedRunMatchesTheUninterruptedRunBitForBit) {
  constexpr int kSteps = 10, kStopAt = 4;
  TempDir dir;
  const std::string path = dir.file("last.safetensors");

  std::vector<float> uninterrupted;
  {
    TrainingRun run(42);
    for (int i = 0; i < kSteps; ++i) uninterrupted.push_back(run.step());
  }

  std::vector<float> resumed;
  {
    TrainingRun run(42);
    for (int i = 0; i < kStopAt; ++i) resumed.push_back(run.step());
    io::save_checkpoint(path, io::capture(*run.model, *run.optimizer, run.scheduler.get(),
                                          /*epoch=*/0, /*step=*/kStopAt));
    // Steps after the capture must not leak into the file or the continued run.
    run.step();
  }
  {
    TrainingRun fresh(1234);  // other weights, other generator position
    const io::Checkpoint checkpoint = io::load_checkpoint(path);
    EXPECT_EQ(checkpoint.step, kStopAt);
    io::restore(checkpoint, *fresh.model, *fresh.optimizer, fresh.scheduler.get());
    EXPECT_EQ(fresh.scheduler->last_epoch(), kStopAt);
    for (int i = kStopAt; i < kSteps; ++i) resumed.push_back(fresh.step());
  }
  EXPECT_EQ(bits(resumed), bits(uninterrupted));
  EXPECT_NE(uninterrupted.front(), uninterrupted.back()) << "the run should be learning";
}

TEST(IoCheckpoint, RoundTripsEveryField) {
  TempDir dir;
  const std::string path = dir.file("checkpoint.safetensors");
  TrainingRun run(7);
  for (int i = 0; i < 3; ++i) run.step();
  io::Checkpoint saved = io::capture(*run.model, *run.optimizer, run.scheduler.get(), 2, 3);
  saved.rng = {std::numeric_limits<uint64_t>::max(), 123456789012345ULL};  // full uint64 range
  saved.metadata = {{"sample", "mnist_mlp"}, {"git", "abc123"}};
  io::save_checkpoint(path, saved);

  const io::Checkpoint loaded = io::load_checkpoint(path);
  EXPECT_EQ(loaded.epoch, 2);
  EXPECT_EQ(loaded.step, 3);
  EXPECT_EQ(loaded.rng.seed, saved.rng.seed);
  EXPECT_EQ(loaded.rng.offset, saved.rng.offset);
  EXPECT_EQ(loaded.metadata, saved.metadata);
  auto expect_same = [](const std::map<std::string, Tensor>& a,
                        const std::map<std::string, Tensor>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, tensor] : a) {
      SCOPED_TRACE(name);
      ASSERT_EQ(b.count(name), 1u);
      EXPECT_EQ(b.at(name).dtype(), tensor.dtype());
      expect_close(b.at(name), tensor, 0.0, 0.0);
    }
  };
  expect_same(saved.model, loaded.model);
  expect_same(saved.optimizer, loaded.optimizer);
  expect_same(saved.scheduler, loaded.scheduler);
  EXPECT_FALSE(loaded.optimizer.empty());
  EXPECT_FALSE(loaded.scheduler.empty());

  // The model part is a plain state dict under "model.": what PyTorch would read.
  const io::SafetensorsFile raw = io::load_safetensors(path);
  EXPECT_EQ(raw.tensors.count("model.0.weight"), 1u);
  EXPECT_EQ(raw.metadata.at("strata.format"), "checkpoint");
}

TEST(IoCheckpoint, ReduceLROnPlateauStateIsRestored) {
  manual_seed(3);
  nn::Linear model(2, 1);
  optim::SGD optimizer(model.parameters(), {.lr = 0.1});
  optim::ReduceLROnPlateau plateau(optimizer, {.factor = 0.5, .patience = 1});
  for (double metric : {1.0, 2.0, 3.0, 4.0}) plateau.step(metric);
  const io::Checkpoint checkpoint = io::capture(model, optimizer, plateau, 4);

  nn::Linear fresh_model(2, 1);
  optim::SGD fresh_optimizer(fresh_model.parameters(), {.lr = 0.1});
  optim::ReduceLROnPlateau fresh_plateau(fresh_optimizer, {.factor = 0.5, .patience = 1});
  io::restore(checkpoint, fresh_model, fresh_optimizer, fresh_plateau);
  EXPECT_EQ(fresh_plateau.best(), plateau.best());
  EXPECT_EQ(fresh_plateau.num_bad_epochs(), plateau.num_bad_epochs());
  EXPECT_EQ(fresh_optimizer.param_groups()[0].lr(), optimizer.param_groups()[0].lr());
  EXPECT_LT(fresh_optimizer.param_groups()[0].lr(), 0.1);
}

TEST(IoCheckpoint, InterruptedWriteLeavesThePreviousCheckpointLoadable) {
  TempDir dir;
  const std::string path = dir.file("last.safetensors");
  TrainingRun run(9);
  run.step();
  io::save_checkpoint(path, io::capture(*run.model, *run.optimizer, run.scheduler.get(), 1));
  const std::vector<uint8_t> first = read_bytes(path);

  run.step();
  const std::string other = dir.file("other.safetensors");
  io::save_checkpoint(other, io::capture(*run.model, *run.optimizer, run.scheduler.get(), 2));
  const std::vector<uint8_t> second = read_bytes(other);
  fs::remove(other);
  ASSERT_NE(first, second);

  // A writer that dies after writing the temporary file, before the rename.
  EXPECT_THROW(io::write_file_atomic(path, second,
                                     [](const std::string&) {
                                       throw std::runtime_error("killed before rename");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read_bytes(path), first);
  EXPECT_EQ(io::load_checkpoint(path).epoch, 1);
  EXPECT_EQ(dir.entries().size(), 1u) << "the temporary file is removed";

  // What a kill -9 mid-write leaves: a partial temporary file beside the checkpoint.
  const std::string stray = path + ".tmp-99999-deadbeef";
  {
    std::ofstream out(stray, std::ios::binary);
    out.write(reinterpret_cast<const char*>(second.data()),
              static_cast<std::streamsize>(second.size() / 2));
  }
  EXPECT_EQ(io::load_checkpoint(path).epoch, 1);
  expect_error([&] { io::load_checkpoint(stray); }, {"load_safetensors", stray});
}

TEST(IoCheckpoint, MisuseThrowsClearly) {
  TempDir dir;
  TrainingRun run(5);
  io::Checkpoint checkpoint = io::capture(*run.model, *run.optimizer, nullptr, 0);
  checkpoint.metadata["strata.epoch"] = "9";
  expect_error([&] { io::save_checkpoint(dir.file("c.safetensors"), checkpoint); },
               {"save_checkpoint", "strata.epoch", "reserves"});

  // A plain state dict is not a checkpoint.
  const std::string weights = dir.file("weights.safetensors");
  io::save(*run.model, weights);
  expect_error([&] { io::load_checkpoint(weights); },
               {"load_checkpoint", "weights.safetensors", "not a Strata checkpoint"});

  // A scheduler on one side only.
  checkpoint.metadata.clear();
  expect_error([&] { io::restore(checkpoint, *run.model, *run.optimizer, run.scheduler.get()); },
               {"restore", "has no scheduler state", "was given a scheduler"});

  // An optimizer state that does not fit: the model is put back as it was.
  TrainingRun other(6);
  // Built over the first layer only: 2 parameters where the checkpoint has 4.
  optim::SGD sgd((*other.model)[0].parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::StepLR sgd_scheduler(sgd, /*step_size=*/3);
  for (int i = 0; i < 2; ++i) run.step();
  const io::Checkpoint adam_checkpoint =
      io::capture(*run.model, *run.optimizer, run.scheduler.get(), 0);
  const nn::StateDict before = other.model->state_dict();
  std::map<std::string, Tensor> before_copy;
  for (const auto& [name, tensor] : before) before_copy[name] = tensor.clone();
  expect_error([&] { io::restore(adam_checkpoint, *other.model, sgd, &sgd_scheduler); },
               {"load_state_dict", "2 parameters here and 4"});
  for (const auto& [name, tensor] : other.model->state_dict()) {
    expect_close(tensor, before_copy.at(name), 0.0, 0.0);
  }
}

}  // namespace
}  // namespace strata::test
