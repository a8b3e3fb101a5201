// GradScaler (see strata/amp/grad_scaler.h). The checks run on the gradients' devices; step()
// reads the flags on the host (one synchronization per step, as PyTorch's step does).
#include "strata/amp/grad_scaler.h"

#include <cmath>
#include <vector>

#include "../internal.h"
#include "strata/autograd.h"
#include "strata/backend.h"
#include "strata/error.h"

namespace strata::amp {

GradScaler::GradScaler(const GradScalerOptions& options)
    : options_(options), scale_(static_cast<float>(options.init_scale)) {
  STRATA_CHECK(std::isfinite(options.init_scale) && options.init_scale > 0.0,
               "GradScaler: init_scale must be positive and finite, got ", options.init_scale);
  STRATA_CHECK(options.growth_factor > 1.0, "GradScaler: growth_factor must be > 1, got ",
               options.growth_factor);
  STRATA_CHECK(options.backoff_factor > 0.0 && options.backoff_factor < 1.0,
               "GradScaler: backoff_factor must be in (0, 1), got ", options.backoff_factor);
  STRATA_CHECK(options.growth_interval >= 1, "GradScaler: growth_interval must be >= 1, got ",
               options.growth_interval);
}

Tensor GradScaler::scale(const Tensor& loss) const {
  detail::check_defined(loss, "GradScaler::scale", "the loss");
  if (!is_enabled()) return loss;
  STRATA_CHECK(is_floating(loss.dtype()), "GradScaler::scale: the loss must be floating, got ",
               detail::describe(loss));
  return mul(loss, static_cast<double>(scale_));
}

void GradScaler::unscale_(optim::Optimizer& optimizer) {
  if (!is_enabled()) return;
  OptimizerRecord& record = records_[&optimizer];
  STRATA_CHECK(record.stage != Stage::Unscaled, "GradScaler::unscale_: already called on this ",
               optimizer.name(), " optimizer since the last update(); call it once per "
               "iteration, before step()");
  STRATA_CHECK(record.stage != Stage::Stepped, "GradScaler::unscale_: called after step() on "
               "this ", optimizer.name(), " optimizer; unscale before stepping, and call "
               "update() to start the next iteration");
  // PyTorch computes 1 / scale in float64 and rounds it to float32.
  const double inv_scale = static_cast<float>(1.0 / static_cast<double>(scale_));
  std::map<std::string, std::vector<Tensor>> by_device;
  for (const optim::ParamGroup& group : optimizer.param_groups()) {
    for (const Tensor& param : group.params) {
      const Tensor grad = param.grad();
      if (!grad.defined()) continue;
      STRATA_CHECK(grad.dtype() != DType::Float16, "GradScaler::unscale_: parameter ",
                   detail::describe(param), " has an f16 gradient; keep parameters in f32 "
                   "(autocast casts them to f16 inside the ops) so the unscaled gradients and "
                   "the update keep their precision");
      STRATA_CHECK(grad.is_contiguous(), "GradScaler::unscale_: the gradient of ",
                   detail::describe(param), " is not contiguous");
      by_device[grad.device().str()].push_back(grad);
    }
  }
  for (auto& [name, grads] : by_device) {
    const Device device = grads.front().device();
    Tensor& flag = record.found_inf[name];
    flag = zeros({1}, TensorOptions(DType::Float32).device(device));
    backend_for(device).non_finite_check_and_unscale(grads, flag, inv_scale);
    for (const Tensor& grad : grads) grad.bump_version();  // written in place
  }
  record.stage = Stage::Unscaled;
}

bool GradScaler::found_inf(OptimizerRecord& record) {
  if (!record.found_on_host) {
    record.found_on_host = false;
    for (const auto& [device, flag] : record.found_inf) {
      if (flag.item<float>() != 0.0f) record.found_on_host = true;
    }
  }
  return *record.found_on_host;
}

bool GradScaler::step(optim::Optimizer& optimizer) {
  if (!is_enabled()) {
    optimizer.step();
    return true;
  }
  OptimizerRecord& record = records_[&optimizer];
  STRATA_CHECK(record.stage != Stage::Stepped, "GradScaler::step: already called on this ",
               optimizer.name(), " optimizer since the last update()");
  if (record.stage == Stage::Ready) unscale_(optimizer);
  STRATA_CHECK(!record.found_inf.empty(), "GradScaler::step: none of the ", optimizer.name(),
               " optimizer's parameters has a gradient (was backward called on the scaled "
               "loss?)");
  const bool skip = found_inf(record);
  if (!skip) optimizer.step();
  record.stage = Stage::Stepped;
  return !skip;
}

void GradScaler::update(std::optional<double> new_scale) {
  if (!is_enabled()) return;
  if (new_scale) {
    STRATA_CHECK(std::isfinite(*new_scale) && *new_scale > 0.0,
                 "GradScaler::update: new_scale must be positive and finite, got ", *new_scale);
    scale_ = static_cast<float>(*new_scale);
  } else {
    bool checked = false, found = false;
    for (auto& [optimizer, record] : records_) {
      checked = checked || !record.found_inf.empty();
      found = found || found_inf(record);
    }
    STRATA_CHECK(checked, "GradScaler::update: no inf checks were recorded since the last "
                 "update(); call step() (or unscale_()) on the optimizer first");
    // As PyTorch's _amp_update_scale_: the scale is float32, and a growth that would overflow
    // it to infinity is not taken.
    if (found) {
      scale_ = static_cast<float>(static_cast<double>(scale_) * options_.backoff_factor);
      growth_tracker_ = 0;
    } else if (++growth_tracker_ == options_.growth_interval) {
      const auto grown = static_cast<float>(static_cast<double>(scale_) * options_.growth_factor);
      if (std::isfinite(grown)) scale_ = grown;
      growth_tracker_ = 0;
    }
  }
  records_.clear();
}

std::map<std::string, double> GradScaler::state_dict() const {
  if (!is_enabled()) return {};
  return {{"scale", static_cast<double>(scale_)},
          {"growth_factor", options_.growth_factor},
          {"backoff_factor", options_.backoff_factor},
          {"growth_interval", static_cast<double>(options_.growth_interval)},
          {"_growth_tracker", static_cast<double>(growth_tracker_)}};
}

void GradScaler::load_state_dict(const std::map<std::string, double>& state) {
  STRATA_CHECK(is_enabled(), "GradScaler::load_state_dict: this scaler is disabled; a disabled "
               "scaler has no state to load");
  for (const char* key : {"scale", "growth_factor", "backoff_factor", "growth_interval",
                          "_growth_tracker"}) {
    STRATA_CHECK(state.count(key) == 1, "GradScaler::load_state_dict: the state has no \"", key,
                 "\" (a GradScaler's state_dict has scale, growth_factor, backoff_factor, "
                 "growth_interval and _growth_tracker)");
  }
  scale_ = static_cast<float>(state.at("scale"));
  options_.growth_factor = state.at("growth_factor");
  options_.backoff_factor = state.at("backoff_factor");
  options_.growth_interval = static_cast<int64_t>(state.at("growth_interval"));
  growth_tracker_ = static_cast<int64_t>(state.at("_growth_tracker"));
}

}  // namespace strata::amp
