// Elementwise ops: arithmetic, comparisons, unary math, clamp and where. Binary ops broadcast
// and promote; arithmetic on bool runs in int64, division on integers in float32. Each
// differentiable op records its backward right below its forward.
#include <cmath>
#include <limits>

#include "strata/amp/autocast.h"
#include "internal.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using autograd::saved_output;
using autograd::sum_to;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

DType arithmetic_dtype(BinaryOp op, DType a, DType b) {
  DType dtype = promote_types(a, b);
  if (is_comparison(op)) return dtype == DType::Bool ? DType::UInt8 : dtype;
  if (dtype == DType::Bool) dtype = DType::Int64;
  if ((op == BinaryOp::Div) && !is_floating(dtype)) dtype = DType::Float32;
  return dtype;
}

const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "add";
    case BinaryOp::Sub: return "sub";
    case BinaryOp::Mul: return "mul";
    case BinaryOp::Div: return "div";
    case BinaryOp::Pow: return "pow";
    case BinaryOp::Maximum: return "maximum";
    case BinaryOp::Minimum: return "minimum";
    case BinaryOp::FloorDivide:
      return "floor_divide";
    case BinaryOp::Remainder:
      return "remainder";
    case BinaryOp::Eq: return "eq";
    case BinaryOp::Ne: return "ne";
    case BinaryOp::Lt: return "lt";
    case BinaryOp::Le: return "le";
    case BinaryOp::Gt: return "gt";
    case BinaryOp::Ge: return "ge";
  }
  return "binary";
}

// Forward of every tensor-tensor op, without recording.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  detail::check_defined(a, name, "first operand");
  detail::check_defined(b, name, "second operand");
  detail::check_same_device(a, b, name);
  const DType dtype = arithmetic_dtype(op, a.dtype(), b.dtype());
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = Tensor::empty(shape, TensorOptions(is_comparison(op) ? DType::Bool : dtype)
                                        .device(a.device()));
  if (out.numel() == 0) return out;
  const Tensor av = detail::broadcast_view(detail::convert(a, dtype), shape);
  const Tensor bv = detail::broadcast_view(detail::convert(b, dtype), shape);
  detail::backend_of(out).binary(op, out, av, bv);
  return out;
}

// Forward of every tensor-scalar op. An integer tensor meets a fractional scalar in float32.
Tensor scalar_forward(BinaryOp op, const Tensor& a, double scalar, bool scalar_first) {
  const char* name = scalar_first && op == BinaryOp::Sub   ? "rsub"
                     : scalar_first && op == BinaryOp::Div ? "rdiv"
                                                           : binary_name(op);
  detail::check_defined(a, name, "operand");
  DType dtype = arithmetic_dtype(op, a.dtype(), a.dtype());
  if (!is_floating(dtype) && scalar != std::floor(scalar)) dtype = DType::Float32;
  Tensor out = Tensor::empty(a.shape(), TensorOptions(is_comparison(op) ? DType::Bool : dtype)
                                            .device(a.device()));
  if (out.numel() == 0) return out;
  detail::backend_of(out).binary_scalar(op, out, detail::convert(a, dtype), scalar, scalar_first);
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x, const char* name, bool needs_floating) {
  detail::check_defined(x, name);
  DType dtype = x.dtype() == DType::Bool ? DType::Int64 : x.dtype();
  if (needs_floating && !is_floating(dtype)) dtype = DType::Float32;
  Tensor out = Tensor::empty(x.shape(), TensorOptions(dtype).device(x.device()));
  if (out.numel() > 0) detail::backend_of(out).unary(op, out, detail::convert(x, dtype));
  return out;
}

