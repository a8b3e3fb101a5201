// Losses and the 0-1 error metric, composed from differentiable ops (so their gradients come
// from the tape) and from log_softmax; binary_cross_entropy alone records a node of its own,
// for PyTorch's bounded gradient where a probability is exactly 0 or 1.
// Rules kept: every input is validated (dtypes, shapes, devices, class-index range) before any
// computation; the definitions, reductions included, are PyTorch's: a weighted class loss's
// Mean divides by the summed weights of the targets that count, Mean over no element is NaN.
#include <cmath>
#include <optional>
#include <string>

#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// ---- shared validation ----------------------------------------------------------------------

void check_floating_input(const Tensor& input, const char* op, const char* what = "input") {
  detail::check_defined(input, op, what);
  STRATA_CHECK(is_floating(input.dtype()), op, ": ", what,
               " must be floating (f32, f64, f16 or bf16), got ", detail::describe(input));
}

// A regression target: the input's shape and dtype, on its device.
void check_same_shape_target(const Tensor& input, const Tensor& target, const char* op) {
  check_floating_input(input, op);
  detail::check_defined(target, op, "target");
  detail::check_same_device(input, target, op);
  STRATA_CHECK(target.shape() == input.shape(), op, ": target shape ",
               shape_str(target.shape()), " does not match input shape ",
               shape_str(input.shape()), " (input ", detail::describe(input), ", target ",
               detail::describe(target), ")");
  STRATA_CHECK(target.dtype() == input.dtype(), op, ": target dtype ",
               dtype_name(target.dtype()), " does not match input dtype ",
               dtype_name(input.dtype()), " (input ", detail::describe(input), ", target ",
               detail::describe(target), ")");
}

// An elementwise weight (BCE's weight, pos_weight): broadcastable to the input, its dtype.
void check_broadcast_weight(const Tensor& input, const Tensor& weight, const char* op,
                            const char* what) {
  if (!weight.defined()) return;
  detail::check_same_device(input, weight, op);
  STRATA_CHECK(weight.dtype() == input.dtype(), op, ": ", what, " dtype ",
               dtype_name(weight.dtype()), " does not match input dtype ",
               dtype_name(input.dtype()), " (", what, " ", detail::describe(weight), ", input ",
               detail::describe(input), ")");
  bool ok = weight.dim() <= input.dim();
  for (int64_t i = 1; ok && i <= weight.dim(); ++i) {
    ok = weight.size(-i) == 1 || weight.size(-i) == input.size(-i);
  }
  STRATA_CHECK(ok, op, ": ", what, " ", detail::describe(weight),
               " cannot be broadcast to the input ", detail::describe(input));
}

// Targets in {-1, +1} for the margin losses: the scores' shape; the scores' dtype or int64
// (then converted). Reads the target on the host once to check its values.
Tensor sign_target(const Tensor& scores, const Tensor& target, const char* op) {
  check_floating_input(scores, op, "scores");
  detail::check_defined(target, op, "target");
  detail::check_same_device(scores, target, op);
  STRATA_CHECK(target.shape() == scores.shape(), op, ": target shape ",
               shape_str(target.shape()), " does not match scores shape ",
               shape_str(scores.shape()), " (scores ", detail::describe(scores), ", target ",
               detail::describe(target), ")");
  STRATA_CHECK(target.dtype() == scores.dtype() || target.dtype() == DType::Int64, op,
               ": target must have the scores' dtype ", dtype_name(scores.dtype()),
               " or be int64, got ", detail::describe(target));
  const Tensor y = target.detach().to(scores.dtype());
  if (y.numel() > 0) {
    NoGradGuard no_grad;
    const int64_t bad = sum(ne(abs(y), 1.0)).item<int64_t>();
    STRATA_CHECK(bad == 0, op, ": targets must be -1 or +1, but ", bad, " of ", y.numel(),
                 " are not (min ", min(y).item<double>(), ", max ", max(y).item<double>(),
                 "; target ", detail::describe(target), ")");
  }
  return y;
}

