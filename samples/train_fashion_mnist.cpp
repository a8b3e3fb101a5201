// train_fashion_mnist: a 784-128-10 MLP (nn::Sequential of Linear and ReLU layers) trained on
// Fashion-MNIST with cross-entropy and minibatch SGD with momentum (written out: the optimizer
// suite comes later).
// Reads the IDX files (gzipped or not) from --data with data::load_mnist, standardizes the
// pixels with the training set's mean and standard deviation, trains, and prints the loss per
// epoch, the training time and the test accuracy. Exits 0 on success, 1 on an error (with a
// message saying why), 2 on bad flags. One epoch on the default data reaches about 85% test
// accuracy.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/data/readers.h"
#include "strata/strata.h"

namespace {

namespace fs = std::filesystem;
using strata::Tensor;
namespace nn = strata::nn;

constexpr const char* kDefaultData = strata::data::kFashionMnistDir;
constexpr int64_t kClasses = 10;

// ---- flags ---------------------------------------------------------------------------------

struct Flags {
  std::string data = kDefaultData;
  int epochs = 1;
  int64_t batch_size = 64;
  double lr = 0.01;
  double momentum = 0.9;
  int64_t limit = 0;  // training images used; 0: all
  std::string device = "auto";
  uint64_t seed = 42;
  int threads = 0;  // 0: the library's default
  double min_accuracy = 0.0;  // exit 1 when the test accuracy ends below this (0: no check)
};

constexpr const char* kUsage =
    "usage: train_fashion_mnist [flags]\n"
    "  --data DIR          folder with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]\n"
    "                      (default /usr/share/datasets/fashion-mnist)\n"
    "  --epochs N          passes over the training set (default 1)\n"
    "  --batch-size N      minibatch size (default 64)\n"
    "  --lr X              learning rate (default 0.01)\n"
    "  --momentum X        SGD momentum (default 0.9)\n"
    "  --limit N           use the first N training images; 0 = all (default 0)\n"
    "  --device D          cpu, cuda, cuda:K or auto (default auto: cuda when available)\n"
    "  --seed N            seed for the weights and the shuffling (default 42)\n"
    "  --threads N         CPU threads (default: the library's default)\n"
    "  --min-accuracy X    exit 1 if the final test accuracy is below X, in [0, 1]\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "train_fashion_mnist: %s\n%s", message.c_str(), kUsage);
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
    } else if (arg == "--epochs") {
      flags.epochs = parse_number<int>(arg, value());
    } else if (arg == "--batch-size") {
      flags.batch_size = parse_number<int64_t>(arg, value());
    } else if (arg == "--lr") {
      flags.lr = parse_number<double>(arg, value());
    } else if (arg == "--momentum") {
      flags.momentum = parse_number<double>(arg, value());
    } else if (arg == "--limit") {
      flags.limit = parse_number<int64_t>(arg, value());
    } else if (arg == "--device") {
      flags.device = value();
    } else if (arg == "--seed") {
      flags.seed = parse_number<uint64_t>(arg, value());
    } else if (arg == "--threads") {
      flags.threads = parse_number<int>(arg, value());
    } else if (arg == "--min-accuracy") {
      flags.min_accuracy = parse_number<double>(arg, value());
    } else {
      usage_error("unknown flag '" + arg + "'");
    }
  }
  if (flags.epochs < 1) usage_error("--epochs must be at least 1");
  if (flags.batch_size < 1) usage_error("--batch-size must be at least 1");
  if (!(flags.lr > 0.0)) usage_error("--lr must be positive");
  if (flags.momentum < 0.0 || flags.momentum >= 1.0) usage_error("--momentum must be in [0, 1)");
  if (flags.limit < 0) usage_error("--limit must be 0 (all) or positive");
  if (flags.threads < 0) usage_error("--threads must be positive");
  return flags;
}

// ---- data ----------------------------------------------------------------------------------

