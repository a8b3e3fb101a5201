// Element types. float32 is the working type; float64 serves gradient checks; int64 holds
// labels and indices; uint8 and bool hold masks. STRATA_DISPATCH_* maps a runtime DType to a
// C++ type `scalar_t` inside a lambda body, so kernels are written once as templates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/error.h"

namespace strata {

enum class DType : uint8_t { Float32, Float64, Int64, UInt8, Bool };

inline constexpr DType kFloat32 = DType::Float32;
inline constexpr DType kFloat64 = DType::Float64;
inline constexpr DType kInt64 = DType::Int64;
inline constexpr DType kUInt8 = DType::UInt8;
inline constexpr DType kBool = DType::Bool;

constexpr size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
    case DType::UInt8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

constexpr bool is_floating(DType dtype) {
  return dtype == DType::Float32 || dtype == DType::Float64;
}

// Short names used in messages and printing: f32, f64, i64, u8, bool.
const char* dtype_name(DType dtype);

// The dtype both operands of a binary op are converted to: the "larger" of the two
// (bool < uint8 < int64 < float32 < float64), as NumPy and PyTorch promote.
DType promote_types(DType a, DType b);

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };

}  // namespace strata

#define STRATA_DTYPE_CASE(enum_value, type, ...) \
  case ::strata::DType::enum_value: {            \
    using scalar_t = type;                       \
    return __VA_ARGS__();                        \
  }

// Every dtype.
#define STRATA_DISPATCH_ALL(dtype, op_name, ...)                                             \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      STRATA_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                                         \
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

// Numeric types that arithmetic runs on: float32, float64, int64, uint8 (not bool).
#define STRATA_DISPATCH_NUMERIC(dtype, op_name, ...)                                         \
  [&] {                                                                                      \
    switch (dtype) {                                                                         \
      STRATA_DTYPE_CASE(Float32, float, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(Float64, double, __VA_ARGS__)                                        \
      STRATA_DTYPE_CASE(Int64, int64_t, __VA_ARGS__)                                         \
      STRATA_DTYPE_CASE(UInt8, uint8_t, __VA_ARGS__)                                         \
      default: break;                                                                        \
    }                                                                                        \
    STRATA_CHECK(false, op_name, ": unsupported dtype ", ::strata::dtype_name(dtype));       \
  }()