// Class-index losses: input [N, C, d...] (or [C] with a 0-d target), target int64 [N, d...].
// Returns C.
int64_t check_class_target(const Tensor& input, const Tensor& target, const char* op) {
  check_floating_input(input, op);
  detail::check_defined(target, op, "target");
  detail::check_same_device(input, target, op);
  STRATA_CHECK(input.dim() >= 1, op, ": input must be [N, C] or [N, C, d...], got ",
               detail::describe(input));
  STRATA_CHECK(target.dtype() == DType::Int64, op, ": class-index target must be int64, got ",
               detail::describe(target), " (input ", detail::describe(input), ")");
  Shape expected = input.shape();
  expected.erase(expected.begin() + (input.dim() == 1 ? 0 : 1));
  STRATA_CHECK(target.shape() == expected, op, ": target shape ", shape_str(target.shape()),
               " does not match input shape ", shape_str(input.shape()), " (expected target ",
               shape_str(expected), "; input ", detail::describe(input), ", target ",
               detail::describe(target), ")");
  return input.size(input.dim() == 1 ? 0 : 1);
}

// Throws unless every target (but those equal to ignore_index) lies in [0, classes).
void check_class_range(const Tensor& target, int64_t classes, std::optional<int64_t> ignore_index,
                       const char* op) {
  if (target.numel() == 0) return;
  NoGradGuard no_grad;
  const Tensor counted =
      ignore_index ? where(eq(target, static_cast<double>(*ignore_index)),
                           zeros({}, target.options()), target)
                   : target;
  const int64_t lo = min(counted).item<int64_t>(), hi = max(counted).item<int64_t>();
  STRATA_CHECK(lo >= 0 && hi < classes, op, ": class index ", lo < 0 ? lo : hi,
               " is out of range for ", classes, " classes (target ", detail::describe(target),
               ")");
}

void check_class_weight(const Tensor& input, const Tensor& weight, int64_t classes,
                        const char* op) {
  if (!weight.defined()) return;
  detail::check_same_device(input, weight, op);
  STRATA_CHECK(weight.dim() == 1 && weight.size(0) == classes, op, ": weight must be [",
               classes, "], one per class, got ", detail::describe(weight), " (input ",
               detail::describe(input), ")");
  STRATA_CHECK(weight.dtype() == input.dtype(), op, ": weight dtype ",
               dtype_name(weight.dtype()), " does not match input dtype ",
               dtype_name(input.dtype()), " (weight ", detail::describe(weight), ", input ",
               detail::describe(input), ")");
}

// ---- shared computation ---------------------------------------------------------------------

Tensor reduce(const Tensor& loss, Reduction reduction) {
  switch (reduction) {
    case Reduction::Mean:  // sum / count: NaN over no element, as PyTorch (mean() would throw)
      return div(sum(loss), static_cast<double>(loss.numel()));
    case Reduction::Sum: return sum(loss);
    case Reduction::None: return loss;
  }
  STRATA_ASSERT(false, "reduce: unknown reduction");
}

// `weight` [C] shaped to broadcast along axis 1 of an [N, C, d...] tensor.
Tensor class_axis_view(const Tensor& weight, int64_t rank) {
  Shape shape(static_cast<size_t>(rank), 1);
  shape[1] = weight.size(0);
  return weight.reshape(shape);
}

// The negative log-likelihood of class-index targets, per element ([N, d...]), with the
// weight each target counts with (w[target], 0 where ignored): the denominator of Mean.
struct ClassTerms {
  Tensor loss;           // -w[y] * log_probs[y], 0 where ignored
  Tensor target_weight;  // w[y] (1 without weights), 0 where ignored
  Tensor ignored;        // bool
};

