// The Jordan network and the truncated-BPTT helper of nn/recurrent.h. JordanRNN validates its
// input (naming "JordanRNN" and every shape), then loops over time with linear and the
// activations, so it runs on every backend and the tape differentiates it; no kernel of its own.
// Rows past their length (lengths given) keep their last output as the fed-back state and
// output zeros, selected with `where` and a per-step row mask.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "internal.h"
#include "strata/nn/init.h"
#include "strata/nn/recurrent.h"

namespace strata::nn {

namespace F = functional;

namespace {

Tensor activate(JordanRNN::Activation act, const Tensor& x) {
  switch (act) {
    case JordanRNN::Activation::Identity: return x;
    case JordanRNN::Activation::Tanh: return F::tanh(x);
    case JordanRNN::Activation::Sigmoid: return F::sigmoid(x);
    case JordanRNN::Activation::Relu: return F::relu(x);
  }
  STRATA_ASSERT(false, "JordanRNN: unknown activation");
  return x;
}

const char* activation_name(JordanRNN::Activation act) {
  switch (act) {
    case JordanRNN::Activation::Identity: return "identity";
    case JordanRNN::Activation::Tanh: return "tanh";
    case JordanRNN::Activation::Sigmoid: return "sigmoid";
    case JordanRNN::Activation::Relu: return "relu";
  }
  return "?";
}

}  // namespace

// ---- JordanRNN ------------------------------------------------------------------------------

JordanRNN::JordanRNN(int64_t input_size_, int64_t hidden_size_, int64_t output_size_,
                     Activation activation_, Activation output_activation_, bool bias,
                     bool batch_first_)
    : Module("JordanRNN"), input_size(input_size_), hidden_size(hidden_size_),
      output_size(output_size_), activation(activation_),
      output_activation(output_activation_), batch_first(batch_first_) {
  STRATA_CHECK(input_size > 0 && hidden_size > 0 && output_size > 0,
               "JordanRNN: sizes must be positive, got input_size=", input_size,
               " hidden_size=", hidden_size, " output_size=", output_size);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  auto uniform = [&](const Shape& shape) {
    Tensor t = empty(shape, kFloat32);
    init::uniform_(t, -bound, bound);
    return t;
  };
  weight_ih = register_parameter("weight_ih", uniform({hidden_size, input_size}));
  weight_hy = register_parameter("weight_hy", uniform({hidden_size, output_size}));
  weight_ho = register_parameter("weight_ho", uniform({output_size, hidden_size}));
  if (bias) {
    bias_ih = register_parameter("bias_ih", uniform({hidden_size}));
    bias_hy = register_parameter("bias_hy", uniform({hidden_size}));
    bias_ho = register_parameter("bias_ho", uniform({output_size}));
  }
}

Tensor JordanRNN::forward(const Tensor& input) { return std::get<0>(forward(input, Tensor())); }

std::tuple<Tensor, Tensor> JordanRNN::forward(const Tensor& input, const Tensor& y0,
                                              const std::vector<int64_t>& lengths) {
  // ---- validate ----------------------------------------------------------------------------
  detail::check_defined(input, "JordanRNN", "input");
  const std::string in_desc = detail::describe(input);
  STRATA_CHECK(input.dim() == 2 || input.dim() == 3,
               "JordanRNN: expected a 3-D input ([T, B, I], or [B, T, I] batch-first) or a 2-D "
               "unbatched one ([T, I]), got ", in_desc);
  STRATA_CHECK(input.size(-1) == input_size, "JordanRNN: input has ", input.size(-1),
               " features but input_size is ", input_size, " (input ", in_desc, ")");
  STRATA_CHECK(input.dtype() == weight_ih.dtype() && input.device() == weight_ih.device(),
               "JordanRNN: input ", in_desc, " and weight_ih ", detail::describe(weight_ih),
               " differ in dtype or device (move the module with .to())");
  const bool batched = input.dim() == 3;
  // x: [T, B, I] from here on.
  const Tensor x = !batched ? input.unsqueeze(1) : batch_first ? input.transpose(0, 1) : input;
  const int64_t steps = x.size(0), batch = x.size(1);
  STRATA_CHECK(steps > 0, "JordanRNN: the input has no time steps (input ", in_desc, ")");

  Tensor y;  // the fed-back output, [B, O]
  if (y0.defined()) {
    const Shape expected = batched ? Shape{batch, output_size} : Shape{output_size};
    STRATA_CHECK(y0.shape() == expected, "JordanRNN: y0 must be ", shape_str(expected),
                 " (input ", in_desc, ", y0 ", detail::describe(y0), ", output_size ",
                 output_size, ")");
    STRATA_CHECK(y0.dtype() == input.dtype() && y0.device() == input.device(),
                 "JordanRNN: y0 ", detail::describe(y0), " must have the input's dtype and "
                 "device (input ", in_desc, ")");
    y = batched ? y0 : y0.unsqueeze(0);
  } else {
    y = zeros({batch, output_size}, x.options());
  }

  // mask: [T, B, 1] bool, true where step t is within row b's length.
  Tensor mask;
  if (!lengths.empty()) {
    STRATA_CHECK(static_cast<int64_t>(lengths.size()) == batch, "JordanRNN: got ",
                 lengths.size(), " lengths for a batch of ", batch, " (input ", in_desc, ")");
    std::vector<bool> active(static_cast<size_t>(steps * batch));
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = lengths[static_cast<size_t>(b)];
      STRATA_CHECK(len >= 1 && len <= steps, "JordanRNN: lengths[", b, "] = ", len,
                   " is outside [1, ", steps, "], the sequence length (input ", in_desc, ")");
      for (int64_t t = 0; t < steps; ++t) active[static_cast<size_t>(t * batch + b)] = t < len;
    }
    mask = from_vector<bool>(active, {steps, batch, 1}).to(x.device());
  }

