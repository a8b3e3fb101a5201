// Recurrent cells: one time step of an Elman RNN, an LSTM and a GRU, as functions and as
// modules, with PyTorch's parameter names and layouts (weight_ih [G*H, I], weight_hh [G*H, H],
// bias_ih and bias_hh [G*H]; gate order i, f, g, o for the LSTM and r, z, n for the GRU), so
// weights move between the two unchanged. They are composed from linear, sigmoid and tanh, so
// they run on every backend and their gradients come from the tape.
// x: [N, I] (or unbatched [I]); states: [N, H] (or [H]).
//
// Below the cells: the full-sequence layers RNN, LSTM and GRU (a stack of layers, one- or
// two-way, run by the backend's fused rnn_forward/rnn_backward: one GEMM for the input
// projection of all steps, one per step for the recurrence), the Jordan network (the previous
// step's output is fed back, composed from cells), and the helpers for truncated
// backpropagation through time.
#pragma once

#include <tuple>
#include <vector>

#include "strata/backend.h"

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

// ---- full sequences ------------------------------------------------------------------------
struct RecurrentOptions {
  RnnMode mode = RnnMode::Lstm;
  int64_t num_layers = 1;
  bool bidirectional = false;
  double dropout = 0.0;        // on the outputs of every layer but the last, when training
  bool training = true;
  bool batch_first = false;    // input and output [B, T, F] instead of [T, B, F]
  std::vector<int64_t> lengths;  // one per batch row, each in [1, T]; empty: all T
};

struct RecurrentResult {
  Tensor output;  // [T, B, D*H] ([B, T, D*H] batch-first; [T, D*H] unbatched)
  Tensor h_n;     // [L*D, B, H] ([L*D, H] unbatched), index layer * D + direction
  Tensor c_n;     // Lstm only
};

// The op under RNN, LSTM and GRU. input [T, B, I] (or [B, T, I] batch-first, or unbatched
// [T, I]); h0 and c0 [L*D, B, H] ([L*D, H] unbatched), undefined meaning zeros; `weights` as
// RNNBase::flat_weights() lists them (w_ih, w_hh, b_ih, b_hh per layer and direction, the
// biases possibly undefined). Outputs at steps past a row's length are zero, and its final
// state is the state after its last step.
RecurrentResult recurrent(const Tensor& input, const Tensor& h0, const Tensor& c0,
                          const std::vector<Tensor>& weights, const RecurrentOptions& options);

// The lengths of the rows of a padding mask (bool or 0/1 numbers; [B, T], or [T, B] when not
// batch_first): each row must be ones then zeros, with at least one one.
std::vector<int64_t> lengths_from_mask(const Tensor& mask, bool batch_first = true);

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

// ---- full-sequence layers -----------------------------------------------------------------

// The options of RNN, LSTM and GRU, as PyTorch's constructor arguments:
//   nn::LSTM lstm({.input_size = 64, .hidden_size = 256, .num_layers = 2, .bidirectional = true});
struct RNNOptions {
  int64_t input_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 1;
  RNNCell::Nonlinearity nonlinearity = RNNCell::Nonlinearity::Tanh;  // RNN only
  bool bias = true;
  bool batch_first = false;
  double dropout = 0.0;          // between layers, in training
  bool bidirectional = false;
  bool unit_forget_bias = false;  // LSTM only: forget-gate bias starts at 1 (b_ih 1, b_hh 0)
};

// What RNN, LSTM and GRU share: the parameters, named as PyTorch names them (weight_ih_l0,
// weight_hh_l0, bias_ih_l0, bias_hh_l0, then weight_ih_l0_reverse, ... for the reverse
// direction, then _l1, ...), uniform in ±1/sqrt(hidden_size).
class RNNBase : public Module {
 public:
  RNNOptions options;
  RnnMode mode;

  // The weights in the order functional::recurrent takes them (undefined biases without bias).
  std::vector<Tensor> flat_weights() const { return flat_weights_; }
  std::string extra_repr() const override;

 protected:
  RNNBase(const char* type_name, RnnMode mode, const RNNOptions& options);
  functional::RecurrentResult run(const Tensor& input, const Tensor& h0, const Tensor& c0,
                                  const std::vector<int64_t>& lengths);

