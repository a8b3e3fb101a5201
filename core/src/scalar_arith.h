// Elementwise arithmetic on one pair of values, written once for the CPU kernels
// (cpu_fallback/elementwise.cpp) and the CUDA kernels (cuda/elementwise.cu), so both backends
// define integer and bool arithmetic the same way:
// - integer arithmetic wraps (through uint64_t, so overflow is defined);
// - bool arithmetic is logical;
// - integer division by zero gives 0 (the op layer never asks for it: it promotes, or refuses
//   a zero divisor), and INT64_MIN / -1 wraps;
// - floor division and remainder are Python's // and % (PyTorch's div_floor and remainder):
//   the quotient rounds toward -inf and the remainder has the divisor's sign; a floating zero
//   divisor gives a / 0 (+-inf or NaN) and NaN;
// - maximum and minimum propagate NaN from either operand (as torch.maximum).
// Floating pow and abs stay in each backend (std:: on the host, CUDA's math on the device);
// the few math calls floor division needs pick one or the other here.
#pragma once

#include <cmath>
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

namespace math {
// fmod, floor and copysign for float and double: CUDA's on the device, std:: on the host.
template <typename T>
STRATA_HOST_DEVICE T fmod(T x, T y) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>)
    return ::fmodf(x, y);
  else
    return ::fmod(x, y);
#else
  return std::fmod(x, y);
#endif
}

template <typename T>
STRATA_HOST_DEVICE T floor(T x) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>)
    return ::floorf(x);
  else
    return ::floor(x);
#else
  return std::floor(x);
#endif
}

template <typename T>
STRATA_HOST_DEVICE T copysign(T x, T y) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>)
    return ::copysignf(x, y);
  else
    return ::copysign(x, y);
#else
  return std::copysign(x, y);
#endif
}
}  // namespace math

// x // y. Integers: the truncated quotient, one less when the remainder's sign is not the
// divisor's. Floats: PyTorch's div_floor, which rounds (x - fmod(x, y)) / y, exact or nearly,
// to the nearest integer instead of flooring x / y (whose rounding can land below an integer).
template <typename T>
STRATA_HOST_DEVICE T floor_divide_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) {
    return div_values(x, y);
  } else if constexpr (std::is_integral_v<T>) {
    if (y == 0) return T(0);
    if constexpr (std::is_signed_v<T>) {
      if (y == T(-1)) return negate(x);  // INT64_MIN / -1 overflows
      const T quotient = static_cast<T>(x / y);
      const T rest = static_cast<T>(x % y);
      return (rest != 0 && ((rest < 0) != (y < 0))) ? static_cast<T>(quotient - 1) : quotient;
    } else {
      return static_cast<T>(x / y);
    }
  } else {
    if (y == T(0)) return x / y;
    const T mod = math::fmod(x, y);
    T quotient = (x - mod) / y;
    if (mod != T(0) && ((y < T(0)) != (mod < T(0)))) quotient -= T(1);
    if (quotient == T(0)) return math::copysign(T(0), x / y);
    T floored = math::floor(quotient);
    if (quotient - floored > T(0.5)) floored += T(1);
    return floored;
  }
}

// x % y with the divisor's sign: x - floor_divide(x, y) * y, computed from fmod (floats) or %
// (integers) so it stays exact.
template <typename T>
STRATA_HOST_DEVICE T remainder_values(T x, T y) {
  if constexpr (std::is_same_v<T, bool>) {
    return false;  // x % 1 is 0, and % 0 is refused
  } else if constexpr (std::is_integral_v<T>) {
    if (y == 0) return T(0);
    if constexpr (std::is_signed_v<T>) {
      if (y == T(-1)) return T(0);  // INT64_MIN % -1 overflows
      const T rest = static_cast<T>(x % y);
      return (rest != 0 && ((rest < 0) != (y < 0))) ? static_cast<T>(rest + y) : rest;
    } else {
      return static_cast<T>(x % y);
    }
  } else {
    T mod = math::fmod(x, y);
    if (mod != T(0) && ((y < T(0)) != (mod < T(0)))) mod += y;
    return mod;
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
