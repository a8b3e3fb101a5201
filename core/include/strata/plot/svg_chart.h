// strata::plot: a small SVG writer for training curves and pictures of results, with no
// dependency beyond the standard library. Each chart is returned as the text of a standalone
// SVG document, which a browser shows as a file or inline in an HTML page:
//   - line_chart: several series on shared axes with ticks, grid, legend, an optional
//     logarithmic y axis, optional markers and dashes (loss and accuracy per epoch);
//   - heat_map: a matrix of colored, annotated cells with row and column labels (a confusion
//     matrix);
//   - contour_plot: iso-lines of a function sampled on a grid (marching squares), with paths
//     drawn on top (optimizer trajectories on a toy loss surface).
// Values that are not finite (or not positive on a log axis) break a line instead of
// corrupting the document; every user string is escaped for XML.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::plot {

// A polyline with a name for the legend. x and y have the same length (extra values of the
// longer one are ignored).
struct Series {
  std::string label;
  std::vector<double> x;
  std::vector<double> y;
};

// How one series is drawn, when not the default (the palette's color for its position, solid).
struct SeriesStyle {
  std::string color;    // a CSS color; empty: the palette's
  bool dashed = false;  // dashed stroke (validation beside training, say)
};

struct LineChartOptions {
  std::string title;
  std::string x_label;
  std::string y_label;
  bool log_y = false;  // logarithmic y axis; non-positive values are left out
  int width = 900;     // pixels
  int height = 560;
  // A fixed y range instead of one fitted to the data (accuracy in [0, 1], say); on a log axis
  // both must be positive.
  std::optional<double> y_min;
  std::optional<double> y_max;
  // Ticks only at whole numbers on the x axis (epochs).
  bool integer_x = false;
  // A dot at every point. Isolated points (a one-point series, or a point between two gaps)
  // always get one, since a line through them would be invisible.
  bool markers = false;
  // styles[i] draws series i; series beyond the list keep the default.
  std::vector<SeriesStyle> styles;
};

// The whole SVG document. Series are drawn in order.
std::string line_chart(const std::vector<Series>& series, const LineChartOptions& options);

struct HeatMapOptions {
  std::string title;
  std::string x_label;  // under the columns ("Predicted")
  std::string y_label;  // beside the rows ("True")
  // One label per row and per column; empty: the indices 0, 1, ...
  std::vector<std::string> row_labels;
  std::vector<std::string> column_labels;
  bool annotate = true;  // print each cell's value in it
  int cell_size = 0;     // pixels per cell; 0: chosen from the matrix size (28 to 56)
};

// The whole SVG document: values[row][column] as cells shaded from white (0, or the smallest
// value when it is negative) to dark blue (the largest value); rows must have equal lengths.
// Throws strata::Error for ragged rows or label lists of the wrong length.
std::string heat_map(const std::vector<std::vector<double>>& values,
                     const HeatMapOptions& options);

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
// Throws strata::Error when the grid is smaller than 2x2 or its values do not fill it.
std::string contour_plot(const Grid& grid, const std::vector<double>& levels,
                         const std::vector<Series>& paths, const ContourPlotOptions& options);

// `text` with &, <, >, " and ' replaced by entities: safe inside XML/HTML text and attributes.
std::string escape_xml(const std::string& text);

// Writes `text` to `path` atomically: into a temporary file beside it, flushed, then renamed
// over `path`, so a reader never sees half a file. Throws strata::Error naming the file.
void write_file(const std::string& path, const std::string& text);

}  // namespace strata::plot
