// The full-sequence recurrent layers of nn/recurrent.h: functional::recurrent and the RNN,
// LSTM and GRU modules over it.
// - recurrent validates everything (naming the layer and every shape), brings the input to
//   time-major [T, B, I], and runs the whole stack as ONE backend op (rnn_forward, recorded
//   with rnn_backward as its backward), or, when dropout between layers is on in training,
//   one op per layer with F::dropout between them: the dropout masks come from Strata's
//   Philox generator so both backends drop the same elements, which cuDNN's own RNN dropout
//   could not promise.
// - The op has three outputs (output, h_n, c_n) and the tape one output per node, so the
//   kernel writes them into one flat buffer whose node is recorded, and the results are
//   views (narrow + view) of it: each view's gradient flows back into the same node.
#include <cmath>
#include <sstream>
#include <utility>

#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/init.h"
#include "strata/nn/recurrent.h"

namespace strata::nn {

namespace functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

const char* mode_name(RnnMode mode) {
  switch (mode) {
    case RnnMode::Tanh: return "RNN_TANH";
    case RnnMode::Relu: return "RNN_RELU";
    case RnnMode::Lstm: return "LSTM";
    case RnnMode::Gru: return "GRU";
  }
  return "?";
}

std::string describe_or_none(const Tensor& t) {
  return t.defined() ? detail::describe(t) : std::string("undefined");
}

std::string lengths_str(const std::vector<int64_t>& lengths) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < lengths.size(); ++i) out << (i ? "," : "") << lengths[i];
  out << "]";
  return out.str();
}

// The hidden size the weights imply, after checking every weight's shape, dtype and device.
int64_t check_weights(const char* name, const Tensor& x, const std::vector<Tensor>& weights,
                      const RecurrentOptions& options, int64_t input_size) {
  const int64_t layers = options.num_layers, dirs = options.bidirectional ? 2 : 1;
  const int64_t gates = rnn_gate_count(options.mode);
  STRATA_CHECK(static_cast<int64_t>(weights.size()) == 4 * layers * dirs, name, ": expected ",
               4 * layers * dirs, " weights (w_ih, w_hh, b_ih, b_hh for each of ", layers,
               " layers x ", dirs, " directions), got ", weights.size());
  detail::check_defined(weights[1], name, "weight_hh_l0");
  STRATA_CHECK(weights[1].dim() == 2 && weights[1].size(0) % gates == 0, name,
               ": weight_hh_l0 must be [", gates, "*hidden, hidden], got ",
               detail::describe(weights[1]));
  const int64_t hidden = weights[1].size(1);
  const bool has_bias = weights[2].defined();
  for (int64_t layer = 0; layer < layers; ++layer) {
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const size_t at = static_cast<size_t>(4 * (layer * dirs + dir));
      const std::string suffix = "_l" + std::to_string(layer) + (dir ? "_reverse" : "");
      const int64_t in = layer == 0 ? input_size : dirs * hidden;
      const Shape expected[4] = {{gates * hidden, in}, {gates * hidden, hidden},
                                 {gates * hidden}, {gates * hidden}};
      const char* kinds[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
      for (size_t k = 0; k < 4; ++k) {
        const Tensor& w = weights[at + k];
        const std::string what = kinds[k] + suffix;
        if (k >= 2 && !has_bias) {
          STRATA_CHECK(!w.defined(), name, ": ", what, " is given but bias_ih_l0 is not");
          continue;
        }
        detail::check_defined(w, name, what.c_str());
        STRATA_CHECK(w.shape() == expected[k], name, ": ", what, " must be ",
                     shape_str(expected[k]), " (", gates, " gates, hidden ", hidden,
                     ", input ", in, "), got ", detail::describe(w), "; input ",
                     detail::describe(x));
        STRATA_CHECK(w.dtype() == x.dtype(), name, ": ", what, " ", detail::describe(w),
                     " must have the input's dtype (input ", detail::describe(x), ")");
        detail::check_same_device(x, w, name);
      }
    }
  }
  return hidden;
}

