// The progress bar and the per-epoch lines of fit() (see progress.h for the two forms).
#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <utility>
#include <vector>

#include "strata/error.h"
#include "strata/train/progress_bar.h"

namespace strata::train::detail {

namespace {

constexpr double kRedrawInterval = 0.1;  // seconds: at most ~10 redraws a second
constexpr int kBarWidth = 24;

}  // namespace

std::vector<std::string> display_order(const Logs& logs) {
  std::vector<std::string> train_names, validation_names;
  for (const auto& [name, value] : logs) {
    (void)value;
    if (name == "seconds" || name == "lr" || name == "loss" || name == "val_loss") continue;
    (name.starts_with("val_") ? validation_names : train_names).push_back(name);
  }
  std::vector<std::string> order;
  if (logs.contains("loss")) order.push_back("loss");
  order.insert(order.end(), train_names.begin(), train_names.end());
  if (logs.contains("val_loss")) order.push_back("val_loss");
  order.insert(order.end(), validation_names.begin(), validation_names.end());
  if (logs.contains("lr")) order.push_back("lr");
  return order;
}

namespace {

std::string rate_text(int64_t samples, double seconds) {
  if (seconds <= 0.0) return "";
  char text[48];
  std::snprintf(text, sizeof text, "%.0f samples/s", static_cast<double>(samples) / seconds);
  return text;
}

}  // namespace

Verbosity resolve_verbosity(Verbosity verbose, const std::ostream* output) {
  if (verbose != Verbosity::Auto) return verbose;
  const bool to_stdout = output == nullptr || output == &std::cout;
  return to_stdout && isatty(STDOUT_FILENO) ? Verbosity::Bar : Verbosity::Lines;
}

std::string format_value(const std::string& name, double value) {
  char text[48];
  if (std::isnan(value)) return "nan";
  if (name == "lr" || name.ends_with("_lr")) {
    // Learning rates span decades: keep the significant digits, not four decimals.
    std::snprintf(text, sizeof text, "%.4g", value);
  } else if (value != 0.0 && std::abs(value) < 1e-3) {
    std::snprintf(text, sizeof text, "%.3e", value);
  } else {
    std::snprintf(text, sizeof text, "%.4f", value);
  }
  return text;
}

std::string format_duration(double seconds) {
  const auto total = static_cast<int64_t>(std::max(0.0, std::round(seconds)));
  const int64_t hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  char text[48];
  if (hours > 0) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(hours),
                  static_cast<long long>(minutes), static_cast<long long>(secs));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(minutes),
                  static_cast<long long>(secs));
  }
  return text;
}

double Progress::steady_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Progress::Progress(std::ostream& output, Verbosity mode, Clock clock)
    : output_(output), mode_(mode), clock_(std::move(clock)) {}

void Progress::epoch_begin(int64_t epoch, int64_t epochs, int64_t steps) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  samples_ = 0;
  epoch_start_ = clock_();
  last_draw_ = epoch_start_;
  drawn_ = false;
  last_width_ = 0;
}

std::string Progress::bar(int64_t done) const {
  std::ostringstream line;
  line << "Epoch " << epoch_ + 1 << "/" << epochs_ << " [";
  const int64_t filled = steps_ > 0 ? done * kBarWidth / steps_ : kBarWidth;
  for (int64_t i = 0; i < kBarWidth; ++i) {
    line << (i < filled ? '=' : (i == filled ? '>' : '.'));
  }
  line << "] " << done << "/" << steps_;
  return line.str();
}

