// Gradient clipping, as torch.nn.utils names it. Both work on the .grad() of the parameters
// given, in place, on whatever device they live (tensor ops, never a copy to the host but the
// one read of the total norm), and skip parameters that have no gradient yet.
//   loss.backward();
//   nn::utils::clip_grad_norm_(model.parameters(), 1.0);
//   optimizer.step();
#pragma once

#include <vector>

#include "strata/tensor.h"

namespace strata::nn::utils {

// Scales the gradients so that their total norm, taken over all of them as if concatenated
// into one vector, is at most max_norm: each is multiplied by max_norm / (total + 1e-6) when
// that is below 1. norm_type is p > 0, or infinity (std::numeric_limits<double>::infinity())
// for the largest absolute value. Returns the total norm before clipping (0 when no parameter
// has a gradient). error_if_nonfinite: throw strata::Error when the total norm is NaN or
// infinite instead of scaling by it (which, as in PyTorch, leaves NaNs or zeros).
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm,
                       double norm_type = 2.0, bool error_if_nonfinite = false);

// Clamps every gradient element into [-clip_value, clip_value].
void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value);

}  // namespace strata::nn::utils
