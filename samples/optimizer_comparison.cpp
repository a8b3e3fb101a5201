// optimizer_comparison: the optimizers of strata::optim side by side, in two pictures.
//  1. Fashion-MNIST: one 784-128-10 MLP, initialized once, is copied into each contender
//     (SGD, momentum, Nesterov, Adagrad, Adadelta, RMSprop, Adam, the Adam-to-SGD switch),
//     which trains it on the same images in the same order. Writes the smoothed training-loss
//     curves to optimizer_loss.svg and prints a markdown table of the final training loss,
//     test accuracy and training time.
//  2. Beale's function, a 2-D toy loss surface with a curved valley: every optimizer takes the
//     same number of steps from the same start; optimizer_paths.svg draws the contours and
//     the paths.
// Exits 0 on success, 1 on an error (with a message saying why), 2 on bad flags.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/data/readers.h"
#include "strata/optim.h"
#include "strata/optim/swats.h"
#include "strata/strata.h"
#include "common/sample.h"
#include "strata/plot/svg_chart.h"

namespace {

namespace fs = std::filesystem;
using strata::Tensor;
namespace nn = strata::nn;
namespace optim = strata::optim;
namespace plot = strata::plot;

constexpr const char* kDefaultData = strata::data::kFashionMnistDir;
constexpr int64_t kClasses = 10;

// ---- flags ---------------------------------------------------------------------------------

struct Flags {
  std::string data = kDefaultData;
  int64_t train = 60000;  // training images used (the first N; Fashion-MNIST has 60000)
  int64_t test = 10000;   // test images used for the accuracy
  int epochs = 3;
  int64_t batch_size = 64;
  int64_t smooth = 50;      // iterations averaged into one point of the loss curve
  int toy_steps = 200;      // steps on the toy surface
  std::string out_dir = ".";
  std::string device = "auto";
  uint64_t seed = 42;
  int threads = 0;  // 0: the library's default
  bool log_y = true;
};

constexpr const char* kUsage =
    "usage: optimizer_comparison [flags]\n"
    "  --data DIR          folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
    "                      (default /usr/share/datasets/fashion-mnist)\n"
    "  --train N           training images used, the first N (default 60000: all)\n"
    "  --test N            test images used for the accuracy (default 10000)\n"
    "  --epochs N          passes over the training images (default 3)\n"
    "  --batch-size N      minibatch size (default 64)\n"
    "  --smooth N          iterations averaged into one point of the loss curve (default 50)\n"
    "  --toy-steps N       steps of each optimizer on the toy surface (default 200)\n"
    "  --linear-y          linear loss axis (default: logarithmic)\n"
    "  --out-dir DIR       where optimizer_loss.svg and optimizer_paths.svg go (default .)\n"
    "  --device D          cpu, cuda, cuda:K or auto (default auto: cuda when available)\n"
    "  --seed N            seed for the weights and the shuffling (default 42)\n"
    "  --threads N         CPU threads (default: the library's default)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "optimizer_comparison: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  try {
    size_t used = 0;
    T value{};
    if constexpr (std::is_floating_point_v<T>) {
      value = static_cast<T>(std::stod(text, &used));
    } else if constexpr (std::is_unsigned_v<T>) {
      value = static_cast<T>(std::stoull(text, &used));
    } else {
      value = static_cast<T>(std::stoll(text, &used));
    }
    if (used != text.size()) {
      throw std::invalid_argument(text);
    }
    return value;
  } catch (const std::exception&) {
    usage_error(flag + " expects a number, got '" + text + "'");
  }
}

Flags parse_flags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::optional<std::string> inline_value;
    if (const size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) {
        return *inline_value;
      }
      if (i + 1 >= argc) {
        usage_error(arg + " needs a value");
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (arg == "--data") {
      flags.data = value();
    } else if (arg == "--train") {
      flags.train = parse_number<int64_t>(arg, value());
    } else if (arg == "--test") {
      flags.test = parse_number<int64_t>(arg, value());
    } else if (arg == "--epochs") {
      flags.epochs = parse_number<int>(arg, value());
    } else if (arg == "--batch-size") {
      flags.batch_size = parse_number<int64_t>(arg, value());
    } else if (arg == "--smooth") {
      flags.smooth = parse_number<int64_t>(arg, value());
    } else if (arg == "--toy-steps") {
      flags.toy_steps = parse_number<int>(arg, value());
    } else if (arg == "--linear-y") {
      flags.log_y = false;
    } else if (arg == "--out-dir") {
      flags.out_dir = value();
    } else if (arg == "--device") {
      flags.device = value();
    } else if (arg == "--seed") {
      flags.seed = parse_number<uint64_t>(arg, value());
    } else if (arg == "--threads") {
      flags.threads = parse_number<int>(arg, value());
    } else {
      usage_error("unknown flag '" + arg + "'");
    }
  }
  if (flags.train < 1) usage_error("--train must be at least 1");
  if (flags.test < 1) usage_error("--test must be at least 1");
  if (flags.epochs < 1) usage_error("--epochs must be at least 1");
  if (flags.batch_size < 1) usage_error("--batch-size must be at least 1");
  if (flags.smooth < 1) usage_error("--smooth must be at least 1");
  if (flags.toy_steps < 1) usage_error("--toy-steps must be at least 1");
  if (flags.threads < 0) usage_error("--threads must be positive");
  return flags;
}

