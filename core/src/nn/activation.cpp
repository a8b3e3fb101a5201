// Activations of nn::functional: the pointwise ones (relu ... gelu), softmax and log_softmax,
// and maxout. Each validates (floating input, dim in range), runs the backend kernel on a
// contiguous copy of the input, and records its backward right below, which calls the
// matching backward kernel. maxout is composite: a reshape and a max over the pieces axis.

#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

void check_floating(const Tensor& x, const char* op) {
  detail::check_defined(x, op, "input");
  STRATA_CHECK(is_floating(x.dtype()), op,
               ": expected a floating input (f32, f64, f16 or bf16), got ", detail::describe(x));
}

// The data of x as a contiguous tensor cut from the tape (x itself when already contiguous).
Tensor contiguous_data(const Tensor& x) { return x.detach().contiguous(); }

// Whether f'(x) is read from y = f(x) (relu, sigmoid, tanh) rather than from x.
bool derivative_reads_output(Activation act) {
  return act == Activation::Relu || act == Activation::Sigmoid || act == Activation::Tanh;
}

// f'(x) of gelu through the backward kernel (with a gradient of ones), recorded so that a
// graph-creating pass differentiates it again: f''(x) = phi(x) (2 - x^2), phi the standard
// normal density.
Tensor gelu_derivative(const Tensor& x) {
  const Tensor in = contiguous_data(x);
  Tensor d = Tensor::empty(x.shape(), x.options());
  if (d.numel() > 0) {
    detail::backend_of(d).activation_backward(Activation::Gelu, d, ones_like(in), in, Tensor(),
                                              0.0);
  }
  if (needs_grad({&x})) {
    record("gelu_backward", {x}, d, [x](const Tensor& g, const Needs&) {
      constexpr double kInvSqrt2Pi = 0.3989422804014327;
      const Tensor square = mul(x, x);
      const Tensor phi = mul(exp(mul(square, -0.5)), kInvSqrt2Pi);
      return Grads{mul(g, mul(phi, rsub(square, 2.0)))};
    });
  }
  return d;
}

// f'(x) composed of differentiable ops, for a pass that creates a graph; y is f(x) attached
// to the node (saved_output) where the derivative reads it.
Tensor derivative(Activation act, const Tensor& x, const Tensor& y, double alpha) {
  switch (act) {
    case Activation::Relu:
      return gt(y, 0.0).to(y.dtype());
    case Activation::Sigmoid:
      return mul(y, rsub(y, 1.0));
    case Activation::Tanh:
      return rsub(mul(y, y), 1.0);
    case Activation::LeakyRelu:
      return add(mul(gt(x, 0.0).to(x.dtype()), 1.0 - alpha), alpha);
    case Activation::Elu:  // exp of min(x, 0): no overflow (nor inf * 0) where x > 0
      return where(gt(x, 0.0), ones_like(x), mul(exp(clamp(x, std::nullopt, 0.0)), alpha));
    case Activation::Softplus: {  // sigmoid(beta x), 1 above the kernel's threshold
      const Tensor z = mul(x, alpha);
      return where(gt(z, 20.0), ones_like(x), sigmoid(z));
    }
    case Activation::Gelu:
      return gelu_derivative(x);
  }
  STRATA_ASSERT(false, "unknown activation");
  return Tensor();
}

// f(x) through the backend's activation kernel; backward: f'(x) * grad, through the matching
// backward kernel, or composed of differentiable ops in a pass that creates a graph.
// The tape keeps only the tensor the derivative reads: y for relu, sigmoid and tanh, x for the
// others. Keeping y lets the producer of x (a conv, say) free its output, which halves what a
// conv-relu pair holds for backward.
Tensor pointwise(Activation act, const char* name, const Tensor& x, double alpha) {
  check_floating(x, name);
  const Tensor in = contiguous_data(x);
  Tensor out = Tensor::empty(x.shape(), x.options());
  if (out.numel() > 0) detail::backend_of(out).activation_forward(act, out, in, alpha);
  if (needs_grad({&x})) {
    const bool reads_output = derivative_reads_output(act);
    record(name, {x}, out,
           [act, alpha, saved_in = reads_output ? Tensor() : x,
            saved_out = reads_output ? out.detach() : Tensor()](const Tensor& g, const Needs&) {
             if (GradMode::is_enabled()) {
               const Tensor y = saved_out.defined() ? autograd::saved_output(saved_out) : Tensor();
               return Grads{mul(g, derivative(act, saved_in, y, alpha))};
             }
             const Tensor data = saved_in.defined() ? contiguous_data(saved_in) : Tensor();
             const Tensor& like = saved_out.defined() ? saved_out : data;
             Tensor grad = Tensor::empty(like.shape(), like.options());
             if (grad.numel() > 0) {
               detail::backend_of(grad).activation_backward(act, grad, g.contiguous(), data,
                                                            saved_out, alpha);
             }
             return Grads{grad};
           });
  }
  return out;
}

