// 2-D convolution of the CUDA backend through cuDNN (NCHW, float32 and float64; a 1-D
// convolution arrives as a 2-D one of height 1): forward (+ bias through cudnnAddTensor),
// backward data and backward filter, with groups through cudnnSetConvolutionGroupCount.
// Algorithms: cuDNN's heuristics (cudnnGet*Algorithm_v7, as PyTorch without cudnn.benchmark)
// list candidates once per (device, pass, shapes, params, dtype, deterministic, tf32); the list
// is cached in a file-local registry, keeping only those that cuDNN says it can run with our
// math type and, under strata::deterministic(), only CUDNN_DETERMINISTIC ones (falling back to
// the pass's deterministic default algorithm if that leaves none). Each call runs the first
// candidate whose workspace the caching allocator can give and that cuDNN does not refuse, in
// the order algo_fallback.h rules: a candidate whose workspace could not be had without
// emptying the cache, or that cuDNN refused, is remembered per (key, candidate) and skipped by
// later calls, and only a call's last candidate may empty the cache (workspaces never come
// from cudaMalloc in the steady state; they go back to the cache when the call returns, which
// the stream-ordered allocator makes safe while kernels are queued).
// Data pointers reach cuDNN 16-byte aligned (aligned.h): a misaligned view is copied.
// float32 uses CUDNN_FMA_MATH unless strata::allow_tf32() (then cuDNN's default, TF32 allowed),
// so results match the CPU's by default.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "algo_fallback.h"
#include "aligned.h"
#include "common.h"
#include "cuda_backend.h"
#include "cudnn_utils.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

enum class ConvPass : int64_t { Forward, BackwardData, BackwardFilter };

const char* pass_name(ConvPass pass) {
  switch (pass) {
    case ConvPass::Forward: return "conv2d_forward";
    case ConvPass::BackwardData: return "conv2d_backward_data";
    case ConvPass::BackwardFilter: return "conv2d_backward_filter";
  }
  return "conv2d";
}

// One runnable algorithm: cuDNN's enum value (of the pass's own enum type), the math type to
// set on the convolution descriptor, and the workspace it needs.
struct AlgoChoice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

// device, pass, dtype, deterministic, tf32, x [N, C, H, W], w [K, C/groups, R, S], 7 params.
using ConvKey = std::array<int64_t, 20>;

// Leaked on purpose, as the backends are: convolutions may run during static destruction.
struct ConvRegistry {
  std::mutex mutex;
  std::map<ConvKey, std::vector<AlgoChoice>> choices;
  AlgoFallback<ConvKey> failures;  // candidates that could not run, per key
};
ConvRegistry& conv_registry() {
  static auto* registry = new ConvRegistry;
  return *registry;
}

// The descriptors of one convolution: x [N, C, H, W], w [K, C/groups, R, S], y [N, K, P, Q].
struct ConvDescriptors {
  TensorDescriptor x, y;
  FilterDescriptor w;
  ConvolutionDescriptor conv;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  bool force_fma = false;              // float32 without TF32: only FMA kernels
  cudnnMathType_t query_math = CUDNN_DEFAULT_MATH;
  ConvKey key{};

  ConvDescriptors(ConvPass pass, int device, const Tensor& x_t, const Tensor& w_t,
                  const Tensor& y_t, const Conv2dParams& p) {
    const char* op = pass_name(pass);
    const DType dtype = x_t.dtype();
    type = cudnn_data_type(dtype, op);
    const bool tf32 = dtype == DType::Float32 && allow_tf32();
    force_fma = dtype == DType::Float32 && !tf32;
    query_math = force_fma ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    x.set_nchw(type, x_t.size(0), x_t.size(1), x_t.size(2), x_t.size(3), op);
    y.set_nchw(type, y_t.size(0), y_t.size(1), y_t.size(2), y_t.size(3), op);
    w.set_kcrs(type, w_t.size(0), w_t.size(1), w_t.size(2), w_t.size(3), op);
    // NOTE: cross-correlation, as every framework's "convolution" (CUDNN_CONVOLUTION would
    // flip the filter). The compute type is the data type (float accumulates in float, double
    // in double).
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        conv.get(), cudnn_int(p.pad_h, op, "pad_h"), cudnn_int(p.pad_w, op, "pad_w"),
        cudnn_int(p.stride_h, op, "stride_h"), cudnn_int(p.stride_w, op, "stride_w"),
        cudnn_int(p.dilation_h, op, "dilation_h"), cudnn_int(p.dilation_w, op, "dilation_w"),
        CUDNN_CROSS_CORRELATION, type));
    CUDNN_CHECK(cudnnSetConvolutionGroupCount(conv.get(), cudnn_int(p.groups, op, "groups")));
    CUDNN_CHECK(cudnnSetConvolutionMathType(conv.get(), query_math));
    key = {device,          static_cast<int64_t>(pass), static_cast<int64_t>(dtype),
           deterministic(), tf32,                        x_t.size(0),
           x_t.size(1),     x_t.size(2),                 x_t.size(3),
           w_t.size(0),     w_t.size(1),                 w_t.size(2),
           w_t.size(3),     p.stride_h,                  p.stride_w,
           p.pad_h,         p.pad_w,                     p.dilation_h,
           p.dilation_w,    p.groups};
  }
};

