// The first-order optimizer updates of the CUDA backend (backend.h's OptimizerUpdate), float32
// and float64, as multi-tensor kernels: one launch updates many tensors of one dtype, so a
// parameter group of any size costs one launch per dtype (one per kMaxTensorsPerLaunch tensors
// beyond that) and no host round trip, no device allocation and no host-to-device copy.
// The rules it keeps:
// - The host packs, per tensor, the data pointers of param, grad and the state slots, numel
//   and the step-dependent scalars (computed in double, then cast to T, as the CPU backend
//   does) into one struct passed by value as the kernel's parameter (__grid_constant__).
// - Each tensor is cut into chunks of kChunkElements; a block takes chunks (tensor, chunk) in
//   grid-stride order, one chunk at a time, with the block's threads striding over its
//   elements (coalesced), so a 1-element and a 10-million-element tensor share one launch.
// - Element math is in T, in the order of the CPU kernel (cpu_fallback/optim.cpp), so the
//   backends differ only by rounding (nvcc contracts a * b + c into FMAs).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "scalar_arith.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// State slots per kind (backend.h): at most three (RmsProp, Adam).
constexpr int kMaxStateSlots = 3;
// Per-tensor scalars that depend on the tensor's step: at most three (NAdam).
constexpr int kMaxTensorScalars = 3;
// Elements of one chunk: 32 per thread of a 256-thread block. Small enough that a model of a
// few hundred thousand parameters still spreads over every SM, large enough that finding the
// chunk's tensor is noise next to its memory traffic.
constexpr int64_t kChunkElements = 32 * kBlockSize;

// NOTE: kernel parameters may take 32764 bytes from CUDA 12.1 on (Volta and newer, which is
// every architecture CUDA 13 builds for); before that the limit is 4096 bytes. The tensor
// capacity of one launch follows, and the static_assert below keeps the struct inside it.
#if CUDART_VERSION >= 12010
constexpr int kMaxTensorsPerLaunch = 320;
constexpr size_t kMaxKernelParameterBytes = 32764;
#else
constexpr int kMaxTensorsPerLaunch = 36;
constexpr size_t kMaxKernelParameterBytes = 4096;
#endif

// The hyperparameters shared by every tensor of a launch, in T. The (1 - x) factors are
// computed in double on the host, as PyTorch passes them to its in-place ops.
template <typename T>
struct UpdateConstants {
  T lr, weight_decay, l1;
  T decay;  // 1 - lr * decoupled_weight_decay
  T momentum, keep;  // keep = 1 - dampening (Sgd)
  T rho, one_minus_rho;
  T alpha, one_minus_alpha;
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T eps;
  bool maximize, decoupled, with_l2, with_l1, with_momentum, nesterov, centered, amsgrad;
};

// The per-tensor data of one launch, structure-of-arrays. Tensor i covers the chunks
// [chunk_end[i - 1], chunk_end[i]) of the launch (chunk_end[-1] = 0).
// Scalars per kind: Sgd {first step ? 1 : 0}; Adagrad {clr}; Adam {lr / (1 - beta1^t),
// sqrt(1 - beta2^t)}; Adamax {lr / (1 - beta1^t)}; NAdam {grad coefficient, average
// coefficient, 1 - beta2^t}; Adadelta and RmsProp none.
template <typename T>
struct TensorList {
  T* param[kMaxTensorsPerLaunch];
  const T* grad[kMaxTensorsPerLaunch];
  T* state[kMaxStateSlots][kMaxTensorsPerLaunch];  // null where a slot is unused
  T scalar[kMaxTensorScalars][kMaxTensorsPerLaunch];
  int64_t numel[kMaxTensorsPerLaunch];
  int64_t chunk_end[kMaxTensorsPerLaunch];
  int count;
};

template <typename T>
struct LaunchArguments {
  UpdateConstants<T> constants;
  TensorList<T> tensors;
};

static_assert(sizeof(LaunchArguments<double>) <= kMaxKernelParameterBytes,
              "optimizer launch arguments exceed the kernel parameter limit");