// A state given by the user, brought to [L*D, B, H]; zeros when undefined.
Tensor check_state(const char* name, const char* what, const Tensor& state, const Tensor& x,
                   const Shape& shape, bool unbatched) {
  if (!state.defined()) return zeros(shape, x.options());
  const Shape given_shape = unbatched ? Shape{shape[0], shape[2]} : shape;
  STRATA_CHECK(state.shape() == given_shape, name, ": ", what, " must be ",
               shape_str(given_shape), " ([num_layers*directions, ",
               unbatched ? "" : "batch, ", "hidden]), got ", detail::describe(state),
               "; input ", detail::describe(x));
  STRATA_CHECK(state.dtype() == x.dtype(), name, ": ", what, " ", detail::describe(state),
               " must have the input's dtype (input ", detail::describe(x), ")");
  detail::check_same_device(x, state, name);
  return unbatched ? state.unsqueeze(1) : state;
}

struct StackResult {
  Tensor y, hy, cy;
};

// One backend op over the stack `params` describes: x [T, B, in] and the states [L*D, B, H]
// as given (maybe recorded, maybe leaves); weights 4 per layer and direction.
StackResult run_stack(const RnnParams& params, const Tensor& x, const Tensor& hx,
                      const Tensor& cx, const std::vector<Tensor>& weights) {
  const bool lstm = params.mode == RnnMode::Lstm;
  const int64_t t = params.seq_len, b = params.batch, h = params.hidden_size;
  const int64_t dirs = params.directions();
  const Shape y_shape = {t, b, dirs * h}, state_shape = {params.num_layers * dirs, b, h};
  const int64_t ny = t * b * dirs * h, ns = params.num_layers * dirs * b * h;

  std::vector<Tensor> w(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    if (weights[i].defined()) w[i] = weights[i].detach().contiguous();
  }
  const Tensor xd = x.detach().contiguous();
  const Tensor hd = hx.detach().contiguous();
  const Tensor cd = lstm ? cx.detach().contiguous() : Tensor();

  std::vector<Tensor> inputs = {x, hx, cx};
  inputs.insert(inputs.end(), weights.begin(), weights.end());
  const bool record_grad = needs_grad(inputs);

  Tensor packed = Tensor::empty({ny + (lstm ? 2 : 1) * ns}, x.options());
  const Tensor y = packed.narrow(0, 0, ny).view(y_shape);
  const Tensor hy = packed.narrow(0, ny, ns).view(state_shape);
  const Tensor cy = lstm ? packed.narrow(0, ny + ns, ns).view(state_shape) : Tensor();
  Tensor reserve;
  detail::backend_of(x).rnn_forward(params, w, xd, hd, cd, y, hy, cy,
                                    record_grad ? &reserve : nullptr);

  if (record_grad) {
    // The weights as the backward gets them back, wb (autocast's casts of parameters are cast
    // again rather than kept).
    std::vector<amp::SavedTensor> saved_w;
    for (const Tensor& weight : weights) saved_w.emplace_back(weight);
    record(mode_name(params.mode), inputs, packed,
           [params, saved_w, xd, hd, cd, y, reserve, y_shape, state_shape, ny, ns, lstm](
               const Tensor& grad, const Needs& need) {
             std::vector<Tensor> wb(saved_w.size());
             for (size_t i = 0; i < wb.size(); ++i) {
               if (saved_w[i].defined())
                 wb[i] = saved_w[i].get(mode_name(params.mode)).contiguous();
             }
             const Tensor g = grad.contiguous();
             const Tensor dy = g.narrow(0, 0, ny).view(y_shape);
             const Tensor dhy = g.narrow(0, ny, ns).view(state_shape);
             const Tensor dcy = lstm ? g.narrow(0, ny + ns, ns).view(state_shape) : Tensor();
             Tensor dx = Tensor::empty(xd.shape(), xd.options());
             Tensor dhx = Tensor::empty(state_shape, xd.options());
             Tensor dcx = lstm ? Tensor::empty(state_shape, xd.options()) : Tensor();
             std::vector<Tensor> dw(wb.size());
             for (size_t i = 0; i < wb.size(); ++i) {
               if (wb[i].defined()) dw[i] = Tensor::empty(wb[i].shape(), wb[i].options());
             }
             detail::backend_of(xd).rnn_backward(params, wb, xd, hd, cd, y, reserve, dy, dhy, dcy,
                                                 dx, dhx, dcx, dw);
             Grads grads = {need[0] ? dx : Tensor(), need[1] ? dhx : Tensor(),
                            need[2] ? dcx : Tensor()};
             for (size_t i = 0; i < dw.size(); ++i) grads.push_back(need[3 + i] ? dw[i] : Tensor());
             return grads;
           });
    autograd::mark_once_differentiable(packed);
  }
  // Views of the recorded buffer: their gradients flow into its node.
  StackResult result;
  result.y = packed.narrow(0, 0, ny).view(y_shape);
  result.hy = packed.narrow(0, ny, ns).view(state_shape);
  if (lstm) result.cy = packed.narrow(0, ny + ns, ns).view(state_shape);
  return result;
}