// ---- data ----------------------------------------------------------------------------------

// The first `limit` images of a split, pixels scaled to [0, 1] and standardized with the
// Fashion-MNIST training set's mean and standard deviation (0.2860, 0.3530), as [N, 784]
// float32, and their labels as [N] int64.
struct Split {
  Tensor images;
  Tensor labels;
};

Split load_split(const fs::path& dir, bool train, int64_t limit, strata::Device device) {
  // load_mnist checks the files (magic numbers, sizes, labels 0..9).
  const strata::data::MnistSplit split = strata::data::load_mnist(dir, train, limit);
  const int64_t count = split.images.size(0);
  const int64_t features = split.images.size(1) * split.images.size(2);
  constexpr double kMean = 0.2860, kStd = 0.3530;
  const uint8_t* pixels = split.images.data<uint8_t>();
  std::vector<float> values(static_cast<size_t>(count * features));
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<float>((pixels[i] / 255.0 - kMean) / kStd);
  }
  return {strata::from_vector<float>(values, {count, features}).to(device),
          split.labels.to(device)};
}

// ---- the contenders --------------------------------------------------------------------------

using OptimizerFactory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

// An optimizer with its settings: one for the MLP, one for the toy surface (whose gradients
// are of another scale, so the learning rates differ).
struct Contender {
  std::string name;
  std::string mlp_settings;
  OptimizerFactory for_mlp;
  OptimizerFactory for_toy;
};

template <class OptimizerType, class Options>
OptimizerFactory factory(Options options) {
  return [options](std::vector<Tensor> params) -> std::unique_ptr<optim::Optimizer> {
    return std::make_unique<OptimizerType>(std::move(params), options);
  };
}

std::vector<Contender> contenders() {
  std::vector<Contender> list;
  list.push_back({"SGD", "lr 0.1", factory<optim::SGD>(optim::SGDOptions{.lr = 0.1}),
                  factory<optim::SGD>(optim::SGDOptions{.lr = 1e-3})});
  list.push_back({"Momentum", "lr 0.01, momentum 0.9",
                  factory<optim::SGD>(optim::SGDOptions{.lr = 0.01, .momentum = 0.9}),
                  factory<optim::SGD>(optim::SGDOptions{.lr = 1e-3, .momentum = 0.9})});
  list.push_back(
      {"Nesterov", "lr 0.01, momentum 0.9, nesterov",
       factory<optim::SGD>(optim::SGDOptions{.lr = 0.01, .momentum = 0.9, .nesterov = true}),
       factory<optim::SGD>(optim::SGDOptions{.lr = 1e-3, .momentum = 0.9, .nesterov = true})});
  list.push_back({"Adagrad", "lr 0.01", factory<optim::Adagrad>(optim::AdagradOptions{.lr = 0.01}),
                  factory<optim::Adagrad>(optim::AdagradOptions{.lr = 0.5})});
  list.push_back({"Adadelta", "lr 1.0, rho 0.9",
                  factory<optim::Adadelta>(optim::AdadeltaOptions{.lr = 1.0}),
                  factory<optim::Adadelta>(optim::AdadeltaOptions{.lr = 10.0})});
  list.push_back({"RMSprop", "lr 1e-3, alpha 0.99",
                  factory<optim::RMSprop>(optim::RMSpropOptions{.lr = 1e-3}),
                  factory<optim::RMSprop>(optim::RMSpropOptions{.lr = 1e-2})});
  list.push_back({"Adam", "lr 1e-3, betas (0.9, 0.999)",
                  factory<optim::Adam>(optim::AdamOptions{.lr = 1e-3}),
                  factory<optim::Adam>(optim::AdamOptions{.lr = 0.1})});
  // NOTE: eps_switch is an absolute tolerance on the estimated SGD learning rate; with the
  // default (1e-9, the paper's) the switch does not fire within either run here, and the
  // curve would be Adam's. 1e-4 lets it fire after a few hundred steps on the MLP and a few
  // dozen on the toy surface.
  list.push_back({"SWATS", "Adam to SGD switch, lr 1e-3, eps_switch 1e-4",
                  factory<optim::SWATS>(optim::SWATSOptions{.lr = 1e-3, .eps_switch = 1e-4}),
                  factory<optim::SWATS>(optim::SWATSOptions{.lr = 0.1, .eps_switch = 1e-4})});
  return list;
}