static_assert(sizeof(LaunchArguments<float>) <= kMaxKernelParameterBytes,
              "optimizer launch arguments exceed the kernel parameter limit");

// ---- scalar math in T ------------------------------------------------------------------------

template <typename T>
__device__ T sqrt_of(T x) {
  if constexpr (sizeof(T) == 4) return sqrtf(x); else return sqrt(x);
}
template <typename T>
__device__ T abs_of(T x) {
  if constexpr (sizeof(T) == 4) return fabsf(x); else return fabs(x);
}
template <typename T>
__device__ T sign_of(T x) {
  return static_cast<T>((x > T(0)) - (x < T(0)));
}

// ---- the kernel ------------------------------------------------------------------------------

// One element of tensor `t`'s update at index i. The gradient preprocessing (maximize,
// decoupled decay, L2, L1) is shared by every kind.
// NOTE: L2 and L1 are added only when set, so an infinite weight without decay takes a plain
// step instead of inf * 0 = NaN (as the CPU kernel does).
template <typename T, OptimizerKind kKind>
__device__ __forceinline__ void update_element(const UpdateConstants<T>& c, T* param,
                                               const T* grad, T* s0, T* s1, T* s2, T scalar0,
                                               T scalar1, T scalar2, int64_t i) {
  T p = param[i];
  if (c.decoupled) p *= c.decay;
  T g = c.maximize ? -grad[i] : grad[i];
  if (c.with_l2) g += c.weight_decay * p;
  if (c.with_l1) g += c.l1 * sign_of(p);

  if constexpr (kKind == OptimizerKind::Sgd) {
    if (c.with_momentum) {
      const bool first_step = scalar0 != T(0);
      const T buf = first_step ? g : c.momentum * s0[i] + c.keep * g;
      s0[i] = buf;
      g = c.nesterov ? g + c.momentum * buf : buf;
    }
    p -= c.lr * g;
  } else if constexpr (kKind == OptimizerKind::Adagrad) {
    const T sum = s0[i] + g * g;
    s0[i] = sum;
    p -= scalar0 * g / (sqrt_of(sum) + c.eps);
  } else if constexpr (kKind == OptimizerKind::Adadelta) {
    const T square_avg = c.rho * s0[i] + c.one_minus_rho * g * g;
    s0[i] = square_avg;
    const T delta = sqrt_of(s1[i] + c.eps) / sqrt_of(square_avg + c.eps) * g;
    s1[i] = c.rho * s1[i] + c.one_minus_rho * delta * delta;
    p -= c.lr * delta;
  } else if constexpr (kKind == OptimizerKind::RmsProp) {
    const T square_avg = c.alpha * s0[i] + c.one_minus_alpha * g * g;
    s0[i] = square_avg;
    T avg;
    if (c.centered) {
      const T grad_avg = c.alpha * s2[i] + c.one_minus_alpha * g;
      s2[i] = grad_avg;
      avg = sqrt_of(square_avg - grad_avg * grad_avg) + c.eps;
    } else {
      avg = sqrt_of(square_avg) + c.eps;
    }
    if (c.with_momentum) {
      const T buf = c.momentum * s1[i] + g / avg;
      s1[i] = buf;
      p -= c.lr * buf;
    } else {
      p -= c.lr * g / avg;
    }
  } else if constexpr (kKind == OptimizerKind::Adam) {
    const T exp_avg = c.beta1 * s0[i] + c.one_minus_beta1 * g;
    T exp_avg_sq = c.beta2 * s1[i] + c.one_minus_beta2 * g * g;
    s0[i] = exp_avg;
    s1[i] = exp_avg_sq;
    if (c.amsgrad) {
      exp_avg_sq = scalar::max_values(s2[i], exp_avg_sq);
      s2[i] = exp_avg_sq;
    }
    // scalar0 = lr / (1 - beta1^t), scalar1 = sqrt(1 - beta2^t)
    p -= scalar0 * exp_avg / (sqrt_of(exp_avg_sq) / scalar1 + c.eps);
  } else if constexpr (kKind == OptimizerKind::Adamax) {
    const T exp_avg = c.beta1 * s0[i] + c.one_minus_beta1 * g;
    const T exp_inf = scalar::max_values(c.beta2 * s1[i], abs_of(g) + c.eps);
    s0[i] = exp_avg;
    s1[i] = exp_inf;
    p -= scalar0 * exp_avg / exp_inf;  // scalar0 = lr / (1 - beta1^t)
  } else if constexpr (kKind == OptimizerKind::NAdam) {
    const T exp_avg = c.beta1 * s0[i] + c.one_minus_beta1 * g;
    const T exp_avg_sq = c.beta2 * s1[i] + c.one_minus_beta2 * g * g;
    s0[i] = exp_avg;
    s1[i] = exp_avg_sq;
    // scalar0 = lr (1 - mu_t) / (1 - prod_t), scalar1 = lr mu_{t+1} / (1 - prod_t mu_{t+1}),
    // scalar2 = 1 - beta2^t
    const T denom = sqrt_of(exp_avg_sq / scalar2) + c.eps;
    p -= scalar0 * g / denom;
    p -= scalar1 * exp_avg / denom;
  }
  param[i] = p;
}

