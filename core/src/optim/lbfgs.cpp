// L-BFGS over the flattened parameters, with torch.optim.LBFGS's choices (so that fixtures
// from PyTorch agree): the two-loop recursion with H0 = (y·s / y·y) I, a first step of
// min(1, 1/|g|_1) * lr, history updates only when y·s > 1e-10, and the strong-Wolfe search
// of minFunc (bracketing by cubic extrapolation, then zoom by safeguarded cubic
// interpolation). Vectors stay tensors on the parameters' device; the scalars the algorithm
// branches on (losses, directional derivatives, norms) are read to the host as doubles.
// The state lives between step() calls in the first parameter's ParamState (flat buffers and
// scalars, as PyTorch keeps it under its first parameter), so the base's state dict carries it.
#include "strata/optim/lbfgs.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/ops.h"

namespace strata::optim {

namespace {

// The curvature pairs a history entry needs (y·s must exceed this, as PyTorch's test).
constexpr double kMinCurvature = 1e-10;
// Strong-Wolfe constants (Nocedal & Wright's usual choices, PyTorch's defaults).
constexpr double kArmijo = 1e-4;     // c1: sufficient decrease
constexpr double kCurvature = 0.9;   // c2: |φ'(t)| <= c2 |φ'(0)|
constexpr int64_t kMaxLineSearchIterations = 25;

Tensor dot(const Tensor& a, const Tensor& b) { return (a * b).sum(); }
double dot_value(const Tensor& a, const Tensor& b) { return dot(a, b).item<double>(); }
double max_abs(const Tensor& t) { return t.abs().max().item<double>(); }

// "<base>.<index>": the name of history entry `index`.
// NOTE: built by append, not "a" + std::string: GCC 12 warns (-Wrestrict) on the latter.
std::string indexed(const char* base, size_t index) {
  std::string name(base);
  name.append(".").append(std::to_string(index));
  return name;
}

// A scalar of `state`, or `fallback` when absent.
double scalar_or(const ParamState& state, const std::string& name, double fallback) {
  const auto it = state.scalars.find(name);
  return it == state.scalars.end() ? fallback : it->second;
}

// Cubic interpolation of two points with function values and derivatives: the minimizer of
// the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (default: the interval
// between the points); the middle of the bounds when the cubic has no minimizer.
double cubic_minimizer(double x1, double f1, double g1, double x2, double f2, double g2,
                       std::optional<std::pair<double, double>> bounds = std::nullopt) {
  const auto [low, high] = bounds ? *bounds : (x1 <= x2 ? std::pair{x1, x2} : std::pair{x2, x1});
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (!(d2_square >= 0)) return (low + high) / 2.0;
  const double d2 = std::sqrt(d2_square);
  const double minimizer = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                    : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
  // NOTE: std::min/max keep the first argument on ties and NaN, as Python's min/max do.
  return std::min(std::max(minimizer, low), high);
}

// A point of the line search: step length, loss, flat gradient, directional derivative.
struct LinePoint {
  double t = 0.0;
  double f = 0.0;
  Tensor g;
  double gtd = 0.0;
};

struct LineSearchResult {
  double f;
  Tensor g;
  double t;
  int64_t evals;
};

// The strong-Wolfe line search along d from (f, g, gtd = g·d) starting at step t; `evaluate`
// returns the loss and flat gradient at x + t d (leaving the parameters at x).
template <typename Evaluate>
LineSearchResult strong_wolfe(const Evaluate& evaluate, double t, const Tensor& d, double f,
                              const Tensor& g, double gtd, double tolerance_change) {
  const double d_norm = max_abs(d);
  double f_new;
  Tensor g_new;
  std::tie(f_new, g_new) = evaluate(t);
  int64_t evals = 1;
  double gtd_new = dot_value(g_new, d);

  // Phase 1: grow the step until it brackets a point meeting the conditions (or meets them).
  LinePoint previous{0.0, f, g, gtd};
  LinePoint bracket[2];
  int bracket_size = 0;
  bool done = false;
  int64_t iteration = 0;
  while (iteration < kMaxLineSearchIterations) {
    if (f_new > f + kArmijo * t * gtd || (iteration > 1 && f_new >= previous.f)) {
      bracket[0] = previous;
      bracket[1] = {t, f_new, g_new, gtd_new};
      bracket_size = 2;
      break;
    }
    if (std::abs(gtd_new) <= -kCurvature * gtd) {
      bracket[0] = {t, f_new, g_new, gtd_new};
      bracket_size = 1;
      done = true;
      break;
    }
    if (gtd_new >= 0) {
      bracket[0] = previous;
      bracket[1] = {t, f_new, g_new, gtd_new};
      bracket_size = 2;
      break;
    }
    // Extrapolate: the cubic's minimizer, kept within [t + 0.01 (t - t_prev), 10 t].
    const double min_step = t + 0.01 * (t - previous.t);
    const double max_step = t * 10;
    const double current = t;
    t = cubic_minimizer(previous.t, previous.f, previous.gtd, t, f_new, gtd_new,
                        std::pair{min_step, max_step});
    previous = {current, f_new, g_new, gtd_new};
    std::tie(f_new, g_new) = evaluate(t);
    ++evals;
    gtd_new = dot_value(g_new, d);
    ++iteration;
  }
  if (iteration == kMaxLineSearchIterations) {
    // Out of evaluations: fall back to the interval from the start to the last step.
    bracket[0] = {0.0, f, g, gtd};
    bracket[1] = {t, f_new, g_new, gtd_new};
    bracket_size = 2;
  }

  // Phase 2 (zoom): shrink the bracket by interpolation until a point meets the conditions.
  const auto order = [&] {
    return bracket[0].f <= bracket[bracket_size - 1].f ? std::pair{0, 1} : std::pair{1, 0};
  };
  auto [low, high] = order();
  bool insufficient_progress = false;
  while (!done && iteration < kMaxLineSearchIterations) {
    if (std::abs(bracket[1].t - bracket[0].t) * d_norm < tolerance_change) break;
    t = cubic_minimizer(bracket[0].t, bracket[0].f, bracket[0].gtd, bracket[1].t, bracket[1].f,
                        bracket[1].gtd);
    // A trial too near an end of the bracket makes little progress: the second time in a row
    // (or when it lands on an end), move it to 10% of the bracket's length inside.
    const double upper = std::max(bracket[0].t, bracket[1].t);
    const double lower = std::min(bracket[0].t, bracket[1].t);
    const double margin = 0.1 * (upper - lower);
    if (std::min(upper - t, t - lower) < margin) {
      if (insufficient_progress || t >= upper || t <= lower) {
        t = std::abs(t - upper) < std::abs(t - lower) ? upper - margin : lower + margin;
        insufficient_progress = false;
      } else {
        insufficient_progress = true;
      }
    } else {
      insufficient_progress = false;
    }

    std::tie(f_new, g_new) = evaluate(t);
    ++evals;
    gtd_new = dot_value(g_new, d);
    ++iteration;

    if (f_new > f + kArmijo * t * gtd || f_new >= bracket[low].f) {
      // Not a sufficient decrease, or no better than the low end: the new high end.
      bracket[high] = {t, f_new, g_new, gtd_new};
      std::tie(low, high) = order();
    } else {
      if (std::abs(gtd_new) <= -kCurvature * gtd) {
        done = true;
      } else if (gtd_new * (bracket[high].t - bracket[low].t) >= 0) {
        // The minimizer lies between the low end and the new point: the low end becomes high.
        bracket[high] = bracket[low];
      }
      bracket[low] = {t, f_new, g_new, gtd_new};
    }
  }
  return {bracket[low].f, bracket[low].g, bracket[low].t, evals};
}

// The parameters of the one group seen as one flat vector.
class FlatParams {
 public:
  explicit FlatParams(const std::vector<Tensor>& params) : params_(params) {
    int64_t offset = 0;
    for (const Tensor& p : params_) {
      offsets_.push_back(offset);
      offset += p.numel();
    }
    numel_ = offset;
  }

