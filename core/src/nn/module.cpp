// nn::Module: registration, traversal, modes, placement, state dicts, printing and summary.
// Qualified names join the registration names with dots; every traversal keeps registration
// order, so a network's parameters come out in the order its layers were built.
#include "strata/nn/module.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>

#include "internal.h"
#include "strata/autograd.h"

namespace strata::nn {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// The recorder summary() installs while it runs a forward: each module called through
// operator() appends its output shape here.
struct SummaryRow {
  const Module* module;
  Shape output_shape;
};
thread_local std::vector<SummaryRow>* t_summary_rows = nullptr;

std::string with_thousands(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::atomic<UnregisteredCheck> g_unregistered_check{
#ifdef NDEBUG
    UnregisteredCheck::Off
#else
    UnregisteredCheck::Warn
#endif
};

// The modules whose operator() is running on this thread, outermost first.
thread_local std::vector<Module*> t_calls;

class CallScope {
 public:
  explicit CallScope(Module* module) { t_calls.push_back(module); }
  ~CallScope() { t_calls.pop_back(); }
  CallScope(const CallScope&) = delete;
  CallScope& operator=(const CallScope&) = delete;
};

// See UnregisteredCheck: `callee`, about to run inside another module's forward, must be
// registered somewhere under the outermost module being called.
void check_registered(Module* callee) {
  const UnregisteredCheck mode = g_unregistered_check.load(std::memory_order_relaxed);
  if (mode == UnregisteredCheck::Off || t_calls.empty()) return;
  Module* root = t_calls.front();
  for (const auto& entry : root->named_modules()) {
    if (entry.second == callee) return;
  }
  std::ostringstream message;
  message << "nn::Module: a " << callee->type_name() << " was called inside the forward of "
          << t_calls.back()->type_name() << " but is not registered under " << root->type_name()
          << ", the module being called: its parameters are missing from parameters() and "
             "state_dict(), so they are never trained or saved; register it with "
             "register_module in the constructor";
  if (mode == UnregisteredCheck::Throw) throw Error(message.str());
  static std::mutex mutex;
  static std::set<const Module*> warned;
  const std::lock_guard<std::mutex> lock(mutex);
  if (warned.insert(callee).second) std::fprintf(stderr, "warning: %s\n", message.str().c_str());
}
}  // namespace

Module::Module(std::string type_name) : type_name_(std::move(type_name)) {}

Tensor Module::forward(const Tensor& input) {
  (void)input;
  STRATA_CHECK(false, type_name_, ": this module defines no forward(const Tensor&); call the "
               "forward it declares");
  return Tensor();
}

void set_unregistered_check(UnregisteredCheck mode) {
  g_unregistered_check.store(mode, std::memory_order_relaxed);
}

UnregisteredCheck unregistered_check() {
  return g_unregistered_check.load(std::memory_order_relaxed);
}

Tensor Module::operator()(const Tensor& input) {
  check_registered(this);
  const CallScope scope(this);
  if (forward_pre_hooks_.empty() && forward_hooks_.empty()) {
    Tensor out = forward(input);
    if (t_summary_rows != nullptr && out.defined()) t_summary_rows->push_back({this, out.shape()});
    return out;
  }
  // Copies: a hook may remove itself (or another) while they run.
  Tensor x = input;
  for (const auto& [id, hook] : std::vector(forward_pre_hooks_)) {
    (void)id;
    if (std::optional<Tensor> replaced = hook(*this, x)) x = std::move(*replaced);
  }
  Tensor out = forward(x);
  for (const auto& [id, hook] : std::vector(forward_hooks_)) {
    (void)id;
    if (std::optional<Tensor> replaced = hook(*this, x, out)) out = std::move(*replaced);
  }
  if (t_summary_rows != nullptr && out.defined()) t_summary_rows->push_back({this, out.shape()});
  return out;
}

// ---- walking, freezing, hooks -------------------------------------------------------------

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& entry : children_) entry.second->apply(fn);
  fn(*this);
}

void Module::freeze() {
  for (Tensor& p : parameters()) p.set_requires_grad(false);
}

void Module::unfreeze() {
  for (Tensor& p : parameters()) p.set_requires_grad(true);
}

namespace {

// Hook ids are unique across every module of the process, so removing one from the wrong
// module is an error, not the removal of another hook.
int64_t next_hook_id() {
  static std::atomic<int64_t> last{0};
  return ++last;
}

}  // namespace

int64_t Module::register_forward_pre_hook(ForwardPreHook hook) {
  STRATA_CHECK(static_cast<bool>(hook), type_name_,
               ": register_forward_pre_hook got an empty hook");
  const int64_t id = next_hook_id();
  forward_pre_hooks_.emplace_back(id, std::move(hook));
  return id;
}

int64_t Module::register_forward_hook(ForwardHook hook) {
  STRATA_CHECK(static_cast<bool>(hook), type_name_, ": register_forward_hook got an empty hook");
  const int64_t id = next_hook_id();
  forward_hooks_.emplace_back(id, std::move(hook));
  return id;
}