// Grid-stride over the launch's chunks; the block's threads stride over a chunk's elements.
template <typename T, OptimizerKind kKind>
__global__ void __launch_bounds__(kBlockSize)
    optimizer_multi_tensor_kernel(const __grid_constant__ LaunchArguments<T> args) {
  const TensorList<T>& list = args.tensors;
  const int64_t total_chunks = list.chunk_end[list.count - 1];
  int tensor = 0;
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
    // Chunks only grow along the loop, so the tensor index only moves forward.
    while (list.chunk_end[tensor] <= chunk) ++tensor;
    const int64_t first_chunk = tensor == 0 ? 0 : list.chunk_end[tensor - 1];
    const int64_t begin = (chunk - first_chunk) * kChunkElements;
    const int64_t end = begin + kChunkElements < list.numel[tensor] ? begin + kChunkElements
                                                                    : list.numel[tensor];
    T* const param = list.param[tensor];
    const T* const grad = list.grad[tensor];
    T* const s0 = list.state[0][tensor];
    T* const s1 = list.state[1][tensor];
    T* const s2 = list.state[2][tensor];
    const T scalar0 = list.scalar[0][tensor];
    const T scalar1 = list.scalar[1][tensor];
    const T scalar2 = list.scalar[2][tensor];
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      update_element<T, kKind>(args.constants, param, grad, s0, s1, s2, scalar0, scalar1,
                               scalar2, i);
    }
  }
}

// ---- launchers -------------------------------------------------------------------------------

template <typename T>
UpdateConstants<T> constants_of(const OptimizerUpdate& u) {
  UpdateConstants<T> c{};
  c.lr = static_cast<T>(u.lr);
  c.weight_decay = static_cast<T>(u.weight_decay);
  c.l1 = static_cast<T>(u.l1);
  c.decay = static_cast<T>(1.0 - u.lr * u.decoupled_weight_decay);
  c.momentum = static_cast<T>(u.momentum);
  c.keep = static_cast<T>(1.0 - u.dampening);
  c.rho = static_cast<T>(u.rho);
  c.one_minus_rho = static_cast<T>(1.0 - u.rho);
  c.alpha = static_cast<T>(u.alpha);
  c.one_minus_alpha = static_cast<T>(1.0 - u.alpha);
  c.beta1 = static_cast<T>(u.beta1);
  c.one_minus_beta1 = static_cast<T>(1.0 - u.beta1);
  c.beta2 = static_cast<T>(u.beta2);
  c.one_minus_beta2 = static_cast<T>(1.0 - u.beta2);
  c.eps = static_cast<T>(u.eps);
  c.maximize = u.maximize;
  c.decoupled = u.decoupled_weight_decay != 0.0;
  c.with_l2 = u.weight_decay != 0.0;
  c.with_l1 = u.l1 != 0.0;
  c.with_momentum = u.momentum != 0.0;
  c.nesterov = u.nesterov;
  c.centered = u.centered;
  c.amsgrad = u.amsgrad;
  return c;
}

