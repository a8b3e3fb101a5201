"""Reference bit patterns for float16 / bfloat16 <-> float32 conversions, from PyTorch's CPU
kernels. Binary files, little-endian, no header:

  half_f16_to_f32.bin   65536 x uint32: record b (b = 0..65535, the f16 bit pattern) is the
                        f32 bit pattern of torch.tensor([b], int16).view(float16).float().
                        262144 bytes.
  half_f32_cases.bin    N records of 8 bytes: uint32 f32_bits, uint16 f16_bits,
                        uint16 bf16_bits, where f16/bf16 are PyTorch's .half()/.bfloat16() of
                        the f32. N = file size / 8. Inputs (duplicates dropped, first kept):
                        every f16 widened to f32 in bit order 0..65535 (64514 records: f16
                        NaNs differing only in the quiet bit widen alike), then hand-picked
                        cases (f16 and bf16 ties with even and odd lower neighbour and the
                        f32 values just above and below them, overflow thresholds, f16
                        subnormal / underflow boundaries, f32 subnormals, +-0, +-inf, NaNs with
                        various payloads), then 20000 random f32 patterns (numpy seed 1234,
                        exponent field uniform over 0..255, random sign and mantissa).
                        87017 records, 696136 bytes.

Both outputs are the results of converting one large contiguous tensor (the vectorized
kernels). The script also converts every input through 1-element tensors, strided
(non-contiguous) views and 0-dim tensors, and prints every input where these paths disagree
(PyTorch 1.13: only bf16 of NaN: 0xffff from contiguous tensors of any size, 1 included,
0x7fc0 from strided views and 0-dim tensors; f16 of NaN is always 0x7e00 | sign). It also checks the non-NaN results against
a plain round-to-nearest-even model written here.
Run once: /usr/bin/python3 tests/data/gen_half_conversions.py
"""
import os

import numpy as np
import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- helpers
def f32_tensor(bits):
    return torch.from_numpy(np.asarray(bits, dtype=np.uint32).view(np.int32).copy()).view(
        torch.float32)


def bits16(t):
    return t.contiguous().view(torch.int16).numpy().view(np.uint16).copy()


def bits32(t):
    return t.contiguous().view(torch.int32).numpy().view(np.uint32).copy()


def is_nan32(b):
    return (b & 0x7F800000) == 0x7F800000 and (b & 0x007FFFFF) != 0


def ref_f16(b):
    """Round-to-nearest-even f32 -> f16 (non-NaN inputs), exact in Python integers."""
    sign = (b >> 16) & 0x8000
    e = (b >> 23) & 0xFF
    m = b & 0x7FFFFF
    if e == 0xFF:
        return sign | 0x7C00
    # value = sig * 2**exp with an integer significand
    if e == 0:
        sig, exp = m, -149
    else:
        sig, exp = m | 0x800000, e - 150
    if sig == 0:
        return sign
    # f16 quantum at this magnitude: subnormal quantum 2**-24, normal 2**(E-10)
    top = sig.bit_length() - 1 + exp  # floor(log2(value))
    q = max(top - 10, -24)
    shift = q - exp
    if shift <= 0:
        n = sig << (-shift)
    else:
        n, rem = sig >> shift, sig & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (n & 1)):
            n += 1
    # n * 2**q; encode
    if n == 0:
        return sign
    if q == -24 and n < 1024:
        return sign | n
    # normalise (n may be 2048 after rounding up)
    while n >= 2048:
        n >>= 1
        q += 1
    E = q + 10 + 15
    if E >= 31:
        return sign | 0x7C00
    return sign | (E << 10) | (n & 0x3FF)


def ref_bf16(b):
    """Round-to-nearest-even f32 -> bf16 (non-NaN inputs): bf16 is the top half of f32."""
    if (b & 0x7F800000) == 0x7F800000:
        return b >> 16
    r = b + 0x7FFF + ((b >> 16) & 1)
    return (r >> 16) & 0xFFFF


# ---------------------------------------------------------------- f16 -> f32
all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
h_all = torch.from_numpy(all16.view(np.int16).copy()).view(torch.float16)
f_big = bits32(h_all.float())
f_one = np.array([bits32(h_all[i:i + 1].float())[0] for i in range(65536)], dtype=np.uint32)
f_strided = bits32(torch.stack([h_all, h_all], 1)[:, 0].float())  # non-contiguous
f_zero_dim = np.array([bits32(h_all[i].float().reshape(1))[0] for i in range(0, 65536, 7)],
                      dtype=np.uint32)
