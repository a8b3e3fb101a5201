// lstm_mnist: an LSTM reading each Fashion-MNIST (or MNIST) image row by row, as a sequence of
// 28 steps of 28 pixels, and classifying it from its last hidden state:
//   LSTM(28 -> 128, batch first) -> h_28 -> Linear(128 -> 10)
// trained with Adam by train::fit. --layers stacks LSTMs; --bidirectional reads the rows both
// ways (the last step of each direction is classified).
//
//   build/samples/lstm_mnist --out runs/lstm          # 2 epochs: about 85% test accuracy
//
// --out receives log.csv, log.jsonl, report.html, checkpoints/ and model.safetensors;
// --help lists every flag.
#include <memory>
#include <string>

#include "common/sample.h"

namespace nn = strata::nn;
using strata::Tensor;

namespace {

// The sequence classifier: the LSTM's output at the last step -> class scores.
class RowLstm : public nn::Module {
 public:
  RowLstm(int64_t hidden, int64_t layers, bool bidirectional) : Module("RowLstm") {
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(nn::RNNOptions{
                                       .input_size = 28,
                                       .hidden_size = hidden,
                                       .num_layers = layers,
                                       .batch_first = true,
                                       .bidirectional = bidirectional}));
    classifier = register_module(
        "classifier", std::make_shared<nn::Linear>(hidden * (bidirectional ? 2 : 1), 10));
  }

  Tensor forward(const Tensor& images) override {
    // images [B, 28, 28]: row t is step t. h_n [layers * directions, B, H]: the last layer's
    // forward (and backward) final states.
    const Tensor h_n = std::get<0>(std::get<1>(lstm->forward(images, {Tensor(), Tensor()})));
    const int64_t directions = lstm->options.bidirectional ? 2 : 1;
    const Tensor last = h_n.narrow(0, h_n.size(0) - directions, directions);  // [D, B, H]
    const Tensor features = last.permute({1, 0, 2}).reshape({last.size(1), -1});
    return (*classifier)(features);
  }

  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> classifier;
};

}  // namespace

int main(int argc, char** argv) {
  int64_t hidden = 128;
  int64_t layers = 1;
  bool bidirectional = false;
  sample::CommandLine command_line(
      "lstm_mnist", "Trains an LSTM on Fashion-MNIST (or MNIST) images read row by row.",
      {.data = strata::data::kFashionMnistDir, .out = "runs/lstm_mnist"});
  command_line.add("--hidden", "N", "LSTM hidden size (default 128)", [&](const std::string& v) {
    hidden = command_line.integer("--hidden", v);
    if (hidden < 1) command_line.fail("--hidden must be at least 1");
  });
  command_line.add("--layers", "N", "stacked LSTM layers (default 1)", [&](const std::string& v) {
    layers = command_line.integer("--layers", v);
    if (layers < 1) command_line.fail("--layers must be at least 1");
  });
  command_line.add_switch("--bidirectional", "read each image's rows in both directions",
                          [&] { bidirectional = true; });
  const sample::Flags flags = command_line.parse(argc, argv);
  return sample::guarded("lstm_mnist", [&] {
    const strata::Device device = sample::pick_device(flags);
    sample::print_banner("lstm_mnist", flags, device);
    sample::Task task = sample::load_mnist_task("lstm_mnist", flags, device, {28, 28});
    task.title = "Fashion-MNIST rows as sequences, LSTM " + std::to_string(hidden) +
                 (layers > 1 ? " x " + std::to_string(layers) + " layers" : "") +
                 (bidirectional ? ", bidirectional" : "");

    strata::manual_seed(flags.seed);  // the initial weights
    RowLstm model(hidden, layers, bidirectional);
    model.to(device);
    task.model = model.str();
    return sample::run(model, flags, device, task);
  });
}
