// The recurrent cells of nn/recurrent.h. Each validates its shapes (naming the cell and every
// shape) and is then a few lines of linear, sigmoid and tanh: the tape differentiates it.
#include "strata/amp/autocast.h"
#include "strata/nn/recurrent.h"

#include <cmath>
#include <sstream>

#include "internal.h"
#include "strata/nn/init.h"

namespace strata::nn {

namespace functional {

namespace {

std::string shapes(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh) {
  std::ostringstream out;
  out << "input " << detail::describe(x) << ", hidden " << detail::describe(h) << ", weight_ih "
      << detail::describe(w_ih) << ", weight_hh " << detail::describe(w_hh);
  return out.str();
}

// Checks one cell step's operands for `gates` gates; returns whether x is unbatched.
bool check_cell(const char* cell, const Tensor& x, const Tensor& h, const Tensor& w_ih,
                const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh, int64_t gates) {
  detail::check_defined(x, cell, "input");
  detail::check_defined(h, cell, "hidden state");
  detail::check_defined(w_ih, cell, "weight_ih");
  detail::check_defined(w_hh, cell, "weight_hh");
  STRATA_CHECK(w_ih.dim() == 2 && w_hh.dim() == 2 && w_ih.size(0) % gates == 0,
               cell, ": weights must be [", gates, "*hidden, input] and [", gates,
               "*hidden, hidden] (", shapes(x, h, w_ih, w_hh), ")");
  const int64_t hidden = w_ih.size(0) / gates;
  STRATA_CHECK(w_hh.size(0) == gates * hidden && w_hh.size(1) == hidden, cell,
               ": weight_hh must be [", gates * hidden, ", ", hidden, "] (",
               shapes(x, h, w_ih, w_hh), ")");
  STRATA_CHECK(x.dim() == 1 || x.dim() == 2, cell, ": expected a 1-D (unbatched) or 2-D input (",
               shapes(x, h, w_ih, w_hh), ")");
  STRATA_CHECK(x.size(-1) == w_ih.size(1), cell, ": input has ", x.size(-1),
               " features but weight_ih expects ", w_ih.size(1), " (", shapes(x, h, w_ih, w_hh),
               ")");
  const bool batched = x.dim() == 2;
  const bool state_ok = batched ? (h.dim() == 2 && h.size(0) == x.size(0) && h.size(1) == hidden)
                                : (h.dim() == 1 && h.size(0) == hidden);
  STRATA_CHECK(state_ok, cell, ": hidden state must be ",
               batched ? shape_str({x.size(0), hidden}) : shape_str({hidden}), " (",
               shapes(x, h, w_ih, w_hh), ")");
  for (const Tensor* b : {&b_ih, &b_hh}) {
    if (!b->defined()) continue;
    STRATA_CHECK(b->dim() == 1 && b->size(0) == gates * hidden, cell, ": biases must be [",
                 gates * hidden, "], got ", detail::describe(*b));
  }
  return !batched;
}

// x W_ihᵀ + b_ih and h W_hhᵀ + b_hh, both [N, G*H].
std::tuple<Tensor, Tensor> projections(const Tensor& x, const Tensor& h, const Tensor& w_ih,
                                       const Tensor& w_hh, const Tensor& b_ih,
                                       const Tensor& b_hh) {
  return {linear(x, w_ih, b_ih), linear(h, w_hh, b_hh)};
}

Tensor rnn_cell(const char* cell, bool relu_activation, const Tensor& x, const Tensor& h,
                const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  check_cell(cell, x, h, w_ih, w_hh, b_ih, b_hh, 1);
  auto [xp, hp] = projections(x, h, w_ih, w_hh, b_ih, b_hh);
  return relu_activation ? relu(xp + hp) : tanh(xp + hp);
}

}  // namespace

Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  if (amp::needs_low_precision({&x, &h, &w_ih, &w_hh, &b_ih, &b_hh})) {
    return rnn_tanh_cell(amp::cast_to_low_precision(x), amp::cast_to_low_precision(h),
                         amp::cast_to_low_precision(w_ih), amp::cast_to_low_precision(w_hh),
                         amp::cast_to_low_precision(b_ih), amp::cast_to_low_precision(b_hh));
  }
  return rnn_cell("rnn_tanh_cell", false, x, h, w_ih, w_hh, b_ih, b_hh);
}

Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih, const Tensor& b_hh) {
  if (amp::needs_low_precision({&x, &h, &w_ih, &w_hh, &b_ih, &b_hh})) {
    return rnn_relu_cell(amp::cast_to_low_precision(x), amp::cast_to_low_precision(h),
                         amp::cast_to_low_precision(w_ih), amp::cast_to_low_precision(w_hh),
                         amp::cast_to_low_precision(b_ih), amp::cast_to_low_precision(b_hh));
  }
  return rnn_cell("rnn_relu_cell", true, x, h, w_ih, w_hh, b_ih, b_hh);
}

