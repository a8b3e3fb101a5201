// The fuzz targets: each hands one input to a reader of files users give us (IDX, CIFAR-10,
// CSV, safetensors). A malformed input must end in strata::Error, which a target swallows; a
// crash, a sanitizer report or any other exception is a finding. Where a reader succeeds the
// target also checks what it returned (shapes agree, a safetensors round trip is stable) and
// throws FuzzFinding when not. The same functions run under libFuzzer (fuzz_main.cpp, built
// with STRATA_FUZZ=ON by scripts/fuzz.sh) and, over the seed corpora and past findings in
// tests/fuzz/, in the ordinary test suite (tests/test_fuzz_corpus.cpp).
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace strata::fuzz {

// A reader returned something inconsistent with its input: a bug, not a malformed file.
class FuzzFinding : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

using TargetFn = void (*)(std::span<const uint8_t> input);

struct Target {
  const char* name;  // also the folder of its corpus: tests/fuzz/corpus/<name>
  TargetFn run;
};

// idx: the whole input is one IDX file (gzipped or not) given to data::read_idx.
void fuzz_idx(std::span<const uint8_t> input);
// cifar10: byte 0 picks the split (bit 0: the five training batches, else test_batch.bin),
// byte 1 the limit (0: all); the rest is the batch file, split in five for training.
void fuzz_cifar10(std::span<const uint8_t> input);
// csv: bytes 0-3 pick the CsvOptions (flags, delimiter, quote, skip_rows); the rest is the file.
void fuzz_csv(std::span<const uint8_t> input);
// safetensors: the whole input given to io::load_safetensors_from_buffer.
void fuzz_safetensors(std::span<const uint8_t> input);

const std::vector<Target>& targets();

// The target called `name`; throws std::invalid_argument listing the names when none is.
const Target& target(const std::string& name);

}  // namespace strata::fuzz