  int64_t numel() const { return numel_; }

  // A copy of the parameters' values, concatenated.
  Tensor values() const {
    std::vector<Tensor> pieces;
    for (const Tensor& p : params_) pieces.push_back(p.reshape({-1}));
    return cat(pieces, 0);
  }

  // The gradients, concatenated; zeros for a parameter without one (as PyTorch).
  Tensor gradient() const {
    std::vector<Tensor> pieces;
    for (const Tensor& p : params_) {
      const Tensor& g = p.grad();
      if (!g.defined()) {
        pieces.push_back(zeros({p.numel()}, p.options()));
        continue;
      }
      STRATA_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
                   "LBFGS: the gradient ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " ",
                   g.device().str(), " does not match its parameter ", shape_str(p.shape()), " ",
                   dtype_name(p.dtype()), " ", p.device().str());
      pieces.push_back(g.reshape({-1}));
    }
    return cat(pieces, 0);
  }

  // Parameter i's piece of a flat vector, in the parameter's shape (a view).
  Tensor piece(const Tensor& flat, size_t i) const {
    return flat.slice(0, offsets_[i], offsets_[i] + params_[i].numel()).view(params_[i].shape());
  }

  // p += step * direction.
  void add(double step, const Tensor& direction) {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].add_(piece(direction, i), step);
  }