// Which state slots the kind reads with these options (backend.h's slot list).
bool slot_used(const OptimizerUpdate& u, int slot) {
  switch (u.kind) {
    case OptimizerKind::Sgd: return slot == 0 && u.momentum != 0.0;
    case OptimizerKind::Adagrad: return slot == 0;
    case OptimizerKind::Adadelta: return slot <= 1;
    case OptimizerKind::RmsProp:
      return slot == 0 || (slot == 1 && u.momentum != 0.0) || (slot == 2 && u.centered);
    case OptimizerKind::Adam: return slot <= 1 || (slot == 2 && u.amsgrad);
    case OptimizerKind::Adamax: return slot <= 1;
    case OptimizerKind::NAdam: return slot <= 1;
  }
  return false;
}

// Tensor i's step-dependent scalars, in double (see TensorList).
void tensor_scalars(const OptimizerUpdate& u, size_t i, double (&out)[kMaxTensorScalars]) {
  const double t = static_cast<double>(u.steps[i]);
  out[0] = out[1] = out[2] = 0.0;
  switch (u.kind) {
    case OptimizerKind::Sgd: out[0] = u.steps[i] == 1 ? 1.0 : 0.0; break;
    case OptimizerKind::Adagrad: out[0] = u.lr / (1.0 + (t - 1.0) * u.lr_decay); break;
    case OptimizerKind::Adadelta:
    case OptimizerKind::RmsProp: break;
    case OptimizerKind::Adam:
      out[0] = u.lr / (1.0 - std::pow(u.beta1, t));
      out[1] = std::sqrt(1.0 - std::pow(u.beta2, t));
      break;
    case OptimizerKind::Adamax: out[0] = u.lr / (1.0 - std::pow(u.beta1, t)); break;
    case OptimizerKind::NAdam: {
      const double mu = u.beta1 * (1.0 - 0.5 * std::pow(0.96, t * u.momentum_decay));
      const double mu_next = u.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1.0) * u.momentum_decay));
      const double product = u.mu_products[i];
      out[0] = u.lr * (1.0 - mu) / (1.0 - product);
      out[1] = u.lr * mu_next / (1.0 - product * mu_next);
      out[2] = 1.0 - std::pow(u.beta2, t);
      break;
    }
  }
}

template <typename T, OptimizerKind kKind>
void launch_multi_tensor(CudaBackend& backend, const LaunchArguments<T>& args) {
  const int64_t total_chunks = args.tensors.chunk_end[args.tensors.count - 1];
  optimizer_multi_tensor_kernel<T, kKind>
      <<<grid_size(total_chunks, backend.max_blocks(), 1), kBlockSize, 0, backend.stream()>>>(
          args);
  CUDA_KERNEL_CHECK();
}

template <typename T>
void launch_for_kind(CudaBackend& backend, OptimizerKind kind, const LaunchArguments<T>& args) {
  switch (kind) {
    case OptimizerKind::Sgd: return launch_multi_tensor<T, OptimizerKind::Sgd>(backend, args);
    case OptimizerKind::Adagrad:
      return launch_multi_tensor<T, OptimizerKind::Adagrad>(backend, args);
    case OptimizerKind::Adadelta:
      return launch_multi_tensor<T, OptimizerKind::Adadelta>(backend, args);
    case OptimizerKind::RmsProp:
      return launch_multi_tensor<T, OptimizerKind::RmsProp>(backend, args);
    case OptimizerKind::Adam: return launch_multi_tensor<T, OptimizerKind::Adam>(backend, args);
    case OptimizerKind::Adamax:
      return launch_multi_tensor<T, OptimizerKind::Adamax>(backend, args);
    case OptimizerKind::NAdam: return launch_multi_tensor<T, OptimizerKind::NAdam>(backend, args);
  }
  STRATA_ASSERT(false, "cuda optimizer_update: unknown optimizer kind ", static_cast<int>(kind));
}