// Keeps the heuristic's candidates (in its order) that cuDNN can run with our math type, and
// under deterministic mode only the deterministic ones. `workspace_of(algo)` asks cuDNN for
// the workspace with the math type already set on the descriptor; a status other than success
// there means this algorithm does not support this configuration (a probe, so the status is
// inspected instead of thrown).
template <typename Perf, typename WorkspaceFn>
std::vector<AlgoChoice> usable_algorithms(const Perf* perf, int count, ConvDescriptors& d,
                                          const WorkspaceFn& workspace_of) {
  const bool need_deterministic = deterministic();
  std::vector<AlgoChoice> usable;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (need_deterministic && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    const cudnnMathType_t math = d.force_fma ? CUDNN_FMA_MATH : perf[i].mathType;
    CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), math));
    size_t bytes = 0;
    if (workspace_of(perf[i].algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    // The heuristic may list an algorithm twice (once per math type); keep the first.
    const int algo = static_cast<int>(perf[i].algo);
    bool seen = false;
    for (const AlgoChoice& c : usable) seen = seen || (c.algo == algo && c.math == math);
    if (!seen) usable.push_back({algo, math, bytes});
  }
  CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), d.query_math));
  return usable;
}

// usable_algorithms, or when it keeps none, the pass's deterministic default (PyTorch's choice
// in deterministic mode: IMPLICIT_PRECOMP_GEMM forward, ALGO_1 for both backward passes) if
// cuDNN accepts it for this configuration.
template <typename Perf, typename Algo, typename WorkspaceFn>
std::vector<AlgoChoice> usable_or_default(const std::vector<Perf>& perf, int count, Algo fallback,
                                          ConvDescriptors& d, const WorkspaceFn& workspace_of) {
  std::vector<AlgoChoice> usable = usable_algorithms(perf.data(), count, d, workspace_of);
  if (!usable.empty()) return usable;
  Perf default_perf{};
  default_perf.algo = fallback;
  default_perf.status = CUDNN_STATUS_SUCCESS;
  default_perf.determinism = CUDNN_DETERMINISTIC;
  default_perf.mathType = d.query_math;
  return usable_algorithms(&default_perf, 1, d, workspace_of);
}

// cuDNN's heuristic ranking for this pass (no kernel runs), filtered by usable_algorithms.
std::vector<AlgoChoice> find_algorithms(ConvPass pass, cudnnHandle_t handle, ConvDescriptors& d) {
  const cudnnTensorDescriptor_t x = d.x.get(), y = d.y.get();
  const cudnnFilterDescriptor_t w = d.w.get();
  const cudnnConvolutionDescriptor_t conv = d.conv.get();
  int max_count = 0, returned = 0;
  switch (pass) {
    case ConvPass::Forward: {
      CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &max_count));
      std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(static_cast<size_t>(max_count));
      CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, x, w, conv, y, max_count,
                                                         &returned, perf.data()));
      return usable_or_default(perf, returned, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, d,
                               [&](cudnnConvolutionFwdAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionForwardWorkspaceSize(handle, x, w, conv, y, algo, bytes);
      });
    }
    case ConvPass::BackwardData: {
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &max_count));
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(static_cast<size_t>(max_count));
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, w, y, conv, x, max_count,
                                                              &returned, perf.data()));
      return usable_or_default(perf, returned, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, d,
                               [&](cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, w, y, conv, x, algo, bytes);
      });
    }
    case ConvPass::BackwardFilter: {
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &max_count));
      std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(static_cast<size_t>(max_count));
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, x, y, conv, w, max_count,
                                                                &returned, perf.data()));
      return usable_or_default(perf, returned, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, d,
                               [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t* bytes) {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, x, y, conv, w, algo, bytes);
      });
    }
  }
  return {};
}

