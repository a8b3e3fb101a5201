// Parameter initializers (torch.nn.init's formulas). Every one runs under NoGradGuard, so it
// may fill a parameter that requires grad, and writes through copy_, so it works on any
// device and any strides. Random values come from strata::rand/randn with the caller's
// generator; orthogonal_ factors its normal matrix in double on the host.
#include "strata/nn/init.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "internal.h"

namespace strata::nn::init {

namespace {

void check_floating(const Tensor& tensor, const char* op) {
  detail::check_defined(tensor, op, "tensor");
  STRATA_CHECK(is_floating(tensor.dtype()), op,
               ": expected a floating tensor (f32, f64, f16 or bf16), got ",
               detail::describe(tensor));
}

// Writes `values` (any device, broadcastable to tensor's shape) into tensor, untaped.
Tensor& assign(Tensor& tensor, const Tensor& values) {
  NoGradGuard no_grad;
  tensor.copy_(values);
  return tensor;
}

int64_t fan_of(const Tensor& tensor, FanMode mode, const char* op) {
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  const int64_t fan = mode == FanMode::FanIn ? fan_in : fan_out;
  STRATA_CHECK(fan > 0, op, ": the ", mode == FanMode::FanIn ? "fan_in" : "fan_out",
               " of ", detail::describe(tensor), " is 0");
  return fan;
}

// Q of the reduced QR factorization of the row-major m x n matrix `a` (m >= n), by Householder
// reflections, with each column's sign chosen so that R's diagonal is positive (as PyTorch
// fixes the signs of torch.linalg.qr's Q). Returns Q row-major, m x n.
std::vector<double> orthonormal_columns(std::vector<double> a, int64_t m, int64_t n) {
  auto at = [n](std::vector<double>& v, int64_t i, int64_t j) -> double& {
    return v[static_cast<size_t>(i * n + j)];
  };
  std::vector<std::vector<double>> reflectors(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    // v = x - alpha e1 with alpha = -sign(x0) |x|: H = I - 2 v v^T / |v|^2 maps x to alpha e1.
    std::vector<double> v(static_cast<size_t>(m - k));
    double norm2 = 0.0;
    for (int64_t i = k; i < m; ++i) {
      v[static_cast<size_t>(i - k)] = at(a, i, k);
      norm2 += at(a, i, k) * at(a, i, k);
    }
    const double alpha = v[0] >= 0.0 ? -std::sqrt(norm2) : std::sqrt(norm2);
    v[0] -= alpha;
    double vnorm2 = 0.0;
    for (double x : v) vnorm2 += x * x;
    if (vnorm2 > 0.0) {
      const double inv = 1.0 / std::sqrt(vnorm2);
      for (double& x : v) x *= inv;
      for (int64_t j = k; j < n; ++j) {
        double s = 0.0;
        for (int64_t i = k; i < m; ++i) s += v[static_cast<size_t>(i - k)] * at(a, i, j);
        for (int64_t i = k; i < m; ++i) at(a, i, j) -= 2.0 * s * v[static_cast<size_t>(i - k)];
      }
    } else {
      std::fill(v.begin(), v.end(), 0.0);  // x is already alpha e1 (zero): H = I
    }
    reflectors[static_cast<size_t>(k)] = std::move(v);
  }
  // Q = H_0 H_1 ... H_{n-1} applied to the first n columns of the identity; a now holds R.
  std::vector<double> q(static_cast<size_t>(m * n), 0.0);
  for (int64_t i = 0; i < n; ++i) at(q, i, i) = 1.0;
  for (int64_t k = n - 1; k >= 0; --k) {
    const std::vector<double>& v = reflectors[static_cast<size_t>(k)];
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t i = k; i < m; ++i) s += v[static_cast<size_t>(i - k)] * at(q, i, j);
      for (int64_t i = k; i < m; ++i) at(q, i, j) -= 2.0 * s * v[static_cast<size_t>(i - k)];
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    if (at(a, j, j) < 0.0) {
      for (int64_t i = 0; i < m; ++i) at(q, i, j) = -at(q, i, j);
    }
  }
  return q;
}

}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Conv:
    case Nonlinearity::Sigmoid: return 1.0;
    case Nonlinearity::Tanh: return 5.0 / 3.0;
    case Nonlinearity::Relu: return std::sqrt(2.0);
    case Nonlinearity::LeakyRelu: return std::sqrt(2.0 / (1.0 + param * param));
    case Nonlinearity::Selu: return 3.0 / 4.0;
  }
  STRATA_ASSERT(false, "calculate_gain: unknown nonlinearity");
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor) {
  detail::check_defined(tensor, "calculate_fan_in_and_fan_out", "tensor");
  STRATA_CHECK(tensor.dim() >= 2,
               "calculate_fan_in_and_fan_out: fan in and fan out need a tensor with at least 2 "
               "dimensions, got ", detail::describe(tensor));
  int64_t receptive_field = 1;
  for (int64_t d = 2; d < tensor.dim(); ++d) receptive_field *= tensor.size(d);
  return {tensor.size(1) * receptive_field, tensor.size(0) * receptive_field};
}

