// The progress display of fit(), for hand-written training loops (Keras's Progbar): a bar
// redrawn in place on a terminal, or one line per epoch in a log, with the epoch's numbers, the
// rate and the time left.
//
//   train::ProgressBar bar(steps_per_epoch, {.epochs = 5});
//   for (int64_t epoch = 0; epoch < 5; ++epoch) {
//     bar.epoch_begin(epoch);
//     for (int64_t step = 0; step < steps_per_epoch; ++step) {
//       ...                                                  // one training step
//       bar.update(step, batch_size, [&] { return train::Logs{{"loss", running_loss}}; });
//     }
//     bar.epoch_end({{"loss", epoch_loss}, {"val_loss", val_loss}});
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "strata/train/fit.h"

namespace strata::train {

struct ProgressBarOptions {
  int64_t epochs = 1;                   // shown as "Epoch 3/epochs"
  Verbosity verbose = Verbosity::Auto;  // as fit()'s: a bar on a terminal, else lines
  std::ostream* output = nullptr;       // null: std::cout
};

class ProgressBar {
 public:
  // `steps`: the batches of one epoch.
  explicit ProgressBar(int64_t steps, ProgressBarOptions options = {});
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Starts epoch `epoch` (from 0), and its clock.
  void epoch_begin(int64_t epoch);
  // After batch `step` (from 0) of `batch_size` examples. `running_logs` gives the numbers to
  // show so far; it is called only when the bar is redrawn (at most about ten times a
  // second), so reading a device tensor there costs little.
  void update(int64_t step, int64_t batch_size,
              const std::function<Logs()>& running_logs = nullptr);
  // Ends the epoch with its final numbers ("seconds" is measured when not given).
  void epoch_end(const Logs& logs = {});
  // A line of its own, after the bar.
  void message(const std::string& text);

 private:
  struct Display;  // fit()'s display, kept out of this header
  int64_t steps_;
  int64_t epochs_;
  int64_t samples_ = 0;
  std::unique_ptr<Display> display_;
};

}  // namespace strata::train
