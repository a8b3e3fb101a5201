// The shared part of the training samples: see sample.h.
#include "sample.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace sample {

namespace fs = std::filesystem;
namespace amp = strata::amp;
namespace distributed = strata::distributed;
namespace io = strata::io;
namespace nn = strata::nn;
namespace optim = strata::optim;
namespace train = strata::train;

// ---- the command line -------------------------------------------------------------------------

namespace {

// What make_optimizer knows, in the order --help lists them.
const std::vector<std::string> kOptimizers = {"sgd",  "nesterov", "adagrad", "adadelta", "rmsprop",
                                              "adam", "adamw",    "adamax",  "nadam"};

std::string number_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

}  // namespace

CommandLine::CommandLine(std::string program, std::string summary, Flags defaults)
    : program_(std::move(program)), summary_(std::move(summary)), flags_(std::move(defaults)) {
  Flags& f = flags_;
  add("--data", "PATH", "the data set (default " + (f.data.empty() ? "none" : f.data) + ")",
      [&f](const std::string& v) { f.data = v; });
  add("--epochs", "N", "passes over the training data (default " + std::to_string(f.epochs) + ")",
      [this, &f](const std::string& v) { f.epochs = integer("--epochs", v); });
  add("--batch-size", "N", "examples per step (default " + std::to_string(f.batch_size) + ")",
      [this, &f](const std::string& v) { f.batch_size = integer("--batch-size", v); });
  add("--lr", "X", "learning rate (default " + number_text(f.lr) + ")",
      [this, &f](const std::string& v) { f.lr = real("--lr", v); });
  add("--optimizer", "NAME",
      optimizer_names() + " (default " + f.optimizer + ")",
      [&f](const std::string& v) { f.optimizer = v; });
  add("--device", "D", "cpu, cuda, cuda:K or auto: cuda when there is one (default " + f.device +
                           ")",
      [&f](const std::string& v) { f.device = v; });
  add("--precision", "P",
      "f32, bf16 (autocast) or f16 (autocast and a gradient scaler) (default " + f.precision +
          ")",
      [this, &f](const std::string& v) {
        try {
          (void)strata::train::parse_precision(v);
        } catch (const strata::Error& e) {
          fail(std::string("--precision: ") + e.what());
        }
        f.precision = v;
      });
  add("--out", "DIR",
      "where log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors go (default " +
          f.out + ")",
      [&f](const std::string& v) { f.out = v; });
  add_switch("--resume", "continue from the newest checkpoint in --out",
             [&f] { f.resume = true; });
  add("--seed", "N", "seed of the weights, the shuffling and augmentation (default " +
                         std::to_string(f.seed) + ")",
      [this, &f](const std::string& v) {
        const int64_t seed = integer("--seed", v);
        if (seed < 0) fail("--seed must be at least 0");
        f.seed = static_cast<uint64_t>(seed);
      });
  add("--threads", "N", "CPU threads (default: the library's)",
      [this, &f](const std::string& v) { f.threads = static_cast<int>(integer("--threads", v)); });
  add("--limit", "N", "use the first N training examples; 0 = all (default 0)",
      [this, &f](const std::string& v) { f.limit = integer("--limit", v); });
  add("--workers", "N", "background loading threads (default " + std::to_string(f.workers) + ")",
      [this, &f](const std::string& v) { f.workers = integer("--workers", v); });
  add("--validation-fraction", "X",
      "validate on this fraction of the training data instead of the test split (default 0)",
      [this, &f](const std::string& v) {
        f.validation_fraction = real("--validation-fraction", v);
      });
  add("--patience", "N", "stop after N epochs without a better val_loss; 0 = never (default 0)",
      [this, &f](const std::string& v) { f.patience = integer("--patience", v); });
  add("--min-accuracy", "X", "exit 1 when the test accuracy ends below X, in [0, 1]",
      [this, &f](const std::string& v) { f.min_accuracy = real("--min-accuracy", v); });
  add("--progress", "MODE", "auto, bar, lines or none (default auto: a bar on a terminal)",
      [&f](const std::string& v) { f.progress = v; });
  add_switch("--distributed",
             "data-parallel over the processes of an MPI job (mpirun -np N " + program_ +
                 " --distributed); --batch-size is per process",
             [&f] { f.distributed = true; });
}

void CommandLine::add(std::string name, std::string value_name, std::string help,
                      std::function<void(const std::string&)> set) {
  options_.push_back({std::move(name), std::move(value_name), std::move(help), std::move(set),
                      nullptr});
}

