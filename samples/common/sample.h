// What the training samples share, so that each of them reads as its data and its model:
//   - the command line: every sample takes --help, --data, --epochs, --batch-size, --lr,
//     --optimizer, --device cpu|cuda|auto, --out, --resume and a few more (CommandLine), and
//     may add its own flags;
//   - the device and the optimizer by name (pick_device, make_optimizer);
//   - the run of a training task (run): fit() with the test split (or a fraction of the
//     training data) as validation, a progress bar or plain lines, log.csv, log.jsonl,
//     checkpoints and an HTML report in --out, --resume from the newest checkpoint there,
//     then the test accuracy, the final weights in model.safetensors, and an exit status.
//
// Exit status of a sample: 0 done, 1 an error (printed with its reason) or a test accuracy
// under --min-accuracy, 2 bad flags.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strata/strata.h"

namespace sample {

// The flags every sample has; a sample sets its own defaults before parsing.
struct Flags {
  std::string data;                   // where the data set is (a folder, or a file)
  int64_t epochs = 2;
  int64_t batch_size = 64;
  double lr = 1e-3;
  std::string optimizer = "adam";     // see make_optimizer
  std::string device = "auto";        // cpu, cuda, cuda:K or auto
  std::string precision = "f32";      // f32, bf16 (autocast) or f16 (autocast + GradScaler)
  std::string out;                    // where logs, report, checkpoints and weights go
  bool resume = false;                // continue from the newest checkpoint in --out
  uint64_t seed = 42;                 // weights, shuffling, augmentation
  int threads = 0;                    // CPU threads; 0: the library's default
  int64_t limit = 0;                  // training examples used; 0: all
  int64_t workers = 0;                // background loading threads
  double validation_fraction = 0.0;   // 0: validate on the test split
  int64_t patience = 0;               // early stopping on val_loss; 0: off
  double min_accuracy = 0.0;          // exit 1 when the test accuracy ends below it
  std::string progress = "auto";      // auto, bar, lines or none
  bool distributed = false;           // data-parallel over the processes of an mpirun job
};

// Parses a sample's command line: the common flags (described with the defaults of `flags`)
// and any added with add(). "--name value" and "--name=value" are both accepted.
class CommandLine {
 public:
  CommandLine(std::string program, std::string summary, Flags defaults);

  // A flag of the sample's own: `set` receives the value (and may call fail()).
  void add(std::string name, std::string value_name, std::string help,
           std::function<void(const std::string&)> set);
  // A flag without a value.
  void add_switch(std::string name, std::string help, std::function<void()> set);

  // Parses argv; prints the usage and exits 0 on --help, prints why and exits 2 on a bad flag.
  Flags parse(int argc, char** argv);

  [[noreturn]] void fail(const std::string& message) const;
  std::string usage() const;

  // The value of `text` as a number, or fail() naming the flag.
  int64_t integer(const std::string& flag, const std::string& text) const;
  double real(const std::string& flag, const std::string& text) const;

 private:
  struct Option {
    std::string name, value_name, help;
    std::function<void(const std::string&)> set;  // null for a switch
    std::function<void()> set_switch;
  };

  std::string program_;
  std::string summary_;
  Flags flags_;
  std::vector<Option> options_;
};

// --distributed: the process group of every process of the mpirun job (MPI), made on the
// first call; null without --distributed. Joining it sends the standard output of every rank
// but 0 to /dev/null, so the job prints one copy of everything (errors still reach stderr).
std::shared_ptr<strata::distributed::ProcessGroup> job_group(const Flags& flags);

// "auto": CUDA device 0 when there is one, else the CPU; otherwise Device::parse, checked to be
// usable (strata::Error saying why not).
strata::Device pick_device(const std::string& text);
// --device as above; with --distributed, "auto" and "cuda" give each process on a machine its
// own device (cuda:K for local rank K), and the process joins the job first (job_group).
strata::Device pick_device(const Flags& flags);

// The names make_optimizer knows, for --help and error messages.
std::string optimizer_names();
// sgd (momentum 0.9), nesterov, adagrad, adadelta, rmsprop, adam, adamw, adamax, nadam.
std::unique_ptr<strata::optim::Optimizer> make_optimizer(const std::string& name,
                                                         std::vector<strata::Tensor> params,
                                                         double lr);

// Seconds from `start` until now.
double seconds_since(std::chrono::steady_clock::time_point start);

// Prints the version, the device and the thread count; applies --threads.
void print_banner(const std::string& program, const Flags& flags, strata::Device device);

// A supervised learning task as run() trains and tests it. The defaults are a classifier's:
// cross-entropy on class scores, accuracy.
struct Task {
  std::string program;  // for messages
  std::string title;    // the report's title: "Fashion-MNIST, LeNet-5"
  std::string model;    // the model as Module::str() prints it, first in the configuration
  std::shared_ptr<strata::data::Dataset> train, test;
  strata::train::LossFn loss = strata::nn::CrossEntropyLoss{};
  std::vector<strata::train::MetricSpec> metrics = {"accuracy"};
  // With a name per class, the report carries the confusion matrix on the validation data.
  std::vector<std::string> class_names;
  // Shown in the report beside the common flags: the model, the data, preprocessing.
  std::vector<std::pair<std::string, std::string>> config;
  // Augmentation of training batches (FitOptions::transform); may be empty.
  std::function<void(strata::data::Batch&, strata::Generator&)> transform;
};

// Trains `model` (already on `device`) with task.loss on task.train, validating on task.test
// (or on --validation-fraction of task.train), writing to --out:
//   log.csv, log.jsonl       one row per epoch (appended to when resuming)
//   checkpoints/             epoch-NNNN.safetensors after every epoch, best.safetensors
//   report.html              curves, configuration, confusion matrix, test numbers
//   model.safetensors        the final weights (io::save; PyTorch's safetensors reads them)
// With --resume, restores model, optimizer and generator from the newest checkpoint and
// continues from the epoch after it. With --distributed, trains an nn::DistributedDataParallel
// of `model` on the job's ranks (each with its share of every batch; --batch-size per rank)
// and evaluates the test split shared between them; rank 0 writes the files. Prints the test loss
// and metrics and where the report is. Returns the exit status (1 when --min-accuracy is set and
// the test accuracy is below). The test numbers are returned in `test` when it is not null.
int run(strata::nn::Module& model, const Flags& flags, strata::Device device, const Task& task,
        strata::train::Logs* test = nullptr);

// MNIST or Fashion-MNIST from --data (IDX files, gzipped or not) as a classification task:
// pixels scaled to [0, 1] and standardized with the training split's mean and standard
// deviation (one of each, as torchvision's Normalize((0.2860,), (0.3530,)) for Fashion-MNIST),
// each image shaped `image_shape` ({784} for an MLP, {1, 28, 28} for a CNN, {28, 28} for a
// sequence model), held on `device`. The class names are Fashion-MNIST's when the folder's
// name says "fashion", else the digits.
Task load_mnist_task(const std::string& program, const Flags& flags,
                               strata::Device device, const strata::Shape& image_shape);

// Runs `body` and turns an exception into a message on stderr and exit status 1.
int guarded(const std::string& program, const std::function<int()>& body);

}  // namespace sample
