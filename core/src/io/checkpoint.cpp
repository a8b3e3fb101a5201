// Checkpoints as one safetensors file: the three state dicts under their prefixes, the
// counters and the generator's position as decimal strings in "__metadata__" (uint64 values
// do not fit Strata's int64 tensors, and strings keep them readable from Python).
#include "strata/io/checkpoint.h"

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <utility>

#include "strata/error.h"

namespace strata::io {
namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";
constexpr const char* kSchedulerPrefix = "scheduler.";
constexpr const char* kReservedPrefix = "strata.";
constexpr const char* kFormatKey = "strata.format";
constexpr const char* kFormatValue = "checkpoint";
constexpr const char* kVersionKey = "strata.format_version";
constexpr const char* kVersionValue = "1";
constexpr const char* kEpochKey = "strata.epoch";
constexpr const char* kStepKey = "strata.step";
constexpr const char* kSeedKey = "strata.rng_seed";
constexpr const char* kOffsetKey = "strata.rng_offset";
constexpr const char* kGradScalerPrefix = "strata.grad_scaler.";

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// Copies, so a checkpoint captured mid-training is not changed by the steps that follow
// (state_dict() tensors share data with the live module).
std::map<std::string, Tensor> deep_copy(const std::map<std::string, Tensor>& tensors) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, tensor] : tensors) out.emplace(name, tensor.detach().clone());
  return out;
}

template <typename T>
T parse_number(const Metadata& metadata, const char* key, const std::string& path) {
  const auto it = metadata.find(key);
  STRATA_CHECK(it != metadata.end(), "load_checkpoint: ", path, " has no \"", key,
               "\" in its metadata");
  const std::string& text = it->second;
  T value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  STRATA_CHECK(error == std::errc() && end == text.data() + text.size() && !text.empty(),
               "load_checkpoint: ", path, ": metadata \"", key, "\" is \"", text,
               "\", not a whole number in range");
  return value;
}

Checkpoint capture_common(const nn::Module& model, const optim::Optimizer& optimizer,
                          int64_t epoch, int64_t step) {
  Checkpoint checkpoint;
  checkpoint.model = deep_copy(model.state_dict());
  checkpoint.optimizer = deep_copy(optimizer.state_dict());
  checkpoint.epoch = epoch;
  checkpoint.step = step;
  checkpoint.rng = {default_generator().seed(), default_generator().offset()};
  return checkpoint;
}

// Loads model and optimizer, then runs `load_scheduler`; if anything throws, the model and
// optimizer get their previous state back before the error propagates.
template <typename LoadScheduler>
void restore_common(const Checkpoint& checkpoint, nn::Module& model, optim::Optimizer& optimizer,
                    bool has_scheduler, bool restore_rng, LoadScheduler&& load_scheduler) {
  STRATA_CHECK(has_scheduler == !checkpoint.scheduler.empty(), "restore: the checkpoint ",
               checkpoint.scheduler.empty() ? "has no" : "has a",
               " scheduler state but restore() was given ",
               has_scheduler ? "a scheduler" : "none");
  STRATA_CHECK(!checkpoint.optimizer.empty(),
               "restore: the checkpoint has no optimizer state (saved without an optimizer); "
               "load only the model with model.load_state_dict(checkpoint.model)");
  const nn::StateDict model_before = deep_copy(model.state_dict());
  const optim::OptimizerStateDict optimizer_before = deep_copy(optimizer.state_dict());
  model.load_state_dict(checkpoint.model, /*strict=*/true);  // checks all before it copies
  try {
    optimizer.load_state_dict(checkpoint.optimizer);
    load_scheduler();
  } catch (...) {
    model.load_state_dict(model_before);
    optimizer.load_state_dict(optimizer_before);
    throw;
  }
  if (restore_rng) {
    default_generator().manual_seed(checkpoint.rng.seed);
    default_generator().set_offset(checkpoint.rng.offset);
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  TensorMap tensors;
  auto add = [&](const char* prefix, const std::map<std::string, Tensor>& part) {
    for (const auto& [name, tensor] : part) tensors.emplace(prefix + name, tensor);
  };
  add(kModelPrefix, checkpoint.model);
  add(kOptimizerPrefix, checkpoint.optimizer);
  add(kSchedulerPrefix, checkpoint.scheduler);

  Metadata metadata;
  for (const auto& [key, value] : checkpoint.metadata) {
    STRATA_CHECK(!starts_with(key, kReservedPrefix), "save_checkpoint: metadata key \"", key,
                 "\" starts with \"", kReservedPrefix, "\", which Strata reserves for its own");
    metadata.emplace(key, value);
  }
  metadata[kFormatKey] = kFormatValue;
  metadata[kVersionKey] = kVersionValue;
  metadata[kEpochKey] = std::to_string(checkpoint.epoch);
  metadata[kStepKey] = std::to_string(checkpoint.step);
  metadata[kSeedKey] = std::to_string(checkpoint.rng.seed);
  metadata[kOffsetKey] = std::to_string(checkpoint.rng.offset);
  for (const auto& [key, value] : checkpoint.grad_scaler) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);  // round-trips a double exactly
    metadata[kGradScalerPrefix + key] = text;
  }
  write_file_atomic(path, save_safetensors_to_buffer(tensors, metadata));
}

