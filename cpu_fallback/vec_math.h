// Branch-free float32 exp, expm1, log, log1p, sigmoid, tanh and erf for the CPU kernels'
// elementwise loops. Each is an inline function of one float with no branches and no libm
// call: clamps and special cases are selects (`c ? a : b`), exponents are built with integer
// ops on the bits, so GCC vectorizes a loop that calls them (4 or 8 lanes). Measured float32
// relative error: exp, log 0.7 ulp; sigmoid, tanh, expm1, log1p 1.5 ulp; erf 1e-7 absolute
// (tests/test_vec_math.cpp). Overflow, underflow, NaN and ±inf come out as std:: gives them.
// The double overloads call std:: functions: a vector double version is not worth it for the
// rare float64 path.
// NOTE: the files that use this header build with -fno-trapping-math (top-level
// CMakeLists.txt); without it GCC keeps the selects as branches and vectorizes none of these
// loops. Never -ffast-math: the NaN checks and the magic-number rounding rely on IEEE rules.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

// On a function whose loop calls these: GCC compiles it twice, for AVX2 and for the SSE2
// baseline, and picks one when the library loads (ifunc); AVX2 runs the loops 2.2x faster.
// NOTE: "avx2", not "arch=x86-64-v3": without FMA both clones do the same IEEE operations, so
// their results are bit-identical and tests on an AVX2 machine cover the baseline too (FMA
// contraction would be 1.4x faster still, but changes last bits from machine to machine).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define STRATA_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STRATA_VECTOR_CLONES
#endif

