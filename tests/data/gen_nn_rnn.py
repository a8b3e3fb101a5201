"""Reference values for tests/test_nn_rnn.cpp: full sequences through torch.nn.RNN (tanh and
relu), nn.LSTM and nn.GRU in float64 -- one layer, two bidirectional layers, batch-first,
variable lengths (packed, unsorted), no bias, unbatched -- with every parameter under its
PyTorch name, the output and final states, and the gradients of the input, the initial states
and every parameter for the loss sum(output * g_out) + sum(h_n * g_h) (+ sum(c_n * g_c)).
Every input, parameter and upstream gradient is a multiple of 1/64 (exact in float32, and short
in the file); dropout is not covered (PyTorch's random stream differs from ours).
Run once: /usr/bin/python3 gen_nn_rnn.py"""
import os

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fixtures

torch.manual_seed(11)
torch.set_default_dtype(torch.float64)
out = {}
I, H, T, B = 3, 4, 5, 3
LENGTHS = [4, 2, 5]  # unsorted; one row runs the whole sequence

KINDS = {
    "rnn_tanh": lambda **kw: torch.nn.RNN(I, H, nonlinearity="tanh", **kw),
    "rnn_relu": lambda **kw: torch.nn.RNN(I, H, nonlinearity="relu", **kw),
    "lstm": lambda **kw: torch.nn.LSTM(I, H, **kw),
    "gru": lambda **kw: torch.nn.GRU(I, H, **kw),
}


def q(t):
    """Rounds to a multiple of 1/64: exact in float32 and short in the file."""
    return torch.round(t * 64) / 64


def expected_names(layers, bidirectional, bias):
    """PyTorch's documented order: per layer, forward then reverse; w_ih, w_hh, b_ih, b_hh."""
    names = []
    for layer in range(layers):
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            names += [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
            if bias:
                names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
    return names


def case(name, kind, num_layers=1, bidirectional=False, batch_first=False, bias=True,
         lengths=None, unbatched=False):
    module = KINDS[kind](num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first, bias=bias)
    assert [k for k, _ in module.named_parameters()] == expected_names(num_layers, bidirectional,
                                                                      bias)
    with torch.no_grad():
        for w in module.parameters():
            w.copy_(q(w))
    D = 2 if bidirectional else 1
    is_lstm = kind == "lstm"
    if unbatched:
        x_shape, state_shape = (T, I), (num_layers * D, H)
    else:
        x_shape = (B, T, I) if batch_first else (T, B, I)
        state_shape = (num_layers * D, B, H)
    x = q(torch.randn(*x_shape)).requires_grad_()
    h0 = q(0.5 * torch.randn(*state_shape)).requires_grad_()
    c0 = q(0.5 * torch.randn(*state_shape)).requires_grad_() if is_lstm else None
    state = (h0, c0) if is_lstm else h0

    if lengths is None:
        output, final = module(x, state)
    else:
        packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first,
                                      enforce_sorted=False)
        packed_out, final = module(packed, state)
        output, _ = pad_packed_sequence(packed_out, batch_first=batch_first, total_length=T)
    h_n, c_n = final if is_lstm else (final, None)

    g_out, g_h = q(torch.randn_like(output)), q(torch.randn_like(h_n))
    loss = (output * g_out).sum() + (h_n * g_h).sum()
    if is_lstm:
        g_c = q(torch.randn_like(c_n))
        loss = loss + (c_n * g_c).sum()
    loss.backward()

    p = name + "_"
    for k, w in module.named_parameters():
        out[p + k] = w
    out[p + "x"], out[p + "h0"] = x, h0
    if lengths is not None:
        out[p + "lengths"] = torch.tensor(lengths)
    out[p + "output"], out[p + "h_n"] = output, h_n
    out[p + "g_out"], out[p + "g_h"] = g_out, g_h
    out[p + "grad_x"], out[p + "grad_h0"] = x.grad, h0.grad
    if is_lstm:
        out[p + "c0"], out[p + "c_n"], out[p + "g_c"] = c0, c_n, g_c
        out[p + "grad_c0"] = c0.grad
    for k, w in module.named_parameters():
        out[p + "grad_" + k] = w.grad


for kind in KINDS:
    case(f"{kind}_uni", kind)
    case(f"{kind}_bi2", kind, num_layers=2, bidirectional=True)
    case(f"{kind}_bf2", kind, num_layers=2, batch_first=True)
for kind in ["lstm", "gru", "rnn_tanh"]:
    case(f"{kind}_len", kind, num_layers=2, bidirectional=True, lengths=LENGTHS)
case("lstm_len_bf", "lstm", num_layers=1, batch_first=True, lengths=LENGTHS)
case("lstm_nobias", "lstm", num_layers=2, bias=False)
case("lstm_unbatched", "lstm", num_layers=1, bidirectional=True, unbatched=True)
case("gru_unbatched", "gru", num_layers=1, unbatched=True)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_rnn.txt"), out)
