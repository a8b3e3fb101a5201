// gradcheck: the analytic Jacobian (one backward pass per output element) against float64
// central differences (two forward passes per input element), compared element by element
// with |analytic - numeric| <= atol + rtol * |numeric|.
#include <cmath>
#include <sstream>

#include "internal.h"

namespace strata {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options) {
  STRATA_CHECK(!inputs.empty(), "gradcheck: expected at least one input");
  std::vector<Tensor> leaves;
  leaves.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    detail::check_defined(input, "gradcheck", "an input");
    STRATA_CHECK(!input.requires_grad() || input.dtype() == DType::Float64, "gradcheck: input ", i,
                 " is ", detail::describe(input),
                 "; inputs that require grad must be f64 (f32 differences are too coarse)");
    // Fresh leaves the check owns, so it never touches the caller's .grad().
    Tensor leaf = input.detach().clone();
    if (input.requires_grad()) leaf.set_requires_grad(true);
    leaves.push_back(leaf);
  }

  Tensor output;
  {
    output = fn(leaves);
  }
  detail::check_defined(output, "gradcheck", "the function's output");
  STRATA_CHECK(output.dtype() == DType::Float64, "gradcheck: the function returned ",
               detail::describe(output), "; it must return f64");
  const int64_t n_out = output.numel();

  // Analytic Jacobian rows: d output[j] / d input, one backward per output element.
  std::vector<std::vector<std::vector<double>>> analytic(leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    analytic[i].assign(static_cast<size_t>(n_out), {});
  }
  if (output.requires_grad()) {
    for (int64_t j = 0; j < n_out; ++j) {
      for (Tensor& leaf : leaves) leaf.zero_grad();
      std::vector<double> seed(static_cast<size_t>(n_out), 0.0);
      seed[static_cast<size_t>(j)] = 1.0;
      const Tensor gradient = from_vector(seed).reshape(output.shape()).to(output.device());
      output.backward(gradient, /*retain_graph=*/true);
      for (size_t i = 0; i < leaves.size(); ++i) {
        if (!leaves[i].requires_grad()) continue;
        const Tensor& g = leaves[i].grad();
        analytic[i][static_cast<size_t>(j)] =
            g.defined() ? g.to_vector<double>()
                        : std::vector<double>(static_cast<size_t>(leaves[i].numel()), 0.0);
      }
    }
  }

  // Numeric Jacobian columns by central differences, perturbing one element at a time.
  NoGradGuard no_grad;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    std::vector<double> values = leaves[i].to_vector<double>();
    const Device device = leaves[i].device();
    auto evaluate = [&](const std::vector<double>& perturbed) {
      std::vector<Tensor> args = leaves;
      args[i] = from_vector(perturbed).reshape(leaves[i].shape()).to(device);
      return fn(args).to_vector<double>();
    };
    for (size_t e = 0; e < values.size(); ++e) {
      const double original = values[e];
      values[e] = original + options.eps;
      const std::vector<double> plus = evaluate(values);
      values[e] = original - options.eps;
      const std::vector<double> minus = evaluate(values);
      values[e] = original;
      for (int64_t j = 0; j < n_out; ++j) {
        const auto jj = static_cast<size_t>(j);
        const double numeric = (plus[jj] - minus[jj]) / (2.0 * options.eps);
        const double exact = output.requires_grad() ? analytic[i][jj][e] : 0.0;
        if (!(std::fabs(exact - numeric) <= options.atol + options.rtol * std::fabs(numeric))) {
          std::ostringstream message;
          message << "gradcheck: mismatch for input " << i << " "
                  << detail::describe(inputs[i]) << " at element " << e << ", output element "
                  << j << ": analytic " << exact << " vs numeric " << numeric << " (atol "
                  << options.atol << ", rtol " << options.rtol << ")";
          return GradcheckResult{false, message.str()};
        }
      }
    }
  }
  return GradcheckResult{true, ""};
}

}  // namespace strata