// Packs every non-empty tensor of dtype T into launches of at most kMaxTensorsPerLaunch
// tensors (one launch for any usual parameter group) and launches them in order.
template <typename T>
void update_dtype(CudaBackend& backend, const OptimizerUpdate& u,
                  const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<std::vector<Tensor>>& state) {
  // The launch struct is tens of kilobytes: on the heap rather than the caller's stack. Its
  // unused entries need no initialization (only [0, count) is read).
  auto args = std::make_unique_for_overwrite<LaunchArguments<T>>();
  args->constants = constants_of<T>(u);
  TensorList<T>& list = args->tensors;
  list.count = 0;
  int64_t chunks = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& param = params[i];
    if (param.dtype() != dtype_of<T>::value || param.numel() == 0) continue;
    // NOTE: a size mismatch here would be an out-of-bounds write on the device, not an error
    // the host sees: checked although the optimizers already match each grad to its param.
    STRATA_ASSERT(grads[i].numel() == param.numel(), "cuda optimizer_update: grad ", i, " has ",
                  grads[i].numel(), " elements, its param ", param.numel());
    const int n = list.count;
    list.param[n] = param.data<T>();
    list.grad[n] = grads[i].data<T>();
    for (int slot = 0; slot < kMaxStateSlots; ++slot) {
      const size_t k = static_cast<size_t>(slot);
      const bool present = k < state.size() && i < state[k].size() && state[k][i].defined();
      STRATA_ASSERT(present || !slot_used(u, slot), "cuda optimizer_update: state slot ", slot,
                    " of tensor ", i, " is undefined but this update reads it");
      STRATA_ASSERT(!present || state[k][i].numel() == param.numel(),
                    "cuda optimizer_update: state slot ", slot, " of tensor ", i, " has ",
                    state[k][i].numel(), " elements, its param ", param.numel());
      list.state[slot][n] = present && slot_used(u, slot) ? state[k][i].data<T>() : nullptr;
    }
    double scalars[kMaxTensorScalars];
    tensor_scalars(u, i, scalars);
    for (int k = 0; k < kMaxTensorScalars; ++k) list.scalar[k][n] = static_cast<T>(scalars[k]);
    list.numel[n] = param.numel();
    chunks += ceil_div(param.numel(), kChunkElements);
    list.chunk_end[n] = chunks;
    list.count = n + 1;
    if (list.count == kMaxTensorsPerLaunch) {
      launch_for_kind<T>(backend, u.kind, *args);
      list.count = 0;
      chunks = 0;
    }
  }
  if (list.count > 0) launch_for_kind<T>(backend, u.kind, *args);
}

}  // namespace

void CudaBackend::optimizer_update(const OptimizerUpdate& u, const std::vector<Tensor>& params,
                                   const std::vector<Tensor>& grads,
                                   const std::vector<std::vector<Tensor>>& state) {
  if (detail::any_reduced_floating(params) || detail::any_reduced_floating(grads) ||
      detail::any_reduced_floating(state)) {
    detail::Float32Staging stage;
    optimizer_update(u, stage.outputs(params), stage.inputs(grads), stage.outputs(state));
    return stage.finish();
  }
  STRATA_ASSERT(grads.size() == params.size() && u.steps.size() == params.size(),
                "cuda optimizer_update: ", params.size(), " params, ", grads.size(), " grads, ",
                u.steps.size(), " steps");
  STRATA_ASSERT(u.kind != OptimizerKind::NAdam || u.mu_products.size() == params.size(),
                "cuda optimizer_update: NAdam needs one mu product per tensor, got ",
                u.mu_products.size(), " for ", params.size());
  bool any_float = false, any_double = false;
  for (const Tensor& p : params) {
    switch (p.dtype()) {
      case DType::Float32: any_float = true; break;
      case DType::Float64: any_double = true; break;
      default:
        STRATA_CHECK(false, "optimizer_update: the CUDA backend supports float32 and float64 "
                     "parameters, got ", dtype_name(p.dtype()), " ", shape_str(p.shape()));
    }
  }
  DeviceGuard guard(device_index_);
  if (any_float) update_dtype<float>(*this, u, params, grads, state);
  if (any_double) update_dtype<double>(*this, u, params, grads, state);
}

}  // namespace strata::cuda