// Integer floor division and remainder by zero are errors, as in PyTorch (ZeroDivisionError):
// checked on the host (a small device-to-host read on CUDA) before the kernel runs.
void check_integer_divisor(BinaryOp op, const Tensor& a, const Tensor& divisor) {
  if (is_floating(arithmetic_dtype(op, a.dtype(), divisor.dtype())) || divisor.numel() == 0) {
    return;
  }
  NoGradGuard no_grad;
  const bool has_zero = max(eq(divisor, 0.0)).item<int64_t>() != 0;
  STRATA_CHECK(!has_zero, binary_name(op), ": integer division by zero (divisor ",
               detail::describe(divisor), ", dividend ", detail::describe(a), ")");
}

void check_integer_divisor(BinaryOp op, const Tensor& a, double divisor) {
  STRATA_CHECK(is_floating(a.dtype()) || divisor != 0.0, binary_name(op),
               ": integer division by zero (divisor 0, dividend ", detail::describe(a), ")");
}

// 0-dim zero of `like`'s dtype and device, for where() in backward functions.
Tensor zero_like_scalar(const Tensor& like) { return zeros({}, like.options()); }

}  // namespace

// ---- tensor (op) tensor -------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b);
  if (needs_grad({&a, &b})) {
    record("add", {a, b}, out, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
      return Grads{n[0] ? sum_to(g, sa) : Tensor(), n[1] ? sum_to(g, sb) : Tensor()};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b);
  if (needs_grad({&a, &b})) {
    record("sub", {a, b}, out, [sa = a.shape(), sb = b.shape()](const Tensor& g, const Needs& n) {
      return Grads{n[0] ? sum_to(g, sa) : Tensor(), n[1] ? sum_to(neg(g), sb) : Tensor()};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b);
  if (needs_grad({&a, &b})) {
    record("mul", {a, b}, out, [a, b](const Tensor& g, const Needs& n) {
      return Grads{n[0] ? sum_to(mul(g, b), a.shape()) : Tensor(),
                   n[1] ? sum_to(mul(g, a), b.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b);
  if (needs_grad({&a, &b})) {
    record("div", {a, b}, out, [a, b, out = out.detach()](const Tensor& g, const Needs& n) {
      // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
      return Grads{n[0] ? sum_to(div(g, b), a.shape()) : Tensor(),
                   n[1] ? sum_to(neg(div(mul(g, saved_output(out)), b)), b.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor pow(const Tensor& x, const Tensor& exponent) {
  if (amp::needs_float32({&x, &exponent})) {
    return pow(amp::cast_to_float32(x), amp::cast_to_float32(exponent));
  }
  Tensor out = binary_forward(BinaryOp::Pow, x, exponent);
  if (needs_grad({&x, &exponent})) {
    record("pow", {x, exponent}, out,
           [x, exponent, out = out.detach()](const Tensor& g, const Needs& n) {
             Grads grads(2);
             if (n[0]) {  // y * x^(y-1)
               grads[0] = sum_to(mul(g, mul(exponent, pow(x, sub(exponent, 1.0)))), x.shape());
             }
             if (n[1]) {  // x^y * log(x), taken as 0 where x == 0 (the limit for y > 0)
               const Tensor term =
                   where(eq(x, 0.0), zero_like_scalar(out), mul(saved_output(out), log(x)));
               grads[1] = sum_to(mul(g, term), exponent.shape());
             }
             return grads;
           });
  }
  return out;
}

namespace {
// maximum/minimum backward: the winner takes the gradient; a tie splits it evenly.
Grads extremum_backward(BinaryOp winner_op, const Tensor& a, const Tensor& b, const Tensor& g,
                        const Needs& n) {
  const Tensor tie = mul(eq(a, b).to(g.dtype()), 0.5);
  Grads grads(2);
  if (n[0]) grads[0] = sum_to(mul(g, add(binary_forward(winner_op, a, b).to(g.dtype()), tie)),
                              a.shape());
  if (n[1]) grads[1] = sum_to(mul(g, add(binary_forward(winner_op, b, a).to(g.dtype()), tie)),
                              b.shape());
  return grads;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Maximum, a, b);
  if (needs_grad({&a, &b})) {
    record("maximum", {a, b}, out, [a, b](const Tensor& g, const Needs& n) {
      return extremum_backward(BinaryOp::Gt, a, b, g, n);
    });
  }
  return out;
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Minimum, a, b);
  if (needs_grad({&a, &b})) {
    record("minimum", {a, b}, out, [a, b](const Tensor& g, const Needs& n) {
      return extremum_backward(BinaryOp::Lt, a, b, g, n);
    });
  }
  return out;
}

// Piecewise constant, so nothing is recorded (as sign): its gradient is zero wherever it exists.
// NOTE: PyTorch 1.13 records a node whose backward raises "not implemented"; here the result
// simply does not require grad.
Tensor floor_divide(const Tensor& a, const Tensor& b) {
  detail::check_defined(a, "floor_divide", "first operand");
  detail::check_defined(b, "floor_divide", "second operand");
  check_integer_divisor(BinaryOp::FloorDivide, a, b);
  return binary_forward(BinaryOp::FloorDivide, a, b);
}

Tensor remainder(const Tensor& a, const Tensor& b) {
  detail::check_defined(a, "remainder", "first operand");
  detail::check_defined(b, "remainder", "second operand");
  check_integer_divisor(BinaryOp::Remainder, a, b);
  Tensor out = binary_forward(BinaryOp::Remainder, a, b);
  if (needs_grad({&a, &b})) {
    // a - floor(a / b) * b: d/da = 1, d/db = -floor(a / b) (the floor's own gradient is zero).
    record("remainder", {a, b}, out, [a, b](const Tensor& g, const Needs& n) {
      return Grads{n[0] ? sum_to(g, a.shape()) : Tensor(),
                   n[1] ? sum_to(neg(mul(g, floor_divide(a, b))), b.shape()) : Tensor()};
    });
  }
  return out;
}

// ---- tensor (op) scalar -------------------------------------------------------------------

Tensor add(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Add, a, b, false);
  if (needs_grad({&a})) {
    record("add", {a}, out, [](const Tensor& g, const Needs&) { return Grads{g}; });
  }
  return out;
}

Tensor sub(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Sub, a, b, false);
  if (needs_grad({&a})) {
    record("sub", {a}, out, [](const Tensor& g, const Needs&) { return Grads{g}; });
  }
  return out;
}

Tensor rsub(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Sub, a, b, true);
  if (needs_grad({&a})) {
    record("rsub", {a}, out, [](const Tensor& g, const Needs&) { return Grads{neg(g)}; });
  }
  return out;
}

Tensor mul(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Mul, a, b, false);
  if (needs_grad({&a})) {
    record("mul", {a}, out, [b](const Tensor& g, const Needs&) { return Grads{mul(g, b)}; });
  }
  return out;
}

Tensor div(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Div, a, b, false);
  if (needs_grad({&a})) {
    record("div", {a}, out, [b](const Tensor& g, const Needs&) { return Grads{div(g, b)}; });
  }
  return out;
}

Tensor rdiv(const Tensor& a, double b) {
  Tensor out = scalar_forward(BinaryOp::Div, a, b, true);
  if (needs_grad({&a})) {
    record("rdiv", {a}, out, [a, out = out.detach()](const Tensor& g, const Needs&) {
      return Grads{neg(div(mul(g, saved_output(out)), a))};  // d(b/a)/da = -b/a^2 = -out/a
    });
  }
  return out;
}

Tensor floor_divide(const Tensor& a, double b) {
  detail::check_defined(a, "floor_divide", "operand");
  check_integer_divisor(BinaryOp::FloorDivide, a, b);
  return scalar_forward(BinaryOp::FloorDivide, a, b, false);
}

Tensor remainder(const Tensor& a, double b) {
  detail::check_defined(a, "remainder", "operand");
  check_integer_divisor(BinaryOp::Remainder, a, b);
  Tensor out = scalar_forward(BinaryOp::Remainder, a, b, false);
  if (needs_grad({&a})) {
    record("remainder", {a}, out, [](const Tensor& g, const Needs&) { return Grads{g}; });
  }
  return out;
}

Tensor pow(const Tensor& x, double exponent) {
  if (amp::needs_float32({&x})) {
    return pow(amp::cast_to_float32(x), exponent);
  }
  Tensor out = scalar_forward(BinaryOp::Pow, x, exponent, false);
  if (needs_grad({&x})) {
    record("pow", {x}, out, [x, exponent](const Tensor& g, const Needs&) {
      if (exponent == 0.0) return Grads{zeros_like(g)};
      return Grads{mul(g, mul(pow(x, exponent - 1.0), exponent))};
    });
  }
  return out;
}

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  detail::check_defined(x, "clamp");
  STRATA_CHECK(min.has_value() || max.has_value(), "clamp: at least one of min and max must be given");
  STRATA_CHECK(!(min && max && *min > *max), "clamp: min ", *min, " is greater than max ", *max);
  Tensor out = x;
  if (min) out = scalar_forward(BinaryOp::Maximum, out, *min, false);
  if (max) out = scalar_forward(BinaryOp::Minimum, out, *max, false);
  if (out.is_same(x)) out = x.clone();
  if (needs_grad({&x})) {
    record("clamp", {x}, out, [x, min, max](const Tensor& g, const Needs&) {
      Tensor grad = g;
      const Tensor zero = zero_like_scalar(g);
      if (min) grad = where(lt(x, *min), zero, grad);
      if (max) grad = where(gt(x, *max), zero, grad);
      return Grads{grad};
    });
  }
  return out;
}

// ---- comparisons (not differentiable) -----------------------------------------------------

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ge, a, b); }
Tensor eq(const Tensor& a, double b) { return scalar_forward(BinaryOp::Eq, a, b, false); }
Tensor ne(const Tensor& a, double b) { return scalar_forward(BinaryOp::Ne, a, b, false); }
Tensor lt(const Tensor& a, double b) { return scalar_forward(BinaryOp::Lt, a, b, false); }
Tensor le(const Tensor& a, double b) { return scalar_forward(BinaryOp::Le, a, b, false); }
Tensor gt(const Tensor& a, double b) { return scalar_forward(BinaryOp::Gt, a, b, false); }
Tensor ge(const Tensor& a, double b) { return scalar_forward(BinaryOp::Ge, a, b, false); }

// Composites of the comparisons, so every backend has them: NaN is the one value unequal to
// itself, and 0 * x is 0 exactly when x is finite (NaN for NaN and both infinities).
Tensor isnan(const Tensor& x) {
  detail::check_defined(x, "isnan");
  NoGradGuard no_grad;
  if (!is_floating(x.dtype())) return zeros(x.shape(), TensorOptions(kBool).device(x.device()));
  return ne(x, x);
}

Tensor isinf(const Tensor& x) {
  detail::check_defined(x, "isinf");
  NoGradGuard no_grad;
  if (!is_floating(x.dtype())) return zeros(x.shape(), TensorOptions(kBool).device(x.device()));
  return eq(abs(x), std::numeric_limits<double>::infinity());
}

Tensor isfinite(const Tensor& x) {
  detail::check_defined(x, "isfinite");
  NoGradGuard no_grad;
  if (!is_floating(x.dtype())) return ones(x.shape(), TensorOptions(kBool).device(x.device()));
  return eq(mul(x, 0.0), 0.0);
}

// ---- unary --------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Neg, x, "neg", false);
  if (needs_grad({&x})) {
    record("neg", {x}, out, [](const Tensor& g, const Needs&) { return Grads{neg(g)}; });
  }
  return out;
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Abs, x, "abs", false);
  if (needs_grad({&x})) {
    // NOTE: sign(0) = 0, so the gradient at 0 is 0 (PyTorch's subgradient choice).
    record("abs", {x}, out, [x](const Tensor& g, const Needs&) { return Grads{mul(g, sign(x))}; });
  }
  return out;
}

// Piecewise constant: its gradient is zero wherever it exists, so nothing is recorded.
Tensor sign(const Tensor& x) { return unary_forward(UnaryOp::Sign, x, "sign", false); }

Tensor exp(const Tensor& x) {
  if (amp::needs_float32({&x})) {
    return exp(amp::cast_to_float32(x));
  }
  Tensor out = unary_forward(UnaryOp::Exp, x, "exp", true);
  if (needs_grad({&x})) {
    record("exp", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
      return Grads{mul(g, saved_output(out))};
    });
  }
  return out;
}

