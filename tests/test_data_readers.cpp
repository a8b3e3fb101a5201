// The dataset file readers (strata/data/readers.h): IDX and load_mnist, load_cifar10, read_csv.
// Every test writes its files into a fresh temporary folder, removed afterwards. Gzipped files
// are written here with "stored" (uncompressed) deflate blocks and a hand-computed CRC-32, so
// the tests need no zlib of their own. Each kind of malformed file is checked to throw
// strata::Error naming the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "strata/data/readers.h"
#include "test_util.h"

namespace strata::test {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// ---- files on disk -----------------------------------------------------------------------

class DataReaders : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("strata_readers_" + std::string(info->name()) + "_" +
            std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  fs::path write(const std::string& name, const Bytes& bytes) const {
    const fs::path path = dir_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  fs::path write_text(const std::string& name, const std::string& text) const {
    return write(name, Bytes(text.begin(), text.end()));
  }

  fs::path dir_;
};

void put_u32(Bytes& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(value >> shift));
}

// An IDX file: magic 0, 0, type, rank; big-endian dims; then `data` as given.
Bytes idx(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (const uint32_t d : dims) put_u32(out, d);
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes iota_bytes(size_t n, uint8_t start = 0) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(start + i);
  return out;
}

uint32_t crc32(const Bytes& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const uint8_t byte : data) {
    crc ^= byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// `data` as a gzip member of stored deflate blocks (at most 65535 bytes each).
Bytes gzip(const Bytes& data) {
  Bytes out = {0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF};
  size_t at = 0;
  do {
    const size_t length = std::min<size_t>(65535, data.size() - at);
    const bool last = at + length == data.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<uint8_t>(length));
    out.push_back(static_cast<uint8_t>(length >> 8));
    out.push_back(static_cast<uint8_t>(~length));
    out.push_back(static_cast<uint8_t>(~length >> 8));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
               data.begin() + static_cast<std::ptrdiff_t>(at + length));
    at += length;
  } while (at < data.size());
  const uint32_t crc = crc32(data);
  const auto size = static_cast<uint32_t>(data.size());
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(crc >> shift));
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<uint8_t>(size >> shift));
  return out;
}

template <typename T>
void expect_values(const Tensor& t, DType dtype, const Shape& shape, const std::vector<T>& want) {
  ASSERT_EQ(t.dtype(), dtype);
  ASSERT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_vector<T>(), want);
}

// ---- IDX -----------------------------------------------------------------------------------

TEST_F(DataReaders, IdxUnsignedBytesPlainAndGzipped) {
  const Bytes file = idx(0x08, {2, 3, 4}, iota_bytes(24, 100));
  const fs::path plain = write("plain-idx3-ubyte", file);
  const fs::path zipped = write("zipped-idx3-ubyte.gz", gzip(file));
  std::vector<uint8_t> want = iota_bytes(24, 100);
  expect_values<uint8_t>(data::read_idx(plain), kUInt8, {2, 3, 4}, want);
  expect_values<uint8_t>(data::read_idx(zipped), kUInt8, {2, 3, 4}, want);
  // gzip is recognized by content: a gzipped file without .gz reads the same.
  const fs::path unnamed = write("unnamed", gzip(file));
  expect_values<uint8_t>(data::read_idx(unnamed), kUInt8, {2, 3, 4}, want);
}

TEST_F(DataReaders, IdxGzipSpanningSeveralBlocks) {
  // 70000 values > one stored block of 65535 bytes.
  const Bytes values = iota_bytes(70000);
  const fs::path path = write("big.gz", gzip(idx(0x08, {70000}, values)));
  const Tensor t = data::read_idx(path);
  ASSERT_EQ(t.shape(), Shape({70000}));
  EXPECT_EQ(t.to_vector<uint8_t>(), values);
}

