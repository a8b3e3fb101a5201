// Backend::optimizer_update, every kind and option of backend.h's OptimizerUpdate, float32 and
// float64, on one list of tensors of sizes 1, 3, 1000 and 70000 (the last crosses the CUDA
// kernel's chunks) whose step counts differ (steps t, t + 1, t + 2, t for t = 1, 2, 3):
// - CpuOptimizerReference (runs anywhere): each step of the CPU kernel against a scalar
//   double-precision reference of the formulas, written here element by element and fed the
//   kernel's own state before the step, so each step is checked on its own.
// - CudaOptimizerParity (STYLE rule 9): three consecutive CUDA steps, each compared with the
//   CPU kernel's step from the same values (parameters and every used state slot). Also a
//   list mixing float32 and float64, and a list longer than one CUDA launch holds. Skips with
//   the reason when no CUDA device is present.
// Unused state slots (momentum buffer without momentum, max_exp_avg_sq without amsgrad, ...)
// are passed as undefined tensors, as the optimizers pass them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using test::kCpuDevice;
using test::kCudaDevice;

constexpr int kSteps = 3;
const std::vector<int64_t> kSizes = {1, 3, 1000, 70000};
// Added to the call's step for each tensor: per-tensor step-dependent scalars (bias
// corrections, Sgd's first step) must follow the tensor, not the call.
const std::vector<int64_t> kStepOffsets = {0, 1, 2, 0};

// The state slots of each kind (backend.h).
int slot_count(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::Sgd: return 1;
    case OptimizerKind::Adagrad: return 1;
    case OptimizerKind::Adadelta: return 2;
    case OptimizerKind::RmsProp: return 3;
    case OptimizerKind::Adam: return 3;
    case OptimizerKind::Adamax: return 2;
    case OptimizerKind::NAdam: return 2;
  }
  return 0;
}

// Whether the update reads slot `slot` with these options.
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

// NAdam's μ_t and Π_t = μ_1 ... μ_t.
double nadam_mu(const OptimizerUpdate& u, int64_t t) {
  return u.beta1 * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(t) * u.momentum_decay));
}
double nadam_mu_product(const OptimizerUpdate& u, int64_t t) {
  double product = 1.0;
  for (int64_t k = 1; k <= t; ++k) product *= nadam_mu(u, k);
  return product;
}

struct OptimCase {
  std::string name;
  OptimizerUpdate update;     // steps and mu_products are filled per call
  double initial_state = 0.0;  // every used slot's value before step 1 (Adagrad's accumulator)
  double f32_atol = -1;        // when >= 0, replaces float32's default atol (see the table)
  DType dtype = kFloat64;
  uint32_t seed = 0;
};

std::ostream& operator<<(std::ostream& out, const OptimCase& c) { return out << c.name; }

// The atol for a tensor of `dtype` in case c; -1 is the dtype default.
double atol_for(const OptimCase& c, DType dtype) {
  return dtype == kFloat32 && c.f32_atol >= 0 ? c.f32_atol : -1.0;
}