// x seen as [outer, size, inner] around axis `dim`.
struct Slices {
  int64_t outer = 1, size = 1, inner = 1;
};

Slices slices_around(const Shape& shape, int64_t dim) {
  Slices s;
  const auto rank = static_cast<int64_t>(shape.size());
  for (int64_t d = 0; d < rank; ++d) {
    if (d < dim) s.outer *= shape[d];
    else if (d == dim) s.size = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_floating(x, name);
  const int64_t axis = normalize_axis(dim, x.dim(), name);
  const Slices s = slices_around(x.shape(), axis);
  const Tensor in = contiguous_data(x);
  Tensor out = Tensor::empty(x.shape(), x.options());
  if (out.numel() > 0) {
    detail::backend_of(out).softmax_forward(out, in, s.outer, s.size, s.inner, log);
  }
  if (needs_grad({&x})) {
    record(name, {x}, out, [s, log, axis, y = out.detach()](const Tensor& g, const Needs&) {
      if (GradMode::is_enabled()) {  // composed, so a graph-creating pass records it
        const Tensor attached = autograd::saved_output(y);
        if (log) return Grads{sub(g, mul(exp(attached), sum(g, {axis}, /*keepdim=*/true)))};
        return Grads{mul(attached, sub(g, sum(mul(g, attached), {axis}, /*keepdim=*/true)))};
      }
      Tensor grad = Tensor::empty(y.shape(), y.options());
      if (grad.numel() > 0) {
        detail::backend_of(grad).softmax_backward(grad, g.contiguous(), y, s.outer, s.size,
                                                   s.inner, log);
      }
      return Grads{grad};
    });
  }
  return out;
}

}  // namespace

Tensor relu(const Tensor& x) { return pointwise(Activation::Relu, "relu", x, 0.0); }
Tensor sigmoid(const Tensor& x) { return pointwise(Activation::Sigmoid, "sigmoid", x, 0.0); }
Tensor tanh(const Tensor& x) { return pointwise(Activation::Tanh, "tanh", x, 0.0); }

Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return pointwise(Activation::LeakyRelu, "leaky_relu", x, negative_slope);
}

Tensor elu(const Tensor& x, double alpha) { return pointwise(Activation::Elu, "elu", x, alpha); }

Tensor softplus(const Tensor& x, double beta) {
  if (amp::needs_float32({&x})) {
    return softplus(amp::cast_to_float32(x), beta);
  }
  STRATA_CHECK(beta > 0.0, "softplus: beta must be positive, got ", beta);
  return pointwise(Activation::Softplus, "softplus", x, beta);
}

Tensor gelu(const Tensor& x) { return pointwise(Activation::Gelu, "gelu", x, 0.0); }

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(amp::cast_to_float32(x), dim, false);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(amp::cast_to_float32(x), dim, true);
}

// x [..., units * pieces, ...] -> view [..., units, pieces, ...] -> max over pieces.
Tensor maxout(const Tensor& x, int64_t pieces, int64_t dim) {
  check_floating(x, "maxout");
  STRATA_CHECK(x.dim() >= 1, "maxout: expected an input of rank >= 1, got ", detail::describe(x));
  const int64_t axis = normalize_axis(dim, x.dim(), "maxout");
  const int64_t length = x.size(axis);
  STRATA_CHECK(pieces >= 1, "maxout: pieces must be at least 1, got ", pieces, " for input ",
               detail::describe(x));
  STRATA_CHECK(length % pieces == 0, "maxout: dimension ", axis, " of size ", length,
               " is not divisible by pieces=", pieces, " (input ", detail::describe(x), ")");
  Shape grouped = x.shape();
  grouped[static_cast<size_t>(axis)] = length / pieces;
  grouped.insert(grouped.begin() + axis + 1, pieces);
  // NOTE: where pieces tie for the max, max() shares the gradient evenly among them.
  return max(x.reshape(grouped), {axis + 1});
}

}  // namespace strata::nn::functional