RecurrentResult recurrent_impl(const char* name, const Tensor& input, const Tensor& h0,
                               const Tensor& c0, const std::vector<Tensor>& weights,
                               const RecurrentOptions& options) {
  // ---- validate
  detail::check_defined(input, name, "input");
  STRATA_CHECK(is_floating(input.dtype()), name,
               ": expected a floating input (f32, f64, f16 or bf16), got ",
               detail::describe(input));
  STRATA_CHECK(input.dim() == 2 || input.dim() == 3, name,
               ": expected a 3-D input ", options.batch_first ? "[batch, seq, feature]"
                                                              : "[seq, batch, feature]",
               " or a 2-D unbatched one [seq, feature], got ", detail::describe(input));
  STRATA_CHECK(options.num_layers >= 1, name, ": num_layers must be >= 1, got ",
               options.num_layers);
  STRATA_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, name,
               ": dropout must be in [0, 1), got ", options.dropout);
  const bool lstm = options.mode == RnnMode::Lstm;
  STRATA_CHECK(lstm || !c0.defined(), name, ": only an LSTM takes a cell state, got c0 ",
               detail::describe(c0));
  const bool unbatched = input.dim() == 2;
  Tensor x = unbatched ? input.unsqueeze(1) : input;
  if (options.batch_first && !unbatched) x = x.transpose(0, 1);
  const int64_t seq = x.size(0), batch = x.size(1), features = x.size(2);
  STRATA_CHECK(seq >= 1 && batch >= 1, name, ": the input has no steps or no rows: ",
               detail::describe(input));
  STRATA_CHECK(!weights.empty() && weights[0].defined() && weights[0].dim() == 2, name,
               ": weight_ih_l0 must be a 2-D tensor, got ",
               weights.empty() ? std::string("no weights") : describe_or_none(weights[0]));
  STRATA_CHECK(features == weights[0].size(1), name, ": input has ", features,
               " features but input_size is ", weights[0].size(1), " (input ",
               detail::describe(input), ", weight_ih_l0 ", detail::describe(weights[0]), ")");
  const int64_t hidden = check_weights(name, input, weights, options, features);
  const int64_t dirs = options.bidirectional ? 2 : 1;
  const Shape state_shape = {options.num_layers * dirs, batch, hidden};
  const Tensor hx = check_state(name, "h0", h0, input, state_shape, unbatched);
  const Tensor cx = lstm ? check_state(name, "c0", c0, input, state_shape, unbatched) : Tensor();

  RnnParams params;
  params.mode = options.mode;
  params.seq_len = seq;
  params.batch = batch;
  params.input_size = features;
  params.hidden_size = hidden;
  params.num_layers = options.num_layers;
  params.bidirectional = options.bidirectional;
  if (!options.lengths.empty()) {
    STRATA_CHECK(static_cast<int64_t>(options.lengths.size()) == batch, name, ": got ",
                 options.lengths.size(), " lengths ", lengths_str(options.lengths),
                 " for a batch of ", batch, " (input ", detail::describe(input), ")");
    bool all_full = true;
    for (int64_t length : options.lengths) {
      STRATA_CHECK(length >= 1 && length <= seq, name, ": lengths ",
                   lengths_str(options.lengths), " must each be in [1, ", seq,
                   "] (the sequence has ", seq, " steps; input ", detail::describe(input), ")");
      all_full = all_full && length == seq;
    }
    if (!all_full) params.lengths = options.lengths;
  }

  // ---- dispatch: the whole stack at once, or layer by layer with dropout between
  StackResult stack;
  const bool layer_dropout = options.training && options.dropout > 0.0 && options.num_layers > 1;
  if (!layer_dropout) {
    stack = run_stack(params, x, hx, cx, weights);
  } else {
    RnnParams layer_params = params;
    layer_params.num_layers = 1;
    Tensor layer_input = x;
    std::vector<Tensor> hy_parts, cy_parts;
    for (int64_t layer = 0; layer < options.num_layers; ++layer) {
      layer_params.input_size = layer_input.size(2);
      const auto first = weights.begin() + 4 * layer * dirs;
      const std::vector<Tensor> layer_weights(first, first + 4 * dirs);
      StackResult out = run_stack(layer_params, layer_input, hx.narrow(0, layer * dirs, dirs),
                                  lstm ? cx.narrow(0, layer * dirs, dirs) : Tensor(),
                                  layer_weights);
      hy_parts.push_back(out.hy);
      if (lstm) cy_parts.push_back(out.cy);
      layer_input = layer + 1 < options.num_layers ? dropout(out.y, options.dropout, true) : out.y;
    }
    stack.y = layer_input;
    stack.hy = cat(hy_parts, 0);
    if (lstm) stack.cy = cat(cy_parts, 0);
  }

  // ---- back to the caller's layout
  RecurrentResult result;
  result.output = stack.y;
  if (unbatched) {
    result.output = result.output.squeeze(1);
  } else if (options.batch_first) {
    result.output = result.output.transpose(0, 1);
  }
  result.h_n = unbatched ? stack.hy.squeeze(1) : stack.hy;
  if (lstm) result.c_n = unbatched ? stack.cy.squeeze(1) : stack.cy;
  return result;
}

}  // namespace

