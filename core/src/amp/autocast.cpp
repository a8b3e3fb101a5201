// Autocast's thread-local state, its weight-cast cache, and the casts the ops call (see
// strata/amp/autocast.h).
#include "strata/amp/autocast.h"

#include <unordered_map>

#include "../internal.h"
#include "strata/autograd.h"
#include "strata/error.h"

namespace strata::amp {

namespace {

struct ThreadState {
  AutocastState cpu;
  AutocastState cuda;
  int enabled_guards = 0;  // enabled guards alive on this thread, both device types together

  // A parameter's cast, for the life of the outermost enabled guard: keyed on the parameter's
  // TensorImpl and the target dtype; `version` is the parameter's when the cast was made.
  struct CachedCast {
    Tensor source;  // keeps the key's TensorImpl alive, so the address is not reused
    Tensor cast;
    uint64_t version = 0;
  };
  std::unordered_map<const TensorImpl*, CachedCast> cache[2];  // [f16, bf16]
  // Each cached cast's TensorImpl -> its entry's, for SavedTensor.
  std::unordered_map<const TensorImpl*, const CachedCast*> cast_sources;

  AutocastState& of(DeviceType type) { return type == DeviceType::CPU ? cpu : cuda; }
};

ThreadState& state() {
  thread_local ThreadState s;
  return s;
}

const AutocastState* active_for(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype())) return nullptr;
  const AutocastState& s = state().of(t.device().type);
  return s.enabled ? &s : nullptr;
}

}  // namespace

DType default_autocast_dtype(DeviceType device_type) {
  return device_type == DeviceType::CPU ? DType::BFloat16 : DType::Float16;
}

AutocastGuard::AutocastGuard(DeviceType device_type, std::optional<DType> dtype, bool enabled)
    : device_type_(device_type), previous_(state().of(device_type)) {
  const DType target = dtype.value_or(default_autocast_dtype(device_type));
  STRATA_CHECK(is_reduced_floating(target), "AutocastGuard: the autocast dtype must be f16 or "
               "bf16, got ", dtype_name(target), " (for ", device_type == DeviceType::CPU ? "cpu"
               : "cuda", ")");
  ThreadState& s = state();
  s.of(device_type) = {enabled, target};
  if (enabled) ++s.enabled_guards;
}

AutocastGuard::~AutocastGuard() {
  ThreadState& s = state();
  if (s.of(device_type_).enabled && --s.enabled_guards == 0) {
    s.cast_sources.clear();
    s.cache[0].clear();
    s.cache[1].clear();
  }
  s.of(device_type_) = previous_;
}

bool is_autocast_enabled(DeviceType device_type) { return state().of(device_type).enabled; }

DType autocast_dtype(DeviceType device_type) { return state().of(device_type).dtype; }

Tensor cast_to_low_precision(const Tensor& t) {
  const AutocastState* s = active_for(t);
  if (s == nullptr || t.dtype() == s->dtype || t.dtype() == DType::Float64) return t;
  // NOTE: only leaves that require grad are cached (parameters, reused across a forward);
  // activations are new every step and caching them would only hold memory.
  if (!(t.requires_grad() && t.grad_fn() == nullptr)) return t.to(s->dtype);
  auto& cache = state().cache[s->dtype == DType::Float16 ? 0 : 1];
  auto found = cache.find(t.impl());
  if (found != cache.end() && found->second.version == t.version()) return found->second.cast;
  Tensor cast = t.to(s->dtype);
  // A cast made with recording off has no path back to the parameter: not kept.
  if (GradMode::is_enabled()) {
    if (found != cache.end()) state().cast_sources.erase(found->second.cast.impl());
    ThreadState::CachedCast& entry = cache[t.impl()] = {t, cast, t.version()};
    state().cast_sources[cast.impl()] = &entry;
  }
  return cast;
}

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  const auto& sources = state().cast_sources;
  const auto found = sources.find(t.impl());
  if (found == sources.end()) {
    tensor_ = t;
    return;
  }
  tensor_ = found->second->source;
  recast_ = t.dtype();
  version_ = found->second->version;
}

Tensor SavedTensor::get(const char* op) const {
  if (!recast_) return tensor_;
  STRATA_CHECK(tensor_.version() == version_, op, ": a parameter ", detail::describe(tensor_),
               " that autocast cast to ", dtype_name(*recast_),
               " for the forward pass was modified in place before the backward (version ",
               version_, ", now ", tensor_.version(), "); run backward before changing it");
  return tensor_.to(*recast_);
}

bool needs_low_precision(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    const AutocastState* s = active_for(*t);
    if (s != nullptr && t->dtype() != s->dtype && t->dtype() != DType::Float64) return true;
  }
  return false;
}

bool needs_low_precision(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    if (needs_low_precision({&t})) return true;
  }
  return false;
}

std::vector<Tensor> cast_to_low_precision(const std::vector<Tensor>& tensors) {
  std::vector<Tensor> out;
  out.reserve(tensors.size());
  for (const Tensor& t : tensors) out.push_back(cast_to_low_precision(t));
  return out;
}

bool needs_float32(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (active_for(*t) != nullptr && is_reduced_floating(t->dtype())) return true;
  }
  return false;
}

Tensor cast_to_float32(const Tensor& t) {
  if (active_for(t) == nullptr || !is_reduced_floating(t.dtype())) return t;
  return t.to(DType::Float32);
}

void refuse_under_autocast(const Tensor& t, const char* op, const char* instead) {
  STRATA_CHECK(!t.defined() || !state().of(t.device().type).enabled, op,
               " is unsafe to autocast (its reduced-precision gradients lose too much); use ",
               instead, ", which combines it with the sigmoid and is safe, or end the "
               "AutocastGuard before calling it");
}

AutocastOffGuard::AutocastOffGuard() : cpu_(state().cpu), cuda_(state().cuda) {
  state().cpu.enabled = false;
  state().cuda.enabled = false;
}

AutocastOffGuard::~AutocastOffGuard() {
  state().cpu = cpu_;
  state().cuda = cuda_;
}

}  // namespace strata::amp
