// CudaBackend: the Backend of one CUDA device, made once per device on first use and never
// destroyed (tensors freed during process exit still find it; the driver reclaims the rest).
// All of its work goes on one stream per device, created non-blocking: kernels, cuBLAS and
// cuDNN calls and async copies are ordered on it, so memory freed by one op can be reused by
// the next without synchronizing (see allocator.h). The host waits only where it reads data
// (copy_to_host), hands over a buffer it may free (copy_from_host), or calls synchronize().
// The definitions live one kernel family per file, as in cpu_fallback/: memory.cpp,
// elementwise.cu, reduce.cu, sort.cu, scan.cu, matmul.cpp, index.cu, random.cu
// (cuda_backend.cpp: the device, the library handles and the hooks of
// strata/detail/cuda_hooks.h).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "allocator.h"
#include "common.h"
#include "strata/backend.h"

namespace strata::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  Device device() const override;

  int device_index() const { return device_index_; }
  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator() { return allocator_; }
  // Created on first use, bound to stream().
  cublasHandle_t cublas_handle();
  cudnnHandle_t cudnn_handle();
  // Blocks for a grid-stride loop to fill the device once (8 blocks of 256 threads per SM).
  int64_t max_blocks() const { return max_blocks_; }
  int sm_count() const { return sm_count_; }

  // memory.cpp
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  // elementwise.cu
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& out, double value) override;
  void arange(const Tensor& out, double start, double step) override;
  void unary(UnaryOp op, const Tensor& out, const Tensor& in) override;
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                     bool scalar_first) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;
  // copy() on plain geometry: dst and src have one shape; any strides and dtypes.
  void copy_view(const View& dst, const View& src);

  // reduce.cu
  void reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
              int64_t inner) override;

  // sort.cu
  void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
            int64_t size, int64_t inner, bool descending) override;

  // scan.cu
  void scan(ScanOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
            int64_t inner) override;

  // matmul.cpp
  void matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) override;

  // index.cu
  void index_select(const Tensor& out, const Tensor& in, int64_t dim,
                    const Tensor& index) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                 const Tensor& src) override;
  void gather(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) override;
  void scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                   const Tensor& src) override;
  void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;

  // conv.cpp
  void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Conv2dParams& params) override;
  void conv2d_backward_data(const Tensor& grad_x, const Tensor& grad_out, const Tensor& w,
                            const Conv2dParams& params) override;
  void conv2d_backward_filter(const Tensor& grad_w, const Tensor& grad_out, const Tensor& x,
                              const Conv2dParams& params) override;

  // pool.cu
  void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                          const Pool2dParams& params) override;
  void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                           const Pool2dParams& params) override;
  void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& params,
                          bool count_include_pad) override;
  void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                           const Pool2dParams& params, bool count_include_pad) override;

  // activation.cu
  void activation_forward(Activation act, const Tensor& out, const Tensor& in,
                          double alpha) override;
  void activation_backward(Activation act, const Tensor& grad_in, const Tensor& grad_out,
                           const Tensor& in, const Tensor& out, double alpha) override;

  // softmax.cpp
  void softmax_forward(const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
                       int64_t inner, bool log) override;
  void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                        int64_t outer, int64_t size, int64_t inner, bool log) override;

  // batch_norm.cpp
  void batch_norm_forward(const Tensor& out, const Tensor& save_mean, const Tensor& save_invstd,
                          const Tensor& running_mean, const Tensor& running_var, const Tensor& x,
                          const Tensor& weight, const Tensor& bias, double momentum,
                          double eps) override;
  void batch_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                           const Tensor& grad_bias, const Tensor& grad_out, const Tensor& x,
                           const Tensor& weight, const Tensor& save_mean,
                           const Tensor& save_invstd, double eps) override;

  // optim.cpp / optim.cu
  void optimizer_update(const OptimizerUpdate& u, const std::vector<Tensor>& params,
                        const std::vector<Tensor>& grads,
                        const std::vector<std::vector<Tensor>>& state) override;
  // rnn.cpp
  void rnn_forward(const RnnParams& params, const std::vector<Tensor>& weights, const Tensor& x,
                   const Tensor& hx, const Tensor& cx, const Tensor& y, const Tensor& hy,
                   const Tensor& cy, Tensor* reserve) override;
  void rnn_backward(const RnnParams& params, const std::vector<Tensor>& weights, const Tensor& x,
                    const Tensor& hx, const Tensor& cx, const Tensor& y, const Tensor& reserve,
                    const Tensor& dy, const Tensor& dhy, const Tensor& dcy, const Tensor& dx,
                    const Tensor& dhx, const Tensor& dcx,
                    const std::vector<Tensor>& dweights) override;

  // amp.cu
  void non_finite_check_and_unscale(const std::vector<Tensor>& grads, const Tensor& found_inf,
                                    double inv_scale) override;

  // random.cu
  void random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                      uint64_t offset) override;
  void random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                     uint64_t offset) override;
  void random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                  uint64_t offset) override;

 private:
  int device_index_;
  cudaStream_t stream_ = nullptr;
  int sm_count_ = 1;
  int64_t max_blocks_ = 8;
  CachingAllocator allocator_;
  std::mutex handle_mutex_;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
};

// Device memory from a backend's allocator for the scope of a launcher (a temporary buffer);
// freed back to the cache on exit, which is safe while kernels using it are still queued.
class ScratchBuffer {
 public:
  ScratchBuffer(CudaBackend& backend, size_t nbytes)
      : backend_(backend), ptr_(backend.allocate(nbytes)) {}
  ~ScratchBuffer() { backend_.deallocate(ptr_, 0); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  CudaBackend& backend_;
  void* ptr_;
};

}  // namespace strata::cuda
