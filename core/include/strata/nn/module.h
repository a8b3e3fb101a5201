// nn::Module: the base of every layer and of user networks. A module owns named parameters
// (leaf tensors that require grad), named buffers (state that is saved but not trained, such
// as batch norm's running statistics) and named submodules, registered in its constructor.
// Names compose with dots as PyTorch's do ("fc1.weight", "0.bias", "bn.running_mean"), so
// state_dict() keys match a PyTorch model of the same structure.
//
//   struct Net : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     Net() : Module("Net") {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 128));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(128, 10));
//     }
//     Tensor forward(const Tensor& x) override { return (*fc2)(F::relu((*fc1)(x))); }
//   };
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::nn {

template <class M>
class ModuleHolder;

// Parameters and buffers by qualified name ("features.0.weight"), sorted by name.
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  explicit Module(std::string type_name = "Module");
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  // The computation of a one-input, one-output module (every layer here). Modules with other
  // signatures define their own forward and leave this one throwing.
  virtual Tensor forward(const Tensor& input);
  // Calls forward; summary() sees the calls made this way.
  Tensor operator()(const Tensor& input);

  const std::string& type_name() const { return type_name_; }

  // ---- what the module holds ---------------------------------------------------------------
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, Tensor>> named_buffers(bool recurse = true) const;
  std::vector<std::shared_ptr<Module>> children() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  // This module (named "") and every submodule below it, depth first, in registration order.
  std::vector<std::pair<std::string, Module*>> named_modules();
  // The number of parameter elements (recursively).
  int64_t parameter_count(bool trainable_only = false) const;

  // ---- walking, casting, freezing ----------------------------------------------------------
  // Calls fn on every submodule, depth first, and then on this module (torch's Module.apply):
  //   model.apply([](nn::Module& m) {
  //     if (auto* linear = m.as<nn::Linear>()) nn::init::zeros_(linear->bias);
  //   });
  void apply(const std::function<void(Module&)>& fn);
  // This module as a T (a layer type), or null when it is not one.
  template <class T>
  T* as() {
    return dynamic_cast<T*>(this);
  }
  template <class T>
  const T* as() const {
    return dynamic_cast<const T*>(this);
  }
  // Stops (freeze) or restarts (unfreeze) gradients for every parameter, recursively: a frozen
  // parameter gets no .grad(), so optimizers leave it alone (fine-tuning the last layers of a
  // pretrained network). NOTE: freezing stops training, not a layer's train-mode behaviour: a
  // frozen BatchNorm in train() still updates its running statistics from each batch; call
  // eval() on it as well to keep them.
  void freeze();
  void unfreeze();

  // ---- hooks -------------------------------------------------------------------------------
  // Run by operator() around forward, in the order registered. A pre-hook sees the input and
  // may return a replacement; a hook sees input and output and may return a replacement
  // output (torch's register_forward_pre_hook / register_forward_hook).
  using ForwardPreHook = std::function<std::optional<Tensor>(Module& module, const Tensor& input)>;
  using ForwardHook = std::function<std::optional<Tensor>(Module& module, const Tensor& input,
                                                          const Tensor& output)>;
  // Each returns an id for remove_hook.
  int64_t register_forward_pre_hook(ForwardPreHook hook);
  int64_t register_forward_hook(ForwardHook hook);
  // Removes a hook of this module; an unknown id is an error.
  void remove_hook(int64_t id);

  // ---- modes and placement -----------------------------------------------------------------
  // Training mode (the default) vs evaluation mode: dropout and batch norm behave differently.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Moves (or converts) every parameter and buffer in place: tensors held elsewhere, layers'
  // members and optimizers' references included, see the new data. Integer buffers keep
  // their dtype under to(DType).
  void to(Device device);
  void to(DType dtype);
  // Drops every parameter's accumulated gradient.
  void zero_grad();

  // ---- saving and loading ------------------------------------------------------------------
  // Parameters and buffers by qualified name; the tensors share data with the module's.
  StateDict state_dict() const;
  // Copies values in (moving them to the module's device). strict: every key of the module
  // present in `state` and no other; shapes must match either way. Values convert to the
  // module's dtypes, except that a mismatch involving f16 or bf16 (a half-precision checkpoint
  // and a float32 model, or the reverse) throws unless `cast` asks for the conversion.
  void load_state_dict(const StateDict& state, bool strict = true, bool cast = false);

  // ---- printing ----------------------------------------------------------------------------
  // The module tree, as PyTorch prints it: "Sequential(\n  (0): Linear(in_features=...)\n)".
  std::string str() const;
  // One line describing this module's settings, inside the parentheses of str().
  virtual std::string extra_repr() const { return ""; }
  // A table of every submodule called during a forward on zeros of `input_shape` (run in
  // evaluation mode with no grad, on the module's device and dtype): its name, type, output
  // shape and parameter count, with the totals below.
  std::string summary(const Shape& input_shape);

 protected:
  // Register in the constructor. Each returns what it stored (the same tensor handle), to keep
  // as a member: `weight = register_parameter("weight", w);`.
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  template <class M>
  ModuleHolder<M> register_module(const std::string& name, ModuleHolder<M> module) {
    add_child(name, module.ptr());
    return module;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  void collect(const std::string& prefix, bool parameters, bool recurse,
               std::vector<std::pair<std::string, Tensor>>& out) const;
  void collect_modules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);
  void str_into(std::string& out, int indent) const;
  void check_new_name(const std::string& name, const char* what) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<std::pair<int64_t, ForwardPreHook>> forward_pre_hooks_;
  std::vector<std::pair<int64_t, ForwardHook>> forward_hooks_;
};