// One split as the training loop uses it: pixels as stored (0..255), [count, features] row-major
// on the host, and the labels.
struct Split {
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  int64_t count = 0;
  int64_t features = 0;
};

// data::load_mnist checks the files (magic numbers, sizes, labels 0..9); `limit` 0 keeps all.
Split load_split(const fs::path& dir, bool train, int64_t limit) {
  const strata::data::MnistSplit split = strata::data::load_mnist(dir, train, limit);
  Split out;
  out.count = split.images.size(0);
  out.features = split.images.size(1) * split.images.size(2);
  out.pixels = split.images.to_vector<uint8_t>();
  out.labels = split.labels.to_vector<int64_t>();
  return out;
}

// ---- the model --------------------------------------------------------------------------------

// 784 -> 128 -> 10 with ReLU, He-initialized (N(0, 2 / fan_in) weights, zero biases) from
// `gen`, so --seed fixes the starting point.
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

// Fraction of `labels` that argmax(logits) gets right, in chunks to bound memory.
double accuracy(nn::Module& model, const Tensor& images, const Tensor& labels) {
  strata::NoGradGuard no_grad;
  const int64_t count = images.size(0);
  double correct = 0.0;
  for (int64_t start = 0; start < count; start += 1000) {
    const int64_t length = std::min<int64_t>(1000, count - start);
    const Tensor predicted = model(images.narrow(0, start, length)).argmax(1);
    correct += (predicted == labels.narrow(0, start, length)).to(strata::kFloat32).sum()
                   .item<double>();
  }
  return correct / static_cast<double>(count);
}

