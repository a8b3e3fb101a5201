// The IDX reader and load_mnist. zlib's gzread reads gzipped and plain files alike, so one
// path serves both. The whole (decompressed) file is read before its header is trusted: a
// header claiming huge dimensions costs nothing until the bytes are there, and every size is
// then compared with what was actually read.
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/data/readers.h"
#include "strata/error.h"

namespace strata::data {

namespace fs = std::filesystem;

namespace {

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", value);
  return text;
}

// gzerror's text, less the "<path>: " it starts with (our messages name the file already).
std::string gz_message(gzFile_s* file, const fs::path& path, int& code) {
  std::string message = gzerror(file, &code);
  const std::string prefix = path.string() + ": ";
  if (message.starts_with(prefix)) {
    message.erase(0, prefix.size());
  }
  return message;
}

struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

// The whole content of `path`, decompressed when it is gzipped. `op` names the caller in
// errors.
std::vector<uint8_t> read_maybe_gzipped(const fs::path& path, const char* op) {
  std::error_code status_error;
  STRATA_CHECK(fs::is_regular_file(path, status_error), op, ": ", path.string(),
               fs::exists(path, status_error) ? " is not a regular file" : " does not exist");
  errno = 0;
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  STRATA_CHECK(file != nullptr, op, ": cannot open ", path.string(), ": ",
               errno != 0 ? std::strerror(errno) : "out of memory");
  // Reads of up to 1 MiB, but no larger than the file needs (a plain file passes through
  // gzread whole; a gzipped one grows by doubling): small files cost no big zeroed buffers.
  const uintmax_t file_bytes = fs::file_size(path, status_error);
  const size_t chunk = status_error ? size_t{1} << 20
                                    : std::clamp<size_t>(file_bytes + 1, 4096, size_t{1} << 20);
  // A larger input buffer than zlib's 8 KiB default: fewer reads on the 26 MB training images.
  if (chunk == size_t{1} << 20) gzbuffer(file.get(), 1 << 18);

  std::vector<uint8_t> bytes;
  size_t used = 0;
  for (;;) {
    if (bytes.size() - used < chunk) {
      bytes.resize(std::max(bytes.size() * 2, used + chunk));
    }
    const int got = gzread(file.get(), bytes.data() + used, static_cast<unsigned>(chunk));
    if (got < 0) {
      int code = 0;
      const std::string why = gz_message(file.get(), path, code);
      STRATA_CHECK(false, op, ": cannot read ", path.string(), ": ",
                   code == Z_ERRNO ? std::strerror(errno) : why.c_str(),
                   code == Z_DATA_ERROR ? " (a corrupt gzip file)" : "");
    }
    if (got == 0) {
      break;
    }
    used += static_cast<size_t>(got);
  }
  // NOTE: at a gzip stream cut short, gzread does not fail: it returns what it could
  // decompress and reports Z_BUF_ERROR only through gzerror.
  int code = 0;
  const std::string why = gz_message(file.get(), path, code);
  STRATA_CHECK(code == Z_OK, op, ": cannot read ", path.string(), ": ", why,
               code == Z_BUF_ERROR ? " (a truncated gzip file)" : "");
  bytes.resize(used);
  return bytes;
}

uint32_t big_endian_u32(const uint8_t* at) {
  return (uint32_t{at[0]} << 24) | (uint32_t{at[1]} << 16) | (uint32_t{at[2]} << 8) |
         uint32_t{at[3]};
}

struct IdxType {
  const char* name;
  size_t bytes;
  DType dtype;
};

std::optional<IdxType> idx_type(uint8_t code) {
  switch (code) {
    case 0x08: return IdxType{"unsigned byte", 1, kUInt8};
    case 0x09: return IdxType{"signed byte", 1, kInt64};
    case 0x0B: return IdxType{"int16", 2, kInt64};
    case 0x0C: return IdxType{"int32", 4, kInt64};
    case 0x0D: return IdxType{"float32", 4, kFloat32};
    case 0x0E: return IdxType{"float64", 8, kFloat64};
    default: return std::nullopt;
  }
}

// The values of an IDX file as a tensor. When `expected_magic` is given, the magic number must
// be it (`what` says in words what it stands for).
Tensor read_idx_checked(const fs::path& path, const char* op,
                        std::optional<uint32_t> expected_magic = std::nullopt,
                        const char* what = "") {
  const std::vector<uint8_t> bytes = read_maybe_gzipped(path, op);
  const std::string file = path.string();
  STRATA_CHECK(bytes.size() >= 4, op, ": ", file, " holds ", bytes.size(),
               " bytes, too few for an IDX magic number (4 bytes); ",
               bytes.empty() ? "the file is empty" : "the file is truncated");
  const uint32_t magic = big_endian_u32(bytes.data());
  if (expected_magic) {
    STRATA_CHECK(magic == *expected_magic, op, ": ", file, " has magic number ", hex32(magic),
                 ", expected ", hex32(*expected_magic), " (", what, ")");
  }
  const std::optional<IdxType> type = idx_type(bytes[2]);
  STRATA_CHECK(bytes[0] == 0 && bytes[1] == 0 && type.has_value(), op, ": ", file,
               " has magic number ", hex32(magic),
               ", not an IDX file (expected 0x0000TTRR: TT a type code 08, 09, 0B, 0C, 0D or "
               "0E, RR the number of dimensions)");
  const size_t rank = bytes[3];
  STRATA_CHECK(rank >= 1, op, ": ", file, " has magic number ", hex32(magic),
               ": an IDX file needs at least one dimension");
  const size_t header = 4 + 4 * rank;
  STRATA_CHECK(bytes.size() >= header, op, ": ", file, " holds ", bytes.size(),
               " bytes, fewer than its ", header, "-byte IDX header (", rank,
               " dimensions); the file is truncated");

  Shape shape;
  const size_t data_bytes = bytes.size() - header;
  // The product of the dimensions; `overflow` once it passes what size_t holds (a header of
  // four 4-billion dimensions must not wrap around to a small number that matches).
  size_t count = 1;
  bool overflow = false;
  for (size_t d = 0; d < rank; ++d) {
    const uint32_t size = big_endian_u32(bytes.data() + 4 + 4 * d);
    shape.push_back(static_cast<int64_t>(size));
    if (size != 0 && count > std::numeric_limits<size_t>::max() / type->bytes / size) {
      overflow = true;
    } else {
      count *= size;
    }
  }
  const size_t expected_bytes = count * type->bytes;
  STRATA_CHECK(!overflow && data_bytes == expected_bytes, op, ": ", file,
               " has header dimensions ", shape_str(shape), " of ", type->name,
               " values, which need ",
               overflow ? std::string("more than 2^64") : std::to_string(expected_bytes),
               " bytes of data, but it holds ", data_bytes,
               !overflow && data_bytes > expected_bytes ? " (trailing bytes)" : " (truncated)");

  Tensor values = Tensor::empty(shape, type->dtype);
  const uint8_t* in = bytes.data() + header;
  const size_t n = count;
  switch (bytes[2]) {
    case 0x08: std::memcpy(values.data<uint8_t>(), in, n); break;
    case 0x09: {
      int64_t* out = values.data<int64_t>();
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(in[i]);
      break;
    }
    case 0x0B: {
      int64_t* out = values.data<int64_t>();
      for (size_t i = 0; i < n; ++i) {
        out[i] = static_cast<int16_t>(static_cast<uint16_t>((in[2 * i] << 8) | in[2 * i + 1]));
      }
      break;
    }
    case 0x0C: {
      int64_t* out = values.data<int64_t>();
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(big_endian_u32(in + 4 * i));
      break;
    }
    case 0x0D: {
      float* out = values.data<float>();
      for (size_t i = 0; i < n; ++i) {
        const uint32_t word = big_endian_u32(in + 4 * i);
        std::memcpy(&out[i], &word, sizeof word);
      }
      break;
    }
    case 0x0E: {
      double* out = values.data<double>();
      for (size_t i = 0; i < n; ++i) {
        const uint64_t word =
            (uint64_t{big_endian_u32(in + 8 * i)} << 32) | big_endian_u32(in + 8 * i + 4);
        std::memcpy(&out[i], &word, sizeof word);
      }
      break;
    }
    default: STRATA_ASSERT(false, "IDX type code ", int{bytes[2]}, " passed the check");
  }
  return values;
}

constexpr const char* kMnistHelp =
    "for Fashion-MNIST install the Debian package dataset-fashion-mnist (apt-get install "
    "dataset-fashion-mnist), which puts the files in /usr/share/datasets/fashion-mnist/; for "
    "MNIST put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and "
    "t10k-labels-idx1-ubyte (each may be gzipped, with .gz added to the name) in one folder";

// DIR/<stem>.gz or DIR/<stem>, in the Fashion-MNIST spelling or the original MNIST one
// ("train-images.idx3-ubyte").
fs::path find_mnist_file(const fs::path& dir, const std::string& split, const std::string& kind) {
  const std::string idx = kind == "images" ? "idx3" : "idx1";
  for (const std::string& stem :
       {split + "-" + kind + "-" + idx + "-ubyte", split + "-" + kind + "." + idx + "-ubyte"}) {
    for (const char* suffix : {".gz", ""}) {
      const fs::path path = dir / (stem + suffix);
      std::error_code status_error;
      if (fs::is_regular_file(path, status_error)) {
        return path;
      }
    }
  }
  STRATA_CHECK(false, "load_mnist: ", dir.string(), " has no ", split, "-", kind, "-", idx,
               "-ubyte[.gz]; ", kMnistHelp);
  return {};
}

}  // namespace

