"""Reference values for tests/test_nn_recurrent.cpp: one step of torch.nn.RNNCell (tanh and
relu), LSTMCell and GRUCell in float64, with the gradients of the input, the states and every
parameter for a fixed upstream gradient. Run once: /usr/bin/python3 gen_nn_recurrent.py"""
import os
import torch
import fixtures

torch.manual_seed(3)
torch.set_default_dtype(torch.float64)
out = {}
N, I, H = 3, 5, 4


def record(name, cell, x, states, result):
    for k, p in cell.named_parameters():
        out[f"{name}_{k}"] = p
    out[f"{name}_x"] = x
    for k, s in states.items():
        out[f"{name}_{k}"] = s
    results = result if isinstance(result, tuple) else (result,)
    grads_out = [torch.randn_like(r) for r in results]
    torch.autograd.backward(results, grads_out)
    for i, (r, g) in enumerate(zip(results, grads_out)):
        out[f"{name}_out{i}"] = r
        out[f"{name}_g{i}"] = g
    out[f"{name}_grad_x"] = x.grad
    for k, s in states.items():
        out[f"{name}_grad_{k}"] = s.grad
    for k, p in cell.named_parameters():
        out[f"{name}_grad_{k}"] = p.grad


for name, cell in [("rnn_tanh", torch.nn.RNNCell(I, H)),
                   ("rnn_relu", torch.nn.RNNCell(I, H, nonlinearity="relu")),
                   ("gru", torch.nn.GRUCell(I, H))]:
    x = torch.randn(N, I, requires_grad=True)
    h = torch.randn(N, H, requires_grad=True)
    record(name, cell, x, {"h": h}, cell(x, h))

cell = torch.nn.LSTMCell(I, H)
x = torch.randn(N, I, requires_grad=True)
h = torch.randn(N, H, requires_grad=True)
c = torch.randn(N, H, requires_grad=True)
record("lstm", cell, x, {"h": h, "c": c}, cell(x, (h, c)))

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_recurrent.txt"), out)