 private:
  std::vector<Tensor> flat_weights_;
};

// Elman network: h_t = tanh (or relu) of W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, per layer.
class RNN : public RNNBase {
 public:
  explicit RNN(const RNNOptions& options);
  RNN(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1);
  // The output sequence, from zero states.
  Tensor forward(const Tensor& input) override;
  // (output, h_n); h0 undefined means zeros; lengths as in functional::recurrent.
  std::tuple<Tensor, Tensor> forward(const Tensor& input, const Tensor& h0,
                                     const std::vector<int64_t>& lengths = {});
};

class LSTM : public RNNBase {
 public:
  explicit LSTM(const RNNOptions& options);
  LSTM(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1);
  Tensor forward(const Tensor& input) override;
  // (output, (h_n, c_n)) from (h0, c0); an undefined state means zeros.
  std::tuple<Tensor, std::tuple<Tensor, Tensor>> forward(
      const Tensor& input, const std::tuple<Tensor, Tensor>& state,
      const std::vector<int64_t>& lengths = {});
};

class GRU : public RNNBase {
 public:
  explicit GRU(const RNNOptions& options);
  GRU(int64_t input_size, int64_t hidden_size, int64_t num_layers = 1);
  Tensor forward(const Tensor& input) override;
  std::tuple<Tensor, Tensor> forward(const Tensor& input, const Tensor& h0,
                                     const std::vector<int64_t>& lengths = {});
};

// Jordan network: the previous step's output, not its hidden state, is fed back.
//   h_t = act(W_ih x_t + b_ih + W_hy y_{t-1} + b_hy)      [hidden_size]
//   y_t = out_act(W_ho h_t + b_ho)                        [output_size]
// Parameters weight_ih [H, I], weight_hy [H, O], weight_ho [O, H] and biases bias_ih, bias_hy
// [H], bias_ho [O] (without bias: none), uniform in ±1/sqrt(hidden_size). Composed from
// linear and the activations, so it runs on every backend.
class JordanRNN : public Module {
 public:
  enum class Activation { Identity, Tanh, Sigmoid, Relu };
  JordanRNN(int64_t input_size, int64_t hidden_size, int64_t output_size,
            Activation activation = Activation::Tanh,
            Activation output_activation = Activation::Tanh, bool bias = true,
            bool batch_first = false);
  // The outputs y_1..y_T: [T, B, O] ([B, T, O] batch-first, [T, O] unbatched).
  Tensor forward(const Tensor& input) override;
  // (outputs, y_n): y0 [B, O] ([O] unbatched) is the fed-back output before the first step,
  // undefined meaning zeros. Rows past their length keep their last output; their outputs
  // there are zero.
  std::tuple<Tensor, Tensor> forward(const Tensor& input, const Tensor& y0,
                                     const std::vector<int64_t>& lengths = {});
  std::string extra_repr() const override;

  int64_t input_size, hidden_size, output_size;
  Activation activation, output_activation;
  bool batch_first;
  Tensor weight_ih, weight_hy, weight_ho, bias_ih, bias_hy, bias_ho;
};

// ---- truncated backpropagation through time ------------------------------------------------
// Long sequences are trained in chunks of k steps: the state that leaves a chunk enters the
// next one detached, so each backward pass reaches back k steps at most.
//   Tensor h;
//   for (const Tensor& chunk : nn::time_chunks(x, 35)) {
//     auto [out, h_n] = rnn.forward(chunk, h);
//     ... loss, backward, step ...
//     h = nn::detach_state(h_n);
//   }
// The chunks of `sequence` along its time dim (0, or 1 when batch_first), each `steps` long
// but the last; views, so gradients reach `sequence`.
std::vector<Tensor> time_chunks(const Tensor& sequence, int64_t steps, bool batch_first = false);
inline Tensor detach_state(const Tensor& state) { return state.defined() ? state.detach() : state; }
inline std::tuple<Tensor, Tensor> detach_state(const std::tuple<Tensor, Tensor>& state) {
  return {detach_state(std::get<0>(state)), detach_state(std::get<1>(state))};
}

}  // namespace strata::nn
