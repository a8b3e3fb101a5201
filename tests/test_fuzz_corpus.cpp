// The fuzz targets over the seed corpora and every past finding (tests/fuzz/corpus/<target>/
// and tests/fuzz/regressions/<target>/): each input must end in a result or a strata::Error,
// with consistent results, so that a fixed crash stays fixed without a fuzzer in the build.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/targets.h"

namespace strata::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const std::string& target, const char* kind) {
  std::vector<fs::path> paths;
  const fs::path dir = fs::path(STRATA_FUZZ_DIR) / kind / target;
  if (!fs::is_directory(dir)) return paths;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) paths.push_back(entry.path());
  }
  return paths;
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void replay(const std::string& name) {
  const Target& t = target(name);
  const std::vector<fs::path> seeds = inputs_of(name, "corpus");
  ASSERT_GE(seeds.size(), 5u) << "the seed corpus of " << name << " is missing";
  std::vector<fs::path> all = seeds;
  for (const fs::path& path : inputs_of(name, "regressions")) all.push_back(path);
  for (const fs::path& path : all) {
    const std::vector<uint8_t> bytes = read_bytes(path);
    try {
      t.run(bytes);
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << " on " << path << ": " << e.what();
    }
  }
}

TEST(FuzzCorpus, Idx) { replay("idx"); }
TEST(FuzzCorpus, Cifar10) { replay("cifar10"); }
TEST(FuzzCorpus, Csv) { replay("csv"); }
TEST(FuzzCorpus, Safetensors) { replay("safetensors"); }

TEST(FuzzCorpus, EveryTargetHasATest) {
  std::vector<std::string> names;
  for (const Target& t : targets()) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"idx", "cifar10", "csv", "safetensors"}));
  EXPECT_THROW((void)target("png"), std::invalid_argument);
}

// The targets must tell a wrong result from a malformed input: a finding is not swallowed.
TEST(FuzzCorpus, MalformedInputsAreNotFindings) {
  const std::vector<uint8_t> garbage = {0xFF, 0x00, 0x13, 0x37, 0x42};
  for (const Target& t : targets()) EXPECT_NO_THROW(t.run(garbage)) << t.name;
  EXPECT_NO_THROW(target("idx").run({}));
}

}  // namespace
}  // namespace strata::fuzz
