// The fuzz targets (see targets.h). The file readers take paths, so each input is written to a
// scratch folder first, in /dev/shm where there is one (no disk traffic per run).
#include "targets.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "strata/data/readers.h"
#include "strata/error.h"
#include "strata/io/safetensors.h"

namespace strata::fuzz {

namespace fs = std::filesystem;

namespace {

void require(bool condition, const std::string& what) {
  if (!condition) throw FuzzFinding(what);
}

// A folder of this process's own, removed at exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code error;
    const fs::path shm = "/dev/shm";
    const fs::path base = fs::is_directory(shm, error) && access(shm.c_str(), W_OK) == 0
                              ? shm
                              : fs::temp_directory_path();
    path_ = base / ("strata-fuzz-" + std::to_string(getpid()));
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code error;
    fs::remove_all(path_, error);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  // A fresh, empty subfolder (files of an earlier input must not leak into this one).
  fs::path fresh(const std::string& name) const {
    const fs::path dir = path_ / name;
    std::error_code error;
    fs::remove_all(dir, error);
    fs::create_directories(dir);
    return dir;
  }

 private:
  fs::path path_;
};

const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

void write_file(const fs::path& path, std::span<const uint8_t> bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("fuzz: cannot write " + path.string());
}

}  // namespace

void fuzz_idx(std::span<const uint8_t> input) {
  const fs::path path = scratch().fresh("idx") / "input.idx";
  write_file(path, input);
  try {
    const Tensor values = data::read_idx(path);
    require(values.defined() && values.dim() >= 1 && values.is_contiguous(),
            "read_idx returned an undefined, 0-dim or strided tensor");
  } catch (const Error&) {
  }
}

void fuzz_cifar10(std::span<const uint8_t> input) {
  if (input.size() < 2) return;
  const bool train = (input[0] & 1) != 0;
  const int64_t limit = input[1];
  const std::span<const uint8_t> content = input.subspan(2);
  const fs::path dir = scratch().fresh("cifar10");
  if (train) {
    const size_t part = content.size() / 5;
    for (size_t i = 0; i < 5; ++i) {
      const size_t begin = i * part, end = i == 4 ? content.size() : begin + part;
      write_file(dir / ("data_batch_" + std::to_string(i + 1) + ".bin"),
                 content.subspan(begin, end - begin));
    }
  } else {
    write_file(dir / "test_batch.bin", content);
  }
  try {
    const data::Cifar10Split split = data::load_cifar10(dir, train, limit);
    const int64_t n = split.labels.numel();
    require(split.images.shape() == Shape({n, 3, 32, 32}), "images and labels disagree");
    require(limit == 0 || n <= limit, "more examples than the limit");
    for (const int64_t label : split.labels.to_vector<int64_t>()) {
      require(label >= 0 && label < 10, "a label outside 0..9 got through");
    }
  } catch (const Error&) {
  }
}

void fuzz_csv(std::span<const uint8_t> input) {
  if (input.size() < 4) return;
  static constexpr char kDelimiters[] = {',', ';', '\t', ' ', '|', '"', '\n'};
  static constexpr char kQuotes[] = {'"', '\'', ','};
  data::CsvOptions options;
  options.header = (input[0] & 1) != 0;
  options.missing_as_nan = (input[0] & 2) != 0;
  options.delimiter = kDelimiters[input[1] % sizeof kDelimiters];
  options.quote = kQuotes[input[2] % sizeof kQuotes];
  options.skip_rows = input[3] % 4;
  const fs::path path = scratch().fresh("csv") / "input.csv";
  write_file(path, input.subspan(4));
  try {
    const data::CsvTable table = data::read_csv(path, options);
    const auto columns = static_cast<int64_t>(table.columns.size());
    require(columns >= 1, "a table without columns");
    require(table.values.shape() == Shape({table.rows(), columns}), "cells and columns disagree");
    require(options.header || table.rows() >= 1, "no header, yet no data row");
  } catch (const Error&) {
  }
}

void fuzz_safetensors(std::span<const uint8_t> input) {
  io::SafetensorsFile file;
  try {
    file = io::load_safetensors_from_buffer(input);
  } catch (const Error&) {
    return;
  }
  // What loads must save, and what that saves must load back to the same bytes.
  const std::vector<uint8_t> saved = io::save_safetensors_to_buffer(file.tensors, file.metadata);
  io::SafetensorsFile again;
  try {
    again = io::load_safetensors_from_buffer(saved);
  } catch (const Error& e) {
    throw FuzzFinding(std::string("a re-saved file does not load: ") + e.what());
  }
  require(again.metadata == file.metadata, "the metadata changed in a round trip");
  require(io::save_safetensors_to_buffer(again.tensors, again.metadata) == saved,
          "the tensors changed in a round trip");
}

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"idx", fuzz_idx},
                                          {"cifar10", fuzz_cifar10},
                                          {"csv", fuzz_csv},
                                          {"safetensors", fuzz_safetensors}};
  return all;
}

const Target& target(const std::string& name) {
  std::ostringstream names;
  for (const Target& t : targets()) {
    if (name == t.name) return t;
    names << " " << t.name;
  }
  throw std::invalid_argument("no fuzz target \"" + name + "\"; the targets are:" + names.str());
}

}  // namespace strata::fuzz
