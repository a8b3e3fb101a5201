// The non-template half of autograd::Function (see strata/autograd/function.h): the context's
// saved tensors with their version check, and the recording of a custom function's node. Several
// differentiable outputs are packed into one flat tensor that carries the node; each output is
// a recorded view of it, so the engine's one-gradient-per-node rule holds and backward gets
// every output's gradient at once.
#include "strata/autograd/function.h"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>

#include "internal.h"

namespace strata::autograd {

// ---- SavedValue ---------------------------------------------------------------------------

const char* SavedValue::kind() const {
  switch (value_.index()) {
    case 0: return "none";
    case 1: return "double";
    case 2: return "int";
    case 3: return "bool";
    case 4: return "string";
    case 5: return "int list";
    default: return "tensor";
  }
}

namespace {

[[noreturn]] void wrong_kind(const char* wanted, const char* held) {
  throw Error(strata::detail::concat("SavedValue: asked for a ", wanted, " but it holds a ",
                                     held));
}

}  // namespace

double SavedValue::to_double() const {
  if (const auto* v = std::get_if<double>(&value_)) return *v;
  if (const auto* v = std::get_if<int64_t>(&value_)) return static_cast<double>(*v);
  wrong_kind("double", kind());
}

int64_t SavedValue::to_int() const {
  if (const auto* v = std::get_if<int64_t>(&value_)) return *v;
  wrong_kind("int", kind());
}

bool SavedValue::to_bool() const {
  if (const auto* v = std::get_if<bool>(&value_)) return *v;
  wrong_kind("bool", kind());
}

const std::string& SavedValue::to_string() const {
  if (const auto* v = std::get_if<std::string>(&value_)) return *v;
  wrong_kind("string", kind());
}

const std::vector<int64_t>& SavedValue::to_int_list() const {
  if (const auto* v = std::get_if<std::vector<int64_t>>(&value_)) return *v;
  wrong_kind("int list", kind());
}

const Tensor& SavedValue::to_tensor() const {
  if (const auto* v = std::get_if<Tensor>(&value_)) return *v;
  wrong_kind("tensor", kind());
}

// ---- FunctionCtx --------------------------------------------------------------------------

void FunctionCtx::save_for_backward(std::vector<Tensor> tensors) {
  saved_versions_.clear();
  for (const Tensor& t : tensors) saved_versions_.push_back(t.defined() ? t.version() : 0);
  saved_ = std::move(tensors);
}

std::vector<Tensor> FunctionCtx::get_saved_variables() const {
  for (size_t i = 0; i < saved_.size(); ++i) {
    const Tensor& t = saved_[i];
    STRATA_CHECK(!t.defined() || t.version() == saved_versions_[i], function_,
                 ": saved tensor ", i, " (", strata::detail::describe(t),
                 ") was modified in place after save_for_backward (its version is ",
                 t.version(), ", saved at ", saved_versions_[i],
                 "), so the gradient would be wrong; clone it before modifying it, or modify a "
                 "copy");
  }
  return saved_;
}

void FunctionCtx::mark_non_differentiable(const std::vector<Tensor>& outputs) {
  non_differentiable_.insert(non_differentiable_.end(), outputs.begin(), outputs.end());
}

bool FunctionCtx::is_non_differentiable(const Tensor& output) const {
  for (const Tensor& t : non_differentiable_) {
    if (t.is_same(output)) return true;
  }
  return false;
}

bool FunctionCtx::needs_input_grad(size_t index) const {
  STRATA_CHECK(index < needs_input_grad_.size(), function_, ": needs_input_grad(", index,
               ") but forward has ", needs_input_grad_.size(), " arguments");
  return needs_input_grad_[index];
}

namespace detail {

std::string type_name(const std::type_info& type) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(type.name(), nullptr, nullptr, &status), std::free);
  return status == 0 && demangled ? std::string(demangled.get()) : std::string(type.name());
}

