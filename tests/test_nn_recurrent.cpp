// The recurrent cells: one step of RNNCell (tanh, relu), LSTMCell and GRUCell against PyTorch
// (tests/data/gen_nn_recurrent.py: outputs and the gradients of input, states and every
// parameter), float64 gradchecks of the functional cells, and shape errors.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace F = nn::functional;

const Fixture& fixture() {
  static const Fixture f("nn_recurrent.txt");
  return f;
}

// Loads the cell's parameters from fixture case `name`, converted to dtype.
void load_cell(nn::Module& cell, const std::string& name, DType dtype) {
  cell.to(dtype);
  nn::StateDict state;
  for (const auto& [key, t] : cell.state_dict()) state[key] = fixture()[name + "_" + key];
  cell.load_state_dict(state);
}

// f32 against PyTorch's f64: inputs rounded to f32, then two products of length <= 5 and a
// sigmoid/tanh chain; 2e-5 covers that. f64: only the summation order differs.
Tolerance tolerance_for(DType dtype) {
  return dtype == kFloat32 ? Tolerance{2e-5, 2e-5} : Tolerance{1e-10, 1e-12};
}

Tensor input(const std::string& key, DType dtype) {
  return fixture()[key].to(dtype).clone().set_requires_grad(true);
}

void expect_params_grads(nn::Module& cell, const std::string& name, Tolerance tol) {
  for (const auto& [key, p] : cell.named_parameters()) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(p.grad().defined());
    expect_close(p.grad(), fixture()[name + "_grad_" + key], tol.rtol, tol.atol);
  }
}

TEST(NnRecurrent, RnnCellsMatchPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    for (auto act : {nn::RNNCell::Nonlinearity::Tanh, nn::RNNCell::Nonlinearity::Relu}) {
      const std::string name = act == nn::RNNCell::Nonlinearity::Tanh ? "rnn_tanh" : "rnn_relu";
      SCOPED_TRACE(name + " " + dtype_name(dtype));
      const Tolerance tol = tolerance_for(dtype);
      nn::RNNCell cell(5, 4, true, act);
      load_cell(cell, name, dtype);
      Tensor x = input(name + "_x", dtype), h = input(name + "_h", dtype);
      Tensor out = cell.forward(x, h);
      expect_close(out, fixture()[name + "_out0"], tol.rtol, tol.atol);
      out.backward(fixture()[name + "_g0"].to(dtype));
      expect_close(x.grad(), fixture()[name + "_grad_x"], tol.rtol, tol.atol);
      expect_close(h.grad(), fixture()[name + "_grad_h"], tol.rtol, tol.atol);
      expect_params_grads(cell, name, tol);
    }
  }
}

TEST(NnRecurrent, GruCellMatchesPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tolerance tol = tolerance_for(dtype);
    nn::GRUCell cell(5, 4);
    load_cell(cell, "gru", dtype);
    Tensor x = input("gru_x", dtype), h = input("gru_h", dtype);
    Tensor out = cell.forward(x, h);
    expect_close(out, fixture()["gru_out0"], tol.rtol, tol.atol);
    out.backward(fixture()["gru_g0"].to(dtype));
    expect_close(x.grad(), fixture()["gru_grad_x"], tol.rtol, tol.atol);
    expect_close(h.grad(), fixture()["gru_grad_h"], tol.rtol, tol.atol);
    expect_params_grads(cell, "gru", tol);
  }
}