// The cached candidates for this convolution, found on first use.
std::vector<AlgoChoice> algorithms_for(ConvPass pass, cudnnHandle_t handle, ConvDescriptors& d,
                                       const Tensor& x, const Tensor& w) {
  ConvRegistry& registry = conv_registry();
  {
    std::lock_guard<std::mutex> lock(registry.mutex);
    auto it = registry.choices.find(d.key);
    if (it != registry.choices.end()) return it->second;
  }
  std::vector<AlgoChoice> found = find_algorithms(pass, handle, d);
  STRATA_CHECK(!found.empty(), pass_name(pass), ": cuDNN offers no ",
               deterministic() ? "deterministic " : "", "algorithm for x ", shape_str(x.shape()),
               " ", dtype_name(x.dtype()), ", w ", shape_str(w.shape()));
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.choices.emplace(d.key, found);
  return found;
}

// A cuDNN workspace from the caching allocator: none for 0 bytes. With may_empty_cache false
// an allocation that cudaMalloc cannot serve leaves ok() false instead of emptying the cache
// (a device synchronize) and retrying; with true it empties, retries, and then throws.
class Workspace {
 public:
  Workspace(CudaBackend& backend, size_t bytes, bool may_empty_cache) : backend_(backend) {
    if (bytes == 0) return;
    ptr_ = may_empty_cache ? backend.allocate(bytes)
                           : backend.allocator().try_allocate(bytes, backend.stream());
    ok_ = ptr_ != nullptr;
  }
  ~Workspace() {
    if (ptr_ != nullptr) backend_.deallocate(ptr_, 0);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  bool ok() const { return ok_; }
  void* get() const { return ptr_; }

 private:
  CudaBackend& backend_;
  void* ptr_ = nullptr;
  bool ok_ = true;
};

// Runs `launch(choice, workspace)` (which returns the cuDNN call's status) with the candidates
// in the order conv_registry().failures gives (algo_fallback.h): a workspace the cache cannot
// give, or a status of the CUDNN_STATUS_NOT_SUPPORTED category (the probe accepted what the
// kernel then refused), moves on to the next candidate and is remembered;
// CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER moves on without being remembered (it is about
// this call's pointers; aligned.h should have prevented it). Anything else, or the call's last
// candidate failing, throws naming the call.
template <typename LaunchFn>
void run_first_that_works(CudaBackend& backend, ConvDescriptors& d, ConvPass pass,
                          const char* call, const std::vector<AlgoChoice>& choices,
                          const LaunchFn& launch) {
  cudnnStatus_t status = CUDNN_STATUS_SUCCESS;
  const AttemptResult result = conv_registry().failures.run(
      d.key, choices.size(), [&](size_t index, bool last) {
        const AlgoChoice& choice = choices[index];
        const Workspace workspace(backend, choice.workspace, /*may_empty_cache=*/last);
        if (!workspace.ok()) return AttemptResult::kNoWorkspace;
        CUDNN_CHECK(cudnnSetConvolutionMathType(d.conv.get(), choice.math));
        status = launch(choice, workspace.get());
        if (status == CUDNN_STATUS_SUCCESS) return AttemptResult::kRan;
        if (status == CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER) return AttemptResult::kTransient;
        if (CUDNN_STATUS_CATEGORY(status) == CUDNN_STATUS_NOT_SUPPORTED) {
          return AttemptResult::kRefused;
        }
        throw_status_error("cuDNN", call, static_cast<long long>(status),
                           cudnn_status_string(status), pass_name(pass), __FILE__, __LINE__);
      });
  if (result == AttemptResult::kRan) return;
  STRATA_ASSERT(result != AttemptResult::kNoWorkspace, pass_name(pass),
                ": the last candidate's workspace neither came nor threw");
  throw_status_error("cuDNN", call, static_cast<long long>(status), cudnn_status_string(status),
                     pass_name(pass), __FILE__, __LINE__);
}

}  // namespace