// ---- training on Fashion-MNIST -------------------------------------------------------------

// 784 -> 128 -> 10 with ReLU, He-initialized from `gen`.
nn::Sequential make_mlp(int64_t in, int64_t hidden, int64_t out, strata::Generator& gen) {
  nn::Sequential mlp(nn::Linear(in, hidden), nn::ReLU(), nn::Linear(hidden, out));
  for (auto& [name, p] : mlp.named_parameters()) {
    if (name.ends_with("weight")) {
      nn::init::kaiming_normal_(p, 0.0, nn::init::FanMode::FanIn, nn::init::Nonlinearity::Relu,
                                &gen);
    } else {
      nn::init::zeros_(p);
    }
  }
  return mlp;
}

struct RunResult {
  // (0, the first batch's loss at the initial weights), then (iteration, the mean training
  // loss of the --smooth iterations up to it; the last window may be shorter).
  std::vector<double> curve_x, curve_y;
  double final_loss = 0.0;               // over all training images, after training
  double accuracy = 0.0;                 // on the test images
  double seconds = 0.0;                  // training only
  std::string note;                      // what the switch did, for the Adam-to-SGD switch
};

// For the Adam-to-SGD switch: when it switched and to which learning rate; empty for the
// other optimizers.
std::string switch_note(const optim::Optimizer& optimizer) {
  const auto* swats = dynamic_cast<const optim::SWATS*>(&optimizer);
  if (swats == nullptr) {
    return "";
  }
  if (!swats->switched()) {
    return "still Adam at the end";
  }
  char text[96];
  std::snprintf(text, sizeof text, "switched to SGD after Adam step %lld, SGD lr %.3g",
                static_cast<long long>(swats->switch_step()), swats->sgd_lr());
  return text;
}

// The mean cross-entropy and the accuracy of `model` over `images`, in chunks.
std::pair<double, double> evaluate(nn::Module& model, const Split& split) {
  strata::NoGradGuard no_grad;
  const int64_t count = split.images.size(0);
  double loss_sum = 0.0, correct = 0.0;
  for (int64_t start = 0; start < count; start += 1000) {
    const int64_t length = std::min<int64_t>(1000, count - start);
    const Tensor logits = model(split.images.narrow(0, start, length));
    const Tensor labels = split.labels.narrow(0, start, length);
    loss_sum += nn::functional::cross_entropy(logits, labels).item<double>() *
                static_cast<double>(length);
    correct += (logits.argmax(1) == labels).to(strata::kFloat32).sum().item<double>();
  }
  return {loss_sum / static_cast<double>(count), correct / static_cast<double>(count)};
}

RunResult train_one(const Contender& contender, const nn::StateDict& initial,
                    const Split& train, const Split& test, const Flags& flags,
                    strata::Device device) {
  strata::Generator unused_gen(0);  // the weights come from `initial`
  nn::Sequential mlp = make_mlp(train.images.size(1), 128, kClasses, unused_gen);
  mlp.to(device);
  mlp.load_state_dict(initial);
  std::unique_ptr<optim::Optimizer> optimizer = contender.for_mlp(mlp.parameters());

  // The same seed for every contender: the same minibatches in the same order.
  std::mt19937_64 shuffle_rng(flags.seed);
  const int64_t count = train.images.size(0);
  std::vector<int64_t> order(static_cast<size_t>(count));
  RunResult result;
  double window_sum = 0.0;
  int64_t window_count = 0, iteration = 0;
  const auto start_time = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
    for (size_t i = 0; i < order.size(); ++i) {
      order[i] = static_cast<int64_t>(i);
    }
    std::shuffle(order.begin(), order.end(), shuffle_rng);
    const Tensor permutation = strata::from_vector<int64_t>(order).to(device);
    for (int64_t start = 0; start < count; start += flags.batch_size) {
      const int64_t length = std::min(flags.batch_size, count - start);
      const Tensor index = permutation.narrow(0, start, length);
      const Tensor x = strata::index_select(train.images, 0, index);  // [B, 784]
      const Tensor y = strata::index_select(train.labels, 0, index);  // [B]
      optimizer->zero_grad();
      const Tensor loss = nn::functional::cross_entropy(mlp(x), y);
      loss.backward();
      optimizer->step();
      const double loss_value = loss.item<double>();
      if (iteration == 0) {
        result.curve_x.push_back(0.0);
        result.curve_y.push_back(loss_value);
      }
      ++iteration;
      window_sum += loss_value;
      if (++window_count == flags.smooth) {
        result.curve_x.push_back(static_cast<double>(iteration));
        result.curve_y.push_back(window_sum / static_cast<double>(window_count));
        window_sum = 0.0;
        window_count = 0;
      }
    }
  }
  if (window_count > 0) {  // the last, shorter window
    result.curve_x.push_back(static_cast<double>(iteration));
    result.curve_y.push_back(window_sum / static_cast<double>(window_count));
  }
  strata::backend_for(device).synchronize();
  result.seconds = sample::seconds_since(start_time);
  result.note = switch_note(*optimizer);
  result.final_loss = evaluate(mlp, train).first;
  result.accuracy = evaluate(mlp, test).second;
  return result;
}

