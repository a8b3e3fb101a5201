// Bulk float32 <-> float16 / bfloat16 conversions (see half_convert.h).
// NOTE: F16C's VCVTPS2PH rounds by its immediate (nearest even here), ignores MXCSR's
// flush-to-zero and keeps subnormals, as half_bits::f32_to_f16 does; but it keeps a NaN's
// payload bits, so NaN lanes are first replaced by the canonical quiet NaN (sign kept), and
// both paths agree bit for bit. VCVTPH2PS quiets and keeps payloads, as f16_to_f32 does.
#include "half_convert.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define STRATA_X86 1
#endif

namespace strata::cpu {

namespace {

#if STRATA_X86
__attribute__((target("avx,f16c"))) void f16_to_f32_f16c(const Half* in, float* out,
                                                            int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

__attribute__((target("avx,f16c"))) void f32_to_f16_f16c(const float* in, Half* out,
                                                            int64_t n) {
  int64_t i = 0;
  const __m256 sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 quiet_nan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(in + i);
    const __m256 canonical = _mm256_or_ps(_mm256_and_ps(x, sign_bit), quiet_nan);
    const __m256 cleaned = _mm256_blendv_ps(x, canonical, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m128i h = _mm256_cvtps_ph(cleaned, _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = Half(in[i]);
}
#endif

bool detect_f16c() {
#if STRATA_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// The bfloat16 loops work on the bits, branch-free, so they vectorize.
#if STRATA_X86
#define STRATA_CONVERT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STRATA_CONVERT_CLONES
#endif

STRATA_CONVERT_CLONES void bf16_to_f32_loop(const BFloat16* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = half_bits::to_float(half_bits::bf16_to_f32(in[i].bits));
}

STRATA_CONVERT_CLONES void f32_to_bf16_loop(const float* in, BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t f = half_bits::from_float(in[i]);
    const uint32_t rounded = (f + 0x7fffu + ((f >> 16) & 1u)) >> 16;
    out[i].bits = static_cast<uint16_t>((f & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : rounded);
  }
}

}  // namespace

bool has_f16c() {
  static const bool available = detect_f16c();
  return available;
}

void convert_run(const Half* in, float* out, int64_t n) {
#if STRATA_X86
  if (has_f16c()) return f16_to_f32_f16c(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
}

void convert_run(const float* in, Half* out, int64_t n) {
#if STRATA_X86
  if (has_f16c()) return f32_to_f16_f16c(in, out, n);
#endif
  for (int64_t i = 0; i < n; ++i) out[i] = Half(in[i]);
}

void convert_run(const BFloat16* in, float* out, int64_t n) { bf16_to_f32_loop(in, out, n); }

void convert_run(const float* in, BFloat16* out, int64_t n) { f32_to_bf16_loop(in, out, n); }

}  // namespace strata::cpu