// log_probs [N, C, d...], target [N, d...] (validated, range-checked).
ClassTerms class_terms(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                       int64_t ignore_index) {
  ClassTerms terms;
  terms.ignored = eq(target, static_cast<double>(ignore_index));
  // Ignored positions read class 0 (always valid) and are then zeroed.
  const Tensor safe = where(terms.ignored, zeros({}, target.options()), target);
  const Tensor picked = gather(log_probs, 1, safe.unsqueeze(1)).squeeze(1);
  const Tensor zero = zeros({}, log_probs.options());
  const Tensor w = weight.defined()
                       ? index_select(weight, 0, safe.reshape({-1})).reshape(target.shape())
                       : ones(target.shape(), log_probs.options());
  terms.target_weight = where(terms.ignored, zero, w);
  terms.loss = neg(mul(picked, terms.target_weight));
  return terms;
}

Tensor reduce_class_loss(const Tensor& loss, const Tensor& target_weight, Reduction reduction) {
  if (reduction == Reduction::Mean) return div(sum(loss), sum(target_weight));
  return reduce(loss, reduction);
}

// Unbatched input [C] with a 0-d target runs as a batch of one.
bool unbatched(const Tensor& input) { return input.dim() == 1; }

// ---- binary cross-entropy, one node ---------------------------------------------------------

// -(y log p + (1 - y) log(1 - p)) elementwise, each log clamped at -100.
Tensor bce_elementwise(const Tensor& probs, const Tensor& target) {
  const Tensor p = probs.detach(), y = target.detach();
  const Tensor log_p = clamp(log(p), -100.0, std::nullopt);
  const Tensor log_1mp = clamp(log(rsub(p, 1.0)), -100.0, std::nullopt);
  Tensor out = neg(add(mul(y, log_p), mul(rsub(y, 1.0), log_1mp)));
  if (needs_grad({&probs, &target})) {
    record("binary_cross_entropy", {probs, target}, out,
           [probs, target, log_p, log_1mp](const Tensor& g, const Needs& n) {
             // A pass that creates a graph reads the inputs themselves, and their logs again.
             const bool graph = GradMode::is_enabled();
             const Tensor pv = graph ? probs : probs.detach();
             const Tensor yv = graph ? target : target.detach();
             Grads grads(2);
             // NOTE: (p - y) / (p (1 - p)), its denominator bounded below by PyTorch's EPSILON
             // (the float 1e-12f, so about 1e12 where p is exactly 0 or 1 - a saturated
             // sigmoid - instead of NaN).
             if (n[0]) {
               constexpr double kEpsilon = static_cast<double>(1e-12f);
               const Tensor denom = clamp(mul(pv, rsub(pv, 1.0)), kEpsilon, std::nullopt);
               grads[0] = mul(g, div(sub(pv, yv), denom));
             }
             if (n[1] && graph) {
               grads[1] = mul(g, sub(clamp(log(rsub(pv, 1.0)), -100.0, std::nullopt),
                                     clamp(log(pv), -100.0, std::nullopt)));
             } else if (n[1]) {
               grads[1] = mul(g, sub(log_1mp, log_p));
             }
             return grads;
           });
  }
  return out;
}

}  // namespace