RecurrentResult recurrent(const Tensor& input, const Tensor& h0, const Tensor& c0,
                          const std::vector<Tensor>& weights, const RecurrentOptions& options) {
  if (amp::needs_low_precision({&input, &h0, &c0}) || amp::needs_low_precision(weights)) {
    return recurrent(amp::cast_to_low_precision(input), amp::cast_to_low_precision(h0),
                     amp::cast_to_low_precision(c0), amp::cast_to_low_precision(weights), options);
  }
  return recurrent_impl("recurrent", input, h0, c0, weights, options);
}

std::vector<int64_t> lengths_from_mask(const Tensor& mask, bool batch_first) {
  detail::check_defined(mask, "lengths_from_mask", "mask");
  STRATA_CHECK(mask.dim() == 2, "lengths_from_mask: expected a 2-D mask ",
               batch_first ? "[batch, seq]" : "[seq, batch]", ", got ", detail::describe(mask));
  const Tensor rows = (batch_first ? mask : mask.t()).detach().cpu().to(kFloat64).contiguous();
  const int64_t batch = rows.size(0), seq = rows.size(1);
  const double* data = rows.data<double>();
  std::vector<int64_t> lengths(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = data + b * seq;
    int64_t length = 0;
    while (length < seq && row[length] != 0.0) ++length;
    for (int64_t t = length; t < seq; ++t) {
      STRATA_CHECK(row[t] == 0.0, "lengths_from_mask: row ", b, " of mask ",
                   detail::describe(mask), " is not ones then zeros (step ", t,
                   " is set after a zero at step ", length, ")");
    }
    STRATA_CHECK(length >= 1, "lengths_from_mask: row ", b, " of mask ", detail::describe(mask),
                 " has no step set");
    lengths[static_cast<size_t>(b)] = length;
  }
  return lengths;
}

}  // namespace functional

namespace F = functional;

// ---- modules ------------------------------------------------------------------------------

RNNBase::RNNBase(const char* type_name, RnnMode mode_, const RNNOptions& options_)
    : Module(type_name), options(options_), mode(mode_) {
  STRATA_CHECK(options.input_size > 0 && options.hidden_size > 0 && options.num_layers > 0,
               type_name, ": input_size, hidden_size and num_layers must be positive, got ",
               options.input_size, ", ", options.hidden_size, ", ", options.num_layers);
  STRATA_CHECK(options.dropout >= 0.0 && options.dropout < 1.0, type_name,
               ": dropout must be in [0, 1), got ", options.dropout);
  const int64_t hidden = options.hidden_size, gates = rnn_gate_count(mode);
  const int64_t dirs = options.bidirectional ? 2 : 1;
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden));
  auto uniform = [&](const Shape& shape) {
    Tensor t = empty(shape, kFloat32);
    init::uniform_(t, -bound, bound);
    return t;
  };
  for (int64_t layer = 0; layer < options.num_layers; ++layer) {
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const std::string suffix = "_l" + std::to_string(layer) + (dir ? "_reverse" : "");
      const int64_t in = layer == 0 ? options.input_size : dirs * hidden;
      flat_weights_.push_back(
          register_parameter("weight_ih" + suffix, uniform({gates * hidden, in})));
      flat_weights_.push_back(
          register_parameter("weight_hh" + suffix, uniform({gates * hidden, hidden})));
      if (!options.bias) {
        flat_weights_.insert(flat_weights_.end(), 2, Tensor());
        continue;
      }
      Tensor b_ih = uniform({gates * hidden});
      Tensor b_hh = uniform({gates * hidden});
      if (mode == RnnMode::Lstm && options.unit_forget_bias) {
        // The forget gate starts open: its bias sums to 1 (b_ih's f block 1, b_hh's 0).
        b_ih.narrow(0, hidden, hidden).fill_(1.0);
        b_hh.narrow(0, hidden, hidden).fill_(0.0);
      }
      flat_weights_.push_back(register_parameter("bias_ih" + suffix, b_ih));
      flat_weights_.push_back(register_parameter("bias_hh" + suffix, b_hh));
    }
  }
}

