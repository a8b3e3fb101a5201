// Recurrent cells: one time step of an Elman RNN, an LSTM and a GRU, as functions and as
// modules, with PyTorch's parameter names and layouts (weight_ih [G*H, I], weight_hh [G*H, H],
// bias_ih and bias_hh [G*H]; gate order i, f, g, o for the LSTM and r, z, n for the GRU), so
// weights move between the two unchanged. They are composed from linear, sigmoid and tanh, so
// they run on every backend and their gradients come from the tape.
// x: [N, I] (or unbatched [I]); states: [N, H] (or [H]).
#pragma once

#include <tuple>

#include "strata/nn/functional.h"
#include "strata/nn/module.h"

namespace strata::nn {

namespace functional {

// h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), act tanh or relu. Biases may be undefined.
Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
// (h', c'): gates i, f, g, o = split(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh);
// c' = σ(f) c + σ(i) tanh(g), h' = σ(o) tanh(c').
std::tuple<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c,
                                     const Tensor& w_ih, const Tensor& w_hh,
                                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
// r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n), h' = (1 - z) n + z h, where
// x_* and h_* are the chunks of x W_ihᵀ + b_ih and h W_hhᵀ + b_hh.
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());

}  // namespace functional

// The parameters every cell has, uniform in ±1/sqrt(hidden_size) as PyTorch's.
class RecurrentCell : public Module {
 public:
  int64_t input_size, hidden_size;
  Tensor weight_ih, weight_hh, bias_ih, bias_hh;  // biases undefined when built without

  std::string extra_repr() const override;

 protected:
  RecurrentCell(const char* type_name, int64_t input_size, int64_t hidden_size, int64_t gates,
                bool bias);
  // Checks x against input_size and returns the state to use: `state` or zeros.
  Tensor initial_state(const Tensor& x, const Tensor& state, const char* what) const;
};

// Elman RNN cell: h' = tanh (or relu) of the input and the previous hidden state.
class RNNCell : public RecurrentCell {
 public:
  enum class Nonlinearity { Tanh, Relu };
  RNNCell(int64_t input_size, int64_t hidden_size, bool bias = true,
          Nonlinearity nonlinearity = Nonlinearity::Tanh);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  // h undefined means zeros.
  Tensor forward(const Tensor& x, const Tensor& h);
  std::string extra_repr() const override;
  Nonlinearity nonlinearity;
};

class LSTMCell : public RecurrentCell {
 public:
  LSTMCell(int64_t input_size, int64_t hidden_size, bool bias = true);
  // The new hidden state, from zero states.
  Tensor forward(const Tensor& x) override { return std::get<0>(forward(x, {Tensor(), Tensor()})); }
  // (h', c') from (h, c); an undefined state means zeros.
  std::tuple<Tensor, Tensor> forward(const Tensor& x, const std::tuple<Tensor, Tensor>& state);
};

class GRUCell : public RecurrentCell {
 public:
  GRUCell(int64_t input_size, int64_t hidden_size, bool bias = true);
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }
  Tensor forward(const Tensor& x, const Tensor& h);
};

}  // namespace strata::nn