void Module::remove_hook(int64_t id) {
  const auto matches = [id](const auto& entry) { return entry.first == id; };
  const size_t before = forward_pre_hooks_.size() + forward_hooks_.size();
  std::erase_if(forward_pre_hooks_, matches);
  std::erase_if(forward_hooks_, matches);
  STRATA_CHECK(forward_pre_hooks_.size() + forward_hooks_.size() < before, type_name_,
               ": remove_hook: no hook ", id, " on this module");
}

// ---- registration -------------------------------------------------------------------------

void Module::check_new_name(const std::string& name, const char* what) const {
  STRATA_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what,
               " name '", name, "' must be non-empty and contain no '.'");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  STRATA_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name_, ": ",
               what, " name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_new_name(name, "parameter");
  STRATA_CHECK(tensor.defined(), type_name_, ": parameter '", name, "' is undefined");
  STRATA_CHECK(tensor.is_leaf(), type_name_, ": parameter '", name,
               "' must be a leaf tensor (detach() it first)");
  if (requires_grad) {
    STRATA_CHECK(is_floating(tensor.dtype()), type_name_, ": parameter '", name,
                 "' must be floating point to require grad, got ", dtype_name(tensor.dtype()));
  }
  tensor.set_requires_grad(requires_grad);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_new_name(name, "buffer");
  STRATA_CHECK(tensor.defined(), type_name_, ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, tensor);
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "submodule");
  STRATA_CHECK(module != nullptr, type_name_, ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

// ---- traversal ----------------------------------------------------------------------------

void Module::collect(const std::string& prefix, bool parameters, bool recurse,
                     std::vector<std::pair<std::string, Tensor>>& out) const {
  for (const auto& [name, tensor] : parameters ? parameters_ : buffers_) {
    out.emplace_back(join(prefix, name), tensor);
  }
  if (!recurse) return;
  for (const auto& [name, child] : children_) {
    child->collect(join(prefix, name), parameters, true, out);
  }
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", true, recurse, out);
  // A module registered twice (shared weights) yields its tensors once, as in PyTorch.
  std::set<const TensorImpl*> seen;
  std::erase_if(out, [&](const auto& e) { return !seen.insert(e.second.impl()).second; });
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& entry : named_parameters(recurse)) out.push_back(entry.second);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers(bool recurse) const {
  std::vector<std::pair<std::string, Tensor>> out;
  collect("", false, recurse, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& entry : named_buffers(recurse)) out.push_back(entry.second);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& entry : children_) out.push_back(entry.second);
  return out;
}

void Module::collect_modules(const std::string& prefix,
                             std::vector<std::pair<std::string, Module*>>& out) {
  out.emplace_back(prefix, this);
  for (auto& [name, child] : children_) child->collect_modules(join(prefix, name), out);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  collect_modules("", out);
  return out;
}

int64_t Module::parameter_count(bool trainable_only) const {
  int64_t n = 0;
  for (const Tensor& p : parameters()) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

// ---- modes and placement ------------------------------------------------------------------

void Module::train(bool on) {
  training_ = on;
  for (auto& entry : children_) entry.second->train(on);
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for (Tensor& t : parameters()) t.set_data(t.detach().to(device));
  for (Tensor& t : buffers()) t.set_data(t.detach().to(device));
}

void Module::to(DType dtype) {
  STRATA_CHECK(is_floating(dtype), type_name_, ".to: parameters need a floating dtype, got ",
               dtype_name(dtype));
  NoGradGuard no_grad;
  for (Tensor& t : parameters()) t.set_data(t.detach().to(dtype));
  for (Tensor& t : buffers()) {
    if (is_floating(t.dtype())) t.set_data(t.detach().to(dtype));
  }
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

// ---- state dicts --------------------------------------------------------------------------

StateDict Module::state_dict() const {
  StateDict out;
  std::vector<std::pair<std::string, Tensor>> all;
  collect("", true, true, all);
  collect("", false, true, all);
  for (auto& [name, tensor] : all) out.emplace(name, tensor.detach());
  return out;
}

void Module::load_state_dict(const StateDict& state, bool strict, bool cast) {
  std::vector<std::pair<std::string, Tensor>> own;
  collect("", true, true, own);
  collect("", false, true, own);
  // Check everything first, so a bad dict leaves the module untouched.
  std::vector<std::string> missing;
  for (const auto& [name, tensor] : own) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
      continue;
    }
    STRATA_CHECK(it->second.defined(), "load_state_dict: '", name, "' is undefined");
    STRATA_CHECK(it->second.shape() == tensor.shape(), "load_state_dict: '", name, "' has shape ",
                 shape_str(it->second.shape()), " in the state dict but ", shape_str(tensor.shape()),
                 " in ", type_name_);
    // NOTE: f32 <-> f64 convert silently (as they always have); a 16-bit float on either side
    // of a mismatch is a half-precision checkpoint meeting a full-precision model, or the
    // reverse, which loses precision or misleads about it: the caller must ask for the cast.
    const bool reduced =
        is_reduced_floating(it->second.dtype()) || is_reduced_floating(tensor.dtype());
    STRATA_CHECK(cast || !reduced || it->second.dtype() == tensor.dtype(), "load_state_dict: '",
                 name, "' is ", dtype_name(it->second.dtype()), " in the state dict but ",
                 dtype_name(tensor.dtype()), " in ", type_name_, "; convert the module first (",
                 "module.to(k...)) or pass cast = true to convert the values as they load");
  }
  if (strict) {
    std::vector<std::string> unexpected;
    for (const auto& entry : state) {
      const bool known = std::any_of(own.begin(), own.end(),
                                     [&](const auto& e) { return e.first == entry.first; });
      if (!known) unexpected.push_back(entry.first);
    }
    auto list = [](const std::vector<std::string>& names) {
      std::string s;
      for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
      return s;
    };
    STRATA_CHECK(missing.empty() && unexpected.empty(), "load_state_dict: keys do not match ",
                 type_name_, " (missing: [", list(missing), "], unexpected: [", list(unexpected),
                 "])");
  }
  NoGradGuard no_grad;
  for (auto& [name, tensor] : own) {
    auto it = state.find(name);
    if (it != state.end()) tensor.detach().copy_(it->second);
  }
}

