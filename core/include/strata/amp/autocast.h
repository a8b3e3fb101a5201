// Automatic mixed precision (torch.autocast): inside an AutocastGuard, ops on tensors of the
// guarded device type pick their own precision, following PyTorch's CUDA op lists:
// - low precision (the guard's dtype: f16 by default on CUDA, bf16 on the CPU): matmul,
//   linear, conv1d/conv2d, the recurrent cells and F::recurrent (RNN, LSTM, GRU);
// - float32: softmax, log_softmax, exp, log, pow, reciprocal, softplus, sum, cumulative and
//   norm-like reductions, layer_norm, and the losses (binary_cross_entropy itself is refused,
//   as PyTorch refuses it: use binary_cross_entropy_with_logits, which is safe);
// - every other op runs in its inputs' dtype, and ops mixing dtypes run in the widest (the
//   ordinary promotion rules, cat and stack included).
// Casts are ordinary differentiable `to(dtype)` ops, so gradients reach float32 parameters in
// float32. A leaf that requires grad (a parameter) is cast once per guard and the cast reused
// (recast if the leaf is modified in place meanwhile); the cache empties when the outermost
// enabled guard ends. Backward passes run with autocast off: their ops follow the dtypes the
// forward saved.
// Usage:
//   { amp::AutocastGuard autocast(kCPU);   // bf16
//     auto loss = F::cross_entropy(model->forward(x), y); }   // loss is f32
//   loss.backward();
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <vector>

#include "strata/device.h"
#include "strata/dtype.h"
#include "strata/tensor.h"

namespace strata::amp {

// Autocast's state for one device type on the calling thread.
struct AutocastState {
  bool enabled = false;
  DType dtype = DType::Float16;
};

// Turns autocast on (or, with enabled = false, off) for `device_type` for its scope, on the
// calling thread, and restores the previous state at its end. `dtype` must be f16 or bf16; it
// defaults to f16 on CUDA and bf16 on the CPU (PyTorch's defaults). Guards nest.
class AutocastGuard {
 public:
  explicit AutocastGuard(DeviceType device_type = DeviceType::CUDA,
                         std::optional<DType> dtype = std::nullopt, bool enabled = true);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  DeviceType device_type_;
  AutocastState previous_;
};

bool is_autocast_enabled(DeviceType device_type);
DType autocast_dtype(DeviceType device_type);
// f16 on CUDA, bf16 on the CPU.
DType default_autocast_dtype(DeviceType device_type);

// The casts the ops call (exposed so that user-written ops can follow the same policy).
// Each returns `t` unchanged unless autocast is on for t's device type and t is floating.
// For an op that runs in low precision: t in the autocast dtype.
Tensor cast_to_low_precision(const Tensor& t);
// For an op that runs in float32: a f16/bf16 t in float32 (float64 stays float64).
Tensor cast_to_float32(const Tensor& t);
// What an op's first lines ask: the op then casts its floating inputs and calls itself once.
// True when autocast is on for the device of the tensors and some defined floating tensor
// (f64 aside) is not in the autocast dtype:
//   if (amp::needs_low_precision({&x, &w})) return op(amp::cast_to_low_precision(x), ...);
bool needs_low_precision(std::initializer_list<const Tensor*> tensors);
bool needs_low_precision(const std::vector<Tensor>& tensors);
// True when autocast is on for the device of the tensors and some defined one is f16 or bf16.
bool needs_float32(std::initializer_list<const Tensor*> tensors);
std::vector<Tensor> cast_to_low_precision(const std::vector<Tensor>& tensors);

// What an op's backward keeps of an input (with its place on the tape, which a pass that
// creates a graph differentiates through; other passes run with grad mode off). A parameter's
// autocast cast (returned by cast_to_low_precision while its guard lives) is kept as the parameter
// itself and cast again when the backward asks for it: the tape holds no low-precision copy of the
// weights (the forward's copy is freed with the guard), and the backward pays one more cast.
// Anything else is kept as it is. get() refuses, naming `op`, a parameter modified in place since
// the forward (its cast would differ from the one the forward used). Used by linear, conv1d/conv2d
// and the recurrent stacks.
class SavedTensor {
 public:
  SavedTensor() = default;
  explicit SavedTensor(const Tensor& t);
  Tensor get(const char* op) const;
  bool defined() const { return tensor_.defined(); }

 private:
  Tensor tensor_;  // t, or the parameter t was cast from
  std::optional<DType> recast_;
  uint64_t version_ = 0;  // the parameter's version at the cast
};

// Throws strata::Error naming `op` when autocast is on for t's device type (an op that is
// unsafe in reduced precision and has a safe replacement).
void refuse_under_autocast(const Tensor& t, const char* op, const char* instead);

// Turns autocast off for every device type for its scope (the autograd engine runs backward
// under one).
class AutocastOffGuard {
 public:
  AutocastOffGuard();
  ~AutocastOffGuard();
  AutocastOffGuard(const AutocastOffGuard&) = delete;
  AutocastOffGuard& operator=(const AutocastOffGuard&) = delete;

 private:
  AutocastState cpu_, cuda_;
};

}  // namespace strata::amp