// ---- the toy surface -----------------------------------------------------------------------

// Beale's function: a curved valley that flattens towards its minimum f(3, 0.5) = 0 and walls
// that rise as y^6, a classic on which step-size adaptation visibly matters.
template <typename X, typename Y>
auto beale(const X& x, const Y& y) {
  const auto term = [&](double constant, const auto& y_power) {
    const auto inner = constant - x + x * y_power;
    return inner * inner;
  };
  return term(1.5, y) + term(2.25, y * y) + term(2.625, y * y * y);
}

constexpr std::array<double, 2> kToyStart = {1.0, 1.5};
constexpr std::array<double, 2> kToyMinimum = {3.0, 0.5};

// The points an optimizer visits on the toy surface, start included, and where it ends.
struct ToyRun {
  plot::Series path;
  double final_value = 0.0;
  std::string note;  // see switch_note
};

ToyRun toy_run(const Contender& contender, int steps) {
  Tensor point = strata::from_vector<double>({kToyStart[0], kToyStart[1]})
                     .set_requires_grad(true);  // float64: the path, not rounding, is the story
  std::unique_ptr<optim::Optimizer> optimizer = contender.for_toy({point});
  plot::Series path{contender.name, {kToyStart[0]}, {kToyStart[1]}};
  for (int step = 0; step < steps; ++step) {
    optimizer->zero_grad();
    beale(point.select(0, 0), point.select(0, 1)).backward();
    optimizer->step();
    const std::vector<double> at = point.to_vector<double>();
    path.x.push_back(at[0]);
    path.y.push_back(at[1]);
  }
  const double final_value = beale(path.x.back(), path.y.back());
  return {std::move(path), final_value, switch_note(*optimizer)};
}

plot::Grid toy_grid() {
  plot::Grid grid;
  grid.x_min = -0.5;
  grid.x_max = 4.0;
  grid.y_min = -1.0;
  grid.y_max = 2.0;
  grid.columns = 181;
  grid.rows = 121;
  for (int64_t row = 0; row < grid.rows; ++row) {
    for (int64_t column = 0; column < grid.columns; ++column) {
      const double x = grid.x_min + (grid.x_max - grid.x_min) * static_cast<double>(column) /
                                        static_cast<double>(grid.columns - 1);
      const double y = grid.y_min + (grid.y_max - grid.y_min) * static_cast<double>(row) /
                                        static_cast<double>(grid.rows - 1);
      grid.values.push_back(beale(x, y));
    }
  }
  return grid;
}

// ---- the program -----------------------------------------------------------------------------