// ---- class-index and probability losses -----------------------------------------------------

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                Reduction reduction, int64_t ignore_index) {
  if (amp::needs_float32({&log_probs, &target, &weight})) {
    return nll_loss(amp::cast_to_float32(log_probs), target, amp::cast_to_float32(weight),
                    reduction, ignore_index);
  }
  const int64_t classes = check_class_target(log_probs, target, "nll_loss");
  check_class_weight(log_probs, weight, classes, "nll_loss");
  check_class_range(target, classes, ignore_index, "nll_loss");
  if (unbatched(log_probs)) {
    const Tensor loss = nll_loss(log_probs.unsqueeze(0), target.unsqueeze(0), weight, reduction,
                                 ignore_index);
    return reduction == Reduction::None ? loss.squeeze(0) : loss;
  }
  const ClassTerms terms = class_terms(log_probs, target, weight, ignore_index);
  return reduce_class_loss(terms.loss, terms.target_weight, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options) {
  if (amp::needs_float32({&logits, &target, &options.weight})) {
    CrossEntropyOptions wide = options;
    wide.weight = amp::cast_to_float32(options.weight);
    return cross_entropy(amp::cast_to_float32(logits), amp::cast_to_float32(target), wide);
  }
  const char* op = "cross_entropy";
  check_floating_input(logits, op, "logits");
  detail::check_defined(target, op, "target");
  STRATA_CHECK(options.label_smoothing >= 0.0 && options.label_smoothing <= 1.0, op,
               ": label_smoothing must be in [0, 1], got ", options.label_smoothing);
  const double eps = options.label_smoothing;
  const Tensor& weight = options.weight;

  if (target.dtype() != DType::Int64) {
    // Probability targets (one-hot or soft): the logits' shape and dtype.
    STRATA_CHECK(is_floating(target.dtype()), op,
                 ": target must be int64 class indices or class probabilities of the logits' "
                 "dtype, got ", detail::describe(target), " (logits ", detail::describe(logits),
                 ")");
    check_same_shape_target(logits, target, op);
    STRATA_CHECK(logits.dim() >= 1, op, ": logits must be [N, C] or [N, C, d...], got ",
                 detail::describe(logits));
    const int64_t class_dim = logits.dim() == 1 ? 0 : 1;
    const int64_t classes = logits.size(class_dim);
    check_class_weight(logits, weight, classes, op);
    const Tensor log_probs = log_softmax(logits, class_dim);
    Tensor q = eps > 0.0 ? add(mul(target, 1.0 - eps), eps / static_cast<double>(classes))
                         : target;
    if (weight.defined()) {
      q = mul(q, logits.dim() == 1 ? weight : class_axis_view(weight, logits.dim()));
    }
    const Tensor per_element = neg(mul(log_probs, q));
    switch (options.reduction) {
      case Reduction::None: return sum(per_element, {class_dim});
      case Reduction::Sum: return sum(per_element);
      case Reduction::Mean: {  // over the N * d... positions, whatever the weights (as PyTorch)
        const int64_t positions = classes > 0 ? logits.numel() / classes : 0;
        return div(sum(per_element), static_cast<double>(positions));
      }
    }
    STRATA_ASSERT(false, "cross_entropy: unknown reduction");
  }

  // Class-index targets.
  const int64_t classes = check_class_target(logits, target, op);
  check_class_weight(logits, weight, classes, op);
  check_class_range(target, classes, options.ignore_index, op);
  if (unbatched(logits)) {
    const Tensor loss = cross_entropy(logits.unsqueeze(0), target.unsqueeze(0), options);
    return options.reduction == Reduction::None ? loss.squeeze(0) : loss;
  }
  const Tensor log_probs = log_softmax(logits, 1);
  const ClassTerms terms = class_terms(log_probs, target, weight, options.ignore_index);
  const Tensor nll = reduce_class_loss(terms.loss, terms.target_weight, options.reduction);
  if (eps == 0.0) return nll;
  // Label smoothing mixes in the uniform distribution: (1 - eps) nll + eps / C * smooth, with
  // smooth = -sum_c w[c] log p_c per position (0 where ignored), reduced like nll.
  const Tensor weighted = weight.defined() ? mul(log_probs, class_axis_view(weight, logits.dim()))
                                           : log_probs;
  const Tensor smooth = where(terms.ignored, zeros({}, logits.options()), neg(sum(weighted, {1})));
  const Tensor smooth_reduced = reduce_class_loss(smooth, terms.target_weight, options.reduction);
  return add(mul(nll, 1.0 - eps), mul(smooth_reduced, eps / static_cast<double>(classes)));
}

Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target, const Tensor& weight,
                            Reduction reduction) {
  amp::refuse_under_autocast(probs, "binary_cross_entropy", "binary_cross_entropy_with_logits");
  const char* op = "binary_cross_entropy";
  check_same_shape_target(probs, target, op);
  check_broadcast_weight(probs, weight, op, "weight");
  if (probs.numel() > 0) {
    NoGradGuard no_grad;
    const double lo = min(probs).item<double>(), hi = max(probs).item<double>();
    STRATA_CHECK(lo >= 0.0 && hi <= 1.0, op, ": input must hold probabilities in [0, 1], got ",
                 "values from ", lo, " to ", hi, " (input ", detail::describe(probs),
                 "); for logits use binary_cross_entropy_with_logits");
  }
  Tensor loss = bce_elementwise(probs, target);
  if (weight.defined()) loss = mul(loss, weight);
  return reduce(loss, reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const Tensor& weight, Reduction reduction,
                                        const Tensor& pos_weight) {
  if (amp::needs_float32({&logits, &target, &weight, &pos_weight})) {
    return binary_cross_entropy_with_logits(
        amp::cast_to_float32(logits), amp::cast_to_float32(target), amp::cast_to_float32(weight),
        reduction, amp::cast_to_float32(pos_weight));
  }
  const char* op = "binary_cross_entropy_with_logits";
  check_same_shape_target(logits, target, op);
  check_broadcast_weight(logits, weight, op, "weight");
  check_broadcast_weight(logits, pos_weight, op, "pos_weight");
  const Tensor zero = zeros({}, logits.options());
  // log(1 + exp(-|x|)): exp of a non-positive number cannot overflow.
  const Tensor log_term = log(add(exp(neg(abs(logits))), 1.0));
  // NOTE: maximum() splits its gradient at a tie and abs() has gradient 0 at 0, so at x = 0
  // (a zero-initialized layer) the gradient is sigmoid(0) * t - pos_weight * y, the true one.
  Tensor loss;
  if (pos_weight.defined()) {
    // (1 - y) x + t (log(1 + exp(-|x|)) + max(-x, 0)), t = 1 + (pos_weight - 1) y.
    const Tensor t = add(mul(sub(pos_weight, 1.0), target), 1.0);
    loss = add(mul(rsub(target, 1.0), logits), mul(t, add(log_term, maximum(neg(logits), zero))));
  } else {
    // max(x, 0) - x y + log(1 + exp(-|x|)).
    loss = add(sub(maximum(logits, zero), mul(logits, target)), log_term);
  }
  if (weight.defined()) loss = mul(loss, weight);
  return reduce(loss, reduction);
}

// ---- regression losses ----------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (amp::needs_float32({&input, &target})) {
    return mse_loss(amp::cast_to_float32(input), amp::cast_to_float32(target), reduction);
  }
  check_same_shape_target(input, target, "mse_loss");
  const Tensor d = sub(input, target);
  return reduce(mul(d, d), reduction);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  if (amp::needs_float32({&input, &target})) {
    return l1_loss(amp::cast_to_float32(input), amp::cast_to_float32(target), reduction);
  }
  check_same_shape_target(input, target, "l1_loss");
  return reduce(abs(sub(input, target)), reduction);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta) {
  if (amp::needs_float32({&input, &target})) {
    return huber_loss(amp::cast_to_float32(input), amp::cast_to_float32(target), reduction, delta);
  }
  check_same_shape_target(input, target, "huber_loss");
  STRATA_CHECK(delta > 0.0, "huber_loss: delta must be positive, got ", delta);
  const Tensor d = sub(input, target);
  const Tensor ad = abs(d);
  const Tensor quadratic = mul(mul(d, d), 0.5);
  const Tensor linear_part = mul(sub(ad, 0.5 * delta), delta);
  return reduce(where(le(ad, delta), quadratic, linear_part), reduction);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction,
                      double beta) {
  if (amp::needs_float32({&input, &target})) {
    return smooth_l1_loss(amp::cast_to_float32(input), amp::cast_to_float32(target), reduction,
                          beta);
  }
  check_same_shape_target(input, target, "smooth_l1_loss");
  STRATA_CHECK(beta >= 0.0, "smooth_l1_loss: beta must be non-negative, got ", beta);
  const Tensor d = sub(input, target);
  const Tensor ad = abs(d);
  if (beta == 0.0) return reduce(ad, reduction);  // the limit: l1_loss (as PyTorch)
  const Tensor quadratic = mul(mul(d, d), 0.5 / beta);
  return reduce(where(lt(ad, beta), quadratic, sub(ad, 0.5 * beta)), reduction);
}