std::ostream& operator<<(std::ostream& out, const Module& module);

// A shared handle to a module that is called like the module itself (LibTorch's
// ModuleHolder), so a member submodule reads as `conv1(x)` rather than `(*conv1)(x)`:
//   struct Net : nn::Module {
//     nn::ModuleHolder<nn::Conv2d> conv1;
//     Net() : Module("Net") {
//       conv1 = register_module("conv1", nn::ModuleHolder<nn::Conv2d>(1, 8, 3));
//     }
//     Tensor forward(const Tensor& x) override { return conv1(x); }
//   };
// Calling goes through Module::operator() (hooks, summary()) where the arguments are one
// tensor, and to the module's own forward otherwise. `->` and `*` reach the module.
template <class M>
class ModuleHolder {
 public:
  ModuleHolder() = default;  // holds nothing until assigned
  // Constructs the module from its constructor's arguments.
  template <class First, class... Rest,
            std::enable_if_t<!std::is_same_v<std::decay_t<First>, ModuleHolder> &&
                                 std::is_constructible_v<M, First&&, Rest&&...>,
                             int> = 0>
  explicit ModuleHolder(First&& first, Rest&&... rest)
      : module_(std::make_shared<M>(std::forward<First>(first), std::forward<Rest>(rest)...)) {}
  ModuleHolder(std::shared_ptr<M> module)  // NOLINT(google-explicit-constructor)
      : module_(std::move(module)) {}

  M& operator*() const { return get(); }
  M* operator->() const { return &get(); }
  M& get() const {
    STRATA_CHECK(module_ != nullptr,
                 "ModuleHolder: no module is held (assign one, usually with "
                 "register_module in the constructor, before using it)");
    return *module_;
  }
  const std::shared_ptr<M>& ptr() const { return module_; }
  operator std::shared_ptr<M>() const { return module_; }  // NOLINT(google-explicit-constructor)
  explicit operator bool() const { return module_ != nullptr; }

  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    if constexpr (std::is_invocable_v<M&, Args&&...>) {
      return get()(std::forward<Args>(args)...);
    } else {
      return get().forward(std::forward<Args>(args)...);
    }
  }

 private:
  std::shared_ptr<M> module_;
};

// What Module::operator() does with a submodule that is called inside another module's forward
// but is not registered anywhere under the outermost module being called: such a module's
// parameters are missing from parameters() and state_dict(), so they are silently never
// trained or saved. Off skips the check (each call walks the module tree); Warn prints one
// line to stderr per module; Throw raises strata::Error. Debug builds (without NDEBUG) start
// at Warn, others at Off.
enum class UnregisteredCheck { Off, Warn, Throw };
void set_unregistered_check(UnregisteredCheck mode);
UnregisteredCheck unregistered_check();

}  // namespace strata::nn
