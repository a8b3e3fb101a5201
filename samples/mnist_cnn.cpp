// mnist_cnn: LeNet-5 (LeCun et al., 1998, with ReLU and max pooling as it is trained today)
// classifying Fashion-MNIST (or MNIST, with --data), trained with Adam by train::fit:
//   conv 5x5, 6 maps, padding 2 -> ReLU -> max pool 2   [6, 14, 14]
//   conv 5x5, 16 maps           -> ReLU -> max pool 2   [16, 5, 5]
//   400 -> 120 -> ReLU -> 84 -> ReLU -> 10
//
//   build/samples/mnist_cnn --out runs/cnn            # 2 epochs: about 86% test accuracy
//
// --out receives log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors;
// --help lists every flag. scripts/demo.sh runs this sample.
#include "common/sample.h"

namespace nn = strata::nn;

int main(int argc, char** argv) {
  sample::CommandLine command_line(
      "mnist_cnn", "Trains LeNet-5 on Fashion-MNIST (or MNIST) images.",
      {.data = strata::data::kFashionMnistDir, .out = "runs/mnist_cnn"});
  const sample::Flags flags = command_line.parse(argc, argv);
  return sample::guarded("mnist_cnn", [&] {
    const strata::Device device = sample::pick_device(flags);
    sample::print_banner("mnist_cnn", flags, device);
    sample::Task task =
        sample::load_mnist_task("mnist_cnn", flags, device, {1, 28, 28});
    task.title = "Fashion-MNIST, LeNet-5";

    strata::manual_seed(flags.seed);  // the initial weights
    nn::Sequential model(nn::Conv2d(1, 6, 5, 1, 2), nn::ReLU(), nn::MaxPool2d(2),
                         nn::Conv2d(6, 16, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                         nn::Linear(400, 120), nn::ReLU(), nn::Linear(120, 84), nn::ReLU(),
                         nn::Linear(84, 10));
    model.to(device);
    task.model = model.str();
    return sample::run(model, flags, device, task);
  });
}
