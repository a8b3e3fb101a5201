// plot/svg_chart: documents are well formed (balanced tags, entities only), known data points
// land on known pixels, user text is escaped, log axes tick at powers of ten, degenerate
// series (none, empty, one point, gaps) still give a valid picture, and files are written
// atomically.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "strata/error.h"
#include "strata/plot/svg_chart.h"
#include "test_files.h"

namespace strata {
namespace {

using test::markup_problem;

size_t count_of(const std::string& text, const std::string& part) {
  size_t count = 0;
  for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

TEST(PlotSvg, LineChartPutsKnownPointsOnKnownPixels) {
  // One series labelled "a": the legend takes 57 px, so the plot area is x 80..823, y 50..500.
  const plot::Series series{"a", {0, 10}, {0, 10}};
  const std::string svg = plot::line_chart({series}, {});
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_NE(svg.find("d=\"M80.0 500.0 L823.0 50.0\""), std::string::npos) << svg;
  // A fixed y range [0, 20] puts y = 10 half way up.
  plot::LineChartOptions fixed;
  fixed.y_min = 0.0;
  fixed.y_max = 20.0;
  EXPECT_NE(plot::line_chart({series}, fixed).find("d=\"M80.0 500.0 L823.0 275.0\""),
            std::string::npos);
}

TEST(PlotSvg, TextIsEscaped) {
  plot::LineChartOptions options;
  options.title = "a<b & \"c\" 'd'";
  options.x_label = "</svg>";
  const std::string svg =
      plot::line_chart({{"x&y", {1, 2}, {1, 2}}}, options);
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_NE(svg.find("a&lt;b &amp; &quot;c&quot; &#39;d&#39;"), std::string::npos);
  EXPECT_NE(svg.find("&lt;/svg&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">x&amp;y<"), std::string::npos);
  EXPECT_EQ(count_of(svg, "</svg>"), 1u);
  EXPECT_EQ(plot::escape_xml("<&>\"'"), "&lt;&amp;&gt;&quot;&#39;");
}

TEST(PlotSvg, LogAxisTicks) {
  plot::LineChartOptions options;
  options.log_y = true;
  // Four decades: ticks at the powers of ten only.
  const std::string wide =
      plot::line_chart({{"loss", {0, 1, 2, 3}, {10, 1, 0.01, 1e-3}}}, options);
  EXPECT_EQ(markup_problem(wide), "");
  for (const char* tick : {">0.001<", ">0.01<", ">0.1<", ">1<", ">10<"}) {
    EXPECT_NE(wide.find(tick), std::string::npos) << tick;
  }
  EXPECT_EQ(wide.find(">0.02<"), std::string::npos);
  // Less than a decade: every multiple.
  const std::string narrow =
      plot::line_chart({{"loss", {0, 1}, {1.5, 4.5}}}, options);
  for (const char* tick : {">2<", ">3<", ">4<"}) {
    EXPECT_NE(narrow.find(tick), std::string::npos) << tick;
  }
  // Non-positive values are left out instead of breaking the document.
  const std::string skipped =
      plot::line_chart({{"loss", {0, 1, 2}, {1, 0, -1}}}, options);
  EXPECT_EQ(markup_problem(skipped), "");
  EXPECT_EQ(skipped.find("nan"), std::string::npos);
  EXPECT_EQ(skipped.find("inf"), std::string::npos);
}

TEST(PlotSvg, DegenerateSeries) {
  // No series, an empty one, a single point, and a gap.
  EXPECT_EQ(markup_problem(plot::line_chart({}, {})), "");
  const std::string empty = plot::line_chart({{"none", {}, {}}}, {});
  EXPECT_EQ(markup_problem(empty), "");
  EXPECT_EQ(empty.find("nan"), std::string::npos);

  const std::string single = plot::line_chart({{"one", {3}, {0.5}}}, {});
  EXPECT_EQ(markup_problem(single), "");
  EXPECT_EQ(count_of(single, "<circle"), 1u);  // a lone point is drawn as a dot
  EXPECT_EQ(single.find("nan"), std::string::npos);

  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::string gap =
      plot::line_chart({{"gap", {0, 1, 2, 3, 4}, {1, 2, nan, 3, 4}}}, {});
  EXPECT_EQ(count_of(gap, " M"), 1u);  // two pieces: "M .. L .. M .. L .."
  EXPECT_EQ(count_of(gap, "<circle"), 0u);

  plot::LineChartOptions markers;
  markers.markers = true;
  EXPECT_EQ(count_of(plot::line_chart({{"m", {0, 1, 2}, {1, 2, 3}}}, markers),
                     "<circle"),
            3u);
}

TEST(PlotSvg, IntegerTicksAndSeriesStyles) {
  plot::LineChartOptions options;
  options.integer_x = true;
  options.styles = {{}, {"#123456", true}};
  const std::string svg = plot::line_chart(
      {{"training", {1, 2}, {0.5, 0.4}}, {"validation", {1, 2}, {0.6, 0.5}}}, options);
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_EQ(svg.find(">1.5<"), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"#123456\" stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find("#4e79a7"), std::string::npos);  // the first palette color
}

TEST(PlotSvg, HeatMap) {
  plot::HeatMapOptions options;
  options.title = "Confusion";
  options.row_labels = {"cat", "<dog>"};
  options.column_labels = {"cat", "<dog>"};
  const std::string svg = plot::heat_map({{5, 1}, {0, 12}}, options);
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<rect x="), 4u + 1u);  // four cells and the clip rectangle
  for (const char* cell : {">5<", ">1<", ">0<", ">12<"}) {
    EXPECT_NE(svg.find(cell), std::string::npos) << cell;
  }
  EXPECT_NE(svg.find("&lt;dog&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("<dog>"), std::string::npos);
  // The largest cell is darkest, zero is white.
  EXPECT_NE(svg.find("fill=\"#08306b\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#ffffff\"><title>"), std::string::npos);
  EXPECT_THROW(plot::heat_map({{1, 2}, {3}}, {}), Error);
  plot::HeatMapOptions wrong_labels;
  wrong_labels.row_labels = {"only one"};
  EXPECT_THROW(plot::heat_map({{1, 2}, {3, 4}}, wrong_labels), Error);
  EXPECT_EQ(markup_problem(plot::heat_map({}, {})), "");
}

TEST(PlotSvg, ContourPlot) {
  plot::Grid grid{.x_min = -1, .x_max = 1, .y_min = -1, .y_max = 1, .columns = 21, .rows = 21,
                  .values = {}};
  for (int64_t row = 0; row < grid.rows; ++row) {
    for (int64_t column = 0; column < grid.columns; ++column) {
      const double x = -1 + 0.1 * static_cast<double>(column);
      const double y = -1 + 0.1 * static_cast<double>(row);
      grid.values.push_back(x * x + y * y);
    }
  }
  const std::vector<double> levels = plot::log_spaced_levels(grid, 5, 1e-2);
  ASSERT_EQ(levels.size(), 5u);
  const std::string svg = plot::contour_plot(
      grid, levels, {{"path", {0.8, 0.4, 0.0}, {0.8, 0.3, 0.0}}}, {});
  EXPECT_EQ(markup_problem(svg), "");
  EXPECT_GE(count_of(svg, "<path"), 6u);  // five levels and the path
  plot::Grid bad = grid;
  bad.values.pop_back();
  EXPECT_THROW(plot::contour_plot(bad, levels, {}, {}), Error);
}

TEST(PlotSvg, WriteFileIsAtomicAndReportsFailures) {
  const auto directory = std::filesystem::temp_directory_path() /
                         ("strata_plot_" + std::to_string(std::chrono::steady_clock::now()
                                                              .time_since_epoch()
                                                              .count()));
  std::filesystem::create_directories(directory);
  const std::string path = (directory / "chart.svg").string();
  plot::write_file(path, "first");
  plot::write_file(path, "<svg/>\n");  // replaces the old file
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(text.str(), "<svg/>\n");
  // Only the file itself: no temporary left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(directory),
                          std::filesystem::directory_iterator()),
            1);
  EXPECT_THROW(plot::write_file((directory / "missing" / "chart.svg").string(), "x"), Error);
  std::filesystem::remove_all(directory);
}

}  // namespace
}  // namespace strata
