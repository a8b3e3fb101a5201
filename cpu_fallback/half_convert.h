// Bulk conversions between float32 and the 16-bit floats, for contiguous runs: the copy
// kernel's fast path (and so Float32Staging's widening and narrowing on the CPU). float16 uses
// the F16C instructions when the CPU has them (detected at run time), bfloat16 loops the
// compiler vectorizes; both give exactly strata/half.h's scalar results.
#pragma once

#include <cstdint>

#include "strata/half.h"

namespace strata::cpu {

void convert_run(const Half* in, float* out, int64_t n);
void convert_run(const float* in, Half* out, int64_t n);
void convert_run(const BFloat16* in, float* out, int64_t n);
void convert_run(const float* in, BFloat16* out, int64_t n);

// True when float16 conversions run on F16C (for benchmarks' reports).
bool has_f16c();

}  // namespace strata::cpu