TEST_F(DataReaders, IdxOtherTypesAreBigEndian) {
  // signed byte -> int64
  expect_values<int64_t>(data::read_idx(write("i8", idx(0x09, {3}, {0xFF, 0x7F, 0x80}))), kInt64,
                         {3}, {-1, 127, -128});
  // int16 -> int64
  expect_values<int64_t>(data::read_idx(write("i16", idx(0x0B, {2}, {0xFF, 0xFE, 0x01, 0x02}))),
                         kInt64, {2}, {-2, 258});
  // int32 -> int64, 2-D
  expect_values<int64_t>(
      data::read_idx(write("i32", idx(0x0C, {1, 2}, {0x80, 0, 0, 0, 0, 1, 0, 0}))), kInt64,
      {1, 2}, {-2147483648LL, 65536});
  // float32: 1.5 is 0x3FC00000, -2 is 0xC0000000
  expect_values<float>(
      data::read_idx(write("f32", idx(0x0D, {2}, {0x3F, 0xC0, 0, 0, 0xC0, 0, 0, 0}))), kFloat32,
      {2}, {1.5f, -2.0f});
  // float64: 0.25 is 0x3FD0000000000000
  expect_values<double>(
      data::read_idx(write("f64", idx(0x0E, {1}, {0x3F, 0xD0, 0, 0, 0, 0, 0, 0}))), kFloat64,
      {1}, {0.25});
}

