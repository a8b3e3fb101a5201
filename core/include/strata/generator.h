// A seeded random-number generator: a Philox key (the seed) and a counter offset that each
// random fill advances by the number of elements it drew. The same seed gives the same
// numbers on the CPU and on CUDA.
#pragma once

#include <cstdint>

namespace strata {

class Generator {
 public:
  explicit Generator(uint64_t seed = 5489) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  void set_offset(uint64_t offset) { offset_ = offset; }

  // Returns the offset to draw `count` numbers from and advances past them.
  uint64_t reserve(uint64_t count) {
    const uint64_t start = offset_;
    offset_ += count;
    return start;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// The process-wide generator used when none is passed.
Generator& default_generator();
void manual_seed(uint64_t seed);

}  // namespace strata
