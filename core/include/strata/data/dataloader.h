// DataLoader: batches of a Dataset, in order or shuffled, loaded on the calling thread or by
// background threads, delivered on a chosen device.
//
//   data::DataLoader loader(dataset, {.batch_size = 64, .shuffle = true, .seed = 1,
//                                     .workers = 2, .device = Device(kCUDA)});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.set_epoch(epoch);  // optional: each iteration otherwise advances the epoch itself
//     for (const data::Batch& batch : loader) train_step(batch.input, batch.target);
//   }
//
// Rules kept:
//   - an epoch's order is a function of (seed, epoch number) alone, and the batches come out in
//     that order whatever `workers` is: workers = 0 and workers = 4 give identical batches;
//   - at most workers * prefetch batches are loaded ahead of the consumer (a bounded queue);
//   - leaving a loop early (break, an exception) or destroying the iterator stops and joins the
//     threads of that iteration; no thread outlives the iterator that started it;
//   - an exception thrown while loading batch b is rethrown on the consumer's thread when the
//     iteration reaches batch b, not before (the batches before it are delivered).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <vector>

#include "strata/data/dataset.h"
#include "strata/device.h"
#include "strata/generator.h"
#include "strata/tensor.h"

namespace strata::data {

// One rank's share of a data set in data-parallel training (torch.utils.data.
// DistributedSampler): each epoch the indices 0..n-1 (shuffled with random_permutation(n,
// seed, epoch) when `shuffle`) are made a multiple of num_replicas — padded by repeating from
// the start, or with drop_last cut to the largest multiple — and rank r takes every
// num_replicas-th index from position r. Every rank gets the same count, and across the ranks
// every example appears once per epoch (plus the padding's repeats). With `pad` false (and no
// drop_last) nothing is repeated or cut: the ranks' counts then differ by at most one, and
// every example is visited exactly once (evaluation, whose loop keeps no collective in step).
struct DistributedSampler {
  int64_t num_replicas = 1;
  int64_t rank = 0;
  bool shuffle = true;
  uint64_t seed = 0;
  bool drop_last = false;
  bool pad = true;

  // The examples of rank `rank` per epoch (the same for every rank unless `pad` is off).
  int64_t num_samples(int64_t dataset_size) const;
  // Rank `rank`'s indices for `epoch`, in the order they are visited.
  std::vector<int64_t> indices(int64_t dataset_size, int64_t epoch) const;
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  uint64_t seed = 0;       // the shuffle order of epoch e is random_permutation(n, seed, e)
  bool drop_last = false;  // drop a last batch smaller than batch_size
  int64_t workers = 0;     // background loading threads; 0 loads on the calling thread
  int64_t prefetch = 2;    // batches loaded ahead per worker
  // With a CUDA `device`: each CPU batch is copied into page-locked host memory
  // (Tensor::pin_memory) and from there to the device, in the loading thread, so that the
  // copy runs by DMA and overlaps the consumer's work. Ignored for the CPU.
  bool pin_memory = false;
  Device device = Device(kCPU);  // where batches are delivered
  // Applied to every batch in the loading thread, before the device copy (augmentation: a
  // random crop, a flip). The Generator it gets is seeded from (seed, epoch, batch number, and
  // the sampler's rank), so the result is the same whichever thread loads the batch, and the
  // ranks of data-parallel training do not repeat each other's draws.
  std::function<void(Batch& batch, Generator& generator)> transform = nullptr;
  // Set in data-parallel training: the loader visits only this rank's share, in the sampler's
  // order (its shuffle and seed; the loader's own `shuffle` must then be false).
  std::optional<DistributedSampler> sampler = std::nullopt;
};

namespace detail {
class EpochRun;
}

class DataLoader {
 public:
  // One pass over the data. Move-only: it owns the epoch's loading threads, joined when it is
  // destroyed. Compare with end() (std::default_sentinel) to see whether batches remain.
  class Iterator {
   public:
    using iterator_concept = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;

    Iterator(Iterator&&) noexcept;
    Iterator& operator=(Iterator&&) noexcept;
    Iterator(const Iterator&) = delete;
    Iterator& operator=(const Iterator&) = delete;
    ~Iterator();

    const Batch& operator*() const;
    const Batch* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const;

    // The position of the current batch in the epoch (0-based).
    int64_t batch_index() const;

   private:
    friend class DataLoader;
    explicit Iterator(std::unique_ptr<detail::EpochRun> run);
    std::unique_ptr<detail::EpochRun> run_;
  };

  DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options = {});

  // Starts an epoch with the current epoch number, then advances the number by one.
  Iterator begin();
  std::default_sentinel_t end() const { return std::default_sentinel; }

  // Batches per epoch: ceil(n / batch_size), or floor with drop_last (n: the sampler's share
  // when there is one).
  size_t size() const;
  // The epoch number the next begin() uses (a resumed run sets the epoch it resumes at).
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  // The example order of epoch `epoch` (0..n-1 when not shuffling; the sampler's indices when
  // there is one).
  std::vector<int64_t> order(int64_t epoch) const;

  const std::shared_ptr<Dataset>& dataset() const { return dataset_; }
  const DataLoaderOptions& options() const { return options_; }

 private:
  std::shared_ptr<Dataset> dataset_;
  DataLoaderOptions options_;
  int64_t epoch_ = 0;
};

}  // namespace strata::data