// ---- printing -----------------------------------------------------------------------------

void Module::str_into(std::string& out, int indent) const {
  out += type_name_ + "(" + extra_repr();
  if (children_.empty()) {
    out += ")";
    return;
  }
  out += "\n";
  const std::string pad(static_cast<size_t>(indent + 2), ' ');
  for (const auto& [name, child] : children_) {
    out += pad + "(" + name + "): ";
    child->str_into(out, indent + 2);
    out += "\n";
  }
  out += std::string(static_cast<size_t>(indent), ' ') + ")";
}

std::string Module::str() const {
  std::string out;
  str_into(out, 0);
  return out;
}

std::ostream& operator<<(std::ostream& out, const Module& module) { return out << module.str(); }

std::string Module::summary(const Shape& input_shape) {
  const auto params = parameters();
  TensorOptions options = params.empty() ? TensorOptions()
                                         : TensorOptions(params[0].dtype()).device(params[0].device());
  std::map<const Module*, std::string> names;
  for (auto& [name, module] : named_modules()) names.emplace(module, name);

  std::vector<SummaryRow> rows;
  const bool was_training = training_;
  eval();
  {
    NoGradGuard no_grad;
    t_summary_rows = &rows;
    try {
      (*this)(zeros(input_shape, options));
    } catch (...) {
      t_summary_rows = nullptr;
      train(was_training);
      throw;
    }
    t_summary_rows = nullptr;
  }
  train(was_training);

  // Calls are recorded as they return (inner modules first): list them in tree order instead.
  std::vector<std::array<std::string, 3>> table;
  table.push_back({"Layer (type)", "Output shape", "Param #"});
  std::map<const Module*, size_t> tree_order;
  for (auto& [name, module] : named_modules()) tree_order.emplace(module, tree_order.size());
  std::stable_sort(rows.begin(), rows.end(), [&](const SummaryRow& a, const SummaryRow& b) {
    return tree_order[a.module] < tree_order[b.module];
  });
  for (const SummaryRow& row : rows) {
    if (row.module == this) continue;
    auto it = names.find(row.module);
    const std::string name = it != names.end() ? it->second : "?";
    // A container's row counts what it holds (as Keras shows a nested model), so the rows
    // of its children repeat part of it; the total below counts each parameter once.
    table.push_back({name + " (" + row.module->type_name() + ")", shape_str(row.output_shape),
                     with_thousands(row.module->parameter_count())});
  }
  size_t w0 = 0, w1 = 0, w2 = 0;
  for (auto& r : table) {
    w0 = std::max(w0, r[0].size());
    w1 = std::max(w1, r[1].size());
    w2 = std::max(w2, r[2].size());
  }
  std::ostringstream out;
  auto line = [&](char c) { out << std::string(w0 + w1 + w2 + 6, c) << "\n"; };
  auto row_out = [&](const std::array<std::string, 3>& r) {
    out << r[0] << std::string(w0 - r[0].size() + 3, ' ') << r[1]
        << std::string(w1 - r[1].size() + 3, ' ') << std::string(w2 - r[2].size(), ' ') << r[2]
        << "\n";
  };
  out << type_name_ << " on input " << shape_str(input_shape) << "\n";
  line('=');
  row_out(table[0]);
  line('=');
  for (size_t i = 1; i < table.size(); ++i) row_out(table[i]);
  line('=');
  out << "Total params: " << with_thousands(parameter_count()) << "\n";
  out << "Trainable params: " << with_thousands(parameter_count(true)) << "\n";
  out << "Non-trainable params: " << with_thousands(parameter_count() - parameter_count(true))
      << "\n";
  return out.str();
}

}  // namespace strata::nn
