// CpuBackend: the Backend that runs on the host, and the reference the CUDA backend is tested
// against. Every kernel follows the contract in strata/backend.h; the definitions live one
// kernel family per file: memory.cpp, elementwise.cpp, reduce.cpp, sort.cpp, scan.cpp,
// matmul.cpp, index.cpp, random.cpp (threads.cpp sets the OpenMP and OpenBLAS thread counts
// together).
// Large kernels use OpenMP (parallel.h); small ones run on the calling thread, allocating
// nothing on the heap.
#pragma once

#include <cstddef>
#include <cstdint>

#include "strata/backend.h"

namespace strata::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override;

  // memory.cpp
  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void copy_on_device(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  // elementwise.cpp
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& out, double value) override;
  void arange(const Tensor& out, double start, double step) override;
  void unary(UnaryOp op, const Tensor& out, const Tensor& in) override;
  void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) override;
  void binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                     bool scalar_first) override;
  void where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) override;

  // reduce.cpp
  void reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
              int64_t inner) override;

  // sort.cpp
  void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
            int64_t size, int64_t inner, bool descending) override;

  // scan.cpp
  void scan(ScanOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
            int64_t inner) override;

  // matmul.cpp
  void matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) override;

  // index.cpp
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

  // pool.cpp
  void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                          const Pool2dParams& params) override;
  void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                           const Pool2dParams& params) override;
  void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& params,
                          bool count_include_pad) override;
  void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                           const Pool2dParams& params, bool count_include_pad) override;

  // activation.cpp
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

  // amp.cpp
  void non_finite_check_and_unscale(const std::vector<Tensor>& grads, const Tensor& found_inf,
                                    double inv_scale) override;

  // random.cpp
  void random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                      uint64_t offset) override;
  void random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                     uint64_t offset) override;
  void random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                  uint64_t offset) override;

 private:
  // allocate() without the accounting of detail::cpu_memory_stats.
  void* allocate_block(size_t nbytes);
};

}  // namespace strata::cpu