namespace strata::cpu::vecmath {
namespace detail {

// 2^k for an integer k in [-126, 127], built from its exponent bits.
inline float pow2(int32_t k) {
  return std::bit_cast<float>(static_cast<uint32_t>(k + 127) << 23);
}

// Polynomial for e^r - 1 - r on |r| <= ln2 / 2 (Cephes expf, relative error ~1 ulp).
inline float expm1_reduced_tail(float r) {
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r;
}

}  // namespace detail

// e^x. Range reduction x = n ln2 + r with n = round(x / ln2) by the 1.5 * 2^23 shift (no
// float-to-int conversion, so NaN is harmless), e^r by polynomial, then 2^n applied as two
// halves so that results down to the smallest subnormal round once, as std::exp's do.
inline float exp(float x) {
  // Past these, std::exp gives inf (e^88.73 > FLT_MAX) and 0 (e^-103.98 < 2^-150).
  constexpr float kHi = 89.0f, kLo = -104.0f;
  // NOTE: selects, not std::fmin/fmax: a NaN must stay NaN (fmin(NaN, c) is c).
  x = x > kHi ? kHi : x;
  x = x < kLo ? kLo : x;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float shifted = x * kLog2e + kShift;
  const float n = shifted - kShift;
  const int32_t k = static_cast<int32_t>(std::bit_cast<uint32_t>(shifted) -
                                         std::bit_cast<uint32_t>(kShift));  // n as an int
  // ln2 in two parts (Cody-Waite): n * kLn2Hi is exact, so r keeps every bit.
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  const float p = 1.0f + (r + detail::expm1_reduced_tail(r));
  // k is in [-150, 128]; each half is in [-75, 64], a normal power of two.
  const int32_t k_half = k >> 1;
  return p * detail::pow2(k_half) * detail::pow2(k - k_half);
}

// e^x - 1 with full relative accuracy near 0: a Taylor polynomial on |x| < 0.5, exp(x) - 1
// elsewhere (where the subtraction loses at most 1.5 bits).
inline float expm1(float x) {
  float p = 1.0f / 40320.0f;
  p = p * x + 1.0f / 5040.0f;
  p = p * x + 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  const float near_zero = x + p * x * x;
  const float far = vecmath::exp(x) - 1.0f;
  return std::fabs(x) < 0.5f ? near_zero : far;
}

// Natural log. x = 2^e * m with m in [sqrt(1/2), sqrt(2)) from the bits (subnormals scaled up
// first), log(m) by polynomial in m - 1 (Cephes logf). log(0) = -inf, log(x < 0) = NaN,
// log(inf) = inf, NaN stays NaN.
inline float log(float x) {
  const bool subnormal = x < std::numeric_limits<float>::min();
  const float scaled = subnormal ? x * 8388608.0f : x;  // * 2^23
  const uint32_t bits = std::bit_cast<uint32_t>(scaled);
  // Exponent with the mantissa moved to [sqrt(1/2), sqrt(2)): adding 1 - 0x3f3504f3 (the bits
  // of sqrt(1/2)) before the shift carries into the exponent exactly when m >= sqrt(2).
  const uint32_t offset = bits - 0x3f3504f3u;
  const int32_t e = static_cast<int32_t>(offset) >> 23;
  const float m = std::bit_cast<float>((offset & 0x007fffffu) + 0x3f3504f3u);
  const float f = m - 1.0f;
  const float ef = static_cast<float>(e - (subnormal ? 23 : 0));
  const float z = f * f;
  // The degree-8 polynomial by Estrin's scheme (pairs, then pairs of pairs), not Horner's: a
  // chain of 4 multiply-adds instead of 9; the log loop runs 13% faster.
  const float z2 = z * z;
  const float p01 = 3.3333331174e-1f - 2.4999993993e-1f * f;
  const float p23 = 2.0000714765e-1f - 1.6668057665e-1f * f;
  const float p45 = 1.4249322787e-1f - 1.2420140846e-1f * f;
  const float p67 = 1.1676998740e-1f - 1.1514610310e-1f * f;
  const float p03 = p01 + p23 * z;
  const float p47 = p45 + p67 * z;
  const float p8 = 7.0376836292e-2f * z2;
  float y = p03 + (p47 + p8) * z2;
  y = y * f * z;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  y = y + ef * kLn2Lo;
  y = y - 0.5f * z;
  float result = (f + y) + ef * kLn2Hi;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  result = x == kInf ? kInf : result;
  result = x == 0.0f ? -kInf : result;
  result = x < 0.0f ? kNaN : result;
  return x != x ? x : result;  // NaN in, the same NaN out
}

// log(1 + x) with full relative accuracy for small x: log(u) * x / (u - 1) with u = 1 + x
// cancels the rounding of u (Goldberg's trick); x where u rounds to 1.
inline float log1p(float x) {
  const float u = 1.0f + x;
  const float d = u - 1.0f;
  const float corrected = vecmath::log(u) * (x / d);
  const float result = d == 0.0f ? x : corrected;
  // NOTE: the trick gives inf * inf / inf = NaN for x = inf.
  return x == std::numeric_limits<float>::infinity() ? x : result;
}

// 1 / (1 + e^-x): exactly 0 below x = -88.7 (e^-x is inf) and 1 above x = 17.
inline float sigmoid(float x) { return 1.0f / (1.0f + vecmath::exp(-x)); }

// tanh: an odd polynomial on |x| < 0.625 (Cephes tanhf), else 1 - 2 / (e^2|x| + 1); both on
// |x|, then the sign of x (so tanh(-0) = -0). Exactly ±1 past |x| = 9.01; e^2|x| = inf is
// harmless, and NaN fails `a < 0.625` and comes out of the second form as NaN.
inline float tanh(float x) {
  const float a = std::fabs(x);
  const float z = a * a;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = a + p * z * a;
  const float large = 1.0f - 2.0f / (vecmath::exp(2.0f * a) + 1.0f);
  return std::copysign(a < 0.625f ? small : large, x);
}

// erf: x * P(x^2) / Q(x^2) on [-4, 4] (the rational approximation of Eigen and XLA, 6.6e-8
// from erf in exact arithmetic), clamped outside where erf rounds to ±1 in float32.
// NOTE: P and Q are evaluated in double. In float32 their roundings reach 4.5e-7 near |x| = 4,
// and GELU's 0.5 * x * (1 + erf(x / sqrt2)) multiplies that by up to 2.8 where 1 + erf cancels
// (1.1e-6 off at x = -5.6). Double costs 2x here; the alternatives measured slower still
// (1 - e^(-x^2) G(x) in the tail: 3x) or less accurate.
inline float erf(float x) {
  x = x > 4.0f ? 4.0f : x;
  x = x < -4.0f ? -4.0f : x;  // NaN stays NaN
  const double t = static_cast<double>(x);
  const double z = t * t;
  double p = -2.72614225801306e-10;
  p = p * z + 2.77068142495902e-08;
  p = p * z - 2.10102402082508e-06;
  p = p * z - 5.69250639462346e-05;
  p = p * z - 7.34990630326855e-04;
  p = p * z - 2.95459980854025e-03;
  p = p * z - 1.60960333262415e-02;
  double q = -1.45660718464996e-05;
  q = q * z - 2.13374055278905e-04;
  q = q * z - 1.68282697438203e-03;
  q = q * z - 7.37332916720468e-03;
  q = q * z - 1.42647390514189e-02;
  return static_cast<float>(t * p / q);
}

// float64: the std:: functions (scalar libm).
inline double exp(double x) { return std::exp(x); }
inline double expm1(double x) { return std::expm1(x); }
inline double log(double x) { return std::log(x); }
inline double log1p(double x) { return std::log1p(x); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double tanh(double x) { return std::tanh(x); }
inline double erf(double x) { return std::erf(x); }

}  // namespace strata::cpu::vecmath
