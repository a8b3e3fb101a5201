// Dynamic loss scaling for float16 training (torch.amp.GradScaler): the loss is multiplied by a
// large scale before backward, so small float16 gradients do not flush to zero; the gradients
// are divided back before the optimizer sees them; a step whose gradients hold an infinity or a
// NaN is skipped and the scale backs off, and after growth_interval clean steps in a row it
// grows. Defaults and arithmetic are PyTorch's (scale 2^16, growth 2 every 2000 clean steps,
// backoff 0.5; the scale is a float32 value and does not grow to infinity).
//
//   amp::GradScaler scaler;
//   for (...) {
//     optimizer.zero_grad();
//     Tensor loss;
//     { amp::AutocastGuard autocast(kCUDA);  loss = criterion(model(x), y); }
//     scaler.scale(loss).backward();
//     scaler.unscale_(optimizer);                         // optional: clip true gradients
//     nn::utils::clip_grad_norm_(model.parameters(), 1.0);
//     scaler.step(optimizer);                             // skipped on inf/NaN
//     scaler.update();
//   }
//
// Parameters stay float32 (their casts under autocast are float16): the scaler refuses to
// unscale float16 gradients, as PyTorch does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>

#include "strata/optim/optimizer.h"
#include "strata/tensor.h"

namespace strata::amp {

struct GradScalerOptions {
  double init_scale = 65536.0;
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
  bool enabled = true;  // a disabled scaler passes everything through (a f32 or bf16 run)
};

class GradScaler {
 public:
  explicit GradScaler(const GradScalerOptions& options = {});

  // loss * scale (loss itself when disabled).
  Tensor scale(const Tensor& loss) const;

  // Divides the optimizer's gradients by the scale in place (one fused kernel per device and
  // dtype) and records whether any is infinite or NaN. At most once per optimizer between two
  // update() calls, and before step().
  void unscale_(optim::Optimizer& optimizer);

  // Unscales (unless unscale_ already did), then calls optimizer.step() unless a gradient was
  // infinite or NaN. Returns whether the step was taken. Once per optimizer per update().
  bool step(optim::Optimizer& optimizer);

  // Adjusts the scale from this iteration's checks: backoff on any inf/NaN, growth after
  // growth_interval clean steps. `new_scale` sets it directly instead.
  void update(std::optional<double> new_scale = std::nullopt);

  double get_scale() const { return is_enabled() ? static_cast<double>(scale_) : 1.0; }
  int64_t growth_tracker() const { return growth_tracker_; }
  bool is_enabled() const { return options_.enabled; }
  const GradScalerOptions& options() const { return options_; }

  // PyTorch's state_dict keys: "scale", "growth_factor", "backoff_factor", "growth_interval",
  // "_growth_tracker" (empty when disabled). Loading takes back the scale, the factors and the
  // tracker; it throws on a missing key.
  std::map<std::string, double> state_dict() const;
  void load_state_dict(const std::map<std::string, double>& state);

 private:
  enum class Stage { Ready, Unscaled, Stepped };
  struct OptimizerRecord {
    Stage stage = Stage::Ready;
    std::map<std::string, Tensor> found_inf;  // one float32 flag per device, by device name
    std::optional<bool> found_on_host;        // the flags read back, once (a device sync)
  };
  // Whether any of the record's flags is set; reads them on the first call only.
  static bool found_inf(OptimizerRecord& record);

  GradScalerOptions options_;
  float scale_;
  int64_t growth_tracker_ = 0;
  std::unordered_map<const optim::Optimizer*, OptimizerRecord> records_;
};

}  // namespace strata::amp
