// The HTML training report: one self-contained file (inline CSS and inline SVG; no script, no
// external resource, so it opens anywhere, offline, and can be mailed or archived) with the
// final metrics, the training and validation curves per epoch, the confusion matrix with
// per-class precision / recall / F1, the per-epoch values, the configuration and the timings.
//
//   train::ReportData report{.title = "mnist_cnn", .config = {{"optimizer", "adam"}}};
//   report.history = {{"loss", {0.61, 0.42}}, {"val_loss", {0.48, 0.40}}};
//   train::write_html_report("out/report.html", report);
//
// Every user string is escaped; the file is written atomically (temporary file, rename).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "strata/tensor.h"

namespace strata::train {

struct ReportData {
  std::string title = "Training report";
  // A line under the title (model, data set, date: whatever the caller wants said).
  std::string subtitle;
  // Settings in the order given ("optimizer" -> "Adam", "lr" -> "0.001", ...).
  std::vector<std::pair<std::string, std::string>> config;
  // Per-epoch series by name, as a training history holds them: "loss", "val_loss",
  // "accuracy", "val_accuracy", any other metric and its "val_" twin, "lr", "seconds".
  // A name and its "val_" twin share one chart; "lr" gets a log axis; "seconds" only appears
  // in the table. Series may be shorter than the longest (missing values show as blanks).
  std::map<std::string, std::vector<double>> history;
  int64_t first_epoch = 1;  // the number of the first entry of every series
  // Final metrics on the test set (or whatever the caller measured last), in order.
  std::vector<std::pair<std::string, double>> test_metrics;
  // Optional: a square count matrix [C, C], rows = true class (any dtype and device), and a
  // name per class (empty: the indices).
  Tensor confusion_matrix;
  std::vector<std::string> class_names;
  // Durations in seconds, in order ("training" -> 14.2, "evaluation" -> 0.8).
  std::vector<std::pair<std::string, double>> timings;
};

// The report as HTML text.
std::string html_report(const ReportData& data);

// Writes html_report(data) to `path` atomically; throws strata::Error naming the file when it
// cannot be written, or when the data are inconsistent (a confusion matrix that is not square,
// class names that do not match it).
void write_html_report(const std::string& path, const ReportData& data);

}  // namespace strata::train
