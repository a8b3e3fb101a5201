// cifar_cnn: a small VGG-style convolutional network classifying CIFAR-10's 32x32 color images,
// trained with Adam by train::fit, with the usual augmentation (a random 32x32 crop of the
// image padded by 4, a random horizontal flip):
//   [conv 3x3 -> batch norm -> ReLU -> max pool 2] x 3 (32, 64, 128 maps)   [128, 4, 4]
//   2048 -> dropout 0.3 -> 256 -> ReLU -> 10
//
// CIFAR-10 cannot be downloaded by Strata's scripts: fetch the binary version (see the message
// printed without --data), extract it, and pass the folder:
//   build/samples/cifar_cnn --data ~/data/cifar-10-batches-bin --out runs/cifar --epochs 20
//
// --out receives log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors;
// --help lists every flag.
#include <filesystem>
#include <string>

#include "common/sample.h"

namespace data = strata::data;
namespace fs = std::filesystem;
namespace nn = strata::nn;

namespace {

constexpr const char* kDefaultData = "data/cifar-10-batches-bin";

// What to do when the data is not there: the files, where they come from, where they go.
std::string missing_data_message(const std::string& dir) {
  return "no CIFAR-10 data in " + dir +
         "\n  CIFAR-10's binary version is a 163 MB download from the University of Toronto:\n"
         "    https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz\n"
         "  Extract it (tar xzf cifar-10-binary.tar.gz) and pass the folder it creates,\n"
         "  which holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin:\n"
         "    cifar_cnn --data path/to/cifar-10-batches-bin\n"
         "  (the default is " + std::string(kDefaultData) + " under the current folder)";
}

bool has_cifar_files(const fs::path& dir) {
  return fs::exists(dir / "test_batch.bin") ||
         fs::exists(dir / "cifar-10-batches-bin" / "test_batch.bin");
}

nn::Sequential make_model() {
  return nn::Sequential(nn::Conv2d(3, 32, 3, 1, 1), nn::BatchNorm2d(32), nn::ReLU(),
                        nn::MaxPool2d(2),  //
                        nn::Conv2d(32, 64, 3, 1, 1), nn::BatchNorm2d(64), nn::ReLU(),
                        nn::MaxPool2d(2),  //
                        nn::Conv2d(64, 128, 3, 1, 1), nn::BatchNorm2d(128), nn::ReLU(),
                        nn::MaxPool2d(2),  //
                        nn::Flatten(), nn::Dropout(0.3), nn::Linear(2048, 256), nn::ReLU(),
                        nn::Linear(256, 10));
}

}  // namespace

int main(int argc, char** argv) {
  bool augment = true;
  sample::CommandLine command_line("cifar_cnn",
                                   "Trains a small convolutional network on CIFAR-10.",
                                   {.data = kDefaultData, .epochs = 10, .out = "runs/cifar_cnn"});
  command_line.add_switch("--no-augment", "train without random crops and flips",
                          [&] { augment = false; });
  const sample::Flags flags = command_line.parse(argc, argv);
  return sample::guarded("cifar_cnn", [&] {
    if (!has_cifar_files(flags.data)) {
      std::fprintf(stderr, "cifar_cnn: %s\n", missing_data_message(flags.data).c_str());
      return 1;
    }
    const strata::Device device = sample::pick_device(flags);
    sample::print_banner("cifar_cnn", flags, device);

    const data::Cifar10Split train_split = data::load_cifar10(flags.data, true, flags.limit);
    const data::Cifar10Split test_split = data::load_cifar10(flags.data, false);
    // Per-channel statistics of the training images, applied to both splits.
    data::Standardize standardize({.statistics = data::Statistics::PerChannel});
    const strata::Tensor train_images = data::to_float(train_split.images);
    standardize.fit(train_images);

    sample::Task task;
    task.program = "cifar_cnn";
    task.title = "CIFAR-10, 3-block CNN";
    task.train = std::make_shared<data::TensorDataset>(standardize(train_images).to(device),
                                                       train_split.labels.to(device));
    task.test = std::make_shared<data::TensorDataset>(
        standardize(data::to_float(test_split.images)).to(device), test_split.labels.to(device));
    task.class_names = {"airplane", "automobile", "bird", "cat", "deer",
                        "dog",      "frog",       "horse", "ship", "truck"};
    task.config = {{"data", "CIFAR-10, " + flags.data},
                   {"preprocessing", "pixels / 255, standardized per channel"},
                   {"augmentation", augment ? "random crop 32 of padding 4, horizontal flip"
                                            : "none"}};
    if (augment) {
      const data::RandomCrop crop(32, 4);
      const data::RandomHorizontalFlip flip;
      task.transform = [crop, flip](data::Batch& batch, strata::Generator& generator) {
        batch.input = flip(crop(batch.input, generator), generator);
      };
    }
    std::printf("data: %lld training and %lld test images from %s\n",
                static_cast<long long>(task.train->size()),
                static_cast<long long>(task.test->size()), flags.data.c_str());

    strata::manual_seed(flags.seed);  // the initial weights and dropout
    nn::Sequential model = make_model();
    model.to(device);
    task.model = model.str();
    return sample::run(model, flags, device, task);
  });
}