Tensor& uniform_(Tensor& tensor, double a, double b, Generator* generator) {
  check_floating(tensor, "uniform_");
  STRATA_CHECK(a <= b, "uniform_: expected a <= b, got a=", a, " b=", b);
  const Tensor u = rand(tensor.shape(), tensor.options(), generator);
  NoGradGuard no_grad;
  return assign(tensor, add(mul(u, b - a), a));
}

Tensor& normal_(Tensor& tensor, double mean, double std, Generator* generator) {
  check_floating(tensor, "normal_");
  STRATA_CHECK(std >= 0.0, "normal_: expected std >= 0, got ", std);
  const Tensor z = randn(tensor.shape(), tensor.options(), generator);
  NoGradGuard no_grad;
  return assign(tensor, add(mul(z, std), mean));
}

Tensor& constant_(Tensor& tensor, double value) {
  detail::check_defined(tensor, "constant_", "tensor");
  NoGradGuard no_grad;
  tensor.fill_(value);
  return tensor;
}

Tensor& zeros_(Tensor& tensor) { return constant_(tensor, 0.0); }
Tensor& ones_(Tensor& tensor) { return constant_(tensor, 1.0); }

Tensor& xavier_uniform_(Tensor& tensor, double gain, Generator* generator) {
  check_floating(tensor, "xavier_uniform_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  if (tensor.numel() == 0) return tensor;
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(tensor, -bound, bound, generator);
}

Tensor& xavier_normal_(Tensor& tensor, double gain, Generator* generator) {
  check_floating(tensor, "xavier_normal_");
  const auto [fan_in, fan_out] = calculate_fan_in_and_fan_out(tensor);
  if (tensor.numel() == 0) return tensor;
  const double std = gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  return normal_(tensor, 0.0, std, generator);
}

Tensor& kaiming_uniform_(Tensor& tensor, double a, FanMode mode, Nonlinearity nonlinearity,
                         Generator* generator) {
  check_floating(tensor, "kaiming_uniform_");
  calculate_fan_in_and_fan_out(tensor);  // the rank check, before the empty-tensor no-op
  if (tensor.numel() == 0) return tensor;  // as PyTorch: nothing to fill
  const double fan = static_cast<double>(fan_of(tensor, mode, "kaiming_uniform_"));
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(fan);
  const double bound = std::sqrt(3.0) * std;
  return uniform_(tensor, -bound, bound, generator);
}

Tensor& kaiming_normal_(Tensor& tensor, double a, FanMode mode, Nonlinearity nonlinearity,
                        Generator* generator) {
  check_floating(tensor, "kaiming_normal_");
  calculate_fan_in_and_fan_out(tensor);
  if (tensor.numel() == 0) return tensor;
  const double fan = static_cast<double>(fan_of(tensor, mode, "kaiming_normal_"));
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(fan);
  return normal_(tensor, 0.0, std, generator);
}

Tensor& orthogonal_(Tensor& tensor, double gain, Generator* generator) {
  check_floating(tensor, "orthogonal_");
  STRATA_CHECK(tensor.dim() >= 2, "orthogonal_: only tensors with 2 or more dimensions are "
               "supported, got ", detail::describe(tensor));
  if (tensor.numel() == 0) return tensor;
  const int64_t rows = tensor.size(0), cols = tensor.numel() / rows;
  const Tensor normal = randn({rows, cols}, kFloat64, generator);
  // QR needs a tall matrix: a wide one is factored transposed, and Q transposed back.
  const bool wide = rows < cols;
  const int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  const Tensor tall = wide ? normal.t().contiguous() : normal;
  const std::vector<double> q = orthonormal_columns(tall.to_vector<double>(), m, n);
  Tensor result = from_vector<double>(q, {m, n});
  if (wide) result = result.t();
  NoGradGuard no_grad;
  return assign(tensor, mul(result.reshape(tensor.shape()), gain));
}

}  // namespace strata::nn::init