TEST_F(DataReaders, IdxMalformedFilesThrowNamingTheFile) {
  const Bytes good = idx(0x08, {2, 3}, iota_bytes(6));
  struct Case {
    std::string name;
    Bytes bytes;
    std::string why;
  };
  Bytes trailing = good;
  trailing.push_back(7);
  Bytes corrupt_gzip = gzip(good);
  corrupt_gzip[corrupt_gzip.size() - 6] ^= 0xFF;  // a byte of the CRC-32
  const Bytes whole_gzip = gzip(good);
  const Bytes truncated_gzip(whole_gzip.begin(), whole_gzip.end() - 12);  // cuts into the data
  const std::vector<Case> cases = {
      {"empty", {}, "the file is empty"},
      {"short_magic", {0, 0, 8}, "the file is truncated"},
      {"short_header", Bytes(good.begin(), good.begin() + 9), "fewer than its 12-byte IDX header"},
      {"wrong_magic", {0x1F, 0x00, 0x08, 0x01, 0, 0, 0, 0}, "not an IDX file"},
      {"unknown_type", idx(0x0A, {1}, {0}), "not an IDX file"},
      {"no_dimensions", {0, 0, 8, 0}, "at least one dimension"},
      {"truncated_data", Bytes(good.begin(), good.end() - 1), "(truncated)"},
      {"trailing_bytes", trailing, "(trailing bytes)"},
      {"float_too_short", idx(0x0D, {1}, {0x3F, 0xC0, 0}), "need 4 bytes of data, but it holds 3"},
      {"overflowing_dims", idx(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, iota_bytes(8)),
       "more than 2^64"},
      {"zero_size_data_left", idx(0x08, {0, 5}, {1}), "(trailing bytes)"},
      {"corrupt.gz", corrupt_gzip, "corrupt gzip"},
      {"truncated.gz", truncated_gzip, "truncated gzip"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path path = write(c.name, c.bytes);
    expect_error([&] { data::read_idx(path); }, {"read_idx", path.string(), c.why});
  }
  expect_error([&] { data::read_idx(dir_ / "missing"); },
               {"read_idx", "missing", "does not exist"});
  expect_error([&] { data::read_idx(dir_); }, {"read_idx", "not a regular file"});
}

// Every strict prefix of a valid file, plain or gzipped, is an error, never a crash or a
// short tensor.
TEST_F(DataReaders, IdxEveryTruncationIsAnError) {
  const Bytes plain = idx(0x0C, {2, 3}, iota_bytes(24));
  const Bytes zipped = gzip(plain);
  for (const Bytes* file : {&plain, &zipped}) {
    for (size_t length = 0; length < file->size(); ++length) {
      SCOPED_TRACE((file == &plain ? "plain, " : "gzipped, ") + std::to_string(length) + " bytes");
      const fs::path path =
          write("cut" + std::to_string(length), Bytes(file->begin(), file->begin() +
                                                       static_cast<std::ptrdiff_t>(length)));
      expect_error([&] { data::read_idx(path); }, {"read_idx", path.string()});
    }
  }
}

TEST_F(DataReaders, IdxEmptyDimensionIsValid) {
  const Tensor t = data::read_idx(write("none", idx(0x08, {0, 28, 28}, {})));
  EXPECT_EQ(t.shape(), Shape({0, 28, 28}));
}

// ---- MNIST -----------------------------------------------------------------------------------

// A small MNIST-layout split: `count` images of 28x28 whose pixels are (i + row + col) % 256
// and labels i % 10.
struct FakeMnist {
  Bytes images, labels;
};
FakeMnist fake_mnist(uint32_t count) {
  FakeMnist out;
  Bytes pixels;
  Bytes labels;
  for (uint32_t i = 0; i < count; ++i) {
    for (uint32_t r = 0; r < 28; ++r) {
      for (uint32_t c = 0; c < 28; ++c) pixels.push_back(static_cast<uint8_t>(i + r + c));
    }
    labels.push_back(static_cast<uint8_t>(i % 10));
  }
  out.images = idx(0x08, {count, 28, 28}, pixels);
  out.labels = idx(0x08, {count}, labels);
  return out;
}

TEST_F(DataReaders, LoadMnistReadsBothSplitsAndSpellings) {
  const FakeMnist train = fake_mnist(12);
  const FakeMnist test = fake_mnist(5);
  // Fashion-MNIST names, one gzipped and one plain; the test split in the original MNIST
  // spelling.
  write("train-images-idx3-ubyte.gz", gzip(train.images));
  write("train-labels-idx1-ubyte", train.labels);
  write("t10k-images.idx3-ubyte", test.images);
  write("t10k-labels.idx1-ubyte.gz", gzip(test.labels));

  const data::MnistSplit all = data::load_mnist(dir_);
  ASSERT_EQ(all.images.dtype(), kUInt8);
  ASSERT_EQ(all.images.shape(), Shape({12, 28, 28}));
  ASSERT_EQ(all.labels.dtype(), kInt64);
  ASSERT_EQ(all.labels.shape(), Shape({12}));
  EXPECT_EQ(all.labels.to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1}));
  // image 7, row 3, column 20
  EXPECT_EQ(all.images.select(0, 7).select(0, 3).select(0, 20).item<int64_t>(), 30);

  const data::MnistSplit first = data::load_mnist(dir_, true, 4);
  ASSERT_EQ(first.images.shape(), Shape({4, 28, 28}));
  EXPECT_EQ(first.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(first.images.to_vector<uint8_t>(),
            all.images.narrow(0, 0, 4).contiguous().to_vector<uint8_t>());
  EXPECT_EQ(data::load_mnist(dir_, true, 100).images.size(0), 12);  // a limit past the end

  const data::MnistSplit t10k = data::load_mnist(dir_, false);
  EXPECT_EQ(t10k.images.shape(), Shape({5, 28, 28}));
  EXPECT_EQ(t10k.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST_F(DataReaders, LoadMnistRejectsMismatchedFiles) {
  const FakeMnist train = fake_mnist(3);
  const fs::path images = write("train-images-idx3-ubyte", train.images);
  write("train-labels-idx1-ubyte", fake_mnist(4).labels);
  expect_error([&] { data::load_mnist(dir_); }, {"load_mnist", "3 images", "4 labels"});

  // Labels in the images file: magic 0x00000801 where 0x00000803 belongs.
  write("train-images-idx3-ubyte", train.labels);
  expect_error([&] { data::load_mnist(dir_); },
               {"load_mnist", images.string(), "0x00000801", "expected 0x00000803"});

  write("train-images-idx3-ubyte", train.images);
  write("train-labels-idx1-ubyte", idx(0x08, {3}, {1, 10, 2}));
  expect_error([&] { data::load_mnist(dir_); }, {"load_mnist", "label 1 is 10", "0..9"});

  write("train-labels-idx1-ubyte", gzip(train.labels));  // gzipped under a plain name: fine
  EXPECT_EQ(data::load_mnist(dir_).labels.size(0), 3);
  expect_error([&] { data::load_mnist(dir_, true, -1); }, {"load_mnist", "limit"});
}

TEST_F(DataReaders, LoadMnistMissingFilesSayWhatToInstall) {
  expect_error([&] { data::load_mnist(dir_ / "nowhere"); },
               {"load_mnist", "nowhere", "dataset-fashion-mnist",
                "/usr/share/datasets/fashion-mnist"});
  write("train-images-idx3-ubyte", fake_mnist(2).images);
  expect_error([&] { data::load_mnist(dir_); },
               {"load_mnist", "train-labels-idx1-ubyte[.gz]", "dataset-fashion-mnist",
                "t10k-labels-idx1-ubyte"});
  expect_error([&] { data::load_mnist(dir_, false); }, {"t10k-images-idx3-ubyte[.gz]"});
}

// The real files, where Debian's dataset-fashion-mnist package is installed: the test split has
// 10000 images, 1000 per class.
TEST_F(DataReaders, LoadMnistRealFashionMnistTestSplit) {
  if (!fs::exists(fs::path(data::kFashionMnistDir) / "t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed (Debian package dataset-fashion-mnist)";
  }
  const data::MnistSplit test = data::load_mnist(data::kFashionMnistDir, false);
  ASSERT_EQ(test.images.shape(), Shape({10000, 28, 28}));
  std::vector<int64_t> per_class(10, 0);
  for (const int64_t label : test.labels.to_vector<int64_t>()) ++per_class[label];
  EXPECT_EQ(per_class, std::vector<int64_t>(10, 1000));
}

// ---- CIFAR-10 -------------------------------------------------------------------------------

// `count` records; record r of file f has label (f + r) % 10 and pixel bytes
// (f * 16 + r + position) % 256 for position 0..3071 in the file's own order.
Bytes cifar_batch(int file, int count) {
  Bytes out;
  for (int r = 0; r < count; ++r) {
    out.push_back(static_cast<uint8_t>((file + r) % 10));
    for (int position = 0; position < 3072; ++position) {
      out.push_back(static_cast<uint8_t>(file * 16 + r + position));
    }
  }
  return out;
}

uint8_t cifar_pixel(int file, int r, int channel, int row, int col) {
  return static_cast<uint8_t>(file * 16 + r + channel * 1024 + row * 32 + col);
}

TEST_F(DataReaders, LoadCifar10ReadsBatchesInOrder) {
  for (int f = 1; f <= 5; ++f) write("data_batch_" + std::to_string(f) + ".bin", cifar_batch(f, 2));
  write("test_batch.bin", cifar_batch(0, 3));

  const data::Cifar10Split train = data::load_cifar10(dir_);
  ASSERT_EQ(train.images.dtype(), kUInt8);
  ASSERT_EQ(train.images.shape(), Shape({10, 3, 32, 32}));
  ASSERT_EQ(train.labels.dtype(), kInt64);
  EXPECT_EQ(train.labels.to_vector<int64_t>(),
            (std::vector<int64_t>{1, 2, 2, 3, 3, 4, 4, 5, 5, 6}));
  // Example 5 is record 1 of data_batch_3: green (1) plane, row 7, column 30.
  EXPECT_EQ(train.images.select(0, 5).select(0, 1).select(0, 7).select(0, 30).item<int64_t>(),
            cifar_pixel(3, 1, 1, 7, 30));
  EXPECT_EQ(train.images.select(0, 9).select(0, 2).select(0, 31).select(0, 31).item<int64_t>(),
            cifar_pixel(5, 1, 2, 31, 31));

  const data::Cifar10Split first = data::load_cifar10(dir_, true, 3);  // crosses into batch 2
  ASSERT_EQ(first.images.shape(), Shape({3, 3, 32, 32}));
  EXPECT_EQ(first.labels.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(first.images.to_vector<uint8_t>(),
            train.images.narrow(0, 0, 3).contiguous().to_vector<uint8_t>());

  const data::Cifar10Split test = data::load_cifar10(dir_, false);
  ASSERT_EQ(test.images.shape(), Shape({3, 3, 32, 32}));
  EXPECT_EQ(test.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(test.images.select(0, 2).select(0, 0).select(0, 0).select(0, 0).item<int64_t>(),
            cifar_pixel(0, 2, 0, 0, 0));
}

TEST_F(DataReaders, LoadCifar10FindsTheArchiveFolder) {
  write("cifar-10-batches-bin/test_batch.bin", cifar_batch(0, 1));
  EXPECT_EQ(data::load_cifar10(dir_, false).images.size(0), 1);
}

TEST_F(DataReaders, LoadCifar10MalformedAndMissingFiles) {
  const std::vector<std::string> download = {"cifar-10-binary.tar.gz",
                                             "https://www.cs.toronto.edu/~kriz/cifar.html",
                                             "test_batch.bin", "--data"};
  std::vector<std::string> parts = download;
  parts.push_back("nowhere");
  expect_error([&] { data::load_cifar10(dir_ / "nowhere", false); }, parts);

  parts = download;
  parts.push_back("has no data_batch_3.bin");
  write("data_batch_1.bin", cifar_batch(1, 1));
  write("data_batch_2.bin", cifar_batch(2, 1));
  expect_error([&] { data::load_cifar10(dir_); }, parts);

  Bytes short_record = cifar_batch(0, 2);
  short_record.pop_back();
  fs::path path = write("test_batch.bin", short_record);
  expect_error([&] { data::load_cifar10(dir_, false); },
               {"load_cifar10", path.string(), "6145 bytes", "not a multiple of the 3073"});

  write("test_batch.bin", {});
  expect_error([&] { data::load_cifar10(dir_, false); }, {path.string(), "the file is empty"});

  Bytes bad_label = cifar_batch(0, 3);
  bad_label[2 * 3073] = 10;
  write("test_batch.bin", bad_label);
  expect_error([&] { data::load_cifar10(dir_, false); },
               {path.string(), "record 2", "label 10"});
}

// ---- CSV ----------------------------------------------------------------------------------

TEST_F(DataReaders, CsvReadsNumbersQuotesBlankLinesAndCrlf) {
  const fs::path path = write_text(
      "table.csv",
      "\xEF\xBB\xBF"  // byte-order mark
      "x, \"y, in cm\" ,\"say \"\"z\"\"\"\r\n"
      "1,2,3\r\n"
      "\r\n"
      "  -4.5 , 1e3,\"+7\"\r\n"
      "   \n"
      "inf,-0.125,  8\n");  // no blank line at the end either
  const data::CsvTable table = data::read_csv(path);
  EXPECT_EQ(table.columns, (std::vector<std::string>{"x", "y, in cm", "say \"z\""}));
  ASSERT_EQ(table.values.dtype(), kFloat64);
  ASSERT_EQ(table.values.shape(), Shape({3, 3}));
  EXPECT_EQ(table.rows(), 3);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_EQ(table.values.to_vector<double>(),
            (std::vector<double>{1, 2, 3, -4.5, 1000, 7, inf, -0.125, 8}));
  EXPECT_EQ(table.column_index("say \"z\""), 2);
  EXPECT_EQ(table.column("y, in cm").to_vector<double>(), (std::vector<double>{2, 1000, -0.125}));
}

TEST_F(DataReaders, CsvOptions) {
  const fs::path semicolons = write_text("a.csv", "1;2\n3;4");
  const data::CsvTable table = data::read_csv(semicolons, {.delimiter = ';', .header = false});
  EXPECT_EQ(table.columns, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(table.values.to_vector<double>(), (std::vector<double>{1, 2, 3, 4}));

  const fs::path tabs = write_text("b.tsv", "a\tb\n1\t\n");
  const data::CsvTable missing =
      data::read_csv(tabs, {.delimiter = '\t', .missing_as_nan = true});
  ASSERT_EQ(missing.values.shape(), Shape({1, 2}));
  EXPECT_EQ(missing.values.to_vector<double>()[0], 1.0);
  EXPECT_TRUE(std::isnan(missing.values.to_vector<double>()[1]));
  expect_error([&] { data::read_csv(tabs, {.delimiter = '\t'}); },
               {"read_csv", "line 2", "column 2 of 2", "\"b\"", "an empty cell", "missing_as_nan"});

  const fs::path header_only = write_text("c.csv", "p,q,r\n");
  EXPECT_EQ(data::read_csv(header_only).values.shape(), Shape({0, 3}));

  // A quoted field may hold a line break; the line count of later errors stays right.
  const fs::path multiline = write_text("d.csv", "\"two\nlines\",b\n1,2\n3,x\n");
  expect_error([&] { data::read_csv(multiline); },
               {"line 4 (data row 2)", "\"x\" is not a number"});
}

TEST_F(DataReaders, CsvSkipsLeadingRecords) {
  // The layout of scikit-learn's bundled tables: a counts line, then the header and the rows.
  const fs::path counted = write_text("counted.csv", "2,2,neg,pos\nx,label\n0.5,1\n1.5,0\n");
  const data::CsvTable table = data::read_csv(counted, {.skip_rows = 1});
  EXPECT_EQ(table.columns, (std::vector<std::string>{"x", "label"}));
  EXPECT_EQ(table.values.to_vector<double>(), (std::vector<double>{0.5, 1, 1.5, 0}));
  const data::CsvTable headless = data::read_csv(counted, {.header = false, .skip_rows = 2});
  EXPECT_EQ(headless.rows(), 2);
  expect_error([&] { data::read_csv(counted, {.skip_rows = 5}); },
               {"read_csv", "counted.csv", "fewer than the 5 to skip"});
  expect_error([&] { data::read_csv(counted, {.skip_rows = 4}); },
               {"read_csv", "no records after the skipped ones"});
  expect_error([&] { data::read_csv(counted, {.skip_rows = -1}); }, {"skip_rows", "-1"});
}

TEST_F(DataReaders, CsvMalformedFilesThrowNamingTheFile) {
  struct Case {
    std::string name;
    std::string text;
    std::vector<std::string> why;
  };
  const std::vector<Case> cases = {
      {"empty.csv", "", {"no records", "the file is empty"}},
      {"blank.csv", "\n \r\n", {"no records", "only blank lines"}},
      {"word.csv",
       "a,b\n1,2\n3,abc\n",
       {"line 3 (data row 2), column 2 of 2 (\"b\")", "\"abc\" is not a number"}},
      {"ragged.csv",
       "a,b,c\n1,2,3\n4,5\n",
       {"line 3 (data row 2) has 2 fields", "names 3 columns"}},
      {"long.csv", "a,b\n1,2,3\n", {"line 2 (data row 1) has 3 fields"}},
      {"open_quote.csv", "a,b\n1,\"2\n", {"quoted field opened on line 2 is never closed"}},
      {"after_quote.csv", "a,b\n1,\"2\"3\n", {"text after the closing quote"}},
      {"twice.csv", "a,b,a\n1,2,3\n", {"names the column \"a\" twice"}},
      {"hex.csv", "a\n0x10\n", {"\"0x10\" is not a number"}},
      {"signs.csv", "a\n+-1\n", {"\"+-1\" is not a number"}},
      {"partial.csv", "a\n1.5kg\n", {"\"1.5kg\" is not a number"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const fs::path path = write_text(c.name, c.text);
    std::vector<std::string> parts = c.why;
    parts.push_back("read_csv");
    parts.push_back(path.string());
    expect_error([&] { data::read_csv(path); }, parts);
  }
  expect_error([&] { data::read_csv(dir_ / "none.csv"); },
               {"read_csv", "none.csv", "does not exist"});
  expect_error([&] { data::read_csv(write_text("q.csv", "1"), {.delimiter = '"'}); },
               {"read_csv", "must differ"});
}

TEST_F(DataReaders, CsvSplitFeaturesTarget) {
  const data::CsvTable table =
      data::read_csv(write_text("t.csv", "a,label,b\n1,0,2\n3,1,4\n5,0,6\n"));
  const data::FeaturesTarget split = data::split_features_target(table, "label");
  EXPECT_EQ(split.feature_names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(split.features.shape(), Shape({3, 2}));
  EXPECT_EQ(split.features.to_vector<double>(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  ASSERT_EQ(split.target.shape(), Shape({3}));
  EXPECT_EQ(split.target.to_vector<double>(), (std::vector<double>{0, 1, 0}));
  expect_error([&] { data::split_features_target(table, "class"); },
               {"no column \"class\"", "\"a\", \"label\", \"b\""});
  const data::CsvTable single = data::read_csv(write_text("s.csv", "y\n1\n"));
  expect_error([&] { data::split_features_target(single, "y"); }, {"no features"});
}

}  // namespace
}  // namespace strata::test
