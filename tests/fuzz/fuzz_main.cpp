// libFuzzer's entry point for one target, named at compile time by STRATA_FUZZ_TARGET (one
// executable per target: strata_fuzz_idx, ...). Built only with STRATA_FUZZ=ON and Clang.
#include <cstddef>
#include <cstdint>
#include <span>

#include "targets.h"

#ifndef STRATA_FUZZ_TARGET
#error "STRATA_FUZZ_TARGET must name a target (idx, cifar10, csv, safetensors)"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const strata::fuzz::Target& target = strata::fuzz::target(STRATA_FUZZ_TARGET);
  // Anything but strata::Error escapes: libFuzzer reports the uncaught exception as a crash
  // and saves the input.
  target.run(std::span<const uint8_t>(data, size));
  return 0;
}
