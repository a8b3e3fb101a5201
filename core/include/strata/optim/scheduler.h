// Learning-rate schedulers, as torch.optim.lr_scheduler has them. A scheduler sets the "lr" of
// every group of an optimizer once per step(); constructing it already sets the lr of step 0.
// Call it after the optimizer's step:
//
//   optim::SGD opt(model.parameters(), {.lr = 0.1, .momentum = 0.9});
//   optim::StepLR scheduler(opt, /*step_size=*/30, /*gamma=*/0.1);
//   for (int epoch = 0; epoch < 90; ++epoch) {
//     train_one_epoch(model, opt);
//     scheduler.step();
//   }
//
// The rules they keep, PyTorch's:
// - Base lrs: a group's "initial_lr" option when it has one (a scheduler built earlier on the
//   same optimizer put it there), else its "lr", which is then stored as "initial_lr".
// - StepLR, MultiStepLR, ExponentialLR, LinearLR and CosineAnnealingLR update the group's
//   current lr (PyTorch's chainable form), so two of them stepped together compose (warm-up
//   times decay) and an lr changed from outside carries on. CosineAnnealingWarmRestarts and
//   OneCycleLR compute the lr from the base lrs alone.
// - state_dict() is a flat name -> tensor map like the optimizer's; load_state_dict() restores
//   the scheduler and sets every group's lr to the last lr the scheduler set.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "strata/optim/optimizer.h"
#include "strata/tensor.h"

namespace strata::optim {

// A scheduler's state: "last_epoch" (int64 scalar), "base_lrs" and "last_lr" (float64 [groups]),
// and the scheduler's own values (float64 scalars or [groups]) under their PyTorch names.
using SchedulerStateDict = std::map<std::string, Tensor>;

// The base of the epoch-driven schedulers. last_epoch() counts the steps taken, 0 after
// construction.
class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  // Advances one step and sets every group's lr.
  virtual void step();

  // The lr of every group as this scheduler last set it.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  int64_t last_epoch() const { return last_epoch_; }
  Optimizer& optimizer() const { return optimizer_; }
  const std::string& name() const { return name_; }

  SchedulerStateDict state_dict() const;
  // Restores a state_dict() of the same kind of scheduler over an optimizer with as many
  // groups; throws strata::Error naming the missing or mismatched entry, and then changes
  // nothing.
  void load_state_dict(const SchedulerStateDict& dict);

 protected:
  // `name` names the scheduler in errors. Reads (and records) the base lrs; the derived
  // constructor validates its arguments and then calls initial_step(), since step() needs
  // the derived class's lrs_at().
  LRScheduler(std::string name, Optimizer& optimizer);

  // Step 0: what PyTorch's constructor does.
  void initial_step();
  // The lr of every group at `epoch` (last_epoch() + 1 during step()); may read the groups'
  // current lrs (the chainable form) and may set other options (OneCycleLR's momentum).
  virtual std::vector<double> lrs_at(int64_t epoch) = 0;
  // Sets the groups' lrs and records them as the last lrs, at `epoch`.
  void apply(int64_t epoch, const std::vector<double>& lrs);
  double group_lr(size_t group) const;
  size_t group_count() const { return optimizer_.param_groups().size(); }

  // The derived class's own entries: save_extra adds them, check_extra throws when one is
  // missing or has the wrong shape, load_extra reads them (after every check has passed).
  virtual void save_extra(SchedulerStateDict& dict) const { (void)dict; }
  virtual void check_extra(const SchedulerStateDict& dict) const { (void)dict; }
  virtual void load_extra(const SchedulerStateDict& dict) { (void)dict; }

  std::string name_;
  Optimizer& optimizer_;
  std::vector<double> base_lrs_;
  int64_t last_epoch_ = -1;
  std::vector<double> last_lr_;
};

// lr * gamma every step_size steps: base_lr * gamma^(epoch / step_size).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr * gamma at each milestone (a milestone listed k times multiplies by gamma^k); the
// milestones need not be sorted.
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// lr * gamma every step: base_lr * gamma^epoch.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  double gamma_;
};

// Half a cosine from base_lr down to eta_min over t_max steps (SGDR without restarts):
//   eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2.
// Past t_max the cosine goes on (back up to base_lr at 2 * t_max), as PyTorch's does.
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0.0);

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// SGDR (Loshchilov & Hutter): the cosine of CosineAnnealingLR restarted at base_lr every
// period; the first period is t_0 steps, each next one t_mult times longer.
class CosineAnnealingWarmRestarts : public LRScheduler {
 public:
  CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t t_0, int64_t t_mult = 1,
                              double eta_min = 0.0);

  void step() override;
  // Jumps to `epoch`, which may be fractional (step(epoch + batch / batches) within an
  // epoch); a later step() goes on from floor(epoch) + 1 within the same period.
  void step(double epoch);

  double t_cur() const { return t_cur_; }
  int64_t t_i() const { return t_i_; }

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  int64_t t_0_, t_mult_;
  double eta_min_;
  int64_t t_i_;  // the length of the current period
  double t_cur_ = 0.0;  // steps since the last restart
};

