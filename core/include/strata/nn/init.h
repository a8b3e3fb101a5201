// Parameter initializers, as torch.nn.init names them. Each fills its tensor in place (on
// whatever device the tensor lives), without recording on the tape (the tensor may require
// grad), and returns it. Random ones draw from `generator` (default_generator() when null):
// the same seed gives the same values on the CPU and on CUDA; the distributions, not the
// draws, match PyTorch's.
// Usage: `namespace init = strata::nn::init;  init::kaiming_uniform_(w, std::sqrt(5.0));`
#pragma once

#include <cstdint>
#include <utility>

#include "strata/generator.h"
#include "strata/tensor.h"

namespace strata::nn::init {

enum class Nonlinearity { Linear, Conv, Sigmoid, Tanh, Relu, LeakyRelu, Selu };

// The recommended gain for a nonlinearity: 1 for Linear/Conv/Sigmoid, 5/3 for Tanh, sqrt(2)
// for Relu, sqrt(2 / (1 + param^2)) for LeakyRelu (param = negative slope), 3/4 for Selu.
double calculate_gain(Nonlinearity nonlinearity, double param = 0.01);

// For a weight [out, in, k...]: fan_in = in * prod(k), fan_out = out * prod(k). Needs at least
// two dimensions.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& tensor);

enum class FanMode { FanIn, FanOut };

// U(a, b).
Tensor& uniform_(Tensor& tensor, double a = 0.0, double b = 1.0, Generator* generator = nullptr);
// N(mean, std^2).
Tensor& normal_(Tensor& tensor, double mean = 0.0, double std = 1.0,
                Generator* generator = nullptr);
Tensor& constant_(Tensor& tensor, double value);
Tensor& zeros_(Tensor& tensor);
Tensor& ones_(Tensor& tensor);

// Glorot: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), or N(0, std^2) with
// std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor& xavier_uniform_(Tensor& tensor, double gain = 1.0, Generator* generator = nullptr);
Tensor& xavier_normal_(Tensor& tensor, double gain = 1.0, Generator* generator = nullptr);

// He: std = gain / sqrt(fan) with gain = calculate_gain(nonlinearity, a) and fan chosen by
// mode; uniform draws U(-sqrt(3) std, sqrt(3) std), normal draws N(0, std^2). `a` is the
// negative slope of the leaky ReLU that follows (0: plain ReLU).
Tensor& kaiming_uniform_(Tensor& tensor, double a = 0.0, FanMode mode = FanMode::FanIn,
                         Nonlinearity nonlinearity = Nonlinearity::LeakyRelu,
                         Generator* generator = nullptr);
Tensor& kaiming_normal_(Tensor& tensor, double a = 0.0, FanMode mode = FanMode::FanIn,
                        Nonlinearity nonlinearity = Nonlinearity::LeakyRelu,
                        Generator* generator = nullptr);

// A (semi-)orthogonal matrix times gain: the tensor seen as [rows, prod(other dims)] gets
// orthonormal rows (rows <= cols) or orthonormal columns (rows > cols), the Q of the QR
// factorization of a standard normal matrix, signs fixed so that R has a positive diagonal.
// Needs at least two dimensions.
Tensor& orthogonal_(Tensor& tensor, double gain = 1.0, Generator* generator = nullptr);

}  // namespace strata::nn::init
