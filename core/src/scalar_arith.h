// Elementwise arithmetic on one pair of values, written once for the CPU kernels
// (cpu_fallback/elementwise.cpp) and the CUDA kernels (cuda/elementwise.cu), so both backends
// define integer and bool arithmetic the same way:
// - integer arithmetic wraps (through uint64_t, so overflow is defined);
// - bool arithmetic is logical;
// - integer division by zero gives 0 (the op layer never asks for it: it promotes), and
//   INT64_MIN / -1 wraps;
// - maximum and minimum propagate NaN from either operand (as torch.maximum).
// Floating pow and abs stay in each backend (std:: on the host, CUDA's math on the device).
#pragma once

#include <cstdint>
#include <type_traits>

#include "strata/detail/host_device.h"

namespace strata::scalar {

template <typename T>
STRATA_HOST_DEVICE T wrap(uint64_t bits) {
  return static_cast<T>(bits);
}

template <typename T>
STRATA_HOST_DEVICE uint64_t as_bits(T x) {
  return static_cast<uint64_t>(x);
}

template <typename T>
STRATA_HOST_DEVICE T add_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) return x || y;
  else if constexpr (std::is_integral_v<T>) return wrap<T>(as_bits(x) + as_bits(y));
  else return x + y;
}

template <typename T>
STRATA_HOST_DEVICE T sub_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) return x != y;
  else if constexpr (std::is_integral_v<T>) return wrap<T>(as_bits(x) - as_bits(y));
  else return x - y;
}

template <typename T>
STRATA_HOST_DEVICE T mul_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) return x && y;
  else if constexpr (std::is_integral_v<T>) return wrap<T>(as_bits(x) * as_bits(y));
  else return x * y;
}

template <typename T>
STRATA_HOST_DEVICE T negate(T x) {
  if constexpr (std::is_same_v<T, bool>) return x;
  else if constexpr (std::is_integral_v<T>) return wrap<T>(uint64_t{0} - as_bits(x));
  else return -x;
}

template <typename T>
STRATA_HOST_DEVICE T div_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) {
    return y && x;
  } else if constexpr (std::is_integral_v<T>) {
    if (y == 0) return T(0);
    if constexpr (std::is_signed_v<T>) {
      if (y == T(-1)) return negate(x);  // INT64_MIN / -1 overflows
    }
    return static_cast<T>(x / y);
  } else {
    return x / y;
  }
}

// Integer power by squaring; a negative exponent gives 0 except for bases 1 and -1.
template <typename T>
STRATA_HOST_DEVICE T integer_pow(T base, T exponent) {
  if constexpr (std::is_signed_v<T>) {
    if (exponent < 0) {
      if (base == 1) return T(1);
      if (base == -1) return (exponent % 2 == 0) ? T(1) : T(-1);
      return T(0);
    }
  }
  T result = T(1);
  while (exponent != 0) {
    if (exponent & 1) result = mul_values(result, base);
    base = mul_values(base, base);
    exponent = static_cast<T>(exponent >> 1);
  }
  return result;
}

// NOTE: `x != x` is the NaN test here on both sides (std::isnan is not a device function).
template <typename T>
STRATA_HOST_DEVICE T max_values(T x, T y) {
  if constexpr (std::is_floating_point_v<T>) return (x != x || x > y) ? x : y;
  else return x > y ? x : y;
}

template <typename T>
STRATA_HOST_DEVICE T min_values(T x, T y) {
  if constexpr (std::is_floating_point_v<T>) return (x != x || x < y) ? x : y;
  else return x < y ? x : y;
}

}  // namespace strata::scalar