void CommandLine::add_switch(std::string name, std::string help, std::function<void()> set) {
  options_.push_back({std::move(name), "", std::move(help), nullptr, std::move(set)});
}

std::string CommandLine::usage() const {
  std::string text = "usage: " + program_ + " [flags]\n" + summary_ + "\n\nflags:\n";
  for (const Option& option : options_) {
    std::string left = "  " + option.name;
    if (!option.value_name.empty()) left += " " + option.value_name;
    if (left.size() < 26) {
      left.resize(26, ' ');
    } else {
      left += "\n" + std::string(26, ' ');
    }
    text += left + option.help + "\n";
  }
  text += "  --help                  this text\n";
  return text;
}

void CommandLine::fail(const std::string& message) const {
  std::fprintf(stderr, "%s: %s\n(%s --help lists the flags)\n", program_.c_str(),
               message.c_str(), program_.c_str());
  std::exit(2);
}

int64_t CommandLine::integer(const std::string& flag, const std::string& text) const {
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size()) return value;
  } catch (const std::exception&) {
  }
  fail(flag + " expects an integer, got '" + text + "'");
}

double CommandLine::real(const std::string& flag, const std::string& text) const {
  try {
    size_t used = 0;
    const double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  fail(flag + " expects a number, got '" + text + "'");
}

Flags CommandLine::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    if (name == "-h" || name == "--help") {
      std::fputs(usage().c_str(), stdout);
      std::exit(0);
    }
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); name.starts_with("--") && eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Option* option = nullptr;
    for (const Option& candidate : options_) {
      if (candidate.name == name) option = &candidate;
    }
    if (option == nullptr) fail("unknown flag '" + name + "'");
    if (option->set_switch) {
      if (inline_value) fail(name + " takes no value");
      option->set_switch();
      continue;
    }
    if (!inline_value && i + 1 >= argc) fail(name + " needs a value");
    option->set(inline_value ? *inline_value : std::string(argv[++i]));
  }

  const Flags& f = flags_;
  if (f.epochs < 1) fail("--epochs must be at least 1");
  if (f.batch_size < 1) fail("--batch-size must be at least 1");
  if (!(f.lr > 0.0)) fail("--lr must be positive");
  if (f.threads < 0) fail("--threads must be at least 0");
  if (f.limit < 0) fail("--limit must be 0 (all) or positive");
  if (f.workers < 0) fail("--workers must be at least 0");
  if (f.patience < 0) fail("--patience must be at least 0");
  if (f.validation_fraction < 0.0 || f.validation_fraction >= 1.0) {
    fail("--validation-fraction must be in [0, 1)");
  }
  if (f.min_accuracy < 0.0 || f.min_accuracy > 1.0) fail("--min-accuracy must be in [0, 1]");
  if (f.out.empty()) fail("--out needs a folder");
  if (f.progress != "auto" && f.progress != "bar" && f.progress != "lines" &&
      f.progress != "none") {
    fail("--progress must be auto, bar, lines or none, not '" + f.progress + "'");
  }
  if (std::find(kOptimizers.begin(), kOptimizers.end(), f.optimizer) == kOptimizers.end()) {
    fail("--optimizer must be one of " + optimizer_names() + ", not '" +
         f.optimizer + "'");
  }
  return flags_;
}

// ---- device, optimizer --------------------------------------------------------------------

std::shared_ptr<distributed::ProcessGroup> job_group(const Flags& flags) {
  if (!flags.distributed) return nullptr;
  static const std::shared_ptr<distributed::ProcessGroup> group = [] {
    std::shared_ptr<distributed::ProcessGroup> made = distributed::new_mpi_group();
    if (made->rank() != 0) {
      std::fflush(stdout);
      STRATA_CHECK(std::freopen("/dev/null", "w", stdout) != nullptr, "--distributed: rank ",
                   made->rank(), " cannot quiet its standard output");
    }
    return made;
  }();
  return group;
}