void Progress::batch_end(int64_t step, int64_t samples, const std::function<Logs()>& running_logs) {
  samples_ = samples;
  if (mode_ != Verbosity::Bar) return;
  const double now = clock_();
  // The first batch is drawn at once so that a slow epoch shows something; the last is drawn
  // by epoch_end with the final numbers.
  if (drawn_ && now - last_draw_ < kRedrawInterval) return;
  if (step + 1 >= steps_ && drawn_) return;
  last_draw_ = now;
  const int64_t done = step + 1;
  std::ostringstream line;
  line << bar(done);
  const Logs logs = running_logs ? running_logs() : Logs{};
  for (const std::string& name : display_order(logs)) {
    line << "  " << name << " " << format_value(name, logs.at(name));
  }
  const double elapsed = now - epoch_start_;
  const std::string rate = rate_text(samples, elapsed);
  if (!rate.empty()) line << "  " << rate;
  if (done < steps_ && elapsed > 0.0) {
    line << "  ETA " << format_duration(elapsed / static_cast<double>(done) *
                                        static_cast<double>(steps_ - done));
  }
  draw(line.str());
}

void Progress::draw(const std::string& line) {
  // Pad over the previous draw's tail: a shorter line would otherwise leave characters behind.
  std::string padded = line;
  if (padded.size() < last_width_) padded.append(last_width_ - padded.size(), ' ');
  output_ << '\r' << padded << std::flush;
  last_width_ = line.size();
  drawn_ = true;
  ++draws_;
}

void Progress::epoch_end(const Logs& logs) {
  if (mode_ == Verbosity::Silent) return;
  const auto seconds_entry = logs.find("seconds");
  const double seconds =
      seconds_entry != logs.end() ? seconds_entry->second : clock_() - epoch_start_;
  std::ostringstream line;
  const char* separator = mode_ == Verbosity::Bar ? "  " : " - ";
  if (mode_ == Verbosity::Bar) {
    line << bar(steps_);
  } else {
    line << "Epoch " << epoch_ + 1 << "/" << epochs_ << separator << steps_ << " steps";
  }
  char time_text[32];
  std::snprintf(time_text, sizeof time_text, "%.1fs", seconds);
  line << separator << time_text;
  const std::string rate = rate_text(samples_, seconds);
  if (!rate.empty()) line << separator << rate;
  for (const std::string& name : display_order(logs)) {
    line << separator << name << " " << format_value(name, logs.at(name));
  }
  if (mode_ == Verbosity::Bar) {
    draw(line.str());
    output_ << '\n' << std::flush;
    drawn_ = false;
    last_width_ = 0;
  } else {
    output_ << line.str() << '\n' << std::flush;
  }
}

void Progress::message(const std::string& text) {
  if (mode_ == Verbosity::Silent) return;
  if (drawn_) {
    output_ << '\n';
    drawn_ = false;
    last_width_ = 0;
  }
  output_ << text << '\n' << std::flush;
}

}  // namespace strata::train::detail

namespace strata::train {

struct ProgressBar::Display {
  detail::Progress progress;
};

ProgressBar::ProgressBar(int64_t steps, ProgressBarOptions options)
    : steps_(steps), epochs_(options.epochs) {
  STRATA_CHECK(steps >= 0, "ProgressBar: steps must be non-negative, got ", steps);
  STRATA_CHECK(options.epochs >= 1, "ProgressBar: epochs must be at least 1, got ", options.epochs);
  std::ostream& output = options.output != nullptr ? *options.output : std::cout;
  display_ = std::make_unique<Display>(
      Display{detail::Progress(output, detail::resolve_verbosity(options.verbose, &output))});
}

ProgressBar::~ProgressBar() = default;

void ProgressBar::epoch_begin(int64_t epoch) {
  samples_ = 0;
  display_->progress.epoch_begin(epoch, epochs_, steps_);
}

void ProgressBar::update(int64_t step, int64_t batch_size,
                         const std::function<Logs()>& running_logs) {
  samples_ += batch_size;
  display_->progress.batch_end(step, samples_, running_logs);
}

void ProgressBar::epoch_end(const Logs& logs) { display_->progress.epoch_end(logs); }

void ProgressBar::message(const std::string& text) { display_->progress.message(text); }

}  // namespace strata::train
