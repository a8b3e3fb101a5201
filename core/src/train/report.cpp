// The HTML training report (see train/report.h). The page is assembled as text: sections in
// a fixed order, charts from strata::plot inlined as SVG elements. The rule kept here: every
// string that came from the caller goes through escape_xml before it reaches the page, and
// numbers are printed with a fixed format so that two reports of the same run are identical.
#include "strata/train/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "internal.h"
#include "strata/plot/svg_chart.h"
#include "strata/train/metrics.h"
#include "strata/version.h"

namespace strata::train {

namespace {

using plot::escape_xml;

constexpr const char* kValidationPrefix = "val_";
constexpr const char* kTrainingColor = "#4e79a7";
constexpr const char* kValidationColor = "#f28e2b";

// Six significant digits: enough to tell epochs apart, short enough for a table.
std::string number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return buffer;
}

std::string seconds_text(double seconds) {
  char buffer[48];
  if (seconds >= 60.0) {
    std::snprintf(buffer, sizeof buffer, "%.1f s (%dm %02ds)", seconds,
                  static_cast<int>(seconds / 60.0), static_cast<int>(std::fmod(seconds, 60.0)));
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3g s", seconds);
  }
  return buffer;
}

// Series that belong in the table but make no useful chart.
bool is_table_only(const std::string& name) { return name == "seconds" || name == "epoch"; }

// The chart names, in reading order: loss, accuracy, the other metrics by name, then lr.
// A validation series "val_x" belongs to the chart "x" (even when "x" itself is absent).
std::vector<std::string> chart_names(const std::map<std::string, std::vector<double>>& history) {
  std::set<std::string> bases;
  for (const auto& [name, values] : history) {
    const std::string base =
        name.starts_with(kValidationPrefix) ? name.substr(std::string(kValidationPrefix).size())
                                             : name;
    if (!is_table_only(base) && !base.empty()) bases.insert(base);
  }
  const auto rank = [](const std::string& name) {
    if (name == "loss") return 0;
    if (name == "accuracy" || name == "acc") return 1;
    if (name == "lr") return 3;
    return 2;
  };
  std::vector<std::string> names(bases.begin(), bases.end());
  std::stable_sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    return rank(a) < rank(b);
  });
  return names;
}

size_t longest_series(const ReportData& data) {
  size_t epochs = 0;
  for (const auto& [name, values] : data.history) epochs = std::max(epochs, values.size());
  return epochs;
}

plot::Series epoch_series(const std::string& label, const std::vector<double>& values,
                          int64_t first_epoch) {
  plot::Series series{label, {}, values};
  for (size_t i = 0; i < values.size(); ++i) {
    series.x.push_back(static_cast<double>(first_epoch) + static_cast<double>(i));
  }
  return series;
}

std::string chart_of(const std::string& base, const ReportData& data) {
  std::vector<plot::Series> series;
  const auto training = data.history.find(base);
  const auto validation = data.history.find(kValidationPrefix + base);
  bool all_positive = true;
  size_t points = 0;
  for (const auto& found : {training, validation}) {
    if (found == data.history.end()) continue;
    for (const double v : found->second) all_positive = all_positive && v > 0.0;
    points = std::max(points, found->second.size());
  }
  plot::LineChartOptions options;
  if (training != data.history.end()) {
    // Alone, the series is named after its metric; beside validation, it is "training".
    const bool paired = validation != data.history.end();
    series.push_back(epoch_series(paired ? "training" : base, training->second, data.first_epoch));
    options.styles.push_back({kTrainingColor, false});
  }
  if (validation != data.history.end()) {
    series.push_back(epoch_series("validation", validation->second, data.first_epoch));
    options.styles.push_back({kValidationColor, true});
  }
  options.title = base;
  options.x_label = "epoch";
  options.y_label = base;
  // A learning rate changes by factors, so its steps read best on a log axis.
  options.log_y = base == "lr" && all_positive;
  options.integer_x = true;
  options.markers = points <= 40;
  options.width = 560;
  options.height = 340;
  return plot::line_chart(series, options);
}

