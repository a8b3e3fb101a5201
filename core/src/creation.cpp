// Factory functions: filled, ranged, from host values and random tensors. Random tensors draw
// from a Generator's Philox stream, so the same seed gives the same values on every backend.
#include <algorithm>
#include <cmath>
#include <vector>

#include "internal.h"
#include "strata/generator.h"

namespace strata {

namespace {
Tensor finish(Tensor t, const TensorOptions& options) {
  if (options.requires_grad_) t.set_requires_grad(true);
  return t;
}
TensorOptions without_grad(TensorOptions options) { return options.requires_grad(false); }
}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) { return Tensor::empty(shape, options); }

Tensor full(const Shape& shape, double value, TensorOptions options) {
  Tensor out = Tensor::empty(shape, without_grad(options));
  if (out.numel() > 0) detail::backend_of(out).fill(out, value);
  return finish(out, options);
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor zeros_like(const Tensor& like) { return zeros(like.shape(), like.options()); }
Tensor ones_like(const Tensor& like) { return ones(like.shape(), like.options()); }
Tensor full_like(const Tensor& like, double value) {
  return full(like.shape(), value, like.options());
}
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

Tensor eye(int64_t n, std::optional<int64_t> m, TensorOptions options) {
  const int64_t cols = m.value_or(n);
  STRATA_CHECK(n >= 0 && cols >= 0, "eye: sizes must be non-negative, got ", n, " x ", cols);
  Tensor out = zeros({n, cols}, options.requires_grad(false));
  // The diagonal as a strided view of the flat storage: one fill, on any device.
  const int64_t diagonal = std::min(n, cols);
  if (diagonal > 0) detail::make_view(out, {diagonal}, {cols + 1}, 0).fill_(1.0);
  if (options.requires_grad_) out.set_requires_grad(true);
  return out;
}

Tensor arange(double end, TensorOptions options) { return arange(0.0, end, 1.0, options); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  STRATA_CHECK(step != 0.0 && std::isfinite(step), "arange: step must be finite and non-zero, got ",
               step);
  STRATA_CHECK(std::isfinite(start) && std::isfinite(end), "arange: start and end must be finite");
  const double count = std::ceil((end - start) / step);
  const auto n = static_cast<int64_t>(count > 0 ? count : 0);
  Tensor out = Tensor::empty({n}, without_grad(options));
  if (n > 0) detail::backend_of(out).arange(out, start, step);
  return finish(out, options);
}

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape,
                   std::optional<TensorOptions> options) {
  using Stored = std::conditional_t<std::is_same_v<T, int>, int64_t, T>;
  const Shape target = shape.empty() ? Shape{static_cast<int64_t>(values.size())} : shape;
  STRATA_CHECK(numel_of(target) == static_cast<int64_t>(values.size()), "from_vector: ",
               values.size(), " values cannot fill shape ", shape_str(target), " (",
               numel_of(target), " elements)");
  TensorOptions opts = options.value_or(TensorOptions(dtype_of<Stored>::value));
  // Stage in T's own dtype on the host, then convert and move.
  Tensor host = Tensor::empty(target, dtype_of<Stored>::value);
  auto* dst = static_cast<Stored*>(host.raw_data());
  for (size_t i = 0; i < values.size(); ++i) dst[i] = static_cast<Stored>(values[i]);
  Tensor out = detail::convert(host, opts.dtype_).to(opts.device_);
  return finish(out, opts);
}
template Tensor from_vector(const std::vector<float>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<double>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<int>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<uint8_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<bool>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<Half>&, const Shape&, std::optional<TensorOptions>);
template Tensor from_vector(const std::vector<BFloat16>&, const Shape&, std::optional<TensorOptions>);

namespace {
Generator& pick(Generator* generator) {
  return generator != nullptr ? *generator : default_generator();
}
}  // namespace

Tensor rand(const Shape& shape, TensorOptions options, Generator* generator) {
  STRATA_CHECK(is_floating(options.dtype_), "rand: expected a floating dtype, got ",
               dtype_name(options.dtype_));
  Tensor out = Tensor::empty(shape, without_grad(options));
  Generator& gen = pick(generator);
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(out.numel()));
  if (out.numel() > 0) detail::backend_of(out).random_uniform(out, 0.0, 1.0, gen.seed(), offset);
  return finish(out, options);
}

Tensor randn(const Shape& shape, TensorOptions options, Generator* generator) {
  STRATA_CHECK(is_floating(options.dtype_), "randn: expected a floating dtype, got ",
               dtype_name(options.dtype_));
  Tensor out = Tensor::empty(shape, without_grad(options));
  Generator& gen = pick(generator);
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(out.numel()));
  if (out.numel() > 0) detail::backend_of(out).random_normal(out, 0.0, 1.0, gen.seed(), offset);
  return finish(out, options);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options,
               Generator* generator) {
  STRATA_CHECK(low < high, "randint: expected low < high, got low=", low, " high=", high);
  STRATA_CHECK(options.dtype_ != DType::Bool, "randint: bool is not an integer dtype");
  Tensor out = Tensor::empty(shape, without_grad(options));
  Generator& gen = pick(generator);
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(out.numel()));
  if (out.numel() > 0) detail::backend_of(out).random_int(out, low, high, gen.seed(), offset);
  return finish(out, options);
}

}  // namespace strata
