// Small helpers shared by the cuDNN-backed files of the CUDA backend (conv.cpp, rnn.cpp,
// softmax.cpp, batch_norm.cpp): owning wrappers of the cuDNN descriptors (each destroyed in its
// destructor, so no path leaks one), the cuDNN data type of a DType, the scaling factors
// (alpha/beta) in the type cuDNN reads for that data type, and the int conversion cuDNN's
// 4-D descriptors need, which throws instead of truncating.
// NOTE: cuDNN reads alpha/beta as double for CUDNN_DATA_DOUBLE tensors and as float for every
// other type; passing a float to a double op (or the reverse) gives garbage, not an error.
#pragma once

#include <cudnn.h>

#include <climits>
#include <cstdint>

#include "common.h"
#include "strata/dtype.h"
#include "strata/error.h"

namespace strata::cuda {

inline cudnnDataType_t cudnn_data_type(DType dtype, const char* op) {
  if (dtype == DType::Float32) return CUDNN_DATA_FLOAT;
  STRATA_CHECK(dtype == DType::Float64, op, ": the CUDA backend supports float32 and float64, got ",
               dtype_name(dtype));
  return CUDNN_DATA_DOUBLE;
}

// A value cuDNN takes as int (sizes, strides, padding); throws naming the op when it does not fit.
inline int cudnn_int(int64_t value, const char* op, const char* what) {
  STRATA_CHECK(value >= 0 && value <= INT_MAX, op, ": ", what, " = ", value,
               " is beyond what cuDNN takes (", INT_MAX, ")");
  return static_cast<int>(value);
}

// alpha = 1, beta = 0 (overwrite) or 1 (accumulate), in the type cuDNN reads for `dtype`.
struct CudnnScale {
  float f_one = 1.0f, f_zero = 0.0f;
  double d_one = 1.0, d_zero = 0.0;
  bool is_double;
  explicit CudnnScale(DType dtype) : is_double(dtype == DType::Float64) {}
  const void* one() const { return is_double ? static_cast<const void*>(&d_one) : &f_one; }
  const void* zero() const { return is_double ? static_cast<const void*>(&d_zero) : &f_zero; }
};

class TensorDescriptor {
 public:
  TensorDescriptor() { CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_)); }
  ~TensorDescriptor() { static_cast<void>(cudnnDestroyTensorDescriptor(desc_)); }
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;

  // A packed NCHW tensor [n, c, h, w].
  void set_nchw(cudnnDataType_t type, int64_t n, int64_t c, int64_t h, int64_t w,
                const char* op) {
    STRATA_CHECK(n * c * h * w <= INT_MAX, op, ": a tensor of ", n, "x", c, "x", h, "x", w,
                 " elements is beyond what cuDNN's 4-D descriptors take (", INT_MAX, ")");
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(desc_, CUDNN_TENSOR_NCHW, type,
                                           cudnn_int(n, op, "N"), cudnn_int(c, op, "C"),
                                           cudnn_int(h, op, "H"), cudnn_int(w, op, "W")));
  }
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

class FilterDescriptor {
 public:
  FilterDescriptor() { CUDNN_CHECK(cudnnCreateFilterDescriptor(&desc_)); }
  ~FilterDescriptor() { static_cast<void>(cudnnDestroyFilterDescriptor(desc_)); }
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;

  // A packed KCRS filter [k, c, r, s] (c = input channels per group).
  void set_kcrs(cudnnDataType_t type, int64_t k, int64_t c, int64_t r, int64_t s,
                const char* op) {
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(desc_, type, CUDNN_TENSOR_NCHW,
                                           cudnn_int(k, op, "K"), cudnn_int(c, op, "C/groups"),
                                           cudnn_int(r, op, "R"), cudnn_int(s, op, "S")));
  }
  cudnnFilterDescriptor_t get() const { return desc_; }

 private:
  cudnnFilterDescriptor_t desc_ = nullptr;
};

class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor() { CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&desc_)); }
  ~ConvolutionDescriptor() { static_cast<void>(cudnnDestroyConvolutionDescriptor(desc_)); }
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  cudnnConvolutionDescriptor_t get() const { return desc_; }

 private:
  cudnnConvolutionDescriptor_t desc_ = nullptr;
};

}  // namespace strata::cuda