// The confusion matrix read to the host as rows of doubles; throws for a bad shape.
std::vector<std::vector<double>> confusion_rows(const ReportData& data) {
  const Tensor& matrix = data.confusion_matrix;
  STRATA_CHECK(matrix.dim() == 2 && matrix.size(0) == matrix.size(1) && matrix.size(0) >= 1,
               "write_html_report: the confusion matrix must be square [C, C] with C >= 1, got ",
               detail::describe(matrix));
  const int64_t classes = matrix.size(0);
  STRATA_CHECK(data.class_names.empty() ||
                   static_cast<int64_t>(data.class_names.size()) == classes,
               "write_html_report: ", data.class_names.size(),
               " class names for a confusion matrix of ", classes, " classes");
  const std::vector<double> values = matrix.detach().to_vector<double>();
  std::vector<std::vector<double>> rows(static_cast<size_t>(classes));
  for (int64_t r = 0; r < classes; ++r) {
    rows[static_cast<size_t>(r)].assign(values.begin() + r * classes,
                                        values.begin() + (r + 1) * classes);
  }
  return rows;
}

constexpr const char* kStyle = R"(
body { font-family: Helvetica, Arial, sans-serif; color: #222; margin: 24px auto;
       max-width: 1180px; padding: 0 16px; line-height: 1.4; }
