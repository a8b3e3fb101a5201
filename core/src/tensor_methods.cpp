// Tensor's computing methods: each is the functional op of the same name in ops.h.
#include "internal.h"

namespace strata {

Tensor Tensor::neg() const { return strata::neg(*this); }
Tensor Tensor::abs() const { return strata::abs(*this); }
Tensor Tensor::exp() const { return strata::exp(*this); }
Tensor Tensor::log() const { return strata::log(*this); }
Tensor Tensor::sqrt() const { return strata::sqrt(*this); }
Tensor Tensor::pow(double exponent) const { return strata::pow(*this, exponent); }
Tensor Tensor::clamp(std::optional<double> lo, std::optional<double> hi) const {
  return strata::clamp(*this, lo, hi);
}
Tensor Tensor::sum() const { return strata::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const {
  return strata::sum(*this, dims, keepdim);
}
Tensor Tensor::mean() const { return strata::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return strata::mean(*this, dims, keepdim);
}
Tensor Tensor::max() const { return strata::max(*this); }
Tensor Tensor::max(const std::vector<int64_t>& dims, bool keepdim) const {
  return strata::max(*this, dims, keepdim);
}
Tensor Tensor::min() const { return strata::min(*this); }
Tensor Tensor::min(const std::vector<int64_t>& dims, bool keepdim) const {
  return strata::min(*this, dims, keepdim);
}
Tensor Tensor::argmax(std::optional<int64_t> d, bool keepdim) const {
  return strata::argmax(*this, d, keepdim);
}
Tensor Tensor::argmin(std::optional<int64_t> d, bool keepdim) const {
  return strata::argmin(*this, d, keepdim);
}

}  // namespace strata
