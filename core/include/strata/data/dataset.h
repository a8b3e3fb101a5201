// Datasets: indexable collections of (input, target) examples, and the index lists that split
// them (train/validation, k folds). A DataLoader (data/dataloader.h) batches a Dataset.
//
//   auto all = std::make_shared<data::TensorDataset>(images, labels);   // first dim: examples
//   auto [train, validation] = data::train_validation_split(all, 0.1, /*seed=*/0);
//   for (const data::Fold& fold : data::kfold(all->size(), 5, /*seed=*/0)) { ... }
//
// Rules kept:
//   - get() and get_batch() are const and may be called from several loader threads at once:
//     a Dataset must be safe to read concurrently (TensorDataset and Subset are);
//   - every random order here is a function of its seed alone (Philox, the same counter-based
//     generator as the tensor ops), so splits and folds are the same on every machine and run.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "strata/tensor.h"

namespace strata::data {

// One example. `target` is undefined for data without targets (inputs to predict on).
struct Example {
  Tensor input, target;
};

// Examples stacked along a new first dimension: input [B, ...], target [B, ...].
struct Batch {
  Tensor input, target;
};

class Dataset {
 public:
  virtual ~Dataset() = default;

  // The number of examples.
  virtual int64_t size() const = 0;
  // Example `index`, 0 <= index < size().
  virtual Example get(int64_t index) const = 0;
  // The examples at `indices`, in that order, stacked. The default calls get() per index and
  // stacks; a subclass that can gather a batch at once (TensorDataset) overrides it.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const;
};

// Examples held as whole tensors whose first dimension counts them: example i is
// (inputs[i], targets[i]). A batch is one index_select per tensor, on the tensors' device.
class TensorDataset : public Dataset {
 public:
  // `targets` may be undefined (inputs only); when defined, its first dimension must match.
  explicit TensorDataset(Tensor inputs, Tensor targets = Tensor());

  int64_t size() const override;
  Example get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
};

// The examples of `dataset` at `indices` (in that order; repeats allowed): example i of the
// subset is example indices[i] of the dataset. Batches are gathered by the dataset's own
// get_batch, so a Subset of a TensorDataset stays one gather per batch.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<Dataset> dataset, std::vector<int64_t> indices);

  int64_t size() const override;
  Example get(int64_t index) const override;
  Batch get_batch(const std::vector<int64_t>& indices) const override;

  const std::shared_ptr<Dataset>& dataset() const { return dataset_; }
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<Dataset> dataset_;
  std::vector<int64_t> indices_;
};

// ---- orders, splits and folds --------------------------------------------------------------

// A permutation of 0..n-1 that depends only on (seed, stream): Fisher-Yates driven by Philox
// with a key derived from both. The DataLoader uses stream = the epoch number.
std::vector<int64_t> random_permutation(int64_t n, uint64_t seed, uint64_t stream = 0);

// Two disjoint index lists covering 0..n-1.
struct SplitIndices {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};

// Shuffles 0..n-1 with `seed` and puts ceil(n * validation_fraction) of them in `validation`
// (as scikit-learn's train_test_split counts), the rest in `train`; each list is sorted.
// 0 < validation_fraction < 1.
SplitIndices train_validation_split(int64_t n, double validation_fraction, uint64_t seed = 0);

// The same split as Subsets of `dataset`: {train, validation}.
std::pair<std::shared_ptr<Subset>, std::shared_ptr<Subset>> train_validation_split(
    std::shared_ptr<Dataset> dataset, double validation_fraction, uint64_t seed = 0);

// One fold of k-fold cross-validation: train on `train`, validate on `validation`.
struct Fold {
  std::vector<int64_t> train;
  std::vector<int64_t> validation;
};

// k folds of 0..n-1 (2 <= k <= n), as scikit-learn's KFold: the examples (shuffled with `seed`
// when `shuffle`, else in order) are cut into k consecutive parts, the first n % k of them one
// example larger; fold i validates on part i and trains on the others. Every example is in
// exactly one fold's validation list. Both lists of a fold are sorted.
std::vector<Fold> kfold(int64_t n, int64_t k, uint64_t seed = 0, bool shuffle = true);

}  // namespace strata::data
