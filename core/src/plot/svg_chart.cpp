// strata::plot: the SVG text of line charts, heat maps and contour plots (see svg_chart.h).
// Data coordinates map to pixels through an Axis per direction; everything drawn inside the
// plot area is clipped to it, so a diverging series cannot spill over the labels.
#include "strata/plot/svg_chart.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "strata/error.h"

namespace strata::plot {
namespace {

// Colors that stay distinguishable for up to ten series (and for most color-blind readers in
// the first eight): the Tableau 10 palette.
constexpr std::array<const char*, 10> kPalette = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                                  "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                                  "#9c755f", "#bab0ac"};

const char* color_of(size_t index) { return kPalette[index % kPalette.size()]; }

// The style of series `index`: its entry in `styles` when there is one, else the default.
SeriesStyle style_of(const std::vector<SeriesStyle>& styles, size_t index) {
  return index < styles.size() ? styles[index] : SeriesStyle{};
}

// A series' own color when it has one, else the palette's color for its position.
std::string color_of(const SeriesStyle& style, size_t index) {
  return style.color.empty() ? color_of(index) : escape_xml(style.color);
}

std::string escape(const std::string& text) { return escape_xml(text); }

// The stroke-dasharray attribute of a dashed series (with its leading space), or nothing.
const char* dash_attribute(const SeriesStyle& style) {
  return style.dashed ? " stroke-dasharray=\"7 4\"" : "";
}

// Pixel coordinates with one decimal: finer than any screen, and short files.
std::string px(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", value);
  return buffer;
}

// A tick label: as short as the value allows ("0.5", "1e-05", "200").
std::string tick_text(double value) {
  if (std::abs(value) < 1e-12) {
    return "0";
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

// One direction of a chart: data [low, high] (log10 of the data on a log axis) onto pixels
// [pixel_low, pixel_high]; on the y axis pixel_low is the bottom, so it is the larger number.
struct Axis {
  double low = 0.0, high = 1.0;
  double pixel_low = 0.0, pixel_high = 1.0;
  bool log = false;
  std::vector<double> ticks;  // in data units

  bool shows(double value) const { return std::isfinite(value) && (!log || value > 0.0); }
  double to_pixel(double value) const {
    const double v = log ? std::log10(value) : value;
    return pixel_low + (v - low) / (high - low) * (pixel_high - pixel_low);
  }
};

// The step of about `target` ticks over `span`: 1, 2 or 5 times a power of ten.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  const double nice = fraction < 1.5 ? 1.0 : fraction < 3.5 ? 2.0 : fraction < 7.5 ? 5.0 : 10.0;
  return nice * magnitude;
}

// A linear axis over [min, max] widened to whole ticks, or exactly [min, max] when `exact`;
// with `integer_ticks` the step is a whole number (1, 2, 5, 10, ...).
Axis linear_axis(double min, double max, int target_ticks, bool exact,
                 bool integer_ticks = false) {
  if (!(max > min)) {  // one value (or none): open a window around it
    const double half = min == 0.0 || !std::isfinite(min) ? 1.0 : std::abs(min) * 0.1;
    min = std::isfinite(min) ? min - half : -1.0;
    max = min + 2.0 * half;
  }
  double step = nice_step(max - min, target_ticks);
  if (integer_ticks) step = std::max(1.0, std::round(step));
  Axis axis;
  axis.low = exact ? min : std::floor(min / step) * step;
  axis.high = exact ? max : std::ceil(max / step) * step;
  for (double tick = std::ceil(axis.low / step) * step; tick <= axis.high + step * 1e-9;
       tick += step) {
    axis.ticks.push_back(std::abs(tick) < step * 1e-9 ? 0.0 : tick);
  }
  return axis;
}

// A log axis over [min, max] (both positive), padded a little; ticks at powers of ten, at 2
// and 5 times them when the range spans fewer than three decades, and at every multiple from
// 1 to 9 when it spans less than about one.
Axis log_axis(double min, double max) {
  if (!(max > min)) {
    min = min > 0.0 && std::isfinite(min) ? min / 2.0 : 0.1;
    max = min * 4.0;
  }
  Axis axis;
  axis.log = true;
  const double pad = (std::log10(max) - std::log10(min)) * 0.04;
  axis.low = std::log10(min) - pad;
  axis.high = std::log10(max) + pad;
  const double decades = axis.high - axis.low;
  const std::vector<double> mantissas =
      decades < 1.2 ? std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9}
                    : decades < 3.0 ? std::vector<double>{1, 2, 5} : std::vector<double>{1};
  for (int decade = static_cast<int>(std::floor(axis.low));
       decade <= static_cast<int>(std::ceil(axis.high)); ++decade) {
    for (const double mantissa : mantissas) {
      const double tick = mantissa * std::pow(10.0, decade);
      if (std::log10(tick) >= axis.low && std::log10(tick) <= axis.high) {
        axis.ticks.push_back(tick);
      }
    }
  }
  return axis;
}

struct Frame {  // the plot area, in pixels
  double left, top, right, bottom;
};

// The id of the plot area's clip path. An id is global to an HTML page that inlines several
// charts, so it is made of the rectangle itself: charts whose ids match clip alike.
std::string clip_id(const Frame& frame) {
  std::string id = "plot-area-" + px(frame.left) + "-" + px(frame.top) + "-" + px(frame.right) +
                   "-" + px(frame.bottom);
  std::replace(id.begin(), id.end(), '.', '_');
  return id;
}

// The document's opening: size, white background, the clip path of the plot area and the
// title.
void open_document(std::ostringstream& out, int width, int height, const Frame& frame,
                   const std::string& title) {
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
      << height << "\" viewBox=\"0 0 " << width << " " << height
      << "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<defs><clipPath id=\"" << clip_id(frame) << "\"><rect x=\"" << px(frame.left) << "\" y=\""
      << px(frame.top) << "\" width=\"" << px(frame.right - frame.left) << "\" height=\""
      << px(frame.bottom - frame.top) << "\"/></clipPath></defs>\n";
  if (!title.empty()) {
    out << "<text x=\"" << px((frame.left + frame.right) / 2) << "\" y=\"" << px(frame.top - 16)
        << "\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" << escape(title)
        << "</text>\n";
  }
}

// Grid lines, ticks with labels, the frame and the axis labels.
void draw_axes(std::ostringstream& out, const Frame& frame, const Axis& x, const Axis& y,
               const std::string& x_label, const std::string& y_label, bool grid_lines) {
  out << "<g stroke=\"#e3e3e3\" stroke-width=\"1\">\n";
  if (grid_lines) {
    for (const double tick : x.ticks) {
      out << "<line x1=\"" << px(x.to_pixel(tick)) << "\" y1=\"" << px(frame.top) << "\" x2=\""
          << px(x.to_pixel(tick)) << "\" y2=\"" << px(frame.bottom) << "\"/>\n";
    }
    for (const double tick : y.ticks) {
      out << "<line x1=\"" << px(frame.left) << "\" y1=\"" << px(y.to_pixel(tick)) << "\" x2=\""
          << px(frame.right) << "\" y2=\"" << px(y.to_pixel(tick)) << "\"/>\n";
    }
  }
  out << "</g>\n<g stroke=\"#333\" stroke-width=\"1\">\n";
  for (const double tick : x.ticks) {
    out << "<line x1=\"" << px(x.to_pixel(tick)) << "\" y1=\"" << px(frame.bottom) << "\" x2=\""
        << px(x.to_pixel(tick)) << "\" y2=\"" << px(frame.bottom + 5) << "\"/>\n";
  }
  for (const double tick : y.ticks) {
    out << "<line x1=\"" << px(frame.left - 5) << "\" y1=\"" << px(y.to_pixel(tick)) << "\" x2=\""
        << px(frame.left) << "\" y2=\"" << px(y.to_pixel(tick)) << "\"/>\n";
  }
  out << "<rect x=\"" << px(frame.left) << "\" y=\"" << px(frame.top) << "\" width=\""
      << px(frame.right - frame.left) << "\" height=\"" << px(frame.bottom - frame.top)
      << "\" fill=\"none\"/>\n</g>\n<g fill=\"#333\">\n";
  for (const double tick : x.ticks) {
    out << "<text x=\"" << px(x.to_pixel(tick)) << "\" y=\"" << px(frame.bottom + 19)
        << "\" text-anchor=\"middle\">" << tick_text(tick) << "</text>\n";
  }
  for (const double tick : y.ticks) {
    out << "<text x=\"" << px(frame.left - 8) << "\" y=\"" << px(y.to_pixel(tick) + 4)
        << "\" text-anchor=\"end\">" << tick_text(tick) << "</text>\n";
  }
  out << "<text x=\"" << px((frame.left + frame.right) / 2) << "\" y=\"" << px(frame.bottom + 42)
      << "\" text-anchor=\"middle\" font-size=\"13\">" << escape(x_label) << "</text>\n";
  const double middle = (frame.top + frame.bottom) / 2;
  out << "<text x=\"" << px(frame.left - 56) << "\" y=\"" << px(middle)
      << "\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 "
      << px(frame.left - 56) << " " << px(middle) << ")\">" << escape(y_label)
      << "</text>\n</g>\n";
}

// A series in pixels: the path data "M x y L x y ..." through the points the axes can show (a
// point they cannot show, NaN or not positive on a log axis, ends the piece and the next point
// starts a new one), every drawn point, and the points drawn alone (a piece of one point).
struct Trace {
  std::string data;
  std::vector<std::array<double, 2>> points;
  std::vector<std::array<double, 2>> isolated;
};

Trace trace_series(const std::vector<double>& xs, const std::vector<double>& ys, const Axis& x,
                   const Axis& y) {
  Trace trace;
  size_t piece_length = 0;
  const auto end_piece = [&] {
    if (piece_length == 1) trace.isolated.push_back(trace.points.back());
    piece_length = 0;
  };
  const size_t count = std::min(xs.size(), ys.size());
  for (size_t i = 0; i < count; ++i) {
    if (!x.shows(xs[i]) || !y.shows(ys[i])) {
      end_piece();
      continue;
    }
    // Far outside the plot the pixel value may overflow what viewers accept; the clip path
    // hides it anyway, so clamp it to a band around the frame.
    const double px_x = std::clamp(x.to_pixel(xs[i]), -1e5, 1e5);
    const double px_y = std::clamp(y.to_pixel(ys[i]), -1e5, 1e5);
    const bool pen_down = piece_length > 0;
    trace.data += (pen_down ? " L" : (trace.data.empty() ? "M" : " M")) + px(px_x) + " " +
                  px(px_y);
    trace.points.push_back({px_x, px_y});
    ++piece_length;
  }
  end_piece();
  return trace;
}

std::string path_data(const std::vector<double>& xs, const std::vector<double>& ys,
                      const Axis& x, const Axis& y) {
  return trace_series(xs, ys, x, y).data;
}

// The legend: a colored stroke and the label of each series, top to bottom, from (left, top).
void draw_legend(std::ostringstream& out, const std::vector<Series>& series, double left,
                 double top, const std::vector<SeriesStyle>& styles = {}) {
  out << "<g>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const double row = top + 20.0 * static_cast<double>(i);
    out << "<line x1=\"" << px(left) << "\" y1=\"" << px(row) << "\" x2=\"" << px(left + 24)
        << "\" y2=\"" << px(row) << "\" stroke=\"" << color_of(style_of(styles, i), i) << "\""
        << dash_attribute(style_of(styles, i)) << " stroke-width=\"2.5\"/>\n<text x=\""
        << px(left + 30) << "\" y=\"" << px(row + 4)
        << "\">" << escape(series[i].label) << "</text>\n";
  }
  out << "</g>\n";
}

// ---- marching squares --------------------------------------------------------------------

// A crossing of the level on a grid edge, named by the edge so that the two cells sharing it
// name the same point: 2 * (row * columns + column) for the edge from (row, column) to
// (row, column + 1), plus 1 for the edge from (row, column) to (row + 1, column).
using EdgeId = int64_t;

struct Segment {
  EdgeId from, to;
};

// The iso-line pieces of one level, chained into polylines of edge crossings.
std::vector<std::vector<EdgeId>> trace_level(const Grid& grid, double level,
                                             std::unordered_map<EdgeId, std::array<double, 2>>&
                                                 crossing) {
  const int64_t columns = grid.columns;
  const auto value = [&](int64_t row, int64_t column) {
    return grid.values[static_cast<size_t>(row * columns + column)];
  };
  const double dx = (grid.x_max - grid.x_min) / static_cast<double>(columns - 1);
  const double dy = (grid.y_max - grid.y_min) / static_cast<double>(grid.rows - 1);
  // Where the level crosses an edge, by linear interpolation along it.
  const auto edge_point = [&](EdgeId edge) {
    if (crossing.count(edge) == 0) {
      const int64_t corner = edge / 2;
      const int64_t row = corner / columns;
      const int64_t column = corner % columns;
      const bool vertical = edge % 2 == 1;
      const double a = value(row, column);
      const double b = vertical ? value(row + 1, column) : value(row, column + 1);
      const double t = (level - a) / (b - a);
      const double x = grid.x_min + (static_cast<double>(column) + (vertical ? 0.0 : t)) * dx;
      const double y = grid.y_min + (static_cast<double>(row) + (vertical ? t : 0.0)) * dy;
      crossing[edge] = {x, y};
    }
    return edge;
  };

  std::vector<Segment> segments;
  for (int64_t row = 0; row + 1 < grid.rows; ++row) {
    for (int64_t column = 0; column + 1 < columns; ++column) {
      const double corners[4] = {value(row, column), value(row, column + 1),
                                 value(row + 1, column + 1), value(row + 1, column)};
      if (!std::all_of(std::begin(corners), std::end(corners),
                       [](double v) { return std::isfinite(v); })) {
        continue;
      }
      // Corners above the level, as bits: 1 bottom-left, 2 bottom-right, 4 top-right,
      // 8 top-left (rows grow upward in data coordinates).
      int mask = 0;
      for (int k = 0; k < 4; ++k) {
        mask |= corners[k] > level ? 1 << k : 0;
      }
      const EdgeId bottom = 2 * (row * columns + column);
      const EdgeId top = 2 * ((row + 1) * columns + column);
      const EdgeId left = bottom + 1;
      const EdgeId right = 2 * (row * columns + column + 1) + 1;
      const auto add = [&](EdgeId a, EdgeId b) {
        segments.push_back({edge_point(a), edge_point(b)});
      };
      // NOTE: in the two saddle cases (opposite corners above) the average of the corners
      // decides whether the high corners connect through the middle.
      const bool middle_above = (corners[0] + corners[1] + corners[2] + corners[3]) / 4 > level;
      switch (mask) {
        case 1: case 14: add(left, bottom); break;
        case 2: case 13: add(bottom, right); break;
        case 3: case 12: add(left, right); break;
        case 4: case 11: add(right, top); break;
        case 6: case 9: add(bottom, top); break;
        case 7: case 8: add(left, top); break;
        case 5:
          if (middle_above) {
            add(bottom, right);
            add(left, top);
          } else {
            add(left, bottom);
            add(right, top);
          }
          break;
        case 10:
          if (middle_above) {
            add(left, bottom);
            add(right, top);
          } else {
            add(bottom, right);
            add(left, top);
          }
          break;
        default: break;  // 0 and 15: the level does not cross this cell
      }
    }
  }

  // Each crossing belongs to at most two segments (the two cells sharing its edge): follow
  // them from segment to segment into polylines.
  std::unordered_map<EdgeId, std::vector<size_t>> touching;
  for (size_t i = 0; i < segments.size(); ++i) {
    touching[segments[i].from].push_back(i);
    touching[segments[i].to].push_back(i);
  }
  std::vector<bool> used(segments.size(), false);
  const auto extend = [&](std::vector<EdgeId>& line, size_t segment) {
    for (;;) {
      used[segment] = true;
      const EdgeId end = line.back();
      const EdgeId next = segments[segment].from == end ? segments[segment].to
                                                         : segments[segment].from;
      line.push_back(next);
      const auto& neighbours = touching[next];
      const auto unused = std::find_if(neighbours.begin(), neighbours.end(),
                                       [&](size_t other) { return !used[other]; });
      if (unused == neighbours.end()) {
        return;
      }
      segment = *unused;
    }
  };
  std::vector<std::vector<EdgeId>> lines;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (used[i]) {
      continue;
    }
    std::vector<EdgeId> forward{segments[i].from};
    extend(forward, i);
    // The other direction from the first point, then both halves joined.
    std::vector<EdgeId> backward{segments[i].from};
    const auto& neighbours = touching[segments[i].from];
    const auto unused = std::find_if(neighbours.begin(), neighbours.end(),
                                     [&](size_t other) { return !used[other]; });
    if (unused != neighbours.end()) {
      extend(backward, *unused);
    }
    std::vector<EdgeId> line(backward.rbegin(), backward.rend());
    line.insert(line.end(), forward.begin() + 1, forward.end());
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

std::string line_chart(const std::vector<Series>& series, const LineChartOptions& options) {
  STRATA_CHECK(!options.log_y || ((!options.y_min || *options.y_min > 0.0) &&
                                  (!options.y_max || *options.y_max > 0.0)),
               "line_chart: a log y axis needs a positive y_min and y_max, got ",
               options.y_min.value_or(1.0), " and ", options.y_max.value_or(1.0));
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const Series& s : series) {
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (options.log_y && s.y[i] <= 0)) {
        continue;
      }
      x_min = std::min(x_min, s.x[i]);
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  const bool fixed_y = options.y_min || options.y_max;
  if (options.y_min) y_min = *options.y_min;
  if (options.y_max) y_max = *options.y_max;
  // The legend sits right of the plot, sized for the longest label.
  size_t longest = 0;
  for (const Series& s : series) {
    longest = std::max(longest, s.label.size());
  }
  const double legend_width = 50.0 + 7.0 * static_cast<double>(longest);
  const Frame frame{80.0, 50.0, options.width - legend_width - 20.0, options.height - 60.0};

  Axis x = linear_axis(x_min, x_max, 8, /*exact=*/true, options.integer_x);
  Axis y = options.log_y ? log_axis(y_min, y_max) : linear_axis(y_min, y_max, 8, fixed_y);
  x.pixel_low = frame.left;
  x.pixel_high = frame.right;
  y.pixel_low = frame.bottom;
  y.pixel_high = frame.top;

  std::ostringstream out;
  open_document(out, options.width, options.height, frame, options.title);
  draw_axes(out, frame, x, y, options.x_label, options.y_label, /*grid_lines=*/true);
  out << "<g clip-path=\"url(#" << clip_id(frame) << ")\" fill=\"none\" stroke-width=\"1.8\" "
         "stroke-linejoin=\"round\">\n";
  std::vector<Trace> traces;
  for (size_t i = 0; i < series.size(); ++i) {
    traces.push_back(trace_series(series[i].x, series[i].y, x, y));
    const SeriesStyle style = style_of(options.styles, i);
    out << "<path stroke=\"" << color_of(style, i) << "\"" << dash_attribute(style)
        << " d=\"" << traces.back().data << "\"/>\n";
  }
  out << "</g>\n";
  // Dots after every line, so that no line hides a dot.
  out << "<g clip-path=\"url(#" << clip_id(frame) << ")\" stroke=\"white\" stroke-width=\"1\">\n";
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& dots = options.markers ? traces[i].points : traces[i].isolated;
    for (const auto& dot : dots) {
      out << "<circle cx=\"" << px(dot[0]) << "\" cy=\"" << px(dot[1]) << "\" r=\"3.5\" fill=\""
          << color_of(style_of(options.styles, i), i) << "\"/>\n";
    }
  }
  out << "</g>\n";
  draw_legend(out, series, frame.right + 20.0, frame.top + 10.0, options.styles);
  out << "</svg>\n";
  return out.str();
}