// ---- margin losses --------------------------------------------------------------------------

Tensor hinge_loss(const Tensor& scores, const Tensor& target, Reduction reduction,
                  double margin) {
  if (amp::needs_float32({&scores, &target})) {
    return hinge_loss(amp::cast_to_float32(scores), amp::cast_to_float32(target), reduction,
                      margin);
  }
  const Tensor y = sign_target(scores, target, "hinge_loss");
  return reduce(clamp(rsub(mul(y, scores), margin), 0.0, std::nullopt), reduction);
}

Tensor multi_margin_loss(const Tensor& scores, const Tensor& target, Reduction reduction,
                         double margin, const Tensor& weight) {
  if (amp::needs_float32({&scores, &weight})) {
    return multi_margin_loss(amp::cast_to_float32(scores), target, reduction, margin,
                             amp::cast_to_float32(weight));
  }
  const char* op = "multi_margin_loss";
  check_floating_input(scores, op, "scores");
  STRATA_CHECK(scores.dim() == 2, op, ": scores must be 2-D [N, C], got ",
               detail::describe(scores));
  const int64_t classes = check_class_target(scores, target, op);
  check_class_weight(scores, weight, classes, op);
  check_class_range(target, classes, std::nullopt, op);
  // scores [N, C], y [N, 1]: per sample sum over j != y of max(0, margin - f_y + f_j) / C.
  const Tensor y = target.unsqueeze(1);
  const Tensor f_y = gather(scores, 1, y);
  const Tensor hinge = clamp(add(sub(scores, f_y), margin), 0.0, std::nullopt);
  const Tensor classes_row = arange(0.0, static_cast<double>(classes), 1.0,
                                    TensorOptions(DType::Int64).device(scores.device()))
                                 .reshape({1, classes});
  const Tensor others = where(eq(classes_row, y), zeros({}, scores.options()), hinge);
  Tensor loss = div(sum(others, {1}), static_cast<double>(classes));
  if (weight.defined()) loss = mul(loss, index_select(weight, 0, target));
  return reduce(loss, reduction);
}