strata::Device pick_device(const Flags& flags) {
  if (!flags.distributed) return pick_device(flags.device);
  (void)job_group(flags);  // joined first: from here on only rank 0 prints
  // One CUDA device per process on a machine: local rank K takes cuda:K.
  if ((flags.device == "auto" || flags.device == "cuda") && strata::cuda_is_available()) {
    return strata::Device(strata::kCUDA, distributed::local_rank() % strata::cuda_device_count());
  }
  return pick_device(flags.device);
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

std::string optimizer_names() {
  std::string names;
  for (size_t i = 0; i < kOptimizers.size(); ++i) {
    names += (i == 0 ? "" : i + 1 == kOptimizers.size() ? " or " : ", ") + kOptimizers[i];
  }
  return names;
}

std::unique_ptr<optim::Optimizer> make_optimizer(const std::string& name,
                                                 std::vector<strata::Tensor> params, double lr) {
  if (name == "sgd") return std::make_unique<optim::SGD>(params, optim::SGDOptions{.lr = lr, .momentum = 0.9});
  if (name == "nesterov") {
    return std::make_unique<optim::SGD>(
        params, optim::SGDOptions{.lr = lr, .momentum = 0.9, .nesterov = true});
  }
  if (name == "adagrad") return std::make_unique<optim::Adagrad>(params, optim::AdagradOptions{.lr = lr});
  if (name == "adadelta") return std::make_unique<optim::Adadelta>(params, optim::AdadeltaOptions{.lr = lr});
  if (name == "rmsprop") return std::make_unique<optim::RMSprop>(params, optim::RMSpropOptions{.lr = lr});
  if (name == "adam") return std::make_unique<optim::Adam>(params, optim::AdamOptions{.lr = lr});
  if (name == "adamw") return std::make_unique<optim::AdamW>(params, optim::AdamWOptions{.lr = lr});
  if (name == "adamax") return std::make_unique<optim::Adamax>(params, optim::AdamaxOptions{.lr = lr});
  if (name == "nadam") return std::make_unique<optim::NAdam>(params, optim::NAdamOptions{.lr = lr});
  throw strata::Error(strata::detail::concat("make_optimizer: unknown optimizer \"", name,
                                             "\"; known: ", optimizer_names()));
}

void print_banner(const std::string& program, const Flags& flags, strata::Device device) {
  if (flags.threads > 0) strata::set_num_threads(flags.threads);
  std::printf("%s: Strata %s, device %s, %d CPU threads, precision %s", program.c_str(),
              strata::kVersion, device.str().c_str(), strata::get_num_threads(),
              flags.precision.c_str());
  if (const auto group = job_group(flags)) {
    std::printf(", data-parallel over %d processes (%s)", group->size(),
                group->backend_name().c_str());
  }
  std::printf("\n");
  std::fflush(stdout);
}

// ---- the classifier run -----------------------------------------------------------------

namespace {

train::Verbosity verbosity(const std::string& progress) {
  if (progress == "bar") return train::Verbosity::Bar;
  if (progress == "lines") return train::Verbosity::Lines;
  if (progress == "none") return train::Verbosity::Silent;
  return train::Verbosity::Auto;
}

}  // namespace

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(nn::Module& plain_model, const Flags& flags, strata::Device device, const Task& task,
        train::Logs* test_logs) {
  const fs::path out = flags.out;
  fs::create_directories(out);
  const fs::path checkpoints = out / "checkpoints";

  // --distributed trains a DistributedDataParallel of the model (which outlives this function:
  // the wrapper holds it without owning it).
  std::shared_ptr<distributed::ProcessGroup> group = job_group(flags);
  // On GPUs the gradients go GPU to GPU through NCCL, set up over the MPI job.
  if (group != nullptr && device.is_cuda() && distributed::nccl_available()) {
    group = distributed::new_nccl_group(group, device);
    std::printf("collectives: NCCL on %s\n", device.str().c_str());
  }
  std::shared_ptr<nn::DistributedDataParallel> data_parallel;
  if (group != nullptr) {
    data_parallel = std::make_shared<nn::DistributedDataParallel>(
        std::shared_ptr<nn::Module>(std::shared_ptr<nn::Module>(), &plain_model), group);
  }
  nn::Module& model = data_parallel != nullptr ? *data_parallel : plain_model;
  const bool main_process = group == nullptr || group->rank() == 0;

  std::unique_ptr<optim::Optimizer> optimizer =
      make_optimizer(flags.optimizer, model.parameters(), flags.lr);
  const train::MixedPrecision precision = train::parse_precision(flags.precision);
  // A float16 run's loss scale lives across epochs and resumes with the checkpoints.
  std::shared_ptr<amp::GradScaler> grad_scaler;
  if (precision == train::MixedPrecision::Float16) grad_scaler = std::make_shared<amp::GradScaler>();

  int64_t initial_epoch = 0;
  if (flags.resume) {
    const train::Resumed resumed = train::resume_from_latest(
        checkpoints.string(), model, *optimizer, nullptr, device, grad_scaler.get());
    if (resumed.path.empty()) {
      std::printf("nothing to resume in %s: starting at epoch 1\n", checkpoints.c_str());
    } else {
      std::printf("resuming from %s (%lld epochs done)\n", resumed.path.c_str(),
                  static_cast<long long>(resumed.epoch));
    }
    initial_epoch = resumed.epoch;
  }

  const bool validate_on_test = flags.validation_fraction == 0.0;
  std::vector<std::pair<std::string, std::string>> config;
  if (!task.model.empty()) config.emplace_back("model", task.model);
  config.insert(config.end(), task.config.begin(), task.config.end());
  config.insert(
      config.end(),
      {
          {"optimizer", flags.optimizer},
          {"learning rate", number_text(flags.lr)},
          {"batch size", group != nullptr ? std::to_string(flags.batch_size) + " per process x " +
                                                std::to_string(group->size()) + " processes"
                                          : std::to_string(flags.batch_size)},
          {"epochs", std::to_string(flags.epochs)},
          {"seed", std::to_string(flags.seed)},
          {"device", device.str()},
          {"precision", train::precision_name(precision)},
          {"CPU threads", std::to_string(strata::get_num_threads())},
          {"training examples", std::to_string(task.train->size())},
          {"validation", validate_on_test
                             ? "the test split (" + std::to_string(task.test->size()) + " examples)"
                             : number_text(flags.validation_fraction) + " of the training data"},
      });
  // A resumed run's report covers the epochs before the checkpoint too, from the log.
  train::History earlier;
  if (initial_epoch > 0 && fs::exists(out / "log.csv")) {
    earlier = train::load_csv_log((out / "log.csv").string());
  }
  auto report = std::make_shared<train::HtmlReport>(
      (out / "report.html").string(),
      train::HtmlReportOptions{.title = task.title,
                               .config = config,
                               .class_names = task.class_names,
                               .confusion_matrix = !task.class_names.empty(),
                               .earlier = earlier});

  std::vector<std::shared_ptr<train::Callback>> callbacks = {
      std::make_shared<train::CsvLogger>((out / "log.csv").string(), flags.resume),
      std::make_shared<train::JsonLinesLogger>((out / "log.jsonl").string(), flags.resume),
      std::make_shared<train::ModelCheckpoint>(
          checkpoints.string(), train::ModelCheckpointOptions{.save_best = true}),
  };
  if (flags.patience > 0) {
    callbacks.push_back(std::make_shared<train::EarlyStopping>(
        train::EarlyStoppingOptions{.patience = flags.patience, .restore_best_weights = true}));
  }
  callbacks.push_back(report);

  double train_seconds = 0.0;
  if (initial_epoch >= flags.epochs) {
    std::printf("the checkpoint has all %lld epochs: nothing to train (raise --epochs)\n",
                static_cast<long long>(flags.epochs));
  } else {
    const auto start = std::chrono::steady_clock::now();
    const train::History history =
        train::fit(model, task.loss, *optimizer, task.train,
                   {.epochs = flags.epochs,
                    .batch_size = flags.batch_size,
                    .seed = flags.seed,
                    .workers = flags.workers,
                    .transform = task.transform,
                    .validation = validate_on_test ? task.test : nullptr,
                    .validation_fraction = flags.validation_fraction,
                    .validation_batch_size = std::max<int64_t>(flags.batch_size, 256),
                    .metrics = task.metrics,
                    .num_classes = static_cast<int64_t>(task.class_names.size()),
                    .callbacks = callbacks,
                    .verbose = verbosity(flags.progress),
                    .device = device,
                    .initial_epoch = initial_epoch,
                    .precision = precision,
                    .grad_scaler = grad_scaler,
                    .process_group = group});
    strata::backend_for(device).synchronize();
    train_seconds = seconds_since(start);
    const double last_loss = history.back().at("loss");
    STRATA_CHECK(std::isfinite(last_loss), task.program, ": the training loss is ", last_loss,
                 "; try a smaller --lr");
  }

  const auto eval_start = std::chrono::steady_clock::now();
  const train::Logs test =
      train::evaluate(model, task.loss, task.test,
                      {.batch_size = 500,
                       .metrics = task.metrics,
                       .num_classes = static_cast<int64_t>(task.class_names.size()),
                       .device = device,
                       .precision = precision,
                       .process_group = group});
  const double eval_seconds = seconds_since(eval_start);
  if (test_logs != nullptr) *test_logs = test;
  std::string summary;
  for (const auto& [name, value] : test) {
    report->add_final_metric("test_" + name, value);
    const bool percent = name.find("acc") != std::string::npos;
    char text[96];
    std::snprintf(text, sizeof text, percent ? "%s%s %.2f%%" : "%s%s %.4g",
                  summary.empty() ? "" : ", ", name.c_str(), percent ? 100.0 * value : value);
    summary += text;
  }
  if (train_seconds > 0.0) report->write();

  if (main_process) io::save(plain_model, (out / "model.safetensors").string());

  std::printf("training time %.2f s (%lld epochs%s); test evaluation %.2f s\n", train_seconds,
              static_cast<long long>(flags.epochs - initial_epoch),
              initial_epoch > 0 ? ", resumed" : "", eval_seconds);
  std::printf("test (%lld examples): %s\n", static_cast<long long>(task.test->size()),
              summary.c_str());
  if (train_seconds > 0.0) std::printf("report: %s\n", (out / "report.html").c_str());
  std::printf("logs, checkpoints and model.safetensors: %s\n", out.c_str());
  std::fflush(stdout);
  if (flags.min_accuracy > 0.0) {
    const auto accuracy = test.find("accuracy");
    STRATA_CHECK(accuracy != test.end(), task.program,
                 ": --min-accuracy needs an accuracy, and this task measures none");
    if (accuracy->second < flags.min_accuracy) {
      std::fprintf(stderr, "%s: test accuracy %.4f is below --min-accuracy %.4f\n",
                   task.program.c_str(), accuracy->second, flags.min_accuracy);
      return 1;
    }
  }
  return 0;
}

Task load_mnist_task(const std::string& program, const Flags& flags, strata::Device device,
                     const strata::Shape& image_shape) {
  namespace data = strata::data;
  const fs::path dir = flags.data;
  STRATA_CHECK(fs::is_directory(dir), program, ": the data folder ", dir.string(),
               " does not exist. Fashion-MNIST comes with the Debian package "
               "dataset-fashion-mnist (apt-get install dataset-fashion-mnist, or run "
               "scripts/demo.sh); MNIST itself, in the same IDX format, works with --data DIR");
  const auto start = std::chrono::steady_clock::now();
  const data::MnistSplit train_split = data::load_mnist(dir, /*train=*/true, flags.limit);
  const data::MnistSplit test_split = data::load_mnist(dir, /*train=*/false);

  data::Standardize standardize({.statistics = data::Statistics::Global});
  const strata::Tensor train_pixels = data::to_float(train_split.images);
  standardize.fit(train_pixels);
  const auto images = [&](const strata::Tensor& pixels) {
    strata::Shape shape = {pixels.size(0)};
    shape.insert(shape.end(), image_shape.begin(), image_shape.end());
    return standardize(pixels).reshape(shape).to(device);
  };

  Task task;
  task.program = program;
  task.train = std::make_shared<data::TensorDataset>(images(train_pixels),
                                                     train_split.labels.to(device));
  task.test = std::make_shared<data::TensorDataset>(images(data::to_float(test_split.images)),
                                                    test_split.labels.to(device));

  std::string folder = fs::absolute(dir).lexically_normal().string();
  std::transform(folder.begin(), folder.end(), folder.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool fashion = folder.find("fashion") != std::string::npos;
  task.class_names = fashion ? std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover",
                                                        "Dress", "Coat", "Sandal", "Shirt",
                                                        "Sneaker", "Bag", "Ankle boot"}
                             : std::vector<std::string>{"0", "1", "2", "3", "4",
                                                        "5", "6", "7", "8", "9"};
  const double mean = standardize.mean().item<double>();
  const double std = standardize.std().item<double>();
  task.config = {{"data", (fashion ? "Fashion-MNIST, " : "MNIST-format images, ") + dir.string()},
                 {"preprocessing", "pixels / 255, standardized (mean " + number_text(mean) +
                                       ", std " + number_text(std) + ")"}};
  std::printf("data: %lld training and %lld test images from %s (%.2f s; pixel mean %.4f, "
              "std %.4f)\n",
              static_cast<long long>(task.train->size()),
              static_cast<long long>(task.test->size()), dir.c_str(), seconds_since(start), mean,
              std);
  std::fflush(stdout);
  return task;
}

int guarded(const std::string& program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program.c_str(), e.what());
    return 1;
  }
}

}  // namespace sample
