// Training checkpoints: everything needed to resume a run exactly (model, optimizer,
// learning-rate scheduler, epoch and step counters, the default generator's seed and offset)
// in one safetensors file, written atomically, so that a run killed at any moment restarts
// from its last complete checkpoint and, on the CPU, produces the same losses bit for bit.
//
// The epoch stored is the number of epochs completed, which is the 0-based index of the epoch
// to run next (train::fit's ModelCheckpoint writes it so; resume fit() with
// FitOptions::initial_epoch = checkpoint.epoch):
//
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     ...  // one epoch of training
//     io::save_checkpoint(out / "last.safetensors", io::capture(model, opt, &scheduler, epoch + 1));
//   }
//   ...
//   io::Checkpoint checkpoint = io::load_checkpoint(out / "last.safetensors");
//   io::restore(checkpoint, model, opt, &scheduler);   // also restores the generator
//   for (int64_t epoch = checkpoint.epoch; epoch < epochs; ++epoch) ...
//
// The file holds the model's tensors as "model.<name>", the optimizer's as "optimizer.<key>",
// the scheduler's as "scheduler.<key>" (optim::OptimizerStateDict / SchedulerStateDict keys),
// and in "__metadata__": "strata.format" = "checkpoint", "strata.format_version" = "1",
// "strata.epoch", "strata.step", "strata.rng_seed", "strata.rng_offset" (decimal), plus the
// user's metadata under its own keys, which must not start with "strata.". The model's part
// reads back into PyTorch with the prefix stripped.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "strata/generator.h"
#include "strata/io/safetensors.h"
#include "strata/nn/module.h"
#include "strata/optim/optimizer.h"
#include "strata/optim/scheduler.h"

namespace strata::io {

// A generator's position: Generator(seed) advanced by `offset` numbers.
struct GeneratorState {
  uint64_t seed = 5489;
  uint64_t offset = 0;
};

struct Checkpoint {
  nn::StateDict model;
  optim::OptimizerStateDict optimizer;    // empty when saved without an optimizer
  optim::SchedulerStateDict scheduler;    // empty when saved without a scheduler
  int64_t epoch = 0;                      // epochs completed (the next epoch's 0-based index)
  int64_t step = 0;                       // optimizer steps taken, as the caller counts
  GeneratorState rng;                     // of default_generator() unless set otherwise
  // A mixed-precision run's amp::GradScaler::state_dict() (empty without one); put it back
  // with scaler.load_state_dict(checkpoint.grad_scaler). fit()'s ModelCheckpoint fills it.
  std::map<std::string, double> grad_scaler;
  Metadata metadata;                      // free-form; keys must not start with "strata."
};

// Writes `checkpoint` to `path` atomically (write_file_atomic): a crash midway leaves the
// previous file at `path` intact.
void save_checkpoint(const std::string& path, const Checkpoint& checkpoint);
// Reads a file written by save_checkpoint; tensors land on `device` (restore moves them to the
// model's and the parameters' devices anyway). Throws strata::Error naming the file when it
// is not a valid safetensors file, not a Strata checkpoint, or a tensor name has no known
// prefix.
Checkpoint load_checkpoint(const std::string& path, Device device = Device(DeviceType::CPU));

// A checkpoint of live objects: copies of the model's and optimizer's state (so that training
// on does not change it), the scheduler's state when one is given, and default_generator()'s
// seed and offset.
Checkpoint capture(const nn::Module& model, const optim::Optimizer& optimizer,
                   const optim::LRScheduler* scheduler, int64_t epoch, int64_t step = 0);
Checkpoint capture(const nn::Module& model, const optim::Optimizer& optimizer,
                   const optim::ReduceLROnPlateau& scheduler, int64_t epoch, int64_t step = 0);

// Applies `checkpoint` to objects built the way the saved ones were (same model structure,
// optimizer over the same parameters in the same groups, same kind of scheduler): the model
// strictly (every key, no other), then the optimizer, then the scheduler (which also sets the
// groups' lrs), then, when `restore_rng`, default_generator(). A scheduler given without one
// in the checkpoint, or the reverse, throws, as does any mismatch the state dicts' own loaders
// find; a failure part-way puts the model and optimizer back as they were, so nothing changes.
void restore(const Checkpoint& checkpoint, nn::Module& model, optim::Optimizer& optimizer,
             optim::LRScheduler* scheduler, bool restore_rng = true);
void restore(const Checkpoint& checkpoint, nn::Module& model, optim::Optimizer& optimizer,
             optim::ReduceLROnPlateau& scheduler, bool restore_rng = true);

}  // namespace strata::io