print("f16->f32: large vs 1-element differ at %d inputs; large vs strided at %d; "
      "large vs 0-dim (every 7th) at %d"
      % ((f_big != f_one).sum(), (f_big != f_strided).sum(),
         (f_big[::7] != f_zero_dim).sum()))
nan16 = [b for b in range(65536) if (b & 0x7C00) == 0x7C00 and (b & 0x3FF)]
quieted = all(f_big[b] == (((b & 0x8000) << 16) | 0x7F800000 | ((b & 0x3FF) << 13) | 0x400000)
              for b in nan16)
print("f16->f32 NaN: payload shifted left 13 and quiet bit 0x00400000 set, sign kept: %s"
      % quieted)
for b in (0x7C01, 0x7DFF, 0x7E00, 0x7FFF, 0xFC01, 0xFE01):
    print("  f16 %04x -> f32 %08x" % (b, f_big[b]))
# non-NaN must be exact widening
for b in range(65536):
    if b not in nan16 and b & 0x7C00 != 0x7C00:
        v = np.float32(all16[b:b + 1].view(np.float16)[0])
        assert np.array([v], np.float32).view(np.uint32)[0] == f_big[b], hex(b)
with open(os.path.join(HERE, "half_f16_to_f32.bin"), "wb") as f:
    f.write(f_big.astype("<u4").tobytes())

# ---------------------------------------------------------------- f32 -> f16 / bf16 inputs
inputs = [int(x) for x in f_big]  # every f16 widened (round trips)


def add(*bs):
    for b in bs:
        inputs.append(b & 0xFFFFFFFF)


def both_signs(b):
    add(b, b | 0x80000000)


# f16 normal ties: f16 value h (exponent E, mantissa m), next f16 above it; the tie is the
# widened h plus half an f16 ulp (1 << 12 in f32 mantissa units, since f16 normals map to f32
# mantissas with 13 trailing zeros). Mantissa m even -> lower neighbour even (round down).
for E in range(1, 31):
    for m in (0, 1, 2, 3, 0x155, 0x2AA, 0x3FD, 0x3FE, 0x3FF):
        w = int(f_big[(E << 10) | m])
        for d in (0, 1, -1):  # tie, just above, just below
            both_signs(w + (1 << 12) + d)
# f16 subnormal ties: k*2^-24 + 2^-25 for k = 0 (rounds to zero) .. 1023 (rounds into normals)
for k in list(range(0, 9)) + [0x155, 0x2AA] + list(range(0x3F8, 0x400)):
    w = int(np.array([np.float32(k * 2.0 ** -24 + 2.0 ** -25)]).view(np.uint32)[0])
    for d in (0, 1, -1):
        both_signs(w + d)
# underflow to zero and the smallest f16 subnormal
for v in (2.0 ** -24, 2.0 ** -25, 2.0 ** -26, 1.5 * 2.0 ** -25, 0.75 * 2.0 ** -24,
          2.0 ** -14, 2.0 ** -14 - 2.0 ** -24, 2.0 ** -14 - 2.0 ** -25, 1e-10, 1e-30):
    w = int(np.array([np.float32(v)]).view(np.uint32)[0])
    for d in (0, 1, -1):
        both_signs(w + d)
# f16 overflow: 65504 = max, 65520 = tie between max and 2^16 (rounds to inf)
for v in (65504.0, 65520.0, 65536.0, 65519.0, 65521.0, 131008.0, 1e5, 1e38, 3.4028234663852886e38):
    w = int(np.array([np.float32(v)]).view(np.uint32)[0])
    for d in (0, 1, -1):
        both_signs(w + d)
# bf16 ties: low 16 bits 0x8000 with bit 16 even / odd, and +-1 around them, over exponents
for e in (0, 1, 2, 0x3F, 0x70, 0x7F, 0x80, 0xC0, 0xFD, 0xFE):
    for hi_m in (0x00, 0x01, 0x02, 0x03, 0x40, 0x7E, 0x7F):
        base = (e << 23) | (hi_m << 16)
        for low in (0x8000, 0x8001, 0x7FFF, 0x0001, 0xFFFF):
            both_signs(base | low)
# bf16 max (0x7f7f0000), its rounding threshold (0x7f7f8000 -> inf), f32 max, carries
for b in (0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7FFFFF, 0x3F7FFFFF, 0x3F7F8000,
          0x3FFF8000, 0x007F8000, 0x007FFFFF, 0x00FF8000):
    both_signs(b)