  void assign(const Tensor& flat) {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].copy_(piece(flat, i));
  }

 private:
  std::vector<Tensor> params_;
  std::vector<int64_t> offsets_;  // where each parameter starts in the flat vector
  int64_t numel_ = 0;
};

// What L-BFGS carries from one step() to the next (lbfgs.h lists its stored form).
struct LBFGSState {
  int64_t n_iter = 0;
  int64_t func_evals = 0;
  Tensor d, prev_flat_grad;
  double t = 0.0, h_diag = 1.0, prev_loss = 0.0;
  std::vector<Tensor> old_dirs, old_stps;  // y and s, oldest first
  std::vector<double> ro;                  // 1 / (y·s)
};

}  // namespace

LBFGS::LBFGS(std::vector<ParamGroup> groups, const LBFGSOptions& o)
    : Optimizer("LBFGS", {{"lr", o.lr},
                          {"max_iter", static_cast<double>(o.max_iter)},
                          {"max_eval", static_cast<double>(o.max_eval)},
                          {"tolerance_grad", o.tolerance_grad},
                          {"tolerance_change", o.tolerance_change},
                          {"history_size", static_cast<double>(o.history_size)},
                          {"line_search", o.line_search == LineSearch::StrongWolfe ? 1.0 : 0.0}}) {
  add_param_groups(std::move(groups));
}

void LBFGS::validate(const ParamGroup& group, size_t index) const {
  STRATA_CHECK(index == 0, "LBFGS: supports one parameter group only, got a second one "
               "(parameter group ", index, ")");
  Optimizer::validate(group, index);
  auto check_count = [&](const char* option, double minimum) {
    const double value = group.get(option);
    STRATA_CHECK(value >= minimum && std::floor(value) == value, "LBFGS: ", option,
                 " must be an integer >= ", minimum, ", got ", value);
  };
  check_count("max_iter", 1);
  check_count("max_eval", 0);
  check_count("history_size", 1);
  for (const char* option : {"tolerance_grad", "tolerance_change"}) {
    STRATA_CHECK(group.get(option) >= 0.0, "LBFGS: ", option, " must be >= 0, got ",
                 group.get(option));
  }
  const double line_search = group.get("line_search");
  STRATA_CHECK(line_search == 0.0 || line_search == 1.0,
               "LBFGS: line_search must be 0 (none) or 1 (strong Wolfe), got ", line_search);
  const Tensor& first = group.params.front();
  for (size_t i = 1; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    STRATA_CHECK(p.dtype() == first.dtype() && p.device() == first.device(),
                 "LBFGS: every parameter must share one dtype and device; parameter 0 is ",
                 shape_str(first.shape()), " ", dtype_name(first.dtype()), " ",
                 first.device().str(), ", parameter ", i, " is ", shape_str(p.shape()), " ",
                 dtype_name(p.dtype()), " ", p.device().str());
  }
}

