// Custom differentiable operations (LibTorch's torch::autograd::Function): a struct with a
// static forward and a static backward, recorded on the tape as one node.
//
//   struct MulConstant : autograd::Function<MulConstant> {
//     static Tensor forward(autograd::FunctionCtx* ctx, const Tensor& x, double k) {
//       ctx->saved_data["k"] = k;
//       ctx->save_for_backward({x});
//       return mul(x, k);
//     }
//     static std::vector<Tensor> backward(autograd::FunctionCtx* ctx,
//                                         const std::vector<Tensor>& grad_outputs) {
//       return {mul(grad_outputs[0], ctx->saved_data["k"].to_double()), Tensor()};
//     }
//   };
//   Tensor y = MulConstant::apply(x, 2.0);
//
// Rules kept:
//   - forward runs with grad mode off (its own ops are not recorded) and returns a Tensor or a
//     std::vector<Tensor>; apply() returns the same, recorded as one node when an input tensor
//     requires grad and grad mode is on;
//   - backward gets one gradient per output (an undefined Tensor for an output marked
//     non-differentiable; zeros for a differentiable output that got none) and returns one
//     entry per forward argument, tensor or not (an undefined Tensor where there is none). A
//     returned gradient must have its input's shape, dtype and device (an error names the
//     function and the argument otherwise);
//   - the tensors saved with save_for_backward are checked when backward reads them: one
//     modified in place since it was saved (Tensor::version) is an error naming the function,
//     the tensor and both versions, not a silent wrong gradient;
//   - outputs that need a gradient are floating tensors on one device with one dtype; integer
//     outputs (indices) are non-differentiable by themselves.
// NOTE: backward runs with grad mode off, except in a pass that creates a graph
// (create_graph, autograd::grad): then the ops of backward are recorded, so a second
// derivative flows through the saved inputs and grad_outputs it reads. Saved outputs are kept
// without their node, so nothing flows back through them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

#include "strata/autograd.h"
#include "strata/tensor.h"

namespace strata::autograd {

// A value kept in FunctionCtx::saved_data: a number, a flag, a string, a list of integers or a
// tensor (LibTorch's IValue, reduced to what a backward needs).
class SavedValue {
 public:
  SavedValue() = default;
  SavedValue(double value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  SavedValue(int64_t value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  SavedValue(int value) : value_(static_cast<int64_t>(value)) {}  // NOLINT
  SavedValue(bool value) : value_(value) {}  // NOLINT(google-explicit-constructor)
  SavedValue(std::string value) : value_(std::move(value)) {}  // NOLINT
  SavedValue(const char* value) : value_(std::string(value)) {}  // NOLINT
  SavedValue(std::vector<int64_t> value) : value_(std::move(value)) {}  // NOLINT
  SavedValue(Tensor value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)

  // Each throws strata::Error naming both kinds when the value is of another one (to_double
  // also takes an integer).
  double to_double() const;
  int64_t to_int() const;
  bool to_bool() const;
  const std::string& to_string() const;
  const std::vector<int64_t>& to_int_list() const;
  const Tensor& to_tensor() const;
  // "none", "double", "int", "bool", "string", "int list", "tensor".
  const char* kind() const;

 private:
  std::variant<std::monostate, double, int64_t, bool, std::string, std::vector<int64_t>, Tensor>
      value_;
};

// What forward leaves for backward (LibTorch's AutogradContext).
class FunctionCtx {
 public:
  explicit FunctionCtx(std::string function) : function_(std::move(function)) {}

  // Tensors for backward, read back with get_saved_variables(); each remembers its version.
  void save_for_backward(std::vector<Tensor> tensors);
  // The saved tensors, in order; throws strata::Error when one was modified in place since.
  std::vector<Tensor> get_saved_variables() const;
  // Outputs that get no gradient (an argmax's indices, a mask): backward sees an undefined
  // gradient for them. Pass the tensors forward returns.
  void mark_non_differentiable(const std::vector<Tensor>& outputs);
  bool is_non_differentiable(const Tensor& output) const;
  // Whether forward argument `index` (counting every argument, tensor or not) wants a gradient.
  bool needs_input_grad(size_t index) const;

  // Anything else backward needs, by name.
  std::map<std::string, SavedValue> saved_data;

  const std::string& function() const { return function_; }

  // Set by apply(): which forward arguments want a gradient.
  void set_needs_input_grad(std::vector<bool> needs) { needs_input_grad_ = std::move(needs); }

 private:
  std::string function_;
  std::vector<Tensor> saved_;
  std::vector<uint64_t> saved_versions_;
  std::vector<Tensor> non_differentiable_;
  std::vector<bool> needs_input_grad_;
};

namespace detail {

// The readable name of a type (the demangled typeid), for messages.
std::string type_name(const std::type_info& type);

// A forward argument seen as a tensor: the tensor itself, or undefined for other arguments.
template <class A>
Tensor as_tensor_argument(const A& argument) {
  if constexpr (std::is_convertible_v<const A&, const Tensor&>) {
    return static_cast<const Tensor&>(argument);
  } else {
    return Tensor();
  }
}

// The backward of a custom function: grad_outputs (one per output) -> one gradient per forward
// argument.
using CustomBackward =
    std::function<std::vector<Tensor>(FunctionCtx*, const std::vector<Tensor>&)>;

// Records the node of a custom function on its outputs (the non-template part of apply()):
// `arguments` holds every forward argument (undefined where it is not a tensor); `outputs`
// are forward's results, replaced by the recorded ones.
void record_custom_function(const std::shared_ptr<FunctionCtx>& ctx,
                            const std::vector<Tensor>& arguments, std::vector<Tensor>& outputs,
                            CustomBackward backward);

}  // namespace detail

template <class T>
struct Function {
  // Runs T::forward(ctx, args...) and records T::backward for it.
  template <class... Args>
  static auto apply(Args&&... args) {
    auto ctx = std::make_shared<FunctionCtx>(detail::type_name(typeid(T)));
    const std::vector<Tensor> arguments = {detail::as_tensor_argument(args)...};
    std::vector<bool> needs;
    for (const Tensor& a : arguments) {
      needs.push_back(a.defined() && a.requires_grad() && GradMode::is_enabled());
    }
    ctx->set_needs_input_grad(std::move(needs));
    using Result = decltype(T::forward(ctx.get(), std::forward<Args>(args)...));
    static_assert(std::is_same_v<Result, Tensor> || std::is_same_v<Result, std::vector<Tensor>>,
                  "autograd::Function: forward must return a Tensor or a std::vector<Tensor>");
    std::vector<Tensor> outputs;
    {
      NoGradGuard no_grad;
      if constexpr (std::is_same_v<Result, Tensor>) {
        outputs.push_back(T::forward(ctx.get(), std::forward<Args>(args)...));
      } else {
        outputs = T::forward(ctx.get(), std::forward<Args>(args)...);
      }
    }
    detail::record_custom_function(
        ctx, arguments, outputs,
        [](FunctionCtx* c, const std::vector<Tensor>& grads) { return T::backward(c, grads); });
    if constexpr (std::is_same_v<Result, Tensor>) {
      return outputs.front();
    } else {
      return outputs;
    }
  }
};

}  // namespace strata::autograd