std::vector<OptimCase> optim_cases() {
  struct Named {
    std::string name;
    OptimizerUpdate update;
    double initial_state = 0.0;
    double f32_atol = -1;
  };
  std::vector<Named> table;
  const auto add = [&](const std::string& name, OptimizerKind kind, auto&& set,
                       double initial_state = 0.0, double f32_atol = -1) {
    OptimizerUpdate u;
    u.kind = kind;
    set(u);
    table.push_back({name, u, initial_state, f32_atol});
  };
  // RmsProp's momentum buffer sums terms g / avg of size up to 1 / sqrt(1 - alpha) = 10 that
  // cancel (buf = momentum buf + g / avg): float32 rounds those at ~1e-6 absolute, so its
  // buffer gets an absolute tolerance of 20 ulps of 10.
  constexpr double kRmsPropMomentumAtol = 2e-5;
  using K = OptimizerKind;
  add("sgd", K::Sgd, [](OptimizerUpdate& u) { u.lr = 0.1; });
  add("sgd_momentum", K::Sgd, [](OptimizerUpdate& u) { u.lr = 0.1; u.momentum = 0.9; });
  add("sgd_dampening", K::Sgd, [](OptimizerUpdate& u) {
    u.lr = 0.1;
    u.momentum = 0.9;
    u.dampening = 0.3;
  });
  add("sgd_nesterov", K::Sgd, [](OptimizerUpdate& u) {
    u.lr = 0.05;
    u.momentum = 0.8;
    u.nesterov = true;
  });
  add("sgd_weight_decay", K::Sgd, [](OptimizerUpdate& u) {
    u.lr = 0.1;
    u.momentum = 0.9;
    u.weight_decay = 0.05;
  });
  add("sgd_l1", K::Sgd, [](OptimizerUpdate& u) { u.lr = 0.1; u.l1 = 0.01; });
  add("sgd_maximize", K::Sgd, [](OptimizerUpdate& u) {
    u.lr = 0.1;
    u.momentum = 0.5;
    u.maximize = true;
  });
  add("adagrad", K::Adagrad, [](OptimizerUpdate& u) { u.lr = 0.1; u.eps = 1e-10; });
  add("adagrad_lr_decay", K::Adagrad, [](OptimizerUpdate& u) {
    u.lr = 0.1;
    u.lr_decay = 0.05;
    u.eps = 1e-10;
    u.weight_decay = 0.01;
  }, 0.1);
  add("adadelta", K::Adadelta, [](OptimizerUpdate& u) {
    u.lr = 1.0;
    u.rho = 0.9;
    u.eps = 1e-6;
    u.weight_decay = 0.01;
  });
  add("rmsprop", K::RmsProp, [](OptimizerUpdate& u) { u.lr = 0.01; u.alpha = 0.99; });
  add("rmsprop_centered", K::RmsProp, [](OptimizerUpdate& u) {
    u.lr = 0.01;
    u.alpha = 0.9;
    u.centered = true;
  });
  add("rmsprop_momentum", K::RmsProp, [](OptimizerUpdate& u) {
    u.lr = 0.01;
    u.alpha = 0.99;
    u.momentum = 0.9;
  }, 0.0, kRmsPropMomentumAtol);
  add("rmsprop_centered_momentum", K::RmsProp, [](OptimizerUpdate& u) {
    u.lr = 0.01;
    u.alpha = 0.9;
    u.momentum = 0.5;
    u.centered = true;
    u.weight_decay = 0.02;
  }, 0.0, kRmsPropMomentumAtol);
  add("adam", K::Adam, [](OptimizerUpdate& u) { u.lr = 1e-2; });
  add("adam_amsgrad", K::Adam, [](OptimizerUpdate& u) {
    u.lr = 1e-2;
    u.beta2 = 0.9;  // a fast-forgetting v, so the running max differs from v
    u.amsgrad = true;
  });
  add("adamw", K::Adam, [](OptimizerUpdate& u) {
    u.lr = 1e-2;
    u.decoupled_weight_decay = 0.1;
  });
  add("adam_l2_l1_maximize", K::Adam, [](OptimizerUpdate& u) {
    u.lr = 1e-2;
    u.weight_decay = 0.05;
    u.l1 = 0.01;
    u.maximize = true;
  });
  add("adamax", K::Adamax, [](OptimizerUpdate& u) { u.lr = 2e-3; u.beta1 = 0.8; });
  add("nadam", K::NAdam, [](OptimizerUpdate& u) {
    u.lr = 2e-3;
    u.momentum_decay = 4e-3;
  });
  add("nadam_decay", K::NAdam, [](OptimizerUpdate& u) {
    u.lr = 2e-3;
    u.momentum_decay = 0.1;
    u.weight_decay = 0.01;
  });

  std::vector<OptimCase> cases;
  std::set<std::string> taken;
  uint32_t seed = 5000;
  for (DType dtype : {kFloat64, kFloat32}) {
    for (const Named& named : table) {
      OptimCase c;
      c.update = named.update;
      c.initial_state = named.initial_state;
      c.f32_atol = named.f32_atol;
      c.dtype = dtype;
      c.seed = seed;
      seed += 100;
      c.name = test::unique_case_name(named.name + "_" + dtype_name(dtype), taken);
      cases.push_back(c);
    }
  }
  return cases;
}