h1 { margin-bottom: 4px; }
.subtitle { color: #666; margin-top: 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; }
td.name, th.name { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 120px; }
.card .label { color: #666; font-size: 13px; }
.card .value { font-size: 22px; font-weight: bold; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
.charts svg, .matrix svg { max-width: 100%; height: auto; }
.matrix { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; }
footer { color: #888; font-size: 12px; margin-top: 40px; }
)";

// `svg` with its clip-path ids prefixed: ids are global to an HTML page, and two charts of
// the same size would otherwise share one (harmless, as their rectangles match, but invalid).
std::string unique_ids(std::string svg, const std::string& prefix) {
  const std::string id = "plot-area-";
  for (size_t at = svg.find(id); at != std::string::npos;) {
    svg.insert(at, prefix + "-");
    at = svg.find(id, at + prefix.size() + 1 + id.size());
  }
  return svg;
}

void write_final_metrics(std::ostringstream& out, const ReportData& data) {
  if (data.test_metrics.empty()) return;
  out << "<section id=\"metrics\">\n<h2>Final metrics</h2>\n<div class=\"cards\">\n";
  for (const auto& [name, value] : data.test_metrics) {
    out << "<div class=\"card\"><div class=\"label\">" << escape_xml(name)
        << "</div><div class=\"value\">" << number(value) << "</div></div>\n";
  }
  out << "</div>\n</section>\n";
}

void write_charts(std::ostringstream& out, const ReportData& data) {
  const std::vector<std::string> names = chart_names(data.history);
  if (names.empty()) return;
  out << "<section id=\"curves\">\n<h2>Training curves</h2>\n<div class=\"charts\">\n";
  for (size_t k = 0; k < names.size(); ++k) {
    out << "<figure>\n" << unique_ids(chart_of(names[k], data), "chart" + std::to_string(k))
        << "</figure>\n";
  }
  out << "</div>\n</section>\n";
}

void write_confusion(std::ostringstream& out, const ReportData& data) {
  if (!data.confusion_matrix.defined()) return;
  const std::vector<std::vector<double>> rows = confusion_rows(data);
  std::vector<std::string> names = data.class_names;
  for (size_t c = names.size(); c < rows.size(); ++c) names.push_back(std::to_string(c));

  plot::HeatMapOptions options;
  options.title = "Confusion matrix";
  options.x_label = "predicted class";
  options.y_label = "true class";
  options.row_labels = names;
  options.column_labels = names;
  out << "<section id=\"confusion\">\n<h2>Confusion matrix</h2>\n<div class=\"matrix\">\n"
      << "<figure>\n" << unique_ids(plot::heat_map(rows, options), "matrix") << "</figure>\n";

  const ClassScores scores = class_scores(data.confusion_matrix);
  out << "<table>\n<tr><th class=\"name\">class</th><th>precision</th><th>recall</th>"
         "<th>F1</th><th>support</th></tr>\n";
  for (size_t c = 0; c < names.size(); ++c) {
    out << "<tr><td class=\"name\">" << escape_xml(names[c]) << "</td><td>"
        << number(scores.precision[c]) << "</td><td>" << number(scores.recall[c]) << "</td><td>"
        << number(scores.f1[c]) << "</td><td>" << scores.support[c] << "</td></tr>\n";
  }
  const std::pair<const char*, Average> averages[] = {
      {"macro average", Average::Macro}, {"weighted average", Average::Weighted}};
  int64_t total = 0;
  for (const int64_t s : scores.support) total += s;
  for (const auto& [label, average] : averages) {
    out << "<tr><td class=\"name\">" << label << "</td><td>"
        << number(precision(data.confusion_matrix, average)) << "</td><td>"
        << number(recall(data.confusion_matrix, average)) << "</td><td>"
        << number(f1_score(data.confusion_matrix, average)) << "</td><td>" << total
        << "</td></tr>\n";
  }
  out << "<tr><td class=\"name\">accuracy</td><td></td><td></td><td>"
      << number(precision(data.confusion_matrix, Average::Micro)) << "</td><td>" << total
      << "</td></tr>\n</table>\n</div>\n</section>\n";
}

void write_epoch_table(std::ostringstream& out, const ReportData& data) {
  const size_t epochs = longest_series(data);
  if (epochs == 0) return;
  out << "<section id=\"epochs\">\n<h2>Per-epoch values</h2>\n<table>\n<tr><th>epoch</th>";
  for (const auto& [name, values] : data.history) out << "<th>" << escape_xml(name) << "</th>";
  out << "</tr>\n";
  for (size_t i = 0; i < epochs; ++i) {
    out << "<tr><td>" << data.first_epoch + static_cast<int64_t>(i) << "</td>";
    for (const auto& [name, values] : data.history) {
      out << "<td>" << (i < values.size() ? number(values[i]) : "") << "</td>";
    }
    out << "</tr>\n";
  }
  out << "</table>\n</section>\n";
}

void write_pairs(std::ostringstream& out, const char* id, const char* heading,
                 const std::vector<std::pair<std::string, std::string>>& rows) {
  if (rows.empty()) return;
  out << "<section id=\"" << id << "\">\n<h2>" << heading << "</h2>\n<table>\n";
  for (const auto& [key, value] : rows) {
    out << "<tr><th class=\"name\">" << escape_xml(key) << "</th><td class=\"name\">"
        << escape_xml(value) << "</td></tr>\n";
  }
  out << "</table>\n</section>\n";
}

}  // namespace

std::string html_report(const ReportData& data) {
  std::ostringstream out;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      << "<title>" << escape_xml(data.title) << "</title>\n<style>" << kStyle
      << "</style>\n</head>\n<body>\n<h1>" << escape_xml(data.title) << "</h1>\n";
  if (!data.subtitle.empty()) {
    out << "<p class=\"subtitle\">" << escape_xml(data.subtitle) << "</p>\n";
  }
  write_final_metrics(out, data);
  write_charts(out, data);
  write_confusion(out, data);
  write_epoch_table(out, data);
  write_pairs(out, "configuration", "Configuration", data.config);
  std::vector<std::pair<std::string, std::string>> timings;
  for (const auto& [label, seconds] : data.timings) {
    timings.emplace_back(label, seconds_text(seconds));
  }
  write_pairs(out, "timing", "Timing", timings);
  out << "<footer>Written by Strata " << kVersion << ".</footer>\n</body>\n</html>\n";
  return out.str();
}

void write_html_report(const std::string& path, const ReportData& data) {
  const std::string text = html_report(data);
  try {
    plot::write_file(path, text);
  } catch (const Error& error) {
    STRATA_CHECK(false, "write_html_report: ", error.what());
  }
}

}  // namespace strata::train
