// The progress display of fit() and evaluate() (internal). Two forms:
//   - the bar, for a terminal: one line redrawn in place with '\r' (at most ~10 times a
//     second), padded with spaces over what the previous draw left, ended by '\n' at the
//     epoch's end;
//   - lines, for logs and pipes: nothing while an epoch runs, one line when it ends.
// The numbers shown while an epoch runs are read only when a redraw is due (reading them
// synchronizes with the device), through the callback passed to batch_end().
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "strata/train/fit.h"

namespace strata::train::detail {

// The form `verbose` asks for, with Auto settled: Bar when `output` is std::cout and stdout
// is a terminal, else Lines.
Verbosity resolve_verbosity(Verbosity verbose, const std::ostream* output);

// The names of `logs` in the order they are shown: "loss", the training metrics by name, then
// "val_loss" and the validation metrics, then "lr"; "seconds" is left out (it is shown as the
// epoch's time).
std::vector<std::string> display_order(const Logs& logs);

// "0.4321", "1.234e-05", "nan": how a logged number is printed.
std::string format_value(const std::string& name, double value);
// "0:05", "1:02:03".
std::string format_duration(double seconds);

class Progress {
 public:
  // Seconds from an arbitrary origin; tests pass a fake clock.
  using Clock = std::function<double()>;
  static double steady_seconds();

  // `mode` is Silent, Lines or Bar (resolve Auto first).
  Progress(std::ostream& output, Verbosity mode, Clock clock = steady_seconds);

  void epoch_begin(int64_t epoch, int64_t epochs, int64_t steps);
  // After batch `step` (0-based), `samples` examples into the epoch. `running_logs` gives the
  // epoch's numbers so far; it is called only when the bar is redrawn.
  void batch_end(int64_t step, int64_t samples, const std::function<Logs()>& running_logs);
  // The epoch's final logs ("seconds" and "lr" included when present).
  void epoch_end(const Logs& logs);
  // A whole-line message (EarlyStopping's note, evaluate()'s summary).
  void message(const std::string& text);

  int64_t draws() const { return draws_; }

 private:
  void draw(const std::string& line);
  std::string bar(int64_t done) const;

  std::ostream& output_;
  Verbosity mode_;
  Clock clock_;
  int64_t epoch_ = 0, epochs_ = 0, steps_ = 0;
  int64_t samples_ = 0;
  double epoch_start_ = 0.0;
  double last_draw_ = 0.0;
  bool drawn_ = false;  // whether the current line holds a bar
  size_t last_width_ = 0;
  int64_t draws_ = 0;
};

}  // namespace strata::train::detail
