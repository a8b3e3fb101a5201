// Dataset, TensorDataset, Subset, and the seeded orders behind shuffles, splits and folds.
// Indices come from the host (std::vector) and are range-checked here, so an error names the
// dataset class and the index rather than a kernel's view of it.
#include "strata/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/ops.h"
#include "strata/philox.h"

namespace strata::data {

namespace {

// Streams of random_permutation reserved for the splits, far above any epoch number, so the
// split of a training set and the loader's first epoch over it draw unrelated orders.
constexpr uint64_t kSplitStream = 0x5350'4C49'5400'0000ull;  // "SPLIT"
constexpr uint64_t kFoldStream = 0x4B46'4F4C'4400'0000ull;   // "KFOLD"

void check_index(const char* where, int64_t index, int64_t size) {
  STRATA_CHECK(index >= 0 && index < size, where, ": index ", index,
               " is out of range for a dataset of ", size, " examples");
}

std::string shape_dtype(const Tensor& t) {
  return shape_str(t.shape()) + " " + dtype_name(t.dtype());
}

}  // namespace

// ---- Dataset -------------------------------------------------------------------------------

Batch Dataset::get_batch(const std::vector<int64_t>& indices) const {
  STRATA_CHECK(!indices.empty(), "Dataset::get_batch: no indices (a batch needs one example)");
  std::vector<Tensor> inputs, targets;
  inputs.reserve(indices.size());
  targets.reserve(indices.size());
  bool has_target = false;
  for (size_t position = 0; position < indices.size(); ++position) {
    const int64_t index = indices[position];
    check_index("Dataset::get_batch", index, size());
    Example example = get(index);
    STRATA_CHECK(example.input.defined(), "Dataset::get_batch: example ", index,
                 " has no input");
    if (position == 0) has_target = example.target.defined();
    STRATA_CHECK(example.target.defined() == has_target, "Dataset::get_batch: example ", index,
                 has_target ? " has no target but the batch's first example has one"
                            : " has a target but the batch's first example has none");
    inputs.push_back(std::move(example.input));
    if (has_target) targets.push_back(std::move(example.target));
  }
  Batch batch;
  NoGradGuard no_grad;
  batch.input = stack(inputs, 0);
  if (!targets.empty()) batch.target = stack(targets, 0);
  return batch;
}

// ---- TensorDataset -------------------------------------------------------------------------

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  STRATA_CHECK(inputs_.defined(), "TensorDataset: the inputs are undefined");
  STRATA_CHECK(inputs_.dim() >= 1, "TensorDataset: the inputs must have a first dimension that "
               "counts the examples, got a 0-D tensor");
  if (targets_.defined()) {
    STRATA_CHECK(targets_.dim() >= 1, "TensorDataset: the targets must have a first dimension "
                 "that counts the examples, got a 0-D tensor");
    STRATA_CHECK(targets_.size(0) == inputs_.size(0), "TensorDataset: inputs ",
                 shape_dtype(inputs_), " hold ", inputs_.size(0), " examples but targets ",
                 shape_dtype(targets_), " hold ", targets_.size(0));
  }
}

int64_t TensorDataset::size() const { return inputs_.size(0); }

Example TensorDataset::get(int64_t index) const {
  check_index("TensorDataset::get", index, size());
  Example example;
  example.input = inputs_.select(0, index);
  if (targets_.defined()) example.target = targets_.select(0, index);
  return example;
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  STRATA_CHECK(!indices.empty(),
               "TensorDataset::get_batch: no indices (a batch needs one example)");
  for (const int64_t index : indices) check_index("TensorDataset::get_batch", index, size());
  // One gather per tensor. A batch of consecutive indices (an unshuffled loader) is a slice,
  // copied so the batch owns its memory as a gathered one does.
  NoGradGuard no_grad;
  const bool consecutive =
      indices.back() - indices.front() + 1 == static_cast<int64_t>(indices.size()) &&
      std::adjacent_find(indices.begin(), indices.end(),
                         [](int64_t a, int64_t b) { return b != a + 1; }) == indices.end();
  const auto take = [&](const Tensor& source) {
    if (consecutive) {
      return source.narrow(0, indices.front(), static_cast<int64_t>(indices.size())).clone();
    }
    const Tensor index = from_vector<int64_t>(indices).to(source.device());
    return index_select(source, 0, index);
  };
  Batch batch;
  batch.input = take(inputs_);
  if (targets_.defined()) batch.target = take(targets_);
  return batch;
}

