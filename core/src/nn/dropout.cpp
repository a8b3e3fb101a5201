// dropout of nn::functional: inverted dropout, composite from recorded ops. The keep mask
// comes from strata::rand with the caller's generator (Philox, see philox.h), so one seed
// drops the same elements on every backend; the output is x * mask with mask = 1/(1-p) where
// kept and 0 where dropped, and the tape gives grad_x = grad * mask.

#include "internal.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

Tensor dropout(const Tensor& x, double p, bool training, Generator* generator) {
  detail::check_defined(x, "dropout", "input");
  STRATA_CHECK(is_floating(x.dtype()),
               "dropout: expected a floating input (f32, f64, f16 or bf16), got ",
               detail::describe(x));
  STRATA_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p,
               " (input ", detail::describe(x), ")");
  if (!training || p == 0.0) return x;
  // Everything dropped: zeros that still carry a (zero) gradient; no numbers are drawn.
  if (p == 1.0) return mul(x, 0.0);

  // NOTE: why 1/(1-p) in training and nothing at test time. Classic dropout keeps each unit
  // with probability q = 1-p during training and, at test time, multiplies the weights (or
  // activations) by q, so that a unit's expected input E[mask * x] = q * x seen in training
  // is what it sees at test. Inverted dropout moves the factor to training: the kept units
  // are scaled by 1/q, so E[mask * x / q] = x, the activation the full network produces.
  // Both schemes make the training-time expectation equal the test-time value; scaling
  // during training just means the trained network runs unchanged at inference (training=
  // false is the identity here) and the weights need no rescaling.
  const double keep = 1.0 - p;
  const Tensor u = rand(x.shape(), x.options(), generator);  // uniform [0, 1)
  const Tensor zero = zeros({}, x.options());
  const Tensor scale = full({}, 1.0 / keep, x.options());
  const Tensor mask = where(lt(u, keep), scale, zero);  // P(u < 1-p) = 1-p: kept
  return mul(x, mask);
}

}  // namespace strata::nn::functional