Tensor read_idx(const fs::path& path) { return read_idx_checked(path, "read_idx"); }

MnistSplit load_mnist(const fs::path& dir, bool train, int64_t limit) {
  STRATA_CHECK(limit >= 0, "load_mnist: limit must be 0 (all) or positive, got ", limit);
  std::error_code status_error;
  STRATA_CHECK(fs::is_directory(dir, status_error), "load_mnist: folder ", dir.string(),
               " not found; ", kMnistHelp);
  const std::string split = train ? "train" : "t10k";
  const fs::path images_path = find_mnist_file(dir, split, "images");
  const fs::path labels_path = find_mnist_file(dir, split, "labels");
  Tensor images = read_idx_checked(images_path, "load_mnist", 0x00000803,
                                   "images: unsigned bytes, 3 dimensions");
  const Tensor raw_labels = read_idx_checked(labels_path, "load_mnist", 0x00000801,
                                             "labels: unsigned bytes, 1 dimension");
  const int64_t count = images.size(0);
  STRATA_CHECK(count == raw_labels.size(0), "load_mnist: ", images_path.string(), " holds ",
               count, " images ", shape_str(images.shape()), " but ", labels_path.string(),
               " holds ", raw_labels.size(0), " labels");

  const int64_t kept = limit > 0 ? std::min(limit, count) : count;
  if (kept < count) {
    // A copy, so the rest of the file's pixels are freed.
    images = images.narrow(0, 0, kept).clone();
  }
  Tensor labels = Tensor::empty({kept}, kInt64);
  const uint8_t* in = raw_labels.data<uint8_t>();
  int64_t* out = labels.data<int64_t>();
  for (int64_t i = 0; i < kept; ++i) {
    STRATA_CHECK(in[i] < 10, "load_mnist: ", labels_path.string(), ": label ", i, " is ",
                 int{in[i]}, ", expected a class 0..9");
    out[i] = in[i];
  }
  return {images, labels};
}

}  // namespace strata::data