// The update of call `step` (1-based): each tensor's step and, for NAdam, its Π_t.
OptimizerUpdate update_for_step(const OptimizerUpdate& base, int64_t step, size_t tensors) {
  OptimizerUpdate u = base;
  u.steps.clear();
  u.mu_products.clear();
  for (size_t i = 0; i < tensors; ++i) {
    const int64_t t = step + kStepOffsets[i % kStepOffsets.size()];
    u.steps.push_back(t);
    if (u.kind == OptimizerKind::NAdam) u.mu_products.push_back(nadam_mu_product(u, t));
  }
  return u;
}

// A case's host inputs: parameters in [-1, 1), a fresh gradient per step, state slots at their
// initial value (undefined where unused).
struct OptimInputs {
  std::vector<Tensor> params;
  std::vector<std::vector<Tensor>> grads;  // [step][tensor]
  std::vector<std::vector<Tensor>> state;  // [slot][tensor]
};

OptimInputs make_inputs(const OptimCase& c, const std::vector<int64_t>& sizes,
                        const std::vector<DType>& dtypes) {
  OptimInputs in;
  uint32_t seed = c.seed;
  for (size_t i = 0; i < sizes.size(); ++i) {
    in.params.push_back(test::host_random({sizes[i]}, dtypes[i], seed++, -1.0, 1.0));
  }
  in.grads.resize(kSteps);
  for (int step = 0; step < kSteps; ++step) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      in.grads[static_cast<size_t>(step)].push_back(
          test::host_random({sizes[i]}, dtypes[i], seed++, -1.0, 1.0));
    }
  }
  in.state.resize(static_cast<size_t>(slot_count(c.update.kind)));
  for (size_t k = 0; k < in.state.size(); ++k) {
    for (size_t i = 0; i < sizes.size(); ++i) {
      in.state[k].push_back(slot_used(c.update, static_cast<int>(k))
                                ? full({sizes[i]}, c.initial_state, TensorOptions(dtypes[i]))
                                : Tensor());
    }
  }
  return in;
}

OptimInputs make_inputs(const OptimCase& c) {
  return make_inputs(c, kSizes, std::vector<DType>(kSizes.size(), c.dtype));
}

// A copy of t on `device` (undefined stays undefined); a copy even where t already is, so a
// kernel never writes the inputs.
Tensor copy_to(const Tensor& t, Device device) {
  return t.defined() ? t.to(device).clone() : Tensor();
}

// ---- the scalar reference --------------------------------------------------------------------