std::tuple<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                                     const Tensor& b_hh) {
  if (amp::needs_low_precision({&x, &h, &c, &w_ih, &w_hh, &b_ih, &b_hh})) {
    return lstm_cell(amp::cast_to_low_precision(x), amp::cast_to_low_precision(h),
                     amp::cast_to_low_precision(c), amp::cast_to_low_precision(w_ih),
                     amp::cast_to_low_precision(w_hh), amp::cast_to_low_precision(b_ih),
                     amp::cast_to_low_precision(b_hh));
  }
  check_cell("lstm_cell", x, h, w_ih, w_hh, b_ih, b_hh, 4);
  detail::check_defined(c, "lstm_cell", "cell state");
  STRATA_CHECK(c.shape() == h.shape(), "lstm_cell: the cell state ", detail::describe(c),
               " must have the hidden state's shape ", shape_str(h.shape()));
  auto [xp, hp] = projections(x, h, w_ih, w_hh, b_ih, b_hh);
  const Tensor gates = xp + hp;  // [..., 4H]: i, f, g, o
  const int64_t hidden = h.size(-1);
  const Tensor i = sigmoid(gates.narrow(-1, 0, hidden));
  const Tensor f = sigmoid(gates.narrow(-1, hidden, hidden));
  const Tensor g = tanh(gates.narrow(-1, 2 * hidden, hidden));
  const Tensor o = sigmoid(gates.narrow(-1, 3 * hidden, hidden));
  Tensor c_next = f * c + i * g;
  Tensor h_next = o * tanh(c_next);
  return {h_next, c_next};
}

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih, const Tensor& b_hh) {
  if (amp::needs_low_precision({&x, &h, &w_ih, &w_hh, &b_ih, &b_hh})) {
    return gru_cell(amp::cast_to_low_precision(x), amp::cast_to_low_precision(h),
                    amp::cast_to_low_precision(w_ih), amp::cast_to_low_precision(w_hh),
                    amp::cast_to_low_precision(b_ih), amp::cast_to_low_precision(b_hh));
  }
  check_cell("gru_cell", x, h, w_ih, w_hh, b_ih, b_hh, 3);
  auto [xp, hp] = projections(x, h, w_ih, w_hh, b_ih, b_hh);  // [..., 3H]: r, z, n
  const int64_t hidden = h.size(-1);
  const Tensor r = sigmoid(xp.narrow(-1, 0, hidden) + hp.narrow(-1, 0, hidden));
  const Tensor z = sigmoid(xp.narrow(-1, hidden, hidden) + hp.narrow(-1, hidden, hidden));
  // NOTE: the reset gate scales h's projection including its bias (PyTorch's and cuDNN's
  // form), not h before the projection as in the original paper.
  const Tensor n = tanh(xp.narrow(-1, 2 * hidden, hidden) + r * hp.narrow(-1, 2 * hidden, hidden));
  return n + z * (h - n);  // (1 - z) n + z h
}

}  // namespace functional

namespace F = functional;

// ---- modules ------------------------------------------------------------------------------

RecurrentCell::RecurrentCell(const char* type_name, int64_t input_size_, int64_t hidden_size_,
                             int64_t gates, bool bias)
    : Module(type_name), input_size(input_size_), hidden_size(hidden_size_) {
  STRATA_CHECK(input_size > 0 && hidden_size > 0, type_name,
               ": sizes must be positive, got input_size=", input_size,
               " hidden_size=", hidden_size);
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  auto uniform = [&](const Shape& shape) {
    Tensor t = empty(shape, kFloat32);
    init::uniform_(t, -bound, bound);
    return t;
  };
  weight_ih = register_parameter("weight_ih", uniform({gates * hidden_size, input_size}));
  weight_hh = register_parameter("weight_hh", uniform({gates * hidden_size, hidden_size}));
  if (bias) {
    bias_ih = register_parameter("bias_ih", uniform({gates * hidden_size}));
    bias_hh = register_parameter("bias_hh", uniform({gates * hidden_size}));
  }
}

Tensor RecurrentCell::initial_state(const Tensor& x, const Tensor& state, const char* what) const {
  if (state.defined()) return state;
  STRATA_CHECK(x.defined() && (x.dim() == 1 || x.dim() == 2), type_name(),
               ": expected a 1-D or 2-D input, got ",
               x.defined() ? shape_str(x.shape()) : std::string("undefined"), " (", what, ")");
  const Shape shape = x.dim() == 2 ? Shape{x.size(0), hidden_size} : Shape{hidden_size};
  return zeros(shape, x.options());
}

std::string RecurrentCell::extra_repr() const {
  std::ostringstream out;
  out << input_size << ", " << hidden_size;
  if (!bias_ih.defined()) out << ", bias=false";
  return out.str();
}

RNNCell::RNNCell(int64_t input_size_, int64_t hidden_size_, bool bias, Nonlinearity act)
    : RecurrentCell("RNNCell", input_size_, hidden_size_, 1, bias), nonlinearity(act) {}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) {
  const Tensor state = initial_state(x, h, "hidden state");
  return nonlinearity == Nonlinearity::Tanh
             ? F::rnn_tanh_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh)
             : F::rnn_relu_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh);
}

std::string RNNCell::extra_repr() const {
  return RecurrentCell::extra_repr() +
         (nonlinearity == Nonlinearity::Relu ? ", nonlinearity=relu" : "");
}

LSTMCell::LSTMCell(int64_t input_size_, int64_t hidden_size_, bool bias)
    : RecurrentCell("LSTMCell", input_size_, hidden_size_, 4, bias) {}

std::tuple<Tensor, Tensor> LSTMCell::forward(const Tensor& x,
                                             const std::tuple<Tensor, Tensor>& state) {
  const Tensor h = initial_state(x, std::get<0>(state), "hidden state");
  const Tensor c = initial_state(x, std::get<1>(state), "cell state");
  return F::lstm_cell(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh);
}

GRUCell::GRUCell(int64_t input_size_, int64_t hidden_size_, bool bias)
    : RecurrentCell("GRUCell", input_size_, hidden_size_, 3, bias) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) {
  const Tensor state = initial_state(x, h, "hidden state");
  return F::gru_cell(x, state, weight_ih, weight_hh, bias_ih, bias_hh);
}

}  // namespace strata::nn