Tensor exponential_loss(const Tensor& scores, const Tensor& target, Reduction reduction) {
  if (amp::needs_float32({&scores, &target})) {
    return exponential_loss(amp::cast_to_float32(scores), amp::cast_to_float32(target), reduction);
  }
  const Tensor y = sign_target(scores, target, "exponential_loss");
  return reduce(exp(neg(mul(y, scores))), reduction);
}

Tensor perceptron_loss(const Tensor& scores, const Tensor& target, Reduction reduction) {
  if (amp::needs_float32({&scores, &target})) {
    return perceptron_loss(amp::cast_to_float32(scores), amp::cast_to_float32(target), reduction);
  }
  const Tensor y = sign_target(scores, target, "perceptron_loss");
  // NOTE: clamp passes the gradient at its bound, so a score of exactly 0 (a zero-initialized
  // model) still gets -y: the perceptron rule updates on y f <= 0, not only on y f < 0.
  return reduce(clamp(neg(mul(y, scores)), 0.0, std::nullopt), reduction);
}

// ---- the 0-1 error --------------------------------------------------------------------------

Tensor zero_one_error(const Tensor& scores, const Tensor& target) {
  const char* op = "zero_one_error";
  check_floating_input(scores, op, "scores");
  STRATA_CHECK(scores.dim() == 1 || scores.dim() == 2, op,
               ": scores must be [N, C] (with class indices) or [N] (with -1/+1 targets), got ",
               detail::describe(scores));
  NoGradGuard no_grad;
  Tensor wrong;
  if (scores.dim() == 2) {
    const int64_t classes = check_class_target(scores, target, op);
    check_class_range(target, classes, std::nullopt, op);
    wrong = ne(argmax(scores.detach(), 1), target);
  } else {
    const Tensor y = sign_target(scores, target, op);
    wrong = le(mul(scores.detach(), y), 0.0);  // sign(f) != y, with f = 0 an error
  }
  return div(sum(wrong.to(scores.dtype())), static_cast<double>(wrong.numel()));
}

}  // namespace strata::nn::functional