TEST(NnRecurrent, LstmCellMatchesPyTorch) {
  for (DType dtype : {kFloat64, kFloat32}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tolerance tol = tolerance_for(dtype);
    nn::LSTMCell cell(5, 4);
    load_cell(cell, "lstm", dtype);
    Tensor x = input("lstm_x", dtype), h = input("lstm_h", dtype), c = input("lstm_c", dtype);
    auto [h_next, c_next] = cell.forward(x, {h, c});
    expect_close(h_next, fixture()["lstm_out0"], tol.rtol, tol.atol);
    expect_close(c_next, fixture()["lstm_out1"], tol.rtol, tol.atol);
    // d(h'·g0 + c'·g1): both outputs feed the loss, as in the generator.
    Tensor loss = (h_next * fixture()["lstm_g0"].to(dtype)).sum() +
                  (c_next * fixture()["lstm_g1"].to(dtype)).sum();
    loss.backward();
    expect_close(x.grad(), fixture()["lstm_grad_x"], tol.rtol, tol.atol);
    expect_close(h.grad(), fixture()["lstm_grad_h"], tol.rtol, tol.atol);
    expect_close(c.grad(), fixture()["lstm_grad_c"], tol.rtol, tol.atol);
    expect_params_grads(cell, "lstm", tol);
  }
}

TEST(NnRecurrent, CellsGradcheck) {
  const int64_t n = 2, in = 3, hid = 2;
  auto leaf = [](const Shape& shape, uint32_t seed) { return random_f64(shape, -1, 1, seed, true); };
  Tensor x = leaf({n, in}, 1), h = leaf({n, hid}, 2), c = leaf({n, hid}, 3);
  for (int64_t gates : {1, 3, 4}) {
    SCOPED_TRACE(gates);
    Tensor w_ih = leaf({gates * hid, in}, 4), w_hh = leaf({gates * hid, hid}, 5);
    Tensor b_ih = leaf({gates * hid}, 6), b_hh = leaf({gates * hid}, 7);
    auto fn = [&](const std::vector<Tensor>& v) -> Tensor {
      if (gates == 1) return F::rnn_tanh_cell(v[0], v[1], v[3], v[4], v[5], v[6]);
      if (gates == 3) return F::gru_cell(v[0], v[1], v[3], v[4], v[5], v[6]);
      auto [h2, c2] = F::lstm_cell(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
      return cat({h2, c2}, 1);
    };
    auto result = gradcheck(fn, {x, h, c, w_ih, w_hh, b_ih, b_hh});
    EXPECT_TRUE(result.ok) << result.message;
  }
}

TEST(NnRecurrent, UnbatchedAndZeroStates) {
  nn::LSTMCell cell(3, 2);
  Tensor x = random_f32({3}, -1, 1, 9);
  auto [h, c] = cell.forward(x, {Tensor(), Tensor()});
  EXPECT_EQ(h.shape(), (Shape{2}));
  auto [h0, c0] = cell.forward(x, {zeros({2}), zeros({2})});
  expect_close(h, h0, 0, 0);
  expect_close(c, c0, 0, 0);
  nn::GRUCell gru(3, 2, /*bias=*/false);
  EXPECT_EQ(gru.parameters().size(), 2u);
  EXPECT_EQ(gru(random_f32({4, 3}, -1, 1, 2)).shape(), (Shape{4, 2}));
  EXPECT_EQ(gru.weight_ih.shape(), (Shape{6, 3}));
}

TEST(NnRecurrent, ShapeErrorsNameTheCell) {
  nn::LSTMCell cell(3, 2);
  try {
    cell.forward(zeros({4, 5}), {Tensor(), Tensor()});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lstm_cell: input has 5 features but weight_ih expects 3"),
              std::string::npos)
        << e.what();
  }
  try {
    cell.forward(zeros({4, 3}), {zeros({4, 3}), zeros({4, 3})});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hidden state must be [4,2]"), std::string::npos)
        << e.what();
  }
  nn::GRUCell gru(3, 2);
  EXPECT_THROW(gru.forward(zeros({4, 3}), zeros({5, 2})), Error);
  EXPECT_THROW(F::rnn_tanh_cell(zeros({4, 3}), zeros({4, 2}), zeros({2, 3}), zeros({3, 2})), Error);
}

}  // namespace
}  // namespace strata::test
