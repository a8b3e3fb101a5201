// DType names and promotion.
#include "strata/dtype.h"

namespace strata {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "f32";
    case DType::Float64: return "f64";
    case DType::Float16: return "f16";
    case DType::BFloat16: return "bf16";
    case DType::Int64: return "i64";
    case DType::Int32: return "i32";
    case DType::UInt8: return "u8";
    case DType::Bool: return "bool";
  }
  return "?";
}

namespace {
// The order of promotion; f16 and bf16 share a rank and meet at f32.
int promotion_rank(DType dtype) {
  switch (dtype) {
    case DType::Bool: return 0;
    case DType::UInt8: return 1;
    case DType::Int32: return 2;
    case DType::Int64: return 3;
    case DType::Float16: return 4;
    case DType::BFloat16: return 4;
    case DType::Float32: return 5;
    case DType::Float64: return 6;
  }
  return 0;
}
}  // namespace

DType promote_types(DType a, DType b) {
  if (a == b) return a;
  const int ra = promotion_rank(a), rb = promotion_rank(b);
  if (ra == rb) return DType::Float32;  // f16 with bf16
  return ra > rb ? a : b;
}

}  // namespace strata