# f32 subnormals
for b in (0x00000001, 0x00000002, 0x00001000, 0x00002000, 0x00007FFF, 0x00008000, 0x00008001,
          0x00018000, 0x00010000, 0x00400000, 0x007FFFFF, 0x00800000):
    both_signs(b)
# zeros, infinities, NaNs (quiet and signalling, various payloads and signs)
add(0x00000000, 0x80000000, 0x7F800000, 0xFF800000)
for b in (0x7F800001, 0x7F800002, 0x7F801000, 0x7F802000, 0x7F810000, 0x7FA00000, 0x7FBFFFFF,
          0x7FC00000, 0x7FC00001, 0x7FC02000, 0x7FC10000, 0x7FE00000, 0x7FFFFFFF, 0x7FD55555):
    both_signs(b)
# random patterns spread over exponents
rng = np.random.RandomState(1234)
n_rand = 20000
exps = rng.randint(0, 256, n_rand).astype(np.uint32)
mants = rng.randint(0, 1 << 23, n_rand).astype(np.uint32)
signs = rng.randint(0, 2, n_rand).astype(np.uint32)
add(*[int(x) for x in (signs << 31) | (exps << 23) | mants])

seen, uniq = set(), []
for b in inputs:
    if b not in seen:
        seen.add(b)
        uniq.append(b)
inp = np.array(uniq, dtype=np.uint32)
x = f32_tensor(inp)
assert x.numel() >= 4096 and x.is_contiguous()

# ---------------------------------------------------------------- conversions, several paths
h_big, b_big = bits16(x.half()), bits16(x.bfloat16())
h_one = np.array([bits16(x[i:i + 1].half())[0] for i in range(len(inp))], dtype=np.uint16)
b_one = np.array([bits16(x[i:i + 1].bfloat16())[0] for i in range(len(inp))], dtype=np.uint16)
xs = torch.stack([x, x], 1)[:, 0]
assert not xs.is_contiguous()
h_str, b_str = bits16(xs.half()), bits16(xs.bfloat16())
idx0 = range(0, len(inp), 5)
h_0d = np.array([bits16(x[i].half().reshape(1))[0] for i in idx0], dtype=np.uint16)
b_0d = np.array([bits16(x[i].bfloat16().reshape(1))[0] for i in idx0], dtype=np.uint16)
sel = np.array(list(idx0))


def report(name, a, b, where):
    d = np.nonzero(a != b)[0]
    nan_only = all(is_nan32(int(inp[where[i]])) for i in d)
    pairs = sorted({(int(a[i]), int(b[i])) for i in d})
    print("%s: %d inputs differ%s; (large, other) pairs: %s" % (
        name, len(d), " (all NaN inputs)" if nan_only and len(d) else "",
        ", ".join("(%04x, %04x)" % p for p in pairs[:12])))


ar = np.arange(len(inp))
report("f16  large vs 1-element", h_big, h_one, ar)
report("bf16 large vs 1-element", b_big, b_one, ar)
report("f16  large vs strided", h_big, h_str, ar)
report("bf16 large vs strided", b_big, b_str, ar)
report("f16  large vs 0-dim (every 5th)", h_big[sel], h_0d, sel)
report("bf16 large vs 0-dim (every 5th)", b_big[sel], b_0d, sel)
for b in (0x7F800001, 0x7FC00001, 0xFFA00000, 0x7FBFFFFF, 0xFFC00000):
    i = uniq.index(b)
    print("  f32 %08x: f16 large %04x 1-elem %04x strided %04x | bf16 large %04x 1-elem %04x "
          "strided %04x" % (b, h_big[i], h_one[i], h_str[i], b_big[i], b_one[i], b_str[i]))

# non-NaN results against the RNE model
bad = 0
for i, b in enumerate(uniq):
    if is_nan32(b):
        continue
    if ref_f16(b) != h_big[i] or ref_bf16(b) != b_big[i]:
        bad += 1
        if bad < 10:
            print("  model mismatch f32 %08x: torch f16 %04x bf16 %04x, model %04x %04x"
                  % (b, h_big[i], b_big[i], ref_f16(b), ref_bf16(b)))
print("non-NaN results differing from the round-to-nearest-even model: %d" % bad)

rec = np.zeros(len(inp), dtype=[("f32", "<u4"), ("f16", "<u2"), ("bf16", "<u2")])
rec["f32"], rec["f16"], rec["bf16"] = inp, h_big, b_big
with open(os.path.join(HERE, "half_f32_cases.bin"), "wb") as f:
    f.write(rec.tobytes())
print("half_f32_cases.bin: %d records" % len(inp))