int run(const Flags& flags) {
  if (flags.threads > 0) {
    strata::set_num_threads(flags.threads);
  }
  const strata::Device device = sample::pick_device(flags.device);
  std::printf("Strata %s, device %s, threads %d\n", strata::kVersion, device.str().c_str(),
              strata::get_num_threads());
  const fs::path out_dir = flags.out_dir;
  fs::create_directories(out_dir);
  const auto program_start = std::chrono::steady_clock::now();
  const std::vector<Contender> list = contenders();

  // 1. Fashion-MNIST.
  const fs::path dir = flags.data;
  STRATA_CHECK(fs::is_directory(dir), "fashion-mnist: data folder ", dir.string(),
               " not found; install the Debian package dataset-fashion-mnist "
               "(apt-get install dataset-fashion-mnist) or pass --data DIR");
  const Split train = load_split(dir, /*train=*/true, flags.train, device);
  const Split test = load_split(dir, /*train=*/false, flags.test, device);
  std::printf("data: %lld training and %lld test images from %s; %d epochs of batch %lld\n",
              static_cast<long long>(train.images.size(0)),
              static_cast<long long>(test.images.size(0)), dir.c_str(), flags.epochs,
              static_cast<long long>(flags.batch_size));

  // One initialization for all: its values are copied (state_dict shares the model's data).
  strata::Generator gen(flags.seed);
  nn::StateDict initial;
  {
    nn::Sequential reference = make_mlp(train.images.size(1), 128, kClasses, gen);
    for (const auto& [name, tensor] : reference.state_dict()) {
      initial[name] = tensor.clone();
    }
  }

  // NOTE: the first training run in a process also pays for starting the thread pool and
  // growing the allocator's caches; a short untimed run first keeps that out of the table.
  {
    Flags short_run = flags;
    short_run.epochs = 1;
    const int64_t count = std::min<int64_t>(1280, train.images.size(0));
    const Split few{train.images.narrow(0, 0, count), train.labels.narrow(0, 0, count)};
    train_one(list.front(), initial, few, few, short_run, device);
  }

  std::vector<plot::Series> curves;
  std::vector<RunResult> results;
  for (const Contender& contender : list) {
    RunResult result = train_one(contender, initial, train, test, flags, device);
    std::printf("  %-9s loss %.4f, accuracy %.2f%%, %.2f s%s%s\n", contender.name.c_str(),
                result.final_loss, 100.0 * result.accuracy, result.seconds,
                result.note.empty() ? "" : "; ", result.note.c_str());
    std::fflush(stdout);
    curves.push_back({contender.name, result.curve_x, result.curve_y});
    results.push_back(std::move(result));
  }
  plot::LineChartOptions chart;
  chart.title = "Fashion-MNIST, 784-128-10 MLP: training loss (mean of " +
                std::to_string(flags.smooth) + " iterations)";
  chart.x_label = "iteration (batch of " + std::to_string(flags.batch_size) + ")";
  chart.y_label = "cross-entropy loss";
  chart.log_y = flags.log_y;
  plot::write_file((out_dir / "optimizer_loss.svg").string(),
                        plot::line_chart(curves, chart));

  std::printf("\n| optimizer | settings | final train loss | test accuracy | seconds |\n"
              "| --- | --- | ---: | ---: | ---: |\n");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string settings =
        list[i].mlp_settings + (results[i].note.empty() ? "" : "; " + results[i].note);
    std::printf("| %s | %s | %.4f | %.2f%% | %.2f |\n", list[i].name.c_str(), settings.c_str(),
                results[i].final_loss, 100.0 * results[i].accuracy, results[i].seconds);
  }

  // 2. The toy surface.
  std::vector<plot::Series> paths;
  std::printf("\nBeale's function from (%g, %g), %d steps (minimum 0 at (3, 0.5)):\n",
              kToyStart[0], kToyStart[1], flags.toy_steps);
  for (const Contender& contender : list) {
    ToyRun toy = toy_run(contender, flags.toy_steps);
    std::printf("  %-9s ends at (%.3f, %.3f), f = %.3g%s%s\n", contender.name.c_str(),
                toy.path.x.back(), toy.path.y.back(), toy.final_value,
                toy.note.empty() ? "" : "; ", toy.note.c_str());
    char label[96];
    std::snprintf(label, sizeof label, "%s (f = %.2g)", contender.name.c_str(), toy.final_value);
    toy.path.label = label;
    paths.push_back(std::move(toy.path));
  }
  const plot::Grid grid = toy_grid();
  plot::ContourPlotOptions plot;
  plot.title = "Beale's function: " + std::to_string(flags.toy_steps) +
               " steps from (1, 1.5), final value in the legend";
  plot.stars = {kToyMinimum};
  plot.star_label = "minimum (3, 0.5)";
  plot::write_file((out_dir / "optimizer_paths.svg").string(),
                        plot::contour_plot(grid, plot::log_spaced_levels(grid, 20, 1e-5),
                                                paths, plot));

  std::printf("\nwrote %s and %s (%.1f s in all)\n",
              (out_dir / "optimizer_loss.svg").c_str(), (out_dir / "optimizer_paths.svg").c_str(),
              sample::seconds_since(program_start));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv);
  try {
    return run(flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "optimizer_comparison: %s\n", e.what());
    return 1;
  }
}
