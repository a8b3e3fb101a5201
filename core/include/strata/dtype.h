// Element types. float32 is the working type; float64 serves gradient checks; float16 and
// bfloat16 (strata/half.h) are mixed precision's storage types; int64 holds labels and indices;
// int32 comes in from other frameworks' files; uint8 and bool hold masks. STRATA_DISPATCH_*
// maps a runtime DType to a C++ type `scalar_t` inside a lambda body, so kernels are written
// once as templates.
// NOTE: the computing dispatches (ALL, NUMERIC, FLOATING) leave out f16 and bf16: a kernel
// computes those in float32 (see detail/float32_staging.h) or has a path of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/error.h"
#include "strata/half.h"

namespace strata {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8, Bool, Float16, BFloat16, Int32 };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kBool = DType::Bool;
inline constexpr DType kFloat16 = DType::Float16;
inline constexpr DType kHalf = DType::Float16;
inline constexpr DType kBFloat16 = DType::BFloat16;
inline constexpr DType kInt32 = DType::Int32;

constexpr size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
    case DType::Float16: return 2;
    case DType::BFloat16: return 2;
    case DType::Int32: return 4;
  }
  return 0;
}

// The 16-bit floating types, which kernels compute in float32.
constexpr bool is_reduced_floating(DType dtype) {
  return dtype == DType::Float16 || dtype == DType::BFloat16;
}

constexpr bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64 || is_reduced_floating(dtype);
}

// Short names used in messages and printing: f32, f64, f16, bf16, i64, i32, u8, bool.
const char* dtype_name(DType dtype);

// The dtype both operands of a binary op are converted to, as PyTorch promotes: bool < uint8 <
// int32 < int64 < any floating type; among floats the wider wins (f16, bf16 < f32 < f64), and
// f16 with bf16 gives f32, the narrowest type that holds both.
DType promote_types(DType a, DType b);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };

}  // namespace strata

#define STRATA_DTYPE_CASE(enum_value, type, ...) \
  case ::strata::DType::enum_value: {            \
    using scalar_t = type;                       \
    return __VA_ARGS__();                        \
  }

// Every dtype but the 16-bit floats.
#define STRATA_DISPATCH_ALL(dtype, op_name, ...)                                             \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      STRATA_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Int32, int32_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Bool, bool, __VA_ARGS__)                                             \
      default: break;                                                                        \
    }                                                                                        \
    STRATA_CHECK(false, op_name, ": unsupported dtype ", ::strata::dtype_name(dtype));       \
  }()

// Every dtype, the 16-bit floats as strata::Half and strata::BFloat16 (for kernels that only
// move or convert values: copy, fill, host access).
#define STRATA_DISPATCH_ALL_AND_HALF(dtype, op_name, ...)                                    \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      STRATA_DTYPE_CASE(Float16, ::strata::Half, __VA_ARGS__)                                \
      STRATA_DTYPE_CASE(BFloat16, ::strata::BFloat16, __VA_ARGS__)                           \
      STRATA_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Int32, int32_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Bool, bool, __VA_ARGS__)                                             \
    }                                                                                        \
    STRATA_CHECK(false, op_name, ": unsupported dtype ", ::strata::dtype_name(dtype));       \
  }()

// float32 and float64 only.
#define STRATA_DISPATCH_FLOATING(dtype, op_name, ...)                                        \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      default: break;                                                                        \
    }                                                                                        \
    STRATA_CHECK(false, op_name, ": expected a floating dtype (f32 or f64), got ",           \
                 ::strata::dtype_name(dtype));                                               \
  }()

// Numeric types that arithmetic runs on: float32, float64, int64, int32, uint8 (not bool).
#define STRATA_DISPATCH_NUMERIC(dtype, op_name, ...)                                         \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      STRATA_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Int32, int32_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)                                         \
      default: break;                                                                        \
    }                                                                                        \
    STRATA_CHECK(false, op_name, ": unsupported dtype ", ::strata::dtype_name(dtype));       \
  }()
