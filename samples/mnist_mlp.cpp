// mnist_mlp: a 784-512-256-10 multilayer perceptron (ReLU) classifying Fashion-MNIST (or MNIST,
// with --data), trained with Adam and cross-entropy by train::fit.
//
//   build/samples/mnist_mlp --out runs/mlp            # 2 epochs: about 87% test accuracy
//   build/samples/mnist_mlp --out runs/mlp --epochs 4 --resume
//
// --out receives log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors;
// --help lists every flag.
#include "common/sample.h"

namespace nn = strata::nn;

int main(int argc, char** argv) {
  sample::CommandLine command_line(
      "mnist_mlp", "Trains a 784-512-256-10 MLP on Fashion-MNIST (or MNIST) images.",
      {.data = strata::data::kFashionMnistDir, .out = "runs/mnist_mlp"});
  const sample::Flags flags = command_line.parse(argc, argv);
  return sample::guarded("mnist_mlp", [&] {
    const strata::Device device = sample::pick_device(flags);
    sample::print_banner("mnist_mlp", flags, device);
    sample::Task task = sample::load_mnist_task("mnist_mlp", flags, device, {784});
    task.title = "Fashion-MNIST, 784-512-256-10 MLP";

    strata::manual_seed(flags.seed);  // the initial weights
    nn::Sequential model(nn::Linear(784, 512), nn::ReLU(), nn::Linear(512, 256), nn::ReLU(),
                         nn::Linear(256, 10));
    model.to(device);
    task.model = model.str();
    return sample::run(model, flags, device, task);
  });
}
