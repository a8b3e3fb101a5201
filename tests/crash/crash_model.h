// The model, data and optimizer of the crash-safety test, shared by the program it kills
// (crash_trainer.cpp) and the test that loads its checkpoints (test_crash_safety.cpp), so
// both build the same structure. Sized so that writing a checkpoint takes most of an epoch:
// about a million parameters (a checkpoint holds them three times with Adam's moments)
// trained on two small batches.
#pragma once

#include <cstdint>
#include <memory>

#include "strata/strata.h"

namespace strata::crash_test {

constexpr int64_t kInputs = 512;
constexpr int64_t kHidden = 2048;
constexpr int64_t kExamples = 32;
constexpr int64_t kBatchSize = 16;
constexpr uint64_t kSeed = 7;

// Seeds default_generator() first, so the weights (and Dropout's draws after them) are fixed.
inline nn::Sequential make_model() {
  manual_seed(kSeed);
  return nn::Sequential(nn::Linear(kInputs, kHidden), nn::Tanh(), nn::Dropout(0.1),
                        nn::Linear(kHidden, 1));
}

inline std::unique_ptr<optim::Adam> make_optimizer(nn::Module& model) {
  return std::make_unique<optim::Adam>(model.parameters(), optim::AdamOptions{.lr = 2e-4});
}

// Random inputs and targets from a generator of their own (not the default one).
inline std::shared_ptr<data::Dataset> make_data() {
  Generator generator(kSeed + 1);
  Tensor inputs = randn({kExamples, kInputs}, {}, &generator);
  Tensor targets = randn({kExamples, 1}, {}, &generator);
  return std::make_shared<data::TensorDataset>(inputs, targets);
}

}  // namespace strata::crash_test
