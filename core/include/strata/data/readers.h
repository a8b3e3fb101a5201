// Readers for the dataset files the samples train on: MNIST's IDX format (plain or gzipped),
// the CIFAR-10 binary batches, and CSV tables of numbers. They return tensors on the CPU, in
// the files' own types (uint8 pixels, int64 labels, float64 cells); transforms (see
// data/transforms.h) convert and scale them.
// Rule kept: a reader trusts nothing in a file. Every size is checked against the bytes
// actually there before anything is read, and a malformed file (truncated, wrong magic number,
// trailing bytes, corrupt gzip, empty, a cell that is not a number) throws strata::Error naming
// the file and what is wrong with it; no reader reads out of bounds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "strata/tensor.h"

namespace strata::data {

// ---- IDX (MNIST, Fashion-MNIST) ------------------------------------------------------------

// One IDX file, gzipped or not (gzip is recognized by its content, not the name).
// The 4-byte magic number is 0, 0, a type code, the number of dimensions; then one big-endian
// uint32 per dimension; then the values, big-endian, row-major. Types and the dtype returned:
//   0x08 unsigned byte -> uint8;  0x09 signed byte, 0x0B int16, 0x0C int32 -> int64;
//   0x0D float32 -> float32;      0x0E float64 -> float64.
// The data must hold exactly the product of the dimensions' values: fewer bytes (truncated)
// or more (trailing bytes) is an error.
Tensor read_idx(const std::filesystem::path& path);

// Images and their labels, on the CPU.
struct ImageSplit {
  Tensor images;  // uint8: MNIST [N, 28, 28]; CIFAR-10 [N, 3, 32, 32]
  Tensor labels;  // int64 [N], class indices 0..9
};
using MnistSplit = ImageSplit;
using Cifar10Split = ImageSplit;

// Where Debian's dataset-fashion-mnist package installs Fashion-MNIST.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The training split (train=true: train-images-idx3-ubyte, train-labels-idx1-ubyte) or the test
// split (t10k-...) of MNIST or Fashion-MNIST from the folder `dir`. Each file may be gzipped
// (name ending in .gz, preferred when both exist) and may use the original MNIST spelling
// "train-images.idx3-ubyte". `limit` > 0 keeps only the first `limit` examples.
// Checks: images are unsigned bytes with 3 dimensions (magic 0x00000803), labels unsigned bytes
// with 1 (0x00000801), both files hold the same number of examples, and every label is 0..9.
MnistSplit load_mnist(const std::filesystem::path& dir, bool train = true, int64_t limit = 0);

// ---- CIFAR-10 binary -------------------------------------------------------------------------

// The training split (data_batch_1.bin .. data_batch_5.bin, in that order) or the test split
// (test_batch.bin) of CIFAR-10's binary version, from `dir` or from its cifar-10-batches-bin/
// subfolder (where the archive extracts to). Each record is 1 label byte and 3072 pixel bytes:
// the red 32x32 plane, then green, then blue, rows top to bottom, hence images [N, 3, 32, 32]
// with no reordering. `limit` > 0 keeps only the first `limit` examples (and reads only the
// batches it needs). Checks: every file's size is a positive multiple of 3073 bytes and every
// label is 0..9.
Cifar10Split load_cifar10(const std::filesystem::path& dir, bool train = true, int64_t limit = 0);

// ---- CSV -----------------------------------------------------------------------------------

struct CsvOptions {
  char delimiter = ',';
  bool header = true;  // the first record names the columns (else they are named "0", "1", ...)
  char quote = '"';    // a quoted field may hold delimiters and line breaks; "" is one quote
  // Cells that are empty or spelled NA / N/A / NaN / nan / null become NaN instead of an error.
  bool missing_as_nan = false;
  // Records skipped before the header (or the first data row): a title line, or the counts
  // line that some data sets start with (pandas's skiprows=N).
  int64_t skip_rows = 0;
};

// A table of numbers: one name per column and the cells as float64 [rows, columns].
struct CsvTable {
  std::vector<std::string> columns;
  Tensor values;

  int64_t rows() const { return values.defined() ? values.size(0) : 0; }
  // The position of the column called `name`; throws strata::Error listing the names when
  // there is none.
  int64_t column_index(const std::string& name) const;
  // One column as float64 [rows].
  Tensor column(const std::string& name) const;
};

// Reads a CSV file as pandas.read_csv would a table of numbers: fields are separated by
// `delimiter`; lines end in \n or \r\n; blank lines are skipped; spaces around an unquoted
// field are ignored; a UTF-8 byte-order mark at the start is skipped. Every record must have
// as many fields as the header (or the first record); a field that is not a number throws
// strata::Error naming the line, the column and the text.
CsvTable read_csv(const std::filesystem::path& path, const CsvOptions& options = {});

// A table split into the inputs of a model and what it predicts.
struct FeaturesTarget {
  Tensor features;                         // float64 [rows, columns - 1], in table order
  Tensor target;                           // float64 [rows]
  std::vector<std::string> feature_names;  // the columns of `features`
};

// Every column but `target` as features, and `target` as the target.
FeaturesTarget split_features_target(const CsvTable& table, const std::string& target);

}  // namespace strata::data
