// load_cifar10: the binary version of CIFAR-10. Each file is a run of 3073-byte records (a
// label byte, then the red, green and blue 32x32 planes), which is already the [3, 32, 32]
// layout, so records are copied as they are. File sizes are checked before anything is read,
// and each read is checked for the bytes it got (a file may shrink between the two).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "strata/data/readers.h"
#include "strata/error.h"

namespace strata::data {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kPixels = 3 * 32 * 32;
constexpr int64_t kRecordBytes = 1 + kPixels;
constexpr int kClasses = 10;

std::string download_help(const fs::path& dir) {
  return "no copy of CIFAR-10 can be downloaded on this machine: get cifar-10-binary.tar.gz "
         "(\"CIFAR-10 binary version (suitable for C programs)\") from "
         "https://www.cs.toronto.edu/~kriz/cifar.html, and extract data_batch_1.bin .. "
         "data_batch_5.bin and test_batch.bin into " +
         dir.string() + " (the folder given as --data)";
}

std::vector<std::string> batch_names(bool train) {
  if (!train) {
    return {"test_batch.bin"};
  }
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) {
    names.push_back("data_batch_" + std::to_string(i) + ".bin");
  }
  return names;
}

bool is_file(const fs::path& path) {
  std::error_code status_error;
  return fs::is_regular_file(path, status_error);
}

}  // namespace

Cifar10Split load_cifar10(const fs::path& dir, bool train, int64_t limit) {
  STRATA_CHECK(limit >= 0, "load_cifar10: limit must be 0 (all) or positive, got ", limit);
  std::error_code status_error;
  STRATA_CHECK(fs::is_directory(dir, status_error), "load_cifar10: folder ", dir.string(),
               " not found; ", download_help(dir));
  const std::vector<std::string> names = batch_names(train);
  // The archive extracts into cifar-10-batches-bin/: accept the folder above it too.
  fs::path folder = dir;
  if (!is_file(dir / names[0]) && is_file(dir / "cifar-10-batches-bin" / names[0])) {
    folder = dir / "cifar-10-batches-bin";
  }

  // Sizes first: a missing or malformed file is reported before any reading.
  std::vector<int64_t> records;
  for (const std::string& name : names) {
    const fs::path path = folder / name;
    STRATA_CHECK(is_file(path), "load_cifar10: ", folder.string(), " has no ", name, "; ",
                 download_help(dir));
    const auto size = fs::file_size(path, status_error);
    STRATA_CHECK(!status_error, "load_cifar10: cannot read the size of ", path.string(), ": ",
                 status_error.message());
    STRATA_CHECK(size > 0, "load_cifar10: ", path.string(), " has 0 bytes: the file is empty");
    STRATA_CHECK(size % kRecordBytes == 0, "load_cifar10: ", path.string(), " has ", size,
                 " bytes, not a multiple of the ", kRecordBytes,
                 "-byte record (1 label byte and 3072 pixel bytes): the file is truncated or "
                 "not CIFAR-10 binary");
    records.push_back(static_cast<int64_t>(size) / kRecordBytes);
  }
  int64_t total = 0;
  for (const int64_t count : records) {
    total += count;
  }
  const int64_t kept = limit > 0 ? std::min(limit, total) : total;

  Tensor images = Tensor::empty({kept, 3, 32, 32}, kUInt8);
  Tensor labels = Tensor::empty({kept}, kInt64);
  uint8_t* pixels_out = images.data<uint8_t>();
  int64_t* labels_out = labels.data<int64_t>();
  std::vector<char> buffer;
  int64_t done = 0;
  for (size_t file = 0; file < names.size() && done < kept; ++file) {
    const fs::path path = folder / names[file];
    const int64_t wanted = std::min(records[file], kept - done);
    buffer.resize(static_cast<size_t>(wanted * kRecordBytes));
    std::ifstream in(path, std::ios::binary);
    STRATA_CHECK(in.is_open(), "load_cifar10: cannot open ", path.string());
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    STRATA_CHECK(in.gcount() == static_cast<std::streamsize>(buffer.size()),
                 "load_cifar10: read ", in.gcount(), " bytes of ", path.string(), ", expected ",
                 buffer.size(), " (did the file change while being read?)");
    for (int64_t r = 0; r < wanted; ++r) {
      const char* record = buffer.data() + r * kRecordBytes;
      const auto label = static_cast<uint8_t>(record[0]);
      STRATA_CHECK(label < kClasses, "load_cifar10: ", path.string(), ": record ", r,
                   " (byte offset ", r * kRecordBytes, ") has label ", int{label},
                   ", expected a class 0..9; not a CIFAR-10 binary file (CIFAR-100's has two "
                   "label bytes per record)");
      labels_out[done + r] = label;
      std::memcpy(pixels_out + (done + r) * kPixels, record + 1, kPixels);
    }
    done += wanted;
  }
  return {images, labels};
}

}  // namespace strata::data
