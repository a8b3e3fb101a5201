// linear_models: linear regression and logistic regression on a CSV table of numbers, trained
// by train::fit like the networks of the other samples:
//   linear    y = w.x + b, mean squared error; prints test MSE, MAE, RMSE and R^2
//   logistic  p(y = 1 | x) = sigmoid(w.x + b), binary cross-entropy; prints test accuracy
// --model auto picks logistic when every target value is 0 or 1. The features are
// standardized with the training part's statistics (and, for linear regression, so is the
// target, which the printed errors undo); --test-fraction of the rows, drawn with --seed, is
// held out as the test set.
//
//   build/samples/linear_models --data houses.csv --target price --out runs/houses
//   build/samples/linear_models       # python3-sklearn's breast-cancer table, when installed:
//                                     # --data .../breast_cancer.csv --skip-rows 1 --no-header
//
// --out receives log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors;
// --help lists every flag.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/sample.h"

namespace data = strata::data;
namespace fs = std::filesystem;
namespace nn = strata::nn;
namespace train = strata::train;
using strata::Tensor;

namespace {

// The Wisconsin diagnostic breast-cancer table as python3-sklearn installs it: a counts line,
// then 569 rows of 30 features and the class (0 malignant, 1 benign), no header.
constexpr const char* kBreastCancer =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv";

struct Options {
  std::string target;  // empty: the last column
  std::string model = "auto";
  data::CsvOptions csv;
  double test_fraction = 0.2;
  bool defaults = false;  // --data not given: the breast-cancer table
};

std::string no_data_message() {
  return std::string("no --data given, and the default table (") + kBreastCancer +
         ") is not installed.\n"
         "  Pass a CSV of numbers with a header line: --data FILE.csv --target COLUMN\n"
         "  or install the default (apt-get install python3-sklearn), a 569-row binary\n"
         "  classification table (Wisconsin diagnostic breast cancer).";
}

// Rows `indices` of `x` as float32.
Tensor rows(const Tensor& x, const std::vector<int64_t>& indices) {
  return strata::index_select(x, 0, strata::from_vector<int64_t>(indices)).to(strata::kFloat32);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  sample::CommandLine command_line(
      "linear_models", "Fits linear or logistic regression to a CSV table.",
      {.data = "", .epochs = 50, .batch_size = 32, .lr = 0.01, .out = "runs/linear_models"});
  command_line.add("--target", "NAME", "the column to predict (default: the last one)",
                   [&](const std::string& v) { options.target = v; });
  command_line.add("--model", "KIND", "linear, logistic or auto (default auto)",
                   [&](const std::string& v) {
                     if (v != "linear" && v != "logistic" && v != "auto") {
                       command_line.fail("--model must be linear, logistic or auto");
                     }
                     options.model = v;
                   });
  command_line.add("--skip-rows", "N", "lines skipped before the header (default 0)",
                   [&](const std::string& v) {
                     options.csv.skip_rows = command_line.integer("--skip-rows", v);
                   });
  command_line.add_switch("--no-header", "the table has no header line (columns 0, 1, ...)",
                          [&] { options.csv.header = false; });
  command_line.add("--delimiter", "C", "field separator (default ,)", [&](const std::string& v) {
    if (v.size() != 1) command_line.fail("--delimiter takes one character");
    options.csv.delimiter = v[0];
  });
  command_line.add("--test-fraction", "X", "rows held out for testing (default 0.2)",
                   [&](const std::string& v) {
                     options.test_fraction = command_line.real("--test-fraction", v);
                     if (!(options.test_fraction > 0.0 && options.test_fraction < 1.0)) {
                       command_line.fail("--test-fraction must be in (0, 1)");
                     }
                   });
  sample::Flags flags = command_line.parse(argc, argv);
  return sample::guarded("linear_models", [&] {
    if (flags.data.empty()) {
      if (!fs::exists(kBreastCancer)) {
        std::fprintf(stderr, "linear_models: %s\n", no_data_message().c_str());
        return 1;
      }
      flags.data = kBreastCancer;
      options.csv.skip_rows = 1;
      options.csv.header = false;
      options.defaults = true;
    }
    const strata::Device device = sample::pick_device(flags);
    sample::print_banner("linear_models", flags, device);

    const data::CsvTable table = data::read_csv(flags.data, options.csv);
    STRATA_CHECK(table.columns.size() >= 2, "linear_models: ", flags.data, " has ",
                 table.columns.size(), " column; a feature and a target are needed");
    STRATA_CHECK(table.rows() >= 10, "linear_models: ", flags.data, " has ", table.rows(),
                 " rows; at least 10 are needed to hold some out for testing");
    const std::string target = options.target.empty() ? table.columns.back() : options.target;
    const data::FeaturesTarget xy = data::split_features_target(table, target);

    const std::vector<double> y_values = xy.target.to_vector<double>();
    bool binary = true;
    for (const double y : y_values) binary = binary && (y == 0.0 || y == 1.0);
    const bool logistic = options.model == "logistic" || (options.model == "auto" && binary);
    STRATA_CHECK(!logistic || binary, "linear_models: logistic regression needs a target of 0s "
                 "and 1s, and column \"", target, "\" has other values");

    const data::SplitIndices split =
        data::train_validation_split(table.rows(), options.test_fraction, flags.seed);
    data::Standardize standardize_x;
    const Tensor train_x_raw = rows(xy.features, split.train);
    standardize_x.fit(train_x_raw);
    const Tensor train_x = standardize_x(train_x_raw).to(device);
    const Tensor test_x = standardize_x(rows(xy.features, split.validation)).to(device);
    Tensor train_y = rows(xy.target, split.train).reshape({-1, 1});
    Tensor test_y = rows(xy.target, split.validation).reshape({-1, 1});
    // Linear regression learns the standardized target; y_std undoes it for the errors printed.
    double y_mean = 0.0, y_std = 1.0;
    if (!logistic) {
      data::Standardize standardize_y({.statistics = data::Statistics::Global});
      standardize_y.fit(train_y);
      y_mean = standardize_y.mean().item<double>();
      y_std = standardize_y.std().item<double>();
      train_y = standardize_y(train_y);
      test_y = standardize_y(test_y);
    }

    sample::Task task;
    task.program = "linear_models";
    task.train = std::make_shared<data::TensorDataset>(train_x, train_y.to(device));
    task.test = std::make_shared<data::TensorDataset>(test_x, test_y.to(device));
    const int64_t features = xy.features.size(1);
    strata::manual_seed(flags.seed);
    nn::Sequential model;
    if (logistic) {
      model = nn::Sequential(nn::Linear(features, 1), nn::Sigmoid());
      task.title = "Logistic regression on " + fs::path(flags.data).filename().string();
      task.loss = nn::BCELoss{};
      task.metrics = {"accuracy"};
      task.class_names = options.defaults ? std::vector<std::string>{"malignant", "benign"}
                                          : std::vector<std::string>{"0", "1"};
    } else {
      model = nn::Sequential(nn::Linear(features, 1));
      task.title = "Linear regression on " + fs::path(flags.data).filename().string();
      task.loss = nn::MSELoss{};
      task.metrics = {"mse", "mae"};
    }
    model.to(device);
    task.model = model.str();
    task.config = {{"data", flags.data + ": " + std::to_string(table.rows()) + " rows, " +
                                std::to_string(features) + " features, target \"" + target +
                                "\""},
                   {"test rows", std::to_string(split.validation.size())},
                   {"preprocessing", logistic ? "features standardized"
                                              : "features and target standardized"}};
    std::printf("%s regression: %lld training and %lld test rows, %lld features, target \"%s\"\n",
                logistic ? "logistic" : "linear", static_cast<long long>(split.train.size()),
                static_cast<long long>(split.validation.size()),
                static_cast<long long>(features), target.c_str());

    train::Logs test;
    const int status = sample::run(model, flags, device, task, &test);
    if (!logistic) {
      // Errors in the target's own units, and R^2 = 1 - MSE / (the test target's variance).
      const Tensor centered = test_y - test_y.mean();
      const double test_variance = (centered * centered).mean().item<double>();
      std::printf("in target units: RMSE %.4g, MAE %.4g; R^2 %.4f (target mean %.4g, std %.4g)\n",
                  std::sqrt(test.at("mse")) * y_std, test.at("mae") * y_std,
                  1.0 - test.at("mse") / test_variance, y_mean, y_std);
    }
    return status;
  });
}