strata::Device pick_device(const std::string& text) {
  if (text == "auto") {
    return strata::cuda_is_available() ? strata::Device(strata::kCUDA, 0)
                                       : strata::Device(strata::kCPU);
  }
  const strata::Device device = strata::Device::parse(text);
  strata::backend_for(device);  // throws, saying why, when the device cannot be used
  return device;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(const Flags& flags) {
  if (flags.threads > 0) {
    strata::set_num_threads(flags.threads);
  }
  const strata::Device device = pick_device(flags.device);
  std::printf("Strata %s, device %s, threads %d\n", strata::kVersion, device.str().c_str(),
              strata::get_num_threads());

  const fs::path dir = flags.data;
  STRATA_CHECK(fs::is_directory(dir), "fashion-mnist: data folder ", dir.string(),
               " not found; install the Debian package dataset-fashion-mnist "
               "(apt-get install dataset-fashion-mnist) or pass --data DIR");
  const auto load_start = std::chrono::steady_clock::now();
  const Split train = load_split(dir, /*train=*/true, flags.limit);
  const Split test = load_split(dir, /*train=*/false, 0);
  STRATA_CHECK(train.features == test.features, "fashion-mnist: training images have ",
               train.features, " pixels but test images have ", test.features);

  // Standardize pixels scaled to [0, 1] with the training set's mean and standard deviation
  // (the test set uses the same ones). A pixel has 256 values, so a histogram gives the
  // statistics and a table the standardized values.
  std::vector<int64_t> histogram(256, 0);
  for (const uint8_t v : train.pixels) {
    ++histogram[v];
  }
  double sum = 0.0;
  double sum_sq = 0.0;
  for (int v = 0; v < 256; ++v) {
    const double x = v / 255.0;
    sum += static_cast<double>(histogram[v]) * x;
    sum_sq += static_cast<double>(histogram[v]) * x * x;
  }
  const double n = static_cast<double>(train.pixels.size());
  const double mean = sum / n;
  const double stddev = std::sqrt(std::max(sum_sq / n - mean * mean, 1e-12));
  std::vector<float> table(256);
  for (int v = 0; v < 256; ++v) {
    table[v] = static_cast<float>((v / 255.0 - mean) / stddev);
  }
  const auto standardized = [&](const Split& split) {
    std::vector<float> values(split.pixels.size());
    std::transform(split.pixels.begin(), split.pixels.end(), values.begin(),
                   [&](uint8_t v) { return table[v]; });
    return strata::from_vector<float>(values, {split.count, split.features}).to(device);
  };

  const Tensor train_x = standardized(train);
  const Tensor train_y = strata::from_vector<int64_t>(train.labels, {train.count}).to(device);
  const Tensor test_x = standardized(test);
  const Tensor test_y = strata::from_vector<int64_t>(test.labels, {test.count}).to(device);
  std::printf("data: %lld training and %lld test images of %lld pixels from %s (%.2f s; pixel "
              "mean %.4f, std %.4f)\n",
              static_cast<long long>(train.count), static_cast<long long>(test.count),
              static_cast<long long>(train.features), dir.c_str(), seconds_since(load_start),
              mean, stddev);

  strata::Generator gen(flags.seed);
  nn::Sequential mlp = make_mlp(train.features, 128, kClasses, gen);
  mlp.to(device);
  const std::vector<Tensor> params = mlp.parameters();
  std::vector<Tensor> velocity;
  for (const Tensor& p : params) {
    velocity.push_back(strata::zeros_like(p));
  }

  std::mt19937_64 shuffle_rng(flags.seed);
  std::vector<int64_t> order(static_cast<size_t>(train.count));
  double train_seconds = 0.0;
  for (int epoch = 1; epoch <= flags.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    // Fisher-Yates on the host; the permutation goes to the device once per epoch.
    for (size_t i = 0; i < order.size(); ++i) {
      order[i] = static_cast<int64_t>(i);
    }
    for (size_t i = order.size() - 1; i > 0; --i) {
      std::uniform_int_distribution<size_t> pick(0, i);
      std::swap(order[i], order[pick(shuffle_rng)]);
    }
    const Tensor permutation = strata::from_vector<int64_t>(order).to(device);

    double loss_sum = 0.0;
    int64_t steps = 0;
    for (int64_t start = 0; start < train.count; start += flags.batch_size) {
      const int64_t length = std::min(flags.batch_size, train.count - start);
      const Tensor index = permutation.narrow(0, start, length);
      const Tensor x = strata::index_select(train_x, 0, index);  // [B, 784]
      const Tensor y = strata::index_select(train_y, 0, index);  // [B]

      const Tensor loss = nn::functional::cross_entropy(mlp(x), y);
      loss.backward();
      loss_sum += loss.item<double>();
      ++steps;

      // SGD with momentum, as torch.optim.SGD: v = momentum * v + g; p -= lr * v.
      strata::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        Tensor p = params[i];
        velocity[i].mul_(flags.momentum).add_(p.grad());
        p.add_(velocity[i], -flags.lr);
        p.zero_grad();
      }
    }
    strata::backend_for(device).synchronize();
    const double seconds = seconds_since(epoch_start);
    train_seconds += seconds;
    const double mean_loss = loss_sum / static_cast<double>(steps);
    STRATA_CHECK(std::isfinite(mean_loss), "train_fashion_mnist: the loss diverged (", mean_loss,
                 ") in epoch ", epoch, "; try a smaller --lr");
    std::printf("epoch %d/%d: loss %.4f, %lld steps, %.2f s (%.0f images/s)\n", epoch,
                flags.epochs, mean_loss, static_cast<long long>(steps), seconds,
                static_cast<double>(train.count) / seconds);
    std::fflush(stdout);
  }

  const double test_accuracy = accuracy(mlp, test_x, test_y);
  std::printf("train time %.2f s; test accuracy %.2f%% (%lld images)\n", train_seconds,
              100.0 * test_accuracy, static_cast<long long>(test.count));
  if (flags.min_accuracy > 0.0 && test_accuracy < flags.min_accuracy) {
    std::fprintf(stderr, "train_fashion_mnist: test accuracy %.4f is below --min-accuracy %.4f\n",
                 test_accuracy, flags.min_accuracy);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = parse_flags(argc, argv);
  try {
    return run(flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_fashion_mnist: %s\n", e.what());
    return 1;
  }
}