Checkpoint load_checkpoint(const std::string& path, Device device) {
  SafetensorsFile file = load_safetensors(path, device);
  const auto format = file.metadata.find(kFormatKey);
  STRATA_CHECK(format != file.metadata.end() && format->second == kFormatValue,
               "load_checkpoint: ", path, " is a safetensors file but not a Strata checkpoint "
               "(no \"", kFormatKey, "\": \"", kFormatValue,
               "\" in its metadata); io::load reads plain state dicts");
  const auto version = file.metadata.find(kVersionKey);
  STRATA_CHECK(version != file.metadata.end() && version->second == kVersionValue,
               "load_checkpoint: ", path, " has checkpoint format version \"",
               version == file.metadata.end() ? "" : version->second, "\"; this Strata reads \"",
               kVersionValue, "\"");

  Checkpoint checkpoint;
  checkpoint.epoch = parse_number<int64_t>(file.metadata, kEpochKey, path);
  checkpoint.step = parse_number<int64_t>(file.metadata, kStepKey, path);
  checkpoint.rng.seed = parse_number<uint64_t>(file.metadata, kSeedKey, path);
  checkpoint.rng.offset = parse_number<uint64_t>(file.metadata, kOffsetKey, path);
  for (auto& [key, value] : file.metadata) {
    if (starts_with(key, kGradScalerPrefix)) {
      char* end = nullptr;
      const double number = std::strtod(value.c_str(), &end);
      STRATA_CHECK(!value.empty() && end == value.c_str() + value.size(), "load_checkpoint: ",
                   path, ": metadata \"", key, "\" is \"", value, "\", not a number");
      checkpoint.grad_scaler[key.substr(std::string(kGradScalerPrefix).size())] = number;
    } else if (!starts_with(key, kReservedPrefix)) {
      checkpoint.metadata.emplace(key, std::move(value));
    }
  }
  for (auto& [name, tensor] : file.tensors) {
    const std::pair<const char*, std::map<std::string, Tensor>*> parts[] = {
        {kModelPrefix, &checkpoint.model},
        {kOptimizerPrefix, &checkpoint.optimizer},
        {kSchedulerPrefix, &checkpoint.scheduler}};
    bool placed = false;
    for (const auto& [prefix, target] : parts) {
      if (!placed && starts_with(name, prefix)) {
        target->emplace(name.substr(std::string(prefix).size()), tensor);
        placed = true;
      }
    }
    STRATA_CHECK(placed, "load_checkpoint: ", path, ": tensor \"", name,
                 "\" has none of the prefixes \"model.\", \"optimizer.\", \"scheduler.\"");
  }
  return checkpoint;
}

Checkpoint capture(const nn::Module& model, const optim::Optimizer& optimizer,
                   const optim::LRScheduler* scheduler, int64_t epoch, int64_t step) {
  Checkpoint checkpoint = capture_common(model, optimizer, epoch, step);
  if (scheduler != nullptr) checkpoint.scheduler = deep_copy(scheduler->state_dict());
  return checkpoint;
}

Checkpoint capture(const nn::Module& model, const optim::Optimizer& optimizer,
                   const optim::ReduceLROnPlateau& scheduler, int64_t epoch, int64_t step) {
  Checkpoint checkpoint = capture_common(model, optimizer, epoch, step);
  checkpoint.scheduler = deep_copy(scheduler.state_dict());
  return checkpoint;
}

void restore(const Checkpoint& checkpoint, nn::Module& model, optim::Optimizer& optimizer,
             optim::LRScheduler* scheduler, bool restore_rng) {
  restore_common(checkpoint, model, optimizer, scheduler != nullptr, restore_rng, [&] {
    if (scheduler != nullptr) scheduler->load_state_dict(checkpoint.scheduler);
  });
}

void restore(const Checkpoint& checkpoint, nn::Module& model, optim::Optimizer& optimizer,
             optim::ReduceLROnPlateau& scheduler, bool restore_rng) {
  restore_common(checkpoint, model, optimizer, true, restore_rng,
                 [&] { scheduler.load_state_dict(checkpoint.scheduler); });
}

}  // namespace strata::io