Tensor log(const Tensor& x) {
  if (amp::needs_float32({&x})) {
    return log(amp::cast_to_float32(x));
  }
  Tensor out = unary_forward(UnaryOp::Log, x, "log", true);
  if (needs_grad({&x})) {
    record("log", {x}, out, [x](const Tensor& g, const Needs&) { return Grads{div(g, x)}; });
  }
  return out;
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_forward(UnaryOp::Sqrt, x, "sqrt", true);
  if (needs_grad({&x})) {
    record("sqrt", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
      return Grads{div(g, mul(saved_output(out), 2.0))};
    });
  }
  return out;
}

Tensor reciprocal(const Tensor& x) {
  if (amp::needs_float32({&x})) {
    return reciprocal(amp::cast_to_float32(x));
  }
  Tensor out = unary_forward(UnaryOp::Reciprocal, x, "reciprocal", true);
  if (needs_grad({&x})) {
    record("reciprocal", {x}, out, [out = out.detach()](const Tensor& g, const Needs&) {
      const Tensor y = saved_output(out);
      return Grads{neg(mul(g, mul(y, y)))};
    });
  }
  return out;
}

// ---- where --------------------------------------------------------------------------------

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_defined(cond, "where", "condition");
  detail::check_defined(a, "where", "first value");
  detail::check_defined(b, "where", "second value");
  STRATA_CHECK(cond.dtype() == DType::Bool, "where: the condition must be bool, got ",
               detail::describe(cond));
  detail::check_same_device(cond, a, "where");
  detail::check_same_device(a, b, "where");
  const DType dtype = promote_types(a.dtype(), b.dtype());
  const Shape shape =
      broadcast_shapes(cond.shape(), broadcast_shapes(a.shape(), b.shape(), "where"), "where");
  Tensor out = Tensor::empty(shape, TensorOptions(dtype).device(a.device()));
  if (out.numel() > 0) {
    detail::backend_of(out).where(out, detail::broadcast_view(cond, shape),
                                  detail::broadcast_view(detail::convert(a, dtype), shape),
                                  detail::broadcast_view(detail::convert(b, dtype), shape));
  }
  if (needs_grad({&a, &b})) {
    record("where", {a, b}, out, [cond, sa = a.shape(), sb = b.shape()](const Tensor& g,
                                                                         const Needs& n) {
      const Tensor zero = zero_like_scalar(g);
      return Grads{n[0] ? sum_to(where(cond, g, zero), sa) : Tensor(),
                   n[1] ? sum_to(where(cond, zero, g), sb) : Tensor()};
    });
  }
  return out;
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  detail::check_defined(a, "allclose", "a");
  detail::check_defined(b, "allclose", "b");
  NoGradGuard no_grad;
  STRATA_CHECK(a.shape() == b.shape(), "allclose: shapes differ (", detail::describe(a), " and ",
               detail::describe(b), ")");
  const Tensor x = a.to(DType::Float64), y = b.to(DType::Float64);
  const Tensor bound = add(mul(abs(y), rtol), atol);
  const Tensor close = le(abs(sub(x, y)), bound);
  return close.numel() == 0 || min(close.to(DType::Int64)).item<int64_t>() == 1;
}

}  // namespace strata