std::vector<double> log_spaced_levels(const Grid& grid, int count, double smallest_fraction) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const double v : grid.values) {
    if (std::isfinite(v)) {
      low = std::min(low, v);
      high = std::max(high, v);
    }
  }
  std::vector<double> levels;
  if (!(high > low) || count < 1) {
    return levels;
  }
  const double first = std::log10(smallest_fraction);
  for (int i = 0; i < count; ++i) {
    // Stop short of q = 1, the level of the single highest grid point.
    const double exponent = first * (1.0 - static_cast<double>(i) / count);
    levels.push_back(low + (high - low) * std::pow(10.0, exponent));
  }
  return levels;
}

std::string contour_plot(const Grid& grid, const std::vector<double>& levels,
                         const std::vector<Series>& paths, const ContourPlotOptions& options) {
  if (grid.columns < 2 || grid.rows < 2 ||
      grid.values.size() != static_cast<size_t>(grid.columns * grid.rows)) {
    STRATA_CHECK(false, "contour_plot: the grid needs at least 2x2 values and columns * rows of "
                 "them, got ", grid.values.size(), " for ", grid.columns, "x", grid.rows);
  }
  size_t longest = options.star_label.size();
  for (const Series& s : paths) {
    longest = std::max(longest, s.label.size());
  }
  const double legend_width = 50.0 + 7.0 * static_cast<double>(longest);
  // The largest plot area of the grid's aspect ratio that fits beside the legend, so that
  // circles on the surface look round.
  const double room_width = options.width - legend_width - 100.0;
  const double room_height = options.height - 110.0;
  const double scale = std::min(room_width / (grid.x_max - grid.x_min),
                                room_height / (grid.y_max - grid.y_min));
  const Frame frame{80.0, 50.0, 80.0 + scale * (grid.x_max - grid.x_min),
                    50.0 + scale * (grid.y_max - grid.y_min)};
  Axis x = linear_axis(grid.x_min, grid.x_max, 8, /*exact=*/true);
  Axis y = linear_axis(grid.y_min, grid.y_max, 6, /*exact=*/true);
  x.pixel_low = frame.left;
  x.pixel_high = frame.right;
  y.pixel_low = frame.bottom;
  y.pixel_high = frame.top;

  // The document shrinks around the plot area and the legend, whichever reaches further.
  const double legend_bottom = frame.top + 20.0 * static_cast<double>(paths.size() + 1) + 20.0;
  const int width = static_cast<int>(std::ceil(frame.right + 20.0 + legend_width));
  const int height = static_cast<int>(std::ceil(std::max(frame.bottom + 60.0, legend_bottom)));

  std::ostringstream out;
  open_document(out, width, height, frame, options.title);
  draw_axes(out, frame, x, y, options.x_label, options.y_label, /*grid_lines=*/false);

  // Contours: low levels dark blue, high ones pale, so the valley reads at a glance.
  out << "<g clip-path=\"url(#" << clip_id(frame) << ")\" fill=\"none\" stroke-width=\"0.9\">\n";
  for (size_t k = 0; k < levels.size(); ++k) {
    const double shade =
        levels.size() > 1 ? static_cast<double>(k) / static_cast<double>(levels.size() - 1) : 0.0;
    const auto channel = [&](double dark, double light) {
      return static_cast<int>(std::lround(dark + (light - dark) * shade));
    };
    char color[16];
    std::snprintf(color, sizeof color, "#%02x%02x%02x", channel(40, 200), channel(70, 205),
                  channel(140, 225));
    std::unordered_map<EdgeId, std::array<double, 2>> crossing;
    std::string data;
    for (const std::vector<EdgeId>& line : trace_level(grid, levels[k], crossing)) {
      for (size_t i = 0; i < line.size(); ++i) {
        const auto& point = crossing.at(line[i]);
        data += (i == 0 ? (data.empty() ? "M" : " M") : " L") + px(x.to_pixel(point[0])) + " " +
                px(y.to_pixel(point[1]));
      }
    }
    if (!data.empty()) {
      out << "<path stroke=\"" << color << "\" d=\"" << data << "\"/>\n";
    }
  }
  out << "</g>\n";

  // Paths, each with a hollow dot where it starts and a solid one where it ends.
  out << "<g clip-path=\"url(#" << clip_id(frame) << ")\" stroke-linejoin=\"round\">\n";
  for (size_t i = 0; i < paths.size(); ++i) {
    const Series& path = paths[i];
    out << "<path fill=\"none\" stroke=\"" << color_of(i) << "\" stroke-width=\"2\" d=\""
        << path_data(path.x, path.y, x, y) << "\"/>\n";
    const size_t count = std::min(path.x.size(), path.y.size());
    for (const size_t at : {size_t{0}, count - 1}) {
      if (count == 0 || !x.shows(path.x[at]) || !y.shows(path.y[at])) {
        continue;
      }
      out << "<circle cx=\"" << px(x.to_pixel(path.x[at])) << "\" cy=\""
          << px(y.to_pixel(path.y[at])) << "\" r=\"4\" stroke=\"" << color_of(i)
          << "\" stroke-width=\"1.5\" fill=\"" << (at == 0 ? "white" : color_of(i))
          << "\"/>\n";
    }
  }
  for (const auto& star : options.stars) {
    out << "<text x=\"" << px(x.to_pixel(star[0])) << "\" y=\"" << px(y.to_pixel(star[1]) + 6)
        << "\" text-anchor=\"middle\" font-size=\"20\" fill=\"#222\">&#9733;</text>\n";
  }
  out << "</g>\n";

  draw_legend(out, paths, frame.right + 20.0, frame.top + 10.0);
  if (!options.star_label.empty()) {
    const double row = frame.top + 10.0 + 20.0 * static_cast<double>(paths.size());
    out << "<text x=\"" << px(frame.right + 32.0) << "\" y=\"" << px(row + 6)
        << "\" text-anchor=\"middle\" font-size=\"18\" fill=\"#222\">&#9733;</text>\n<text x=\""
        << px(frame.right + 50.0) << "\" y=\"" << px(row + 4) << "\">"
        << escape(options.star_label) << "</text>\n";
  }
  out << "</svg>\n";
  return out.str();
}

