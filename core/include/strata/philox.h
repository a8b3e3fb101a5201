// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"), written once
// for host and device so that the CPU and CUDA backends draw identical random streams.
// The rule every backend keeps: element i of a random fill with (seed, offset) uses the block
// philox(counter = offset + i, key = seed), and the conversions below.
#pragma once

#include <cmath>
#include <cstdint>

#include "strata/detail/host_device.h"

namespace strata::philox {

struct Block {
  uint32_t x, y, z, w;
};

STRATA_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t product = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(product >> 32);
  lo = static_cast<uint32_t>(product);
}

STRATA_HOST_DEVICE Block philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {c0, c1, c2, c3};
}

// Uniform in [0, 1): 24 random bits for float, 53 for double.
STRATA_HOST_DEVICE float uniform_float(const Block& b) {
  return static_cast<float>(b.x >> 8) * (1.0f / 16777216.0f);
}
STRATA_HOST_DEVICE double uniform_double(const Block& b) {
  const uint64_t bits = (static_cast<uint64_t>(b.x) << 32 | b.y) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller from two uniforms in (0, 1], always computed in double so
// both backends agree to rounding.
STRATA_HOST_DEVICE double normal_double(const Block& b) {
  const double u1 = (static_cast<double>(b.x) + 1.0) * (1.0 / 4294967296.0);
  const double u2 = static_cast<double>(b.y) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Integer in [low, high): 64 random bits modulo the range.
STRATA_HOST_DEVICE int64_t uniform_int(const Block& b, int64_t low, int64_t high) {
  const uint64_t bits = static_cast<uint64_t>(b.z) << 32 | b.w;
  const uint64_t range = static_cast<uint64_t>(high - low);
  return low + static_cast<int64_t>(bits % range);
}

}  // namespace strata::philox