void record_custom_function(const std::shared_ptr<FunctionCtx>& ctx,
                            const std::vector<Tensor>& arguments, std::vector<Tensor>& outputs,
                            CustomBackward backward) {
  const std::string& name = ctx->function();
  for (size_t i = 0; i < outputs.size(); ++i) {
    STRATA_CHECK(outputs[i].defined(), name, ": forward returned an undefined tensor as output ",
                 i);
  }
  // The tensor arguments, and where each stands among all of forward's arguments.
  std::vector<Tensor> inputs;
  std::vector<size_t> positions;
  for (size_t k = 0; k < arguments.size(); ++k) {
    if (!arguments[k].defined()) continue;
    inputs.push_back(arguments[k]);
    positions.push_back(k);
  }
  if (!needs_grad(inputs)) return;

  std::vector<size_t> differentiable;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (is_floating(outputs[i].dtype()) && !ctx->is_non_differentiable(outputs[i])) {
      differentiable.push_back(i);
    }
  }
  if (differentiable.empty()) return;
  const Tensor& first = outputs[differentiable.front()];
  for (size_t i : differentiable) {
    STRATA_CHECK(outputs[i].dtype() == first.dtype() && outputs[i].device() == first.device(),
                 name, ": the outputs that need gradients must share a dtype and device, got ",
                 strata::detail::describe(first), " and ",
                 strata::detail::describe(outputs[i]), " (output ", i,
                 "); mark the others non-differentiable");
  }
  // Each differentiable output gets a handle of its own (forward may return an argument, or
  // one tensor twice), sharing its data; the ctx keeps the handles it saved, without the node,
  // so the node does not keep itself alive through them.
  std::vector<Shape> shapes(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) shapes[i] = outputs[i].shape();
  for (size_t i : differentiable) outputs[i] = outputs[i].detach();

  struct InputMeta {
    Shape shape;
    DType dtype;
    Device device;
  };
  std::vector<InputMeta> metas;
  for (const Tensor& t : inputs) metas.push_back({t.shape(), t.dtype(), t.device()});

  BackwardFn node_backward = [ctx, backward = std::move(backward), positions, differentiable,
                              shapes, metas, argument_count = arguments.size()](
                                 const Tensor& grad, const std::vector<bool>& needs) {
    std::vector<Tensor> grad_outputs(shapes.size());
    if (differentiable.size() == 1) {
      grad_outputs[differentiable.front()] = grad;
    } else {
      int64_t offset = 0;
      for (size_t i : differentiable) {
        const int64_t n = numel_of(shapes[i]);
        grad_outputs[i] = grad.narrow(0, offset, n).reshape(shapes[i]);
        offset += n;
      }
    }
    const std::vector<Tensor> result = backward(ctx.get(), grad_outputs);
    const std::string& fn = ctx->function();
    STRATA_CHECK(result.size() == argument_count, fn, ": backward returned ", result.size(),
                 " gradients for ", argument_count,
                 " forward arguments; return one per argument (an undefined Tensor for "
                 "arguments that are not tensors or need no gradient)");
    std::vector<bool> is_tensor(argument_count, false);
    for (size_t k : positions) is_tensor[k] = true;
    for (size_t k = 0; k < argument_count; ++k) {
      STRATA_CHECK(is_tensor[k] || !result[k].defined(), fn,
                   ": backward returned a gradient for forward argument ", k,
                   ", which is not a tensor; return an undefined Tensor there");
    }
    std::vector<Tensor> grads(positions.size());
    for (size_t j = 0; j < positions.size(); ++j) {
      const Tensor& g = result[positions[j]];
      if (!needs[j] || !g.defined()) continue;
      const InputMeta& meta = metas[j];
      STRATA_CHECK(g.shape() == meta.shape && g.dtype() == meta.dtype &&
                       g.device() == meta.device,
                   fn, ": backward returned ", strata::detail::describe(g),
                   " as the gradient of forward argument ", positions[j], ", which is ",
                   shape_str(meta.shape), " ", dtype_name(meta.dtype), " ", meta.device.str(),
                   "; a gradient must match its input");
      grads[j] = g;
    }
    return grads;
  };

  if (differentiable.size() == 1) {
    record(name.c_str(), inputs, outputs[differentiable.front()], std::move(node_backward));
    return;
  }
  Tensor packed;
  {
    NoGradGuard no_grad;
    std::vector<Tensor> pieces;
    for (size_t i : differentiable) pieces.push_back(outputs[i].reshape({-1}));
    packed = cat(pieces, 0);
  }
  record(name.c_str(), inputs, packed, std::move(node_backward));
  int64_t offset = 0;
  for (size_t i : differentiable) {
    const int64_t n = numel_of(shapes[i]);
    outputs[i] = packed.narrow(0, offset, n).reshape(shapes[i]);  // recorded views of the node
    offset += n;
  }
}

}  // namespace detail

}  // namespace strata::autograd
