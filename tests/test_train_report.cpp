// train/report: the HTML report is written (atomically) to the path, holds the series values,
// labels, configuration, confusion matrix and timings, escapes every user string, uses no
// script or external resource, and is well formed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "strata/train/report.h"
#include "test_files.h"
#include "test_util.h"

namespace strata {
namespace {

using test::markup_problem;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A fresh directory per test, removed at the end.
class TrainReport : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::temp_directory_path() /
                 ("strata_report_" +
                  std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }
  std::filesystem::path directory_;
};

train::ReportData sample_report() {
  train::ReportData data;
  data.title = "MLP <b>bold</b> & co";
  data.subtitle = "Fashion-MNIST \"test\"";
  data.config = {{"optimizer", "Adam"}, {"lr", "0.001"}, {"<script>", "alert('x')"}};
  data.history = {{"loss", {0.6931, 0.4512, 0.3875}},
                  {"val_loss", {0.5234, 0.4421, 0.4102}},
                  {"accuracy", {0.7712, 0.8433, 0.8650}},
                  {"val_accuracy", {0.8105, 0.8391, 0.8522}},
                  {"lr", {1e-3, 1e-3, 1e-4}},
                  {"seconds", {7.25, 7.5, 7.125}}};
  data.test_metrics = {{"test_loss", 0.4213}, {"test_accuracy", 0.8567}};
  data.confusion_matrix = test::i64({50, 3, 1, 4, 40, 6, 0, 2, 44}, {3, 3});
  data.class_names = {"T-shirt", "Trouser & co", "<Bag>"};
  data.timings = {{"training", 21.875}, {"evaluation", 0.5}};
  return data;
}

TEST_F(TrainReport, WritesAWellFormedSelfContainedFile) {
  const std::string path = (directory_ / "report.html").string();
  train::write_html_report(path, sample_report());
  ASSERT_TRUE(std::filesystem::exists(path));
  std::ifstream file(path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  const std::string html = buffer.str();
  EXPECT_EQ(markup_problem(html), "");
  EXPECT_EQ(html, train::html_report(sample_report()));  // the same text, deterministic
  EXPECT_TRUE(html.rfind("<!DOCTYPE html>", 0) == 0);
  // Self-contained: no script, no link to anything outside.
  EXPECT_FALSE(contains(html, "<script"));
  EXPECT_FALSE(contains(html, "src="));
  EXPECT_FALSE(contains(html, "<link"));
  EXPECT_FALSE(contains(html, "href="));
  // Every id once (several inline charts share one page).
  const std::regex id_attribute(" id=\"([^\"]+)\"");
  std::vector<std::string> ids;
  for (auto it = std::sregex_iterator(html.begin(), html.end(), id_attribute);
       it != std::sregex_iterator(); ++it) {
    ids.push_back((*it)[1]);
  }
  EXPECT_GE(ids.size(), 5u);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
  // Only the report in the directory: the temporary was renamed.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(directory_),
                          std::filesystem::directory_iterator()),
            1);
}

TEST_F(TrainReport, HoldsTheValuesAndLabels) {
  const std::string html = train::html_report(sample_report());
  for (const char* value : {"0.6931", "0.4512", "0.3875", "0.5234", "0.865", "0.8522", "0.0001",
                            "7.125", "0.4213", "0.8567", "Adam", "0.001", "21.9 s", "0.5 s"}) {
    EXPECT_TRUE(contains(html, value)) << value;
  }
  // One chart per name with its val_ twin: loss, accuracy, lr (and none for seconds).
  size_t charts = 0;
  for (size_t at = html.find("<figure>"); at != std::string::npos;
       at = html.find("<figure>", at + 1)) {
    ++charts;
  }
  EXPECT_EQ(charts, 3u + 1u);  // three curves and the confusion matrix
  EXPECT_TRUE(contains(html, ">training<"));
  EXPECT_TRUE(contains(html, ">validation<"));
  EXPECT_TRUE(contains(html, "stroke-dasharray"));  // validation is dashed
  // The confusion matrix: counts in the heat map, per-class scores in the table.
  for (const char* count : {">50<", ">40<", ">44<", ">6<"}) {
    EXPECT_TRUE(contains(html, count)) << count;
  }
  // Class 0: precision 50 / 54, recall 50 / 54; support 54.
  EXPECT_TRUE(contains(html, "0.925926"));
  EXPECT_TRUE(contains(html, "<td>54</td>"));
  EXPECT_TRUE(contains(html, "<td>150</td>"));  // total support
}

TEST_F(TrainReport, EscapesUserStrings) {
  const std::string html = train::html_report(sample_report());
  EXPECT_TRUE(contains(html, "MLP &lt;b&gt;bold&lt;/b&gt; &amp; co"));
  EXPECT_FALSE(contains(html, "<b>bold</b>"));
  EXPECT_TRUE(contains(html, "Fashion-MNIST &quot;test&quot;"));
  EXPECT_TRUE(contains(html, "&lt;script&gt;"));
  EXPECT_TRUE(contains(html, "alert(&#39;x&#39;)"));
  EXPECT_TRUE(contains(html, "Trouser &amp; co"));
  EXPECT_TRUE(contains(html, "&lt;Bag&gt;"));
  EXPECT_FALSE(contains(html, "<Bag>"));
}

TEST_F(TrainReport, MinimalAndInvalidData) {
  // Nothing but a title: still a valid page.
  train::ReportData empty;
  const std::string html = train::html_report(empty);
  EXPECT_EQ(markup_problem(html), "");
  EXPECT_TRUE(contains(html, "Training report"));
  // One epoch only, and a NaN: the charts hold a dot, the table says NaN.
  train::ReportData one;
  one.history = {{"loss", {std::nan("")}}, {"val_loss", {0.25}}};
  const std::string single = train::html_report(one);
  EXPECT_EQ(markup_problem(single), "");
  EXPECT_TRUE(contains(single, "NaN"));
  EXPECT_TRUE(contains(single, "<circle"));

  train::ReportData bad = sample_report();
  bad.class_names = {"a", "b"};  // three classes in the matrix
  EXPECT_THROW(train::html_report(bad), Error);
  bad.class_names.clear();
  bad.confusion_matrix = test::i64({1, 2, 3}, {3});
  EXPECT_THROW(train::html_report(bad), Error);
  try {
    train::write_html_report((directory_ / "missing" / "report.html").string(), sample_report());
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_TRUE(contains(error.what(), "write_html_report")) << error.what();
    EXPECT_TRUE(contains(error.what(), "report.html")) << error.what();
  }
}

}  // namespace
}  // namespace strata