F::RecurrentResult RNNBase::run(const Tensor& input, const Tensor& h0, const Tensor& c0,
                                const std::vector<int64_t>& lengths) {
  F::RecurrentOptions run_options;
  run_options.mode = mode;
  run_options.num_layers = options.num_layers;
  run_options.bidirectional = options.bidirectional;
  run_options.dropout = options.dropout;
  run_options.training = is_training();
  run_options.batch_first = options.batch_first;
  run_options.lengths = lengths;
  return F::recurrent_impl(type_name().c_str(), input, h0, c0, flat_weights_,
                            run_options);
}

std::string RNNBase::extra_repr() const {
  std::ostringstream out;
  out << options.input_size << ", " << options.hidden_size;
  if (options.num_layers != 1) out << ", num_layers=" << options.num_layers;
  if (mode == RnnMode::Relu) out << ", nonlinearity=relu";
  if (!options.bias) out << ", bias=false";
  if (options.batch_first) out << ", batch_first=true";
  if (options.dropout != 0.0) out << ", dropout=" << options.dropout;
  if (options.bidirectional) out << ", bidirectional=true";
  return out.str();
}

namespace {

RnnMode elman_mode(const RNNOptions& options) {
  return options.nonlinearity == RNNCell::Nonlinearity::Relu ? RnnMode::Relu : RnnMode::Tanh;
}

RNNOptions sizes(int64_t input_size, int64_t hidden_size, int64_t num_layers) {
  RNNOptions options;
  options.input_size = input_size;
  options.hidden_size = hidden_size;
  options.num_layers = num_layers;
  return options;
}

}  // namespace

RNN::RNN(const RNNOptions& options_) : RNNBase("RNN", elman_mode(options_), options_) {}
RNN::RNN(int64_t input_size, int64_t hidden_size, int64_t num_layers)
    : RNN(sizes(input_size, hidden_size, num_layers)) {}

Tensor RNN::forward(const Tensor& input) { return std::get<0>(forward(input, Tensor())); }

std::tuple<Tensor, Tensor> RNN::forward(const Tensor& input, const Tensor& h0,
                                        const std::vector<int64_t>& lengths) {
  F::RecurrentResult out = run(input, h0, Tensor(), lengths);
  return {out.output, out.h_n};
}

LSTM::LSTM(const RNNOptions& options_) : RNNBase("LSTM", RnnMode::Lstm, options_) {}
LSTM::LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers)
    : LSTM(sizes(input_size, hidden_size, num_layers)) {}

Tensor LSTM::forward(const Tensor& input) {
  return std::get<0>(forward(input, {Tensor(), Tensor()}));
}

std::tuple<Tensor, std::tuple<Tensor, Tensor>> LSTM::forward(
    const Tensor& input, const std::tuple<Tensor, Tensor>& state,
    const std::vector<int64_t>& lengths) {
  F::RecurrentResult out = run(input, std::get<0>(state), std::get<1>(state), lengths);
  return {out.output, {out.h_n, out.c_n}};
}

GRU::GRU(const RNNOptions& options_) : RNNBase("GRU", RnnMode::Gru, options_) {}
GRU::GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers)
    : GRU(sizes(input_size, hidden_size, num_layers)) {}

Tensor GRU::forward(const Tensor& input) { return std::get<0>(forward(input, Tensor())); }

std::tuple<Tensor, Tensor> GRU::forward(const Tensor& input, const Tensor& h0,
                                        const std::vector<int64_t>& lengths) {
  F::RecurrentResult out = run(input, h0, Tensor(), lengths);
  return {out.output, out.h_n};
}

}  // namespace strata::nn
