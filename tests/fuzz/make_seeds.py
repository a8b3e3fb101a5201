#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small, valid (or nearly valid) files of each format, so that the fuzzer starts from
inputs that reach deep into the readers; see tests/fuzz/targets.h for how each target reads its
input. Standard library only. Run from anywhere: python3 tests/fuzz/make_seeds.py
"""
import gzip
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
DATA = os.path.join(HERE, "..", "data")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def idx(type_code, dims, values, fmt):
    header = bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    return header + b"".join(struct.pack(">" + fmt, v) for v in values)


def idx_seeds():
    images = idx(0x08, [2, 3, 3], list(range(18)), "B")
    write("idx", "images_u8_2x3x3", images)
    write("idx", "labels_u8", idx(0x08, [4], [0, 9, 3, 7], "B"))
    write("idx", "signed_byte", idx(0x09, [3], [-128, 0, 127], "b"))
    write("idx", "int16_2x2", idx(0x0B, [2, 2], [-32768, -1, 1, 32767], "h"))
    write("idx", "int32", idx(0x0C, [2], [-2**31, 2**31 - 1], "i"))
    write("idx", "float32", idx(0x0D, [3], [0.5, -1e30, float("inf")], "f"))
    write("idx", "float64_1x1x1x2", idx(0x0E, [1, 1, 1, 2], [3.25, float("nan")], "d"))
    write("idx", "empty_dimension", idx(0x08, [0, 28, 28], [], "B"))
    write("idx", "images_gzip", gzip.compress(images, mtime=0))
    write("idx", "truncated", images[:-3])


def cifar_seeds():
    def record(label, fill):
        return bytes([label]) + bytes((fill + i) % 256 for i in range(3072))

    two = record(3, 0) + record(9, 100)
    write("cifar10", "test_two_records", bytes([0, 0]) + two)
    write("cifar10", "test_limit_one", bytes([0, 1]) + two)
    five = b"".join(record(i, 7 * i) for i in range(5))
    write("cifar10", "train_five_batches", bytes([1, 0]) + five)
    write("cifar10", "train_limit_three", bytes([1, 3]) + five)
    write("cifar10", "bad_label", bytes([0, 0]) + record(10, 0))


def csv_seeds():
    # Option bytes: flags (1 header, 2 missing_as_nan), delimiter index (0 ','), quote index
    # (0 '"'), skip_rows.
    def seed(name, text, flags=1, delimiter=0, quote=0, skip=0):
        write("csv", name, bytes([flags, delimiter, quote, skip]) + text.encode())

    seed("header", "x,y,target\n1,2.5,0\n-3e2,4,1\n")
    seed("no_header", "1,2\n3,4\n", flags=0)
    seed("quoted", '"a","b, with comma"\n"1","2"\n" 3 ",4\n')
    seed("missing", "a,b\nNA,1\n,nan\nnull,N/A\n", flags=3)
    seed("crlf_bom", "\ufeffa;b\r\n1;2\r\n\r\n3;4\r\n", delimiter=1)
    seed("skip_rows", "150,4,setosa\nsepal,width\n5.1,3.5\n", skip=1)
    seed("tabs_spaces", "a\tb\n 1 \t 2\n", delimiter=2)
    seed("multiline_quote", "'x'\n'1\n'\n", quote=1)
    seed("inf_nan", "a\ninf\n-inf\nNaN\n+1\n")


def tensor_bytes(fmt, values):
    return b"".join(struct.pack("<" + fmt, v) for v in values)


def safetensors(entries, metadata=None, pad=True):
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, payload in entries:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    write("safetensors", "f32_with_metadata", safetensors(
        [("w", "F32", [2, 2], tensor_bytes("f", [1, -2, 3.5, 0]))], {"epoch": "3"}))
    write("safetensors", "mixed", safetensors([
        ("a", "F64", [2], tensor_bytes("d", [0.25, -1])),
        ("b", "I64", [1, 2], tensor_bytes("q", [-5, 2**40])),
        ("c", "U8", [3], bytes([0, 128, 255])),
        ("d", "BOOL", [2], bytes([0, 1])),
    ]))
    write("safetensors", "widened", safetensors([
        ("h", "F16", [2], tensor_bytes("e", [1.5, -2])),
        ("bf", "BF16", [1], b"\x80\x3f"),
        ("i8", "I8", [2], tensor_bytes("b", [-1, 1])),
        ("i16", "I16", [1], tensor_bytes("h", [-300])),
        ("i32", "I32", [1], tensor_bytes("i", [70000])),
        ("u16", "U16", [1], tensor_bytes("H", [65535])),
        ("u32", "U32", [1], tensor_bytes("I", [4000000000])),
    ]))
    write("safetensors", "scalar_and_empty", safetensors(
        [("s", "F32", [], tensor_bytes("f", [7])), ("e", "F32", [0, 4], b"")], pad=False))
    write("safetensors", "empty", safetensors([]))
    for name in ("dtypes.safetensors", "torch_lstm_linear_io.safetensors"):
        shutil.copyfile(os.path.join(DATA, name), os.path.join(CORPUS, "safetensors", name))


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    idx_seeds()
    cifar_seeds()
    csv_seeds()
    safetensors_seeds()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))), "seeds")