// One element's update by backend.h's formulas, in double: p, its gradient g and its state
// slots s (unused slots untouched), tensor step t and, for NAdam, Π_t.
void reference_update(const OptimizerUpdate& u, int64_t step, double mu_product, double& p,
                      double g, double (&s)[3]) {
  const double t = static_cast<double>(step);
  if (u.maximize) g = -g;
  if (u.decoupled_weight_decay != 0.0) p = p * (1.0 - u.lr * u.decoupled_weight_decay);
  if (u.weight_decay != 0.0) g = g + u.weight_decay * p;
  if (u.l1 != 0.0) g = g + u.l1 * static_cast<double>((p > 0.0) - (p < 0.0));
  switch (u.kind) {
    case OptimizerKind::Sgd:
      if (u.momentum != 0.0) {
        s[0] = step == 1 ? g : u.momentum * s[0] + (1.0 - u.dampening) * g;
        g = u.nesterov ? g + u.momentum * s[0] : s[0];
      }
      p -= u.lr * g;
      return;
    case OptimizerKind::Adagrad:
      s[0] += g * g;
      p -= u.lr / (1.0 + (t - 1.0) * u.lr_decay) * g / (std::sqrt(s[0]) + u.eps);
      return;
    case OptimizerKind::Adadelta: {
      s[0] = u.rho * s[0] + (1.0 - u.rho) * g * g;
      const double delta = std::sqrt(s[1] + u.eps) / std::sqrt(s[0] + u.eps) * g;
      s[1] = u.rho * s[1] + (1.0 - u.rho) * delta * delta;
      p -= u.lr * delta;
      return;
    }
    case OptimizerKind::RmsProp: {
      s[0] = u.alpha * s[0] + (1.0 - u.alpha) * g * g;
      double avg;
      if (u.centered) {
        s[2] = u.alpha * s[2] + (1.0 - u.alpha) * g;
        avg = std::sqrt(s[0] - s[2] * s[2]) + u.eps;
      } else {
        avg = std::sqrt(s[0]) + u.eps;
      }
      if (u.momentum != 0.0) {
        s[1] = u.momentum * s[1] + g / avg;
        p -= u.lr * s[1];
      } else {
        p -= u.lr * g / avg;
      }
      return;
    }
    case OptimizerKind::Adam: {
      s[0] = u.beta1 * s[0] + (1.0 - u.beta1) * g;
      s[1] = u.beta2 * s[1] + (1.0 - u.beta2) * g * g;
      double v_hat = s[1];
      if (u.amsgrad) {
        s[2] = std::max(s[2], s[1]);
        v_hat = s[2];
      }
      const double denom = std::sqrt(v_hat) / std::sqrt(1.0 - std::pow(u.beta2, t)) + u.eps;
      p -= u.lr / (1.0 - std::pow(u.beta1, t)) * s[0] / denom;
      return;
    }
    case OptimizerKind::Adamax:
      s[0] = u.beta1 * s[0] + (1.0 - u.beta1) * g;
      s[1] = std::max(u.beta2 * s[1], std::abs(g) + u.eps);
      p -= u.lr / (1.0 - std::pow(u.beta1, t)) * s[0] / s[1];
      return;
    case OptimizerKind::NAdam: {
      const double mu = nadam_mu(u, step), mu_next = nadam_mu(u, step + 1);
      s[0] = u.beta1 * s[0] + (1.0 - u.beta1) * g;
      s[1] = u.beta2 * s[1] + (1.0 - u.beta2) * g * g;
      const double d = std::sqrt(s[1] / (1.0 - std::pow(u.beta2, t))) + u.eps;
      p -= u.lr * (1.0 - mu) / (1.0 - mu_product) * g / d;
      p -= u.lr * mu_next / (1.0 - mu_product * mu_next) * s[0] / d;
      return;
    }
  }
}

class CpuOptimizerReference : public ::testing::TestWithParam<OptimCase> {};

