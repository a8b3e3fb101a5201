// svg_chart: a small SVG writer for the samples' pictures, with no dependency beyond the
// standard library. Two kinds of chart, each returned as the text of a standalone SVG file
// that any browser shows:
//   - line_chart: several series on shared axes with ticks, grid, legend and an optional
//     logarithmic y axis (training-loss curves);
//   - contour_plot: iso-lines of a function sampled on a grid (marching squares), with paths
//     drawn on top (optimizer trajectories on a toy loss surface).
// Values that are not finite (or not positive on a log axis) break a line instead of
// corrupting the file.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace svg_chart {

// A polyline with a name for the legend. x and y have the same length.
struct Series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
};

struct LineChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;  // logarithmic y axis; non-positive values are left out
  int width = 900;     // pixels
  int height = 560;
};

// The whole SVG document. Series are drawn in order, colored from a fixed palette.
std::string line_chart(const std::vector<Series>& series, const LineChartOptions& options);

// f sampled on a regular grid: values[row * columns + column] = f(x_min + column * dx,
// y_min + row * dy), with dx = (x_max - x_min) / (columns - 1), dy likewise.
struct Grid {
  double x_min = 0.0, x_max = 1.0, y_min = 0.0, y_max = 1.0;
  int64_t columns = 0, rows = 0;
  std::vector<double> values;
};

struct ContourPlotOptions {
  std::string title;
  std::string x_label = "x";
  std::string y_label = "y";
  // At most this many pixels: the plot area keeps the grid's aspect ratio within them, and
  // the document shrinks around it.
  int width = 900;
  int height = 640;
  // Marks drawn as a star (the minimum, say), with a label beside it.
  std::vector<std::array<double, 2>> stars;
  std::string star_label;
};

// The iso-line levels: `count` values min + span * q, with q spaced evenly in log scale from
// `smallest_fraction` to 1 (min and span: the grid's smallest value and its range), which
// suits surfaces with a deep narrow valley where even levels would crowd the walls.
std::vector<double> log_spaced_levels(const Grid& grid, int count,
                                      double smallest_fraction = 1e-5);

// The whole SVG document: the contour lines of `grid` at `levels` (shaded from dark for low
// levels to light for high ones), then every path as a polyline with a dot at each end.
std::string contour_plot(const Grid& grid, const std::vector<double>& levels,
                         const std::vector<Series>& paths, const ContourPlotOptions& options);

// Writes `text` to `path`; throws std::runtime_error saying which file could not be written.
void write_file(const std::string& path, const std::string& text);

}  // namespace svg_chart