void LBFGS::update(ParamGroup& /*group*/) {
  STRATA_ASSERT(false, "LBFGS::update is unused: LBFGS::step does the work");
}

int64_t LBFGS::func_evals() const {
  return static_cast<int64_t>(
      scalar_or(state(param_groups().front().params.front()), "func_evals", 0.0));
}

int64_t LBFGS::n_iter() const { return state(param_groups().front().params.front()).step; }

Tensor LBFGS::step(const Closure& closure) {
  STRATA_CHECK(closure != nullptr,
               "LBFGS: step() needs a closure that zeroes the gradients, computes the loss, "
               "calls backward() and returns the loss (L-BFGS evaluates it several times)");
  // validate() refuses a second group, but param_groups() is open to direct edits.
  STRATA_CHECK(param_groups().size() == 1, "LBFGS: supports one parameter group only, has ",
               param_groups().size());
  const ParamGroup& group = param_groups().front();
  const double lr = group.get("lr");
  const auto max_iter = static_cast<int64_t>(group.get("max_iter"));
  auto max_eval = static_cast<int64_t>(group.get("max_eval"));
  if (max_eval == 0) max_eval = max_iter * 5 / 4;
  const double tolerance_grad = group.get("tolerance_grad");
  const double tolerance_change = group.get("tolerance_change");
  const auto history_size = static_cast<size_t>(group.get("history_size"));
  const bool strong_wolfe_search = group.get("line_search") != 0.0;

  const std::vector<Tensor>& params = group.params;
  FlatParams flat(params);
  NoGradGuard no_grad;
  auto evaluate_loss = [&]() -> Tensor {
    Tensor loss;
    {
      EnableGradGuard grad_enabled;
      loss = closure();
    }
    STRATA_CHECK(loss.defined() && loss.numel() == 1,
                 "LBFGS: the closure must return the loss as a one-element tensor, got ",
                 loss.defined() ? shape_str(loss.shape()) : std::string("an undefined tensor"));
    return loss;
  };

  // The state as the last step() left it, under the first parameter.
  LBFGSState s;
  ParamState& head = state_of(params.front());
  s.n_iter = head.step;
  s.func_evals = static_cast<int64_t>(scalar_or(head, "func_evals", 0.0));
  auto buffer = [&](const std::string& name) {
    const auto it = head.buffers.find(name);
    STRATA_CHECK(it != head.buffers.end() && it->second.dim() == 1 &&
                     it->second.numel() == flat.numel(),
                 "LBFGS: the state lacks \"", name, "\" of ", flat.numel(), " elements (a state",
                 " dict of another optimizer or of other parameters?)");
    return it->second;
  };
  if (s.n_iter > 0) {
    s.d = buffer("d");
    s.prev_flat_grad = buffer("prev_flat_grad");
    s.t = scalar_or(head, "t", 0.0);
    s.h_diag = scalar_or(head, "H_diag", 1.0);
    s.prev_loss = scalar_or(head, "prev_loss", 0.0);
    const auto history = static_cast<size_t>(scalar_or(head, "history", 0.0));
    for (size_t j = 0; j < history; ++j) {
      s.old_dirs.push_back(buffer(indexed("old_dirs", j)));
      s.old_stps.push_back(buffer(indexed("old_stps", j)));
      s.ro.push_back(scalar_or(head, indexed("ro", j), 0.0));
    }
  }
  auto store = [&] {
    head.step = s.n_iter;
    head.buffers.clear();
    head.scalars.clear();
    head.scalars["func_evals"] = static_cast<double>(s.func_evals);
    if (s.n_iter == 0) return;  // stopped before the first iteration: nothing but the count
    head.buffers["d"] = s.d;
    head.buffers["prev_flat_grad"] = s.prev_flat_grad;
    for (size_t j = 0; j < s.old_dirs.size(); ++j) {
      head.buffers[indexed("old_dirs", j)] = s.old_dirs[j];
      head.buffers[indexed("old_stps", j)] = s.old_stps[j];
      head.scalars[indexed("ro", j)] = s.ro[j];
    }
    head.scalars["t"] = s.t;
    head.scalars["H_diag"] = s.h_diag;
    head.scalars["prev_loss"] = s.prev_loss;
    head.scalars["history"] = static_cast<double>(s.old_dirs.size());
  };

  const Tensor orig_loss = evaluate_loss();
  double loss = orig_loss.item<double>();
  int64_t current_evals = 1;
  ++s.func_evals;
  Tensor flat_grad = flat.gradient();
  bool optimal = max_abs(flat_grad) <= tolerance_grad;
  if (optimal) {
    store();
    return orig_loss;
  }

  int64_t n_iter = 0;
  while (n_iter < max_iter) {
    ++n_iter;
    ++s.n_iter;

    // ---- the direction: -H g by the two-loop recursion (steepest descent at the start) ----
    if (s.n_iter == 1) {
      s.d = flat_grad.neg();
      s.old_dirs.clear();
      s.old_stps.clear();
      s.ro.clear();
      s.h_diag = 1.0;
    } else {
      const Tensor y = flat_grad - s.prev_flat_grad;
      const Tensor step_taken = s.d * s.t;
      const double ys = dot_value(y, step_taken);
      if (ys > kMinCurvature) {  // keeps H positive definite; skip the pair otherwise
        if (s.old_dirs.size() == history_size) {
          s.old_dirs.erase(s.old_dirs.begin());
          s.old_stps.erase(s.old_stps.begin());
          s.ro.erase(s.ro.begin());
        }
        s.old_dirs.push_back(y);
        s.old_stps.push_back(step_taken);
        s.ro.push_back(1.0 / ys);
        s.h_diag = ys / dot_value(y, y);
      }
      const size_t count = s.old_dirs.size();
      std::vector<Tensor> alpha(count);  // 0-d tensors: no host read inside the loops
      Tensor q = flat_grad.neg();
      for (size_t i = count; i-- > 0;) {
        alpha[i] = dot(s.old_stps[i], q) * s.ro[i];
        q = q - s.old_dirs[i] * alpha[i];
      }
      Tensor r = q * s.h_diag;
      for (size_t i = 0; i < count; ++i) {
        const Tensor beta = dot(s.old_dirs[i], r) * s.ro[i];
        r = r + s.old_stps[i] * (alpha[i] - beta);
      }
      s.d = r;
    }
    s.prev_flat_grad = flat_grad.clone();
    s.prev_loss = loss;

    // ---- the step length ----
    if (s.n_iter == 1) {
      s.t = std::min(1.0, 1.0 / flat_grad.abs().sum().item<double>()) * lr;
    } else {
      s.t = lr;
    }
    const double gtd = dot_value(flat_grad, s.d);
    if (gtd > -tolerance_change) break;  // not a descent direction (to tolerance)

    int64_t line_evals = 0;
    if (strong_wolfe_search) {
      const Tensor x_init = flat.values();
      auto evaluate_at = [&](double t) {
        flat.add(t, s.d);
        const double f = evaluate_loss().item<double>();
        Tensor g = flat.gradient();
        flat.assign(x_init);
        return std::pair{f, g};
      };
      LineSearchResult result =
          strong_wolfe(evaluate_at, s.t, s.d, loss, flat_grad, gtd, tolerance_change);
      loss = result.f;
      flat_grad = result.g;
      s.t = result.t;
      line_evals = result.evals;
      flat.add(s.t, s.d);
      optimal = max_abs(flat_grad) <= tolerance_grad;
    } else {
      flat.add(s.t, s.d);
      if (n_iter != max_iter) {
        // The last iteration's loss is not needed: skip the evaluation (as PyTorch).
        loss = evaluate_loss().item<double>();
        flat_grad = flat.gradient();
        optimal = max_abs(flat_grad) <= tolerance_grad;
        line_evals = 1;
      }
    }
    current_evals += line_evals;
    s.func_evals += line_evals;

    // ---- termination ----
    if (n_iter == max_iter || current_evals >= max_eval || optimal) break;
    if (max_abs(s.d * s.t) <= tolerance_change) break;  // the step no longer moves x
    if (std::abs(loss - s.prev_loss) < tolerance_change) break;
  }
  store();
  return orig_loss;
}

}  // namespace strata::optim
