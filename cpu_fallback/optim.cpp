// The first-order optimizer updates of the CPU backend: one pass over each parameter with
// the formulas of backend.h's OptimizerUpdate. Per tensor, the step-dependent scalars are
// computed once in double; the element loops are branch-free in the options (each option is
// a separate instantiation of the loop body's lambda), so GCC vectorizes them, and split over
// OpenMP threads for large tensors.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu_backend.h"
#include "strata/detail/float32_staging.h"
#include "scalar_arith.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// Below this many elements a tensor is updated by one thread.
constexpr int64_t kParallelElements = int64_t{1} << 15;

// body(i) for i in [0, n), over threads when n is large.
template <typename Body>
void for_each_element(int64_t n, const Body& body) {
  if (n < kParallelElements) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

template <typename T>
T sign_of(T x) {
  return static_cast<T>((x > T(0)) - (x < T(0)));
}

template <typename T>
T* data_or_null(const std::vector<std::vector<Tensor>>& state, size_t slot, size_t i) {
  if (slot >= state.size() || !state[slot][i].defined()) return nullptr;
  return state[slot][i].data<T>();
}

// One tensor's update. The gradient preprocessing (maximize, decoupled decay, L2, L1) is
// shared by every kind.
template <typename T>
void update_tensor(const OptimizerUpdate& u, size_t index, const Tensor& param, const Tensor& grad,
                   const std::vector<std::vector<Tensor>>& state) {
  const int64_t n = param.numel();
  T* p = param.data<T>();
  const T* gin = grad.data<T>();
  const double t = static_cast<double>(u.steps[index]);
  const T lr = static_cast<T>(u.lr);
  const T wd = static_cast<T>(u.weight_decay);
  const T l1 = static_cast<T>(u.l1);
  const T decay = static_cast<T>(1.0 - u.lr * u.decoupled_weight_decay);
  const bool decoupled = u.decoupled_weight_decay != 0.0;
  const T direction = u.maximize ? T(-1) : T(1);

  // The gradient after the preprocessing, given p after the decoupled decay.
  // NOTE: the terms are added only when set, so an infinite weight with no decay stays a
  // plain step instead of inf * 0 = NaN.
  const bool with_l2 = u.weight_decay != 0.0, with_l1 = u.l1 != 0.0;
  auto gradient = [=](int64_t i, T pi) {
    T g = direction * gin[i];
    if (with_l2) g += wd * pi;
    if (with_l1) g += l1 * sign_of(pi);
    return g;
  };
  auto decayed = [=](int64_t i) {
    if (decoupled) p[i] *= decay;
    return p[i];
  };

  T* s0 = data_or_null<T>(state, 0, index);
  T* s1 = data_or_null<T>(state, 1, index);
  T* s2 = data_or_null<T>(state, 2, index);
  switch (u.kind) {
    case OptimizerKind::Sgd: {
      const T momentum = static_cast<T>(u.momentum);
      const T keep = static_cast<T>(1.0 - u.dampening);
      if (u.momentum == 0.0) {
        for_each_element(n, [=](int64_t i) { p[i] -= lr * gradient(i, decayed(i)); });
        break;
      }
      const bool first = u.steps[index] == 1;
      const bool nesterov = u.nesterov;
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        const T buf = first ? g : momentum * s0[i] + keep * g;
        s0[i] = buf;
        p[i] -= lr * (nesterov ? g + momentum * buf : buf);
      });
      break;
    }
    case OptimizerKind::Adagrad: {
      const T clr = static_cast<T>(u.lr / (1.0 + (t - 1.0) * u.lr_decay));
      const T eps = static_cast<T>(u.eps);
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] += g * g;
        p[i] -= clr * g / (std::sqrt(s0[i]) + eps);
      });
      break;
    }
    case OptimizerKind::Adadelta: {
      const T rho = static_cast<T>(u.rho), eps = static_cast<T>(u.eps);
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] = rho * s0[i] + (T(1) - rho) * g * g;
        const T delta = std::sqrt(s1[i] + eps) / std::sqrt(s0[i] + eps) * g;
        s1[i] = rho * s1[i] + (T(1) - rho) * delta * delta;
        p[i] -= lr * delta;
      });
      break;
    }
    case OptimizerKind::RmsProp: {
      const T alpha = static_cast<T>(u.alpha), eps = static_cast<T>(u.eps);
      const T momentum = static_cast<T>(u.momentum);
      const bool centered = u.centered, with_momentum = u.momentum != 0.0;
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] = alpha * s0[i] + (T(1) - alpha) * g * g;
        T avg;
        if (centered) {
          s2[i] = alpha * s2[i] + (T(1) - alpha) * g;
          avg = std::sqrt(s0[i] - s2[i] * s2[i]) + eps;
        } else {
          avg = std::sqrt(s0[i]) + eps;
        }
        if (with_momentum) {
          s1[i] = momentum * s1[i] + g / avg;
          p[i] -= lr * s1[i];
        } else {
          p[i] -= lr * g / avg;
        }
      });
      break;
    }
    case OptimizerKind::Adam: {
      const T beta1 = static_cast<T>(u.beta1), beta2 = static_cast<T>(u.beta2);
      const T eps = static_cast<T>(u.eps);
      const T step_size = static_cast<T>(u.lr / (1.0 - std::pow(u.beta1, t)));
      const T root_correction2 = static_cast<T>(std::sqrt(1.0 - std::pow(u.beta2, t)));
      const bool amsgrad = u.amsgrad;
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] = beta1 * s0[i] + (T(1) - beta1) * g;
        s1[i] = beta2 * s1[i] + (T(1) - beta2) * g * g;
        T v = s1[i];
        if (amsgrad) {
          s2[i] = scalar::max_values(s2[i], v);  // NaN propagates, as torch.maximum
          v = s2[i];
        }
        p[i] -= step_size * s0[i] / (std::sqrt(v) / root_correction2 + eps);
      });
      break;
    }
    case OptimizerKind::Adamax: {
      const T beta1 = static_cast<T>(u.beta1), beta2 = static_cast<T>(u.beta2);
      const T eps = static_cast<T>(u.eps);
      const T clr = static_cast<T>(u.lr / (1.0 - std::pow(u.beta1, t)));
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] = beta1 * s0[i] + (T(1) - beta1) * g;
        s1[i] = scalar::max_values(beta2 * s1[i], std::abs(g) + eps);
        p[i] -= clr * s0[i] / s1[i];
      });
      break;
    }
    case OptimizerKind::NAdam: {
      const T beta1 = static_cast<T>(u.beta1), beta2 = static_cast<T>(u.beta2);
      const T eps = static_cast<T>(u.eps);
      const double mu = u.beta1 * (1.0 - 0.5 * std::pow(0.96, t * u.momentum_decay));
      const double mu_next = u.beta1 * (1.0 - 0.5 * std::pow(0.96, (t + 1.0) * u.momentum_decay));
      const double product = u.mu_products[index];
      const T grad_coef = static_cast<T>(u.lr * (1.0 - mu) / (1.0 - product));
      const T avg_coef = static_cast<T>(u.lr * mu_next / (1.0 - product * mu_next));
      const T correction2 = static_cast<T>(1.0 - std::pow(u.beta2, t));
      for_each_element(n, [=](int64_t i) {
        const T g = gradient(i, decayed(i));
        s0[i] = beta1 * s0[i] + (T(1) - beta1) * g;
        s1[i] = beta2 * s1[i] + (T(1) - beta2) * g * g;
        const T denom = std::sqrt(s1[i] / correction2) + eps;
        p[i] -= grad_coef * g / denom;
        p[i] -= avg_coef * s0[i] / denom;
      });
      break;
    }
  }
}

}  // namespace

void CpuBackend::optimizer_update(const OptimizerUpdate& u, const std::vector<Tensor>& params,
                                  const std::vector<Tensor>& grads,
                                  const std::vector<std::vector<Tensor>>& state) {
  STRATA_ASSERT(grads.size() == params.size() && u.steps.size() == params.size(),
                "cpu optimizer_update: ", params.size(), " params, ", grads.size(), " grads, ",
                u.steps.size(), " steps");
  if (detail::any_reduced_floating(params) || detail::any_reduced_floating(grads) ||
      detail::any_reduced_floating(state)) {
    detail::Float32Staging stage;
    optimizer_update(u, stage.outputs(params), stage.inputs(grads), stage.outputs(state));
    return stage.finish();
  }
  for (size_t i = 0; i < params.size(); ++i) {
    STRATA_DISPATCH_FLOATING(params[i].dtype(), "cpu optimizer_update", [&] {
      update_tensor<scalar_t>(u, i, params[i], grads[i], state);
    });
  }
}

}  // namespace strata::cpu