// Each step of the CPU kernel against reference_update applied to the kernel's own values
// before the step. Tolerances are the dtype defaults: one step is a handful of roundings of
// O(1) values (f32: the kernel computes in float, the reference in double).
TEST_P(CpuOptimizerReference, EachStepMatchesScalarFormulas) {
  const OptimCase& c = GetParam();
  const OptimInputs in = make_inputs(c);
  std::vector<Tensor> params;
  for (const Tensor& p : in.params) params.push_back(p.clone());
  std::vector<std::vector<Tensor>> state(in.state.size());
  for (size_t k = 0; k < in.state.size(); ++k) {
    for (const Tensor& s : in.state[k]) state[k].push_back(s.defined() ? s.clone() : Tensor());
  }
  const size_t slots = state.size();
  for (int step = 1; step <= kSteps; ++step) {
    const OptimizerUpdate u = update_for_step(c.update, step, params.size());
    const std::vector<Tensor>& grads = in.grads[static_cast<size_t>(step - 1)];
    // The values before the step, as double.
    std::vector<std::vector<double>> p_before, g_values;
    std::vector<std::vector<std::vector<double>>> s_before(slots);
    for (size_t i = 0; i < params.size(); ++i) {
      p_before.push_back(params[i].to_vector<double>());
      g_values.push_back(grads[i].to_vector<double>());
      for (size_t k = 0; k < slots; ++k) {
        s_before[k].push_back(state[k][i].defined() ? state[k][i].to_vector<double>()
                                                    : std::vector<double>());
      }
    }
    cpu_backend().optimizer_update(u, params, grads, state);

    for (size_t i = 0; i < params.size(); ++i) {
      const size_t n = p_before[i].size();
      std::vector<double> p_expected = p_before[i];
      std::vector<std::vector<double>> s_expected(slots, std::vector<double>(n, 0.0));
      for (size_t e = 0; e < n; ++e) {
        double s[3] = {0.0, 0.0, 0.0};
        for (size_t k = 0; k < slots; ++k) {
          if (!s_before[k][i].empty()) s[k] = s_before[k][i][e];
        }
        reference_update(u, u.steps[i], u.kind == OptimizerKind::NAdam ? u.mu_products[i] : 0.0,
                         p_expected[e], g_values[i][e], s);
        for (size_t k = 0; k < slots; ++k) s_expected[k][e] = s[k];
      }
      const std::string where = c.name + ", step " + std::to_string(step) + ", tensor " +
                                std::to_string(i) + " (" + std::to_string(n) +
                                " elements, tensor step " + std::to_string(u.steps[i]) + ")";
      {
        SCOPED_TRACE(where + ": param");
        test::expect_values(params[i], {static_cast<int64_t>(n)}, p_expected, -1,
                            atol_for(c, c.dtype));
      }
      for (size_t k = 0; k < slots; ++k) {
        if (!state[k][i].defined()) continue;
        SCOPED_TRACE(where + ": state slot " + std::to_string(k));
        test::expect_values(state[k][i], {static_cast<int64_t>(n)}, s_expected[k], -1,
                            atol_for(c, c.dtype));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(OptimizerKernels, CpuOptimizerReference,
                         ::testing::ValuesIn(optim_cases()),
                         [](const ::testing::TestParamInfo<OptimCase>& param_info) {
                           return param_info.param.name;
                         });

// ---- CPU vs CUDA -----------------------------------------------------------------------------

// Three consecutive steps on CUDA from the case's inputs. Before each, the CUDA tensors are
// copied to the host and the CPU kernel takes the same step from those values, so every update
// is compared on its own and rounding differences do not pile up over the steps. Parameters
// and every used state slot are compared after each step.
// f64: the backends round differently (CUDA contracts a * b + c into FMAs); one update is a
// handful of roundings of O(1) values, within the dtype default 1e-10. f32: the same with eps
// 1.2e-7, within 1e-5 relative / 1e-6 absolute (except the case table's f32_atol overrides).
void expect_cuda_steps_match_cpu(const OptimCase& c, const OptimInputs& in) {
  std::vector<Tensor> params;
  for (const Tensor& p : in.params) params.push_back(copy_to(p, kCudaDevice));
  std::vector<std::vector<Tensor>> state(in.state.size());
  for (size_t k = 0; k < in.state.size(); ++k) {
    for (const Tensor& s : in.state[k]) state[k].push_back(copy_to(s, kCudaDevice));
  }
  for (int step = 1; step <= kSteps; ++step) {
    const OptimizerUpdate u = update_for_step(c.update, step, params.size());
    const std::vector<Tensor>& host_grads = in.grads[static_cast<size_t>(step - 1)];
    std::vector<Tensor> cpu_params, grads;
    for (const Tensor& p : params) cpu_params.push_back(copy_to(p, kCpuDevice));
    for (const Tensor& g : host_grads) grads.push_back(copy_to(g, kCudaDevice));
    std::vector<std::vector<Tensor>> cpu_state(state.size());
    for (size_t k = 0; k < state.size(); ++k) {
      for (const Tensor& s : state[k]) cpu_state[k].push_back(copy_to(s, kCpuDevice));
    }
    cpu_backend().optimizer_update(u, cpu_params, host_grads, cpu_state);
    backend_for(kCudaDevice).optimizer_update(u, params, grads, state);

    const std::string at = c.name + ", step " + std::to_string(step) + ", tensor ";
    for (size_t i = 0; i < params.size(); ++i) {
      SCOPED_TRACE(at + std::to_string(i) + " (tensor step " + std::to_string(u.steps[i]) +
                   "): param");
      test::expect_close(params[i].cpu(), cpu_params[i], -1, atol_for(c, params[i].dtype()));
    }
    for (size_t k = 0; k < state.size(); ++k) {
      for (size_t i = 0; i < state[k].size(); ++i) {
        SCOPED_TRACE(at + std::to_string(i) + " (tensor step " + std::to_string(u.steps[i]) +
                     "): state slot " + std::to_string(k));
        ASSERT_EQ(state[k][i].defined(), cpu_state[k][i].defined());
        if (!state[k][i].defined()) continue;
        test::expect_close(state[k][i].cpu(), cpu_state[k][i], -1,
                           atol_for(c, state[k][i].dtype()));
      }
    }
  }
}

class CudaOptimizerParity : public ::testing::TestWithParam<OptimCase> {};

TEST_P(CudaOptimizerParity, ThreeStepsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const OptimCase& c = GetParam();
  expect_cuda_steps_match_cpu(c, make_inputs(c));
}

INSTANTIATE_TEST_SUITE_P(OptimizerKernels, CudaOptimizerParity,
                         ::testing::ValuesIn(optim_cases()),
                         [](const ::testing::TestParamInfo<OptimCase>& param_info) {
                           return param_info.param.name;
                         });

OptimCase case_named(const std::string& name) {
  for (const OptimCase& c : optim_cases()) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no case named " << name;
  return {};
}

// One call whose tensors alternate between float32 and float64: the CUDA backend splits it by
// dtype (one launch each) and every tensor still matches the CPU.
TEST(CudaOptimizer, MixedDtypesInOneCallMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (const char* name : {"adam_amsgrad_f32", "sgd_nesterov_f32", "nadam_decay_f32"}) {
    const OptimCase c = case_named(name);
    SCOPED_TRACE(name);
    const std::vector<int64_t> sizes = {70000, 3, 1000, 1, 40000};
    const std::vector<DType> dtypes = {kFloat32, kFloat64, kFloat64, kFloat32, kFloat64};
    expect_cuda_steps_match_cpu(c, make_inputs(c, sizes, dtypes));
  }
}

// More tensors than one launch holds (the CUDA backend packs a few hundred per launch), with
// empty ones among them: every tensor is updated exactly once and matches the CPU.
TEST(CudaOptimizer, ManyTensorsInOneCallMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (const char* name : {"adamw_f32", "rmsprop_centered_momentum_f64"}) {
    const OptimCase c = case_named(name);
    SCOPED_TRACE(name);
    std::vector<int64_t> sizes;
    for (int64_t i = 0; i < 700; ++i) sizes.push_back((i * 37) % 101);  // 0 ... 100
    sizes[400] = 20000;
    const std::vector<DType> dtypes(sizes.size(), c.dtype);
    expect_cuda_steps_match_cpu(c, make_inputs(c, sizes, dtypes));
  }
}

}  // namespace
}  // namespace strata