struct LinearLROptions {
  double start_factor = 1.0 / 3.0, end_factor = 1.0;
  int64_t total_iters = 5;
};
// Linear warm-up (or decay): the factor on base_lr goes from start_factor at step 0 to
// end_factor at total_iters, and stays there.
class LinearLR : public LRScheduler {
 public:
  explicit LinearLR(Optimizer& optimizer, const LinearLROptions& options = {});

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  LinearLROptions options_;
};

enum class AnnealStrategy { Cos, Linear };

struct OneCycleLROptions {
  double pct_start = 0.3;  // the fraction of total_steps spent increasing the lr
  AnnealStrategy anneal_strategy = AnnealStrategy::Cos;
  // Cycle the group's "beta1" (Adam family) or else its "momentum" inversely to the lr,
  // between max_momentum and base_momentum.
  bool cycle_momentum = true;
  double base_momentum = 0.85, max_momentum = 0.95;
  double div_factor = 25.0;         // initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;    // min_lr = initial_lr / final_div_factor
  // Three phases (up to max_lr, back down to initial_lr, then down to min_lr) instead of two
  // (up to max_lr, then down to min_lr).
  bool three_phase = false;
};
// The 1cycle policy (Smith & Topin): the lr rises from max_lr / div_factor to max_lr over
// pct_start of total_steps, then anneals to a far smaller min_lr, while the momentum does the
// opposite. Steps past total_steps throw.
class OneCycleLR : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, double max_lr, int64_t total_steps,
             const OneCycleLROptions& options = {});
  // One max_lr per group.
  OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, int64_t total_steps,
             const OneCycleLROptions& options = {});

  int64_t total_steps() const { return total_steps_; }

 protected:
  std::vector<double> lrs_at(int64_t epoch) override;
  void save_extra(SchedulerStateDict& dict) const override;
  void check_extra(const SchedulerStateDict& dict) const override;
  void load_extra(const SchedulerStateDict& dict) override;

 private:
  // One phase runs from the previous phase's end_step to its own (a fraction, as PyTorch
  // computes it), moving the lr and the momentum between these levels.
  enum class LrLevel { Initial, Max, Min };
  enum class MomentumLevel { Base, Max };
  struct Phase {
    double end_step;
    LrLevel start_lr, end_lr;
    MomentumLevel start_momentum, end_momentum;
  };
  void make_phases();
  double anneal(double start, double end, double pct) const;
  double lr_level(LrLevel level, size_t group) const;
  double momentum_level(MomentumLevel level, size_t group) const;

  int64_t total_steps_;
  OneCycleLROptions options_;
  std::vector<Phase> phases_;
  std::vector<double> max_lrs_, min_lrs_, max_momentums_, base_momentums_;
  std::string momentum_option_;  // "beta1", "momentum", or empty when not cycling
};

enum class PlateauMode { Min, Max };
enum class ThresholdMode { Rel, Abs };

struct ReduceLROnPlateauOptions {
  PlateauMode mode = PlateauMode::Min;  // Min: the metric should fall (a loss); Max: rise
  double factor = 0.1;                  // new_lr = lr * factor
  int64_t patience = 10;                // bad steps tolerated before reducing
  double threshold = 1e-4;              // how much better counts as better
  ThresholdMode threshold_mode = ThresholdMode::Rel;
  int64_t cooldown = 0;                 // steps after a reduction in which bad steps don't count
  double min_lr = 0.0;                  // for every group, unless min_lrs is given
  std::vector<double> min_lrs = {};     // one per group
  double eps = 1e-8;                    // a reduction smaller than eps is skipped
};
// Reduces every group's lr by `factor` when a metric has not improved for `patience` steps
// (PyTorch's ReduceLROnPlateau). "Better" in Min mode with Rel threshold is
// metric < best * (1 - threshold); with Abs, metric < best - threshold (Max mirrors it).
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, const ReduceLROnPlateauOptions& options = {});
  ReduceLROnPlateau(const ReduceLROnPlateau&) = delete;
  ReduceLROnPlateau& operator=(const ReduceLROnPlateau&) = delete;

  // One step with this step's metric (a validation loss, an accuracy).
  void step(double metric);

  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }
  Optimizer& optimizer() const { return optimizer_; }

  // "last_epoch", "best", "num_bad_epochs", "cooldown_counter", "last_lr" and the options.
  SchedulerStateDict state_dict() const;
  void load_state_dict(const SchedulerStateDict& dict);

 private:
  bool is_better(double metric) const;

  Optimizer& optimizer_;
  ReduceLROnPlateauOptions options_;  // min_lrs filled in for every group
  int64_t last_epoch_ = 0;
  double best_;
  int64_t num_bad_epochs_ = 0;
  int64_t cooldown_counter_ = 0;
  std::vector<double> last_lr_;
};

}  // namespace strata::optim
