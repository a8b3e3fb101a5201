// The two 16-bit floating types of mixed precision, as plain 16-bit values with exact
// conversions to and from float, usable in host code and in CUDA device code alike:
// - Half: IEEE 754 binary16 (1 sign, 5 exponent, 10 mantissa bits; largest finite 65504).
// - BFloat16: the top half of a float32 (1 sign, 8 exponent, 7 mantissa bits).
// Conversions from float round to nearest, ties to even; overflow gives inf; subnormals are
// kept (never flushed). NaNs, as PyTorch's c10::Half and c10::BFloat16 convert them: widening
// keeps the payload and sets the quiet bit; narrowing gives the canonical quiet NaN (f16:
// 0x7e00 with the sign kept; bf16: 0x7fc0).
// Integer arithmetic only, so the result never depends on the FPU's rounding or flush modes.
// Arithmetic goes through float: `Half(float(a) + float(b))`; there are no operators of its own.
#pragma once

#include <cstdint>
#include <cstring>

#include "strata/detail/host_device.h"

namespace strata {

namespace half_bits {

STRATA_HOST_DEVICE uint32_t from_float(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
#endif
}

STRATA_HOST_DEVICE float to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
#endif
}

// binary16 bits -> float32 bits (exact).
STRATA_HOST_DEVICE uint32_t f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) {  // inf, or NaN with its payload, quieted
    return sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0 ? 0x00400000u : 0u);
  }
  if (exponent != 0) return sign | ((exponent + 112u) << 23) | (mantissa << 13);
  if (mantissa == 0) return sign;
  // A subnormal: shift the mantissa up until its leading one is the implicit bit.
  uint32_t e = 113, m = mantissa;
  while ((m & 0x400u) == 0) {
    m <<= 1;
    --e;
  }
  return sign | (e << 23) | ((m & 0x3ffu) << 13);
}

// float32 bits -> binary16 bits, rounding to nearest even.
STRATA_HOST_DEVICE uint16_t f32_to_f16(uint32_t f) {
  const auto sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  const uint32_t magnitude = f & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 2^16: inf
  if (magnitude >= 0x38800000u) {  // a normal binary16 (or a value rounding up to inf)
    // Rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even; a carry
    // out of the mantissa moves to the next binade, and past 65504 to inf, as it should.
    const uint32_t odd = (magnitude >> 13) & 1u;
    return static_cast<uint16_t>(sign | ((magnitude - 0x38000000u + 0xfffu + odd) >> 13));
  }
  if (magnitude <= 0x33000000u) return sign;  // at most 2^-25, half the least subnormal: zero
  // A subnormal: the value in units of 2^-24 is the 24-bit significand shifted right by
  // 126 - exponent (14 to 24 places), rounded to nearest even. A carry to 0x400 is the least
  // normal, which is the right encoding.
  const uint32_t exponent = magnitude >> 23;
  const uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - exponent;
  uint32_t result = significand >> shift;
  const uint32_t rest = significand & ((1u << shift) - 1u);
  const uint32_t halfway = 1u << (shift - 1u);
  if (rest > halfway || (rest == halfway && (result & 1u))) ++result;
  return static_cast<uint16_t>(sign | result);
}

// float32 bits -> bfloat16 bits, rounding to nearest even.
STRATA_HOST_DEVICE uint16_t f32_to_bf16(uint32_t f) {
  if ((f & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;  // NaN
  return static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

STRATA_HOST_DEVICE uint32_t bf16_to_f32(uint16_t b) { return static_cast<uint32_t>(b) << 16; }

}  // namespace half_bits

struct Half {
  uint16_t bits = 0;

  Half() = default;
  STRATA_HOST_DEVICE Half(float value)  // NOLINT(google-explicit-constructor): as c10::Half
      : bits(half_bits::f32_to_f16(half_bits::from_float(value))) {}
  STRATA_HOST_DEVICE operator float() const {  // NOLINT(google-explicit-constructor)
    return half_bits::to_float(half_bits::f16_to_f32(bits));
  }
  STRATA_HOST_DEVICE static Half from_bits(uint16_t bits) {
    Half h;
    h.bits = bits;
    return h;
  }
};

struct BFloat16 {
  uint16_t bits = 0;

  BFloat16() = default;
  STRATA_HOST_DEVICE BFloat16(float value)  // NOLINT(google-explicit-constructor)
      : bits(half_bits::f32_to_bf16(half_bits::from_float(value))) {}
  STRATA_HOST_DEVICE operator float() const {  // NOLINT(google-explicit-constructor)
    return half_bits::to_float(half_bits::bf16_to_f32(bits));
  }
  STRATA_HOST_DEVICE static BFloat16 from_bits(uint16_t bits) {
    BFloat16 b;
    b.bits = bits;
    return b;
  }
};

static_assert(sizeof(Half) == 2 && sizeof(BFloat16) == 2);

}  // namespace strata