// ---- heat map -----------------------------------------------------------------------------

namespace {

// White through mid blue to dark blue as `t` goes from 0 to 1 (the "Blues" look of a
// confusion matrix, readable in gray scale too).
std::string heat_color(double t) {
  struct Stop {
    double at, red, green, blue;
  };
  constexpr std::array<Stop, 3> kStops = {{{0.0, 255, 255, 255},
                                           {0.5, 107, 174, 214},
                                           {1.0, 8, 48, 107}}};
  t = std::clamp(t, 0.0, 1.0);
  const size_t upper = t <= kStops[1].at ? 1 : 2;
  const Stop& a = kStops[upper - 1];
  const Stop& b = kStops[upper];
  const double f = (t - a.at) / (b.at - a.at);
  const auto channel = [&](double from, double to) {
    return static_cast<int>(std::lround(from + (to - from) * f));
  };
  char color[16];
  std::snprintf(color, sizeof color, "#%02x%02x%02x", channel(a.red, b.red),
                channel(a.green, b.green), channel(a.blue, b.blue));
  return color;
}

// A cell's text: whole numbers in full ("1234"), others with three significant digits.
std::string cell_text(double value) {
  if (!std::isfinite(value)) return "-";
  char buffer[32];
  if (value == std::round(value) && std::abs(value) < 1e15) {
    std::snprintf(buffer, sizeof buffer, "%.0f", value);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3g", value);
  }
  return buffer;
}

std::vector<std::string> labels_or_indices(const std::vector<std::string>& labels, size_t count,
                                           const char* what) {
  STRATA_CHECK(labels.empty() || labels.size() == count, "heat_map: ", count, " ", what,
               " but ", labels.size(), " ", what, " labels");
  if (!labels.empty()) return labels;
  std::vector<std::string> indices;
  for (size_t i = 0; i < count; ++i) indices.push_back(std::to_string(i));
  return indices;
}

}  // namespace