// ---- Subset --------------------------------------------------------------------------------

Subset::Subset(std::shared_ptr<Dataset> dataset, std::vector<int64_t> indices)
    : dataset_(std::move(dataset)), indices_(std::move(indices)) {
  STRATA_CHECK(dataset_ != nullptr, "Subset: the dataset is null");
  const int64_t n = dataset_->size();
  for (const int64_t index : indices_) check_index("Subset", index, n);
}

int64_t Subset::size() const { return static_cast<int64_t>(indices_.size()); }

Example Subset::get(int64_t index) const {
  check_index("Subset::get", index, size());
  return dataset_->get(indices_[static_cast<size_t>(index)]);
}

Batch Subset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (const int64_t index : indices) {
    check_index("Subset::get_batch", index, size());
    mapped.push_back(indices_[static_cast<size_t>(index)]);
  }
  return dataset_->get_batch(mapped);
}

// ---- orders, splits, folds -----------------------------------------------------------------

std::vector<int64_t> random_permutation(int64_t n, uint64_t seed, uint64_t stream) {
  STRATA_CHECK(n >= 0, "random_permutation: n must be >= 0, got ", n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  // A key for this (seed, stream): one Philox block of the stream number under the seed.
  const philox::Block key_block = philox::philox4x32_10(stream, seed);
  const uint64_t key = static_cast<uint64_t>(key_block.x) << 32 | key_block.y;
  // Fisher-Yates from the back: position i swaps with a uniform j in [0, i]; the draw for
  // position i is counter i, so the order does not depend on how it is computed.
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = philox::uniform_int(philox::philox4x32_10(static_cast<uint64_t>(i), key),
                                          0, i + 1);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

SplitIndices train_validation_split(int64_t n, double validation_fraction, uint64_t seed) {
  STRATA_CHECK(n >= 0, "train_validation_split: n must be >= 0, got ", n);
  STRATA_CHECK(validation_fraction > 0.0 && validation_fraction < 1.0,
               "train_validation_split: validation_fraction must be in (0, 1), got ",
               validation_fraction);
  const auto validation_count = std::min<int64_t>(
      n, static_cast<int64_t>(std::ceil(static_cast<double>(n) * validation_fraction)));
  const std::vector<int64_t> order = random_permutation(n, seed, kSplitStream);
  SplitIndices split;
  split.validation.assign(order.begin(), order.begin() + validation_count);
  split.train.assign(order.begin() + validation_count, order.end());
  std::sort(split.validation.begin(), split.validation.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_validation_split(
    std::shared_ptr<Dataset> dataset, double validation_fraction, uint64_t seed) {
  STRATA_CHECK(dataset != nullptr, "train_validation_split: the dataset is null");
  SplitIndices split = train_validation_split(dataset->size(), validation_fraction, seed);
  return {std::make_shared<Subset>(dataset, std::move(split.train)),
          std::make_shared<Subset>(dataset, std::move(split.validation))};
}

std::vector<Fold> kfold(int64_t n, int64_t k, uint64_t seed, bool shuffle) {
  STRATA_CHECK(k >= 2, "kfold: k must be at least 2, got ", k);
  STRATA_CHECK(k <= n, "kfold: k = ", k, " folds need at least k examples, got n = ", n);
  std::vector<int64_t> order;
  if (shuffle) {
    order = random_permutation(n, seed, kFoldStream);
  } else {
    order.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  }
  std::vector<Fold> folds(static_cast<size_t>(k));
  int64_t start = 0;
  for (int64_t fold = 0; fold < k; ++fold) {
    const int64_t count = n / k + (fold < n % k ? 1 : 0);
    Fold& out = folds[static_cast<size_t>(fold)];
    out.validation.assign(order.begin() + start, order.begin() + start + count);
    out.train.assign(order.begin(), order.begin() + start);
    out.train.insert(out.train.end(), order.begin() + start + count, order.end());
    std::sort(out.validation.begin(), out.validation.end());
    std::sort(out.train.begin(), out.train.end());
    start += count;
  }
  return folds;
}

}  // namespace strata::data