  // ---- the recurrence ----------------------------------------------------------------------
  // The input projection of every step in one product: [T, B, H].
  // NOTE: each select() below costs a [T, B, H]-sized gradient in backward (select scatters
  // into zeros), so backward is O(T^2 B H) in memory traffic; fine for the sequence lengths a
  // Jordan network is used with, but the fused layers (RNN/LSTM/GRU) are the fast path.
  const Tensor x_proj = F::linear(x, weight_ih, bias_ih);
  const Tensor zero = zeros({}, x.options());
  std::vector<Tensor> outputs;
  outputs.reserve(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t) {
    // h_t = act(W_ih x_t + b_ih + W_hy y_{t-1} + b_hy); y_t = out_act(W_ho h_t + b_ho).
    const Tensor h = activate(activation, x_proj.select(0, t) + F::linear(y, weight_hy, bias_hy));
    const Tensor y_t = activate(output_activation, F::linear(h, weight_ho, bias_ho));
    if (mask.defined()) {
      const Tensor active = mask.select(0, t);  // [B, 1]
      outputs.push_back(where(active, y_t, zero));
      y = where(active, y_t, y);
    } else {
      outputs.push_back(y_t);
      y = y_t;
    }
  }
  Tensor output = stack(outputs, 0);  // [T, B, O]
  if (!batched) return {output.squeeze(1), y.squeeze(0)};
  if (batch_first) output = output.transpose(0, 1);
  return {output, y};
}

std::string JordanRNN::extra_repr() const {
  std::ostringstream out;
  out << input_size << ", " << hidden_size << ", " << output_size;
  if (activation != Activation::Tanh) out << ", activation=" << activation_name(activation);
  if (output_activation != Activation::Tanh) {
    out << ", output_activation=" << activation_name(output_activation);
  }
  if (!bias_ih.defined()) out << ", bias=false";
  if (batch_first) out << ", batch_first=true";
  return out.str();
}

// ---- truncated backpropagation through time -------------------------------------------------

std::vector<Tensor> time_chunks(const Tensor& sequence, int64_t steps, bool batch_first) {
  detail::check_defined(sequence, "time_chunks", "sequence");
  const int64_t dim = batch_first ? 1 : 0;
  STRATA_CHECK(steps >= 1, "time_chunks: steps must be at least 1, got ", steps, " (sequence ",
               detail::describe(sequence), ")");
  STRATA_CHECK(sequence.dim() > dim, "time_chunks: a ", batch_first ? "batch-first " : "",
               "sequence needs at least ", dim + 1, " dimensions, got ",
               detail::describe(sequence));
  const int64_t length = sequence.size(dim);
  std::vector<Tensor> chunks;
  chunks.reserve(static_cast<size_t>((length + steps - 1) / steps));
  for (int64_t start = 0; start < length; start += steps) {
    chunks.push_back(sequence.narrow(dim, start, std::min(steps, length - start)));
  }
  return chunks;
}

}  // namespace strata::nn
