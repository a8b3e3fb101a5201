"""Fixtures for tests/test_io_safetensors.cpp, written the way the `safetensors` Python package
(safetensors.torch.save_file) writes them. That package is in neither Debian nor this machine's
Python, so the format is written here by hand with json + struct, following its Rust
serializer: an 8-byte little-endian header length; compact JSON with "__metadata__" first and
then the tensors in data order; the header padded with spaces to a multiple of 8; the data
sorted by dtype (the package's enumeration, largest first) and then by name, each tensor's
bytes little-endian and row-major.

Files:
  torch_lstm_linear.safetensors     state_dict() of a torch model (a 2-layer batch-first LSTM
                                    and a Linear head, float32, PyTorch's names), with
                                    metadata {"format": "pt"} as transformers writes it
  torch_lstm_linear_io.safetensors  a fixed input and the model's outputs on it
  dtypes.safetensors                one tensor of every dtype Strata reads, fixed values
Run once: /usr/bin/python3 gen_safetensors.py"""
import json
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# The package's Dtype enumeration order; tensors are written from the last to the first.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
               "U32", "F32", "F64", "I64", "U64"]
TORCH_TO_NAME = {torch.bool: "BOOL", torch.uint8: "U8", torch.int8: "I8", torch.int16: "I16",
                 torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32",
                 torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: write its bits
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write(path, tensors, metadata=None, extra=None):
    """tensors: name -> torch tensor; extra: name -> (dtype name, shape, raw bytes) for dtypes
    torch 1.13 lacks (U16, U32)."""
    items = [(name, TORCH_TO_NAME[t.dtype], list(t.shape), tensor_bytes(t))
             for name, t in tensors.items()]
    items += [(name, dtype, shape, raw) for name, (dtype, shape, raw) in (extra or {}).items()]
    items.sort(key=lambda item: (-DTYPE_ORDER.index(item[1]), item[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in items:
            f.write(raw)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        output, (h_n, c_n) = self.lstm(x)
        return output, h_n, c_n, self.fc(output)


torch.manual_seed(7)
net = Net()
write("torch_lstm_linear.safetensors", net.state_dict(), {"format": "pt"})
x = torch.randn(2, 4, 3)
with torch.no_grad():
    output, h_n, c_n, y = net(x)
write("torch_lstm_linear_io.safetensors",
      {"input": x, "lstm_output": output, "h_n": h_n, "c_n": c_n, "output": y})

# The values the C++ test expects, spelled out there as well.
dtypes = {
    "f32": torch.tensor([[1.5, -2.25, 0.0], [3.0, 1e-3, -7.0]], dtype=torch.float32),
    "f64": torch.tensor([0.1, -1e300, 2.0], dtype=torch.float64),
    "i64": torch.tensor([[-(2 ** 62), 1], [0, 2 ** 40]], dtype=torch.int64),
    "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True, True, False]),
    # normal, negative zero, largest half, smallest subnormal half, infinity
    "f16": torch.tensor([1.5, -0.0, 65504.0, 2 ** -24, float("inf")], dtype=torch.float16),
    "bf16": torch.tensor([1.0, -3.5, 2 ** 100], dtype=torch.bfloat16),
    "i32": torch.tensor([-(2 ** 31), 2 ** 31 - 1, -5], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, -1], dtype=torch.int8),
    "scalar": torch.tensor(4.5, dtype=torch.float32),
    "empty": torch.zeros(0, 3, dtype=torch.float32),
}
write("dtypes.safetensors", dtypes, {"note": "dtypes", "written_by": "gen_safetensors.py"},
      extra={"u16": ("U16", [2], struct.pack("<2H", 0, 65535)),
             "u32": ("U32", [2], struct.pack("<2I", 7, 4294967295))})
