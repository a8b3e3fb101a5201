// Aligned data for the libraries that refuse misaligned pointers: AlignedData hands a library
// call a pointer to a contiguous tensor's data that is kLibraryAlignment-aligned — the tensor's
// own when it already is, else a copy in a buffer from the caching allocator (256-byte
// aligned), copied in for inputs and copied back by write_back() for outputs. Every copy is a
// device-to-device cudaMemcpyAsync on the backend's stream, so nothing synchronizes and the
// buffer goes back to the cache at scope exit (stream order makes that safe).
// Where it is used: every cuDNN call of the backend (conv.cpp, batch_norm.cpp, softmax.cpp,
// rnn.cpp; pooling's kernels are Strata's own, pool.cu, and need no alignment). cuDNN 9 answers
// a pointer below the alignment its kernels assume with
// CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER; views with a storage offset (a narrowed batch, a
// time chunk, the RNN's packed h_n / c_n) have such pointers. cuBLAS does not need it (matmul.cpp says why).
// NOTE: an output's copy reaches the tensor only through write_back(), called after the
// library call succeeded; the destructor never copies (it cannot report a failure).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {

// The alignment cuDNN's kernels may assume of a data pointer: 16 bytes, one 128-bit vector
// load (PyTorch tells cuDNN a tensor's alignment up to this same 16 bytes). Element 0 of a
// tensor is only as aligned as its storage offset makes it: a float32 view starting at an odd
// element is 4-byte aligned.
inline constexpr size_t kLibraryAlignment = 16;

inline bool is_aligned(const void* ptr, size_t alignment = kLibraryAlignment) {
  return reinterpret_cast<uintptr_t>(ptr) % alignment == 0;
}

class AlignedData {
 public:
  enum class Use { kIn, kOut, kInOut };

  // `t` may be undefined (get() is then nullptr) or empty (its own pointer is used: no
  // library reads an empty tensor). Otherwise it must be contiguous (the backend contract).
  AlignedData(CudaBackend& backend, const Tensor& t, Use use)
      : backend_(backend), tensor_(t), use_(use) {
    if (!t.defined()) return;
    data_ = t.raw_data();
    bytes_ = static_cast<size_t>(t.numel()) * t.element_size();
    if (bytes_ == 0 || is_aligned(data_)) return;
    STRATA_ASSERT(t.is_contiguous(), "AlignedData: a non-contiguous tensor ", shape_str(t.shape()),
                  " reached a cuDNN call");
    copy_.emplace(backend, bytes_);
    if (use != Use::kOut) {
      CUDA_CHECK(cudaMemcpyAsync(copy_->get(), data_, bytes_, cudaMemcpyDeviceToDevice,
                                 backend.stream()));
    }
  }
  AlignedData(const AlignedData&) = delete;
  AlignedData& operator=(const AlignedData&) = delete;

  // The pointer to give the library (aligned unless the tensor is empty or undefined).
  void* get() const { return copy_ ? copy_->get() : data_; }
  // True when get() is a copy rather than the tensor's own data.
  bool copied() const { return copy_.has_value(); }

  // For kOut / kInOut: puts what the library wrote into the tensor (nothing to do when the
  // tensor's own data was used). Call it once, after the library call succeeded.
  void write_back() {
    STRATA_ASSERT(use_ != Use::kIn, "AlignedData::write_back on an input");
    if (!copy_) return;
    CUDA_CHECK(cudaMemcpyAsync(data_, copy_->get(), bytes_, cudaMemcpyDeviceToDevice,
                               backend_.stream()));
  }

 private:
  CudaBackend& backend_;
  Tensor tensor_;  // keeps the tensor's storage alive as long as the pointer is handed out
  Use use_;
  void* data_ = nullptr;
  size_t bytes_ = 0;
  std::optional<ScratchBuffer> copy_;
};

}  // namespace strata::cuda