std::string heat_map(const std::vector<std::vector<double>>& values,
                     const HeatMapOptions& options) {
  const size_t rows = values.size();
  const size_t columns = rows == 0 ? 0 : values[0].size();
  for (size_t r = 0; r < rows; ++r) {
    STRATA_CHECK(values[r].size() == columns, "heat_map: row ", r, " has ", values[r].size(),
                 " values but row 0 has ", columns);
  }
  const std::vector<std::string> row_labels =
      labels_or_indices(options.row_labels, rows, "rows");
  const std::vector<std::string> column_labels =
      labels_or_indices(options.column_labels, columns, "columns");

  double low = 0.0, high = -std::numeric_limits<double>::infinity();
  for (const auto& row : values) {
    for (const double v : row) {
      if (std::isfinite(v)) {
        low = std::min(low, v);
        high = std::max(high, v);
      }
    }
  }
  const size_t larger = std::max<size_t>({rows, columns, 1});
  const double cell = options.cell_size > 0
                          ? options.cell_size
                          : std::clamp(std::floor(480.0 / static_cast<double>(larger)), 28.0, 56.0);
  size_t longest_row_label = 0, longest_column_label = 0;
  for (const auto& label : row_labels) {
    longest_row_label = std::max(longest_row_label, label.size());
  }
  for (const auto& label : column_labels) {
    longest_column_label = std::max(longest_column_label, label.size());
  }
  // Column labels wider than a cell are turned 45 degrees so that they do not overlap.
  const double column_label_width = 7.0 * static_cast<double>(longest_column_label);
  const bool turn_column_labels = column_label_width > cell - 4.0;
  const double column_label_height = turn_column_labels ? column_label_width * 0.72 + 10.0 : 16.0;

  const double left = 40.0 + 7.0 * static_cast<double>(longest_row_label) + 10.0;
  const double top = options.title.empty() ? 20.0 : 50.0;
  const Frame frame{left, top, left + cell * static_cast<double>(columns),
                    top + cell * static_cast<double>(rows)};
  const int width = static_cast<int>(std::ceil(std::max(frame.right + 30.0, 240.0)));
  const int height = static_cast<int>(std::ceil(frame.bottom + column_label_height + 40.0));

  std::ostringstream out;
  open_document(out, width, height, frame, options.title);
  out << "<g stroke=\"#ffffff\" stroke-width=\"1\">\n";
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < columns; ++c) {
      const double v = values[r][c];
      const double t = high > low ? (v - low) / (high - low) : 0.0;
      const double x = frame.left + cell * static_cast<double>(c);
      const double y = frame.top + cell * static_cast<double>(r);
      out << "<rect x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\"" << px(cell)
          << "\" height=\"" << px(cell) << "\" fill=\""
          << (std::isfinite(v) ? heat_color(t) : std::string("#dddddd")) << "\"><title>"
          << escape(row_labels[r]) << " / " << escape(column_labels[c]) << ": " << cell_text(v)
          << "</title></rect>\n";
    }
  }
  out << "</g>\n";
  if (options.annotate) {
    // Font shrinks with the cell so that five-digit counts still fit.
    const double font = std::clamp(cell * 0.3, 9.0, 14.0);
    out << "<g text-anchor=\"middle\" font-size=\"" << px(font) << "\">\n";
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < columns; ++c) {
        const double v = values[r][c];
        const double t = high > low ? (v - low) / (high - low) : 0.0;
        out << "<text x=\"" << px(frame.left + cell * (static_cast<double>(c) + 0.5))
            << "\" y=\"" << px(frame.top + cell * (static_cast<double>(r) + 0.5) + font * 0.35)
            << "\" fill=\"" << (std::isfinite(v) && t > 0.55 ? "#ffffff" : "#222222") << "\">"
            << cell_text(v) << "</text>\n";
      }
    }
    out << "</g>\n";
  }
  out << "<g fill=\"#333\">\n";
  for (size_t r = 0; r < rows; ++r) {
    out << "<text x=\"" << px(frame.left - 6) << "\" y=\""
        << px(frame.top + cell * (static_cast<double>(r) + 0.5) + 4) << "\" text-anchor=\"end\">"
        << escape(row_labels[r]) << "</text>\n";
  }
  for (size_t c = 0; c < columns; ++c) {
    const double x = frame.left + cell * (static_cast<double>(c) + 0.5);
    const double y = frame.bottom + 16;
    out << "<text x=\"" << px(x) << "\" y=\"" << px(y) << "\"";
    if (turn_column_labels) {
      out << " text-anchor=\"end\" transform=\"rotate(-45 " << px(x) << " " << px(y) << ")\"";
    } else {
      out << " text-anchor=\"middle\"";
    }
    out << ">" << escape(column_labels[c]) << "</text>\n";
  }
  if (!options.x_label.empty()) {
    out << "<text x=\"" << px((frame.left + frame.right) / 2) << "\" y=\""
        << px(frame.bottom + column_label_height + 24) << "\" text-anchor=\"middle\" "
        << "font-size=\"13\">" << escape(options.x_label) << "</text>\n";
  }
  if (!options.y_label.empty()) {
    const double middle = (frame.top + frame.bottom) / 2;
    out << "<text x=\"20\" y=\"" << px(middle) << "\" text-anchor=\"middle\" font-size=\"13\" "
        << "transform=\"rotate(-90 20 " << px(middle) << ")\">" << escape(options.y_label)
        << "</text>\n";
  }
  out << "</g>\n</svg>\n";
  return out.str();
}

// ---- text and files -----------------------------------------------------------------------

std::string escape_xml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  // A name no other writer uses at the same time: this process's id and a counter.
  static std::atomic<uint64_t> counter{0};
  const std::string temporary = path + ".tmp." + std::to_string(::getpid()) + "." +
                                std::to_string(counter.fetch_add(1));
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  STRATA_CHECK(file != nullptr, "write_file: cannot create ", temporary, " (to write ", path,
               "): ", std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size() &&
                       std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
  const int write_error = errno;
  const bool closed = std::fclose(file) == 0;
  std::error_code renamed;
  if (written && closed) std::filesystem::rename(temporary, path, renamed);
  if (!written || !closed || renamed) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    STRATA_CHECK(false, "write_file: cannot write ", path, ": ",
                 renamed ? renamed.message() : std::string(std::strerror(write_error)));
  }
}

}  // namespace strata::plot