// out [N, K, P, Q] = conv(x [N, C, H, W], w [K, C/groups, R, S]) + bias[k].
void CudaBackend::conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w,
                                 const Tensor& bias, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&out, &x, &w, &bias})) {
    detail::Float32Staging stage;
    conv2d_forward(stage.output(out), stage.input(x), stage.input(w), stage.input(bias), params);
    return stage.finish();
  }
  if (out.numel() == 0) return;
  DeviceGuard guard(device_index_);
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(ConvPass::Forward, device_index_, x, w, out, params);
  const std::vector<AlgoChoice> choices = algorithms_for(ConvPass::Forward, handle, d, x, w);
  const CudnnScale scale(out.dtype());
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), w_a(*this, w, Use::kIn);
  AlignedData out_a(*this, out, Use::kOut);
  run_first_that_works(*this, d, ConvPass::Forward, "cudnnConvolutionForward", choices,
                       [&](const AlgoChoice& c, void* workspace) {
    return cudnnConvolutionForward(handle, scale.one(), d.x.get(), x_a.get(), d.w.get(),
                                   w_a.get(), d.conv.get(),
                                   static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), workspace,
                                   c.workspace, scale.zero(), d.y.get(), out_a.get());
  });
  if (bias.defined()) {
    TensorDescriptor bias_desc;  // [1, K, 1, 1], broadcast over N, P, Q
    bias_desc.set_nchw(d.type, 1, out.size(1), 1, 1, "conv2d_forward");
    const AlignedData bias_a(*this, bias, Use::kIn);
    CUDNN_CHECK(cudnnAddTensor(handle, scale.one(), bias_desc.get(), bias_a.get(), scale.one(),
                               d.y.get(), out_a.get()));
  }
  out_a.write_back();
}

// grad_x [N, C, H, W] from grad_out [N, K, P, Q] and w [K, C/groups, R, S].
void CudaBackend::conv2d_backward_data(const Tensor& grad_x, const Tensor& grad_out,
                                       const Tensor& w, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&grad_x, &grad_out, &w})) {
    detail::Float32Staging stage;
    conv2d_backward_data(stage.output(grad_x), stage.input(grad_out), stage.input(w), params);
    return stage.finish();
  }
  if (grad_x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(ConvPass::BackwardData, device_index_, grad_x, w, grad_out, params);
  const std::vector<AlgoChoice> choices =
      algorithms_for(ConvPass::BackwardData, handle, d, grad_x, w);
  const CudnnScale scale(grad_x.dtype());
  using Use = AlignedData::Use;
  const AlignedData w_a(*this, w, Use::kIn), grad_out_a(*this, grad_out, Use::kIn);
  AlignedData grad_x_a(*this, grad_x, Use::kOut);
  run_first_that_works(*this, d, ConvPass::BackwardData, "cudnnConvolutionBackwardData", choices,
                       [&](const AlgoChoice& c, void* workspace) {
    return cudnnConvolutionBackwardData(
        handle, scale.one(), d.w.get(), w_a.get(), d.y.get(), grad_out_a.get(), d.conv.get(),
        static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), workspace, c.workspace,
        scale.zero(), d.x.get(), grad_x_a.get());
  });
  grad_x_a.write_back();
}

// grad_w [K, C/groups, R, S] from grad_out [N, K, P, Q] and x [N, C, H, W].
void CudaBackend::conv2d_backward_filter(const Tensor& grad_w, const Tensor& grad_out,
                                         const Tensor& x, const Conv2dParams& params) {
  if (detail::any_reduced_floating({&grad_w, &grad_out, &x})) {
    detail::Float32Staging stage;
    conv2d_backward_filter(stage.output(grad_w), stage.input(grad_out), stage.input(x), params);
    return stage.finish();
  }
  if (grad_w.numel() == 0) return;
  DeviceGuard guard(device_index_);
  if (x.numel() == 0 || grad_out.numel() == 0) {  // an empty batch: the gradient is zero
    const size_t bytes = static_cast<size_t>(grad_w.numel()) * grad_w.element_size();
    CUDA_CHECK(cudaMemsetAsync(grad_w.raw_data(), 0, bytes, stream_));
    return;
  }
  cudnnHandle_t handle = cudnn_handle();
  ConvDescriptors d(ConvPass::BackwardFilter, device_index_, x, grad_w, grad_out, params);
  const std::vector<AlgoChoice> choices =
      algorithms_for(ConvPass::BackwardFilter, handle, d, x, grad_w);
  const CudnnScale scale(grad_w.dtype());
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), grad_out_a(*this, grad_out, Use::kIn);
  AlignedData grad_w_a(*this, grad_w, Use::kOut);
  run_first_that_works(*this, d, ConvPass::BackwardFilter, "cudnnConvolutionBackwardFilter",
                       choices, [&](const AlgoChoice& c, void* workspace) {
    return cudnnConvolutionBackwardFilter(
        handle, scale.one(), d.x.get(), x_a.get(), d.y.get(), grad_out_a.get(), d.conv.get(),
        static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), workspace, c.workspace,
        scale.zero(), d.w.get(), grad_w_a.get());
  });
  grad_w_a.write_back();
}

}  // namespace strata::cuda
