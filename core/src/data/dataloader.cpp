// DataLoader: one EpochRun per iteration. With workers, the threads claim batch numbers in
// order from a shared counter (never more than workers * prefetch ahead of the consumer) and
// file each result under its number; the consumer takes the numbers in order, so the
// delivered sequence is the same as loading on one thread, whichever thread finished first.
// A failed load is filed like a batch (its exception), and rethrown when its turn comes.
#include "strata/data/dataloader.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/philox.h"

namespace strata::data {

namespace {

// The seed of the Generator a transform gets for batch `batch_number` of `epoch`: a Philox
// block of the batch number under a key derived from (seed, epoch), so it does not depend on
// which thread loads the batch.
uint64_t transform_seed(uint64_t seed, int64_t epoch, int64_t batch_number) {
  constexpr uint64_t kTransformTag = 0x5452'414E'5300'0000ull;  // "TRANS"
  const philox::Block epoch_block =
      philox::philox4x32_10(static_cast<uint64_t>(epoch) ^ kTransformTag, seed);
  const uint64_t epoch_key = static_cast<uint64_t>(epoch_block.x) << 32 | epoch_block.y;
  const philox::Block block =
      philox::philox4x32_10(static_cast<uint64_t>(batch_number), epoch_key);
  return static_cast<uint64_t>(block.x) << 32 | block.y;
}

// With `pin`, a CPU batch bound for CUDA is first copied into page-locked memory, from which
// the copy to the device runs by DMA.
Batch to_device(Batch batch, Device device, bool pin = false) {
  const auto move = [&](Tensor& t) {
    if (!t.defined()) return;
    if (pin && t.device().is_cpu() && device.is_cuda()) t = t.pin_memory();
    t = t.to(device);
  };
  move(batch.input);
  move(batch.target);
  return batch;
}

}  // namespace

namespace detail {

class EpochRun {
 public:
  EpochRun(std::shared_ptr<Dataset> dataset, const DataLoaderOptions& options,
           std::vector<int64_t> order, int64_t epoch, int64_t batches)
      : dataset_(std::move(dataset)),
        options_(options),
        order_(std::move(order)),
        epoch_(epoch),
        batches_(batches),
        capacity_(options.workers * options.prefetch),
        copy_in_loader_(options.pin_memory && options.device.is_cuda()) {
    try {
      for (int64_t worker = 0; worker < options_.workers; ++worker) {
        threads_.emplace_back([this] { worker_loop(); });
      }
    } catch (...) {
      stop();  // a thread failed to start: join the ones that did before reporting it
      throw;
    }
  }

  ~EpochRun() { stop(); }
  EpochRun(const EpochRun&) = delete;
  EpochRun& operator=(const EpochRun&) = delete;

  bool done() const { return done_; }
  const Batch& current() const { return current_; }
  int64_t batch_index() const { return next_ - 1; }

  // Makes the next batch current, or marks the run done after the last one. Rethrows the
  // exception of a batch that failed to load (the run then continues with the batch after).
  void advance() {
    current_ = Batch();
    if (next_ >= batches_) {
      done_ = true;
      return;
    }
    const int64_t number = next_++;
    Batch batch = threads_.empty() ? load(number) : take(number);
    current_ = copy_in_loader_ ? std::move(batch) : to_device(std::move(batch), options_.device);
  }

 private:
  struct Loaded {
    Batch batch;
    std::exception_ptr error;
  };

  // Batch `number` of the epoch, transformed, and on the device when the loader copies.
  Batch load(int64_t number) const {
    NoGradGuard no_grad;  // thread-local: a worker thread starts with grad mode on
    const int64_t size = static_cast<int64_t>(order_.size());
    const int64_t start = number * options_.batch_size;
    const int64_t stop = std::min(start + options_.batch_size, size);
    const std::vector<int64_t> indices(order_.begin() + start, order_.begin() + stop);
    Batch batch = dataset_->get_batch(indices);
    if (options_.transform) {
      // Each rank of data-parallel training draws its own augmentations.
      const uint64_t rank = options_.sampler ? static_cast<uint64_t>(options_.sampler->rank) : 0;
      Generator generator(
          transform_seed(options_.seed ^ (rank * 0x9E37'79B9'7F4A'7C15ull), epoch_, number));
      options_.transform(batch, generator);
    }
    return copy_in_loader_ ? to_device(std::move(batch), options_.device, /*pin=*/true) : batch;
  }

  void worker_loop() {
    for (;;) {
      int64_t number = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        space_.wait(lock, [this] {
          return stopping_ || claimed_ >= batches_ || claimed_ < consumed_ + capacity_;
        });
        if (stopping_ || claimed_ >= batches_) return;
        number = claimed_++;
      }
      Loaded loaded;
      try {
        loaded.batch = load(number);
      } catch (...) {
        loaded.error = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_) return;
        ready_.emplace(number, std::move(loaded));
      }
      filed_.notify_all();
    }
  }

  // Waits for batch `number` from the workers.
  Batch take(int64_t number) {
    Loaded loaded;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      filed_.wait(lock, [&] { return ready_.count(number) > 0; });
      auto found = ready_.find(number);
      loaded = std::move(found->second);
      ready_.erase(found);
      consumed_ = number + 1;
    }
    space_.notify_all();
    if (loaded.error) std::rethrow_exception(loaded.error);
    return std::move(loaded.batch);
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    space_.notify_all();
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    threads_.clear();
  }

  const std::shared_ptr<Dataset> dataset_;
  const DataLoaderOptions options_;
  const std::vector<int64_t> order_;
  const int64_t epoch_;
  const int64_t batches_;
  const int64_t capacity_;       // batches claimed and not yet consumed, at most
  const bool copy_in_loader_;    // the device copy happens in load()

  // Consumer-side state (the iterating thread only).
  int64_t next_ = 0;
  bool done_ = false;
  Batch current_;

  // Shared with the workers, under mutex_.
  std::mutex mutex_;
  std::condition_variable space_;  // a worker may claim another batch, or must stop
  std::condition_variable filed_;  // a batch (or its error) was filed in ready_
  int64_t claimed_ = 0;
  int64_t consumed_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Loaded> ready_;
  std::vector<std::thread> threads_;
};

}  // namespace detail

// ---- Iterator ------------------------------------------------------------------------------

DataLoader::Iterator::Iterator(std::unique_ptr<detail::EpochRun> run) : run_(std::move(run)) {
  run_->advance();
}

DataLoader::Iterator::Iterator(Iterator&&) noexcept = default;
DataLoader::Iterator& DataLoader::Iterator::operator=(Iterator&&) noexcept = default;
DataLoader::Iterator::~Iterator() = default;

const Batch& DataLoader::Iterator::operator*() const {
  STRATA_CHECK(run_ != nullptr && !run_->done(),
               "DataLoader::Iterator: dereferenced at the end of the epoch");
  return run_->current();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  STRATA_CHECK(run_ != nullptr && !run_->done(),
               "DataLoader::Iterator: incremented past the end of the epoch");
  run_->advance();
  return *this;
}

bool DataLoader::Iterator::operator==(std::default_sentinel_t) const {
  return run_ == nullptr || run_->done();
}

int64_t DataLoader::Iterator::batch_index() const {
  STRATA_CHECK(run_ != nullptr, "DataLoader::Iterator::batch_index: moved-from iterator");
  return run_->batch_index();
}

// ---- DataLoader ----------------------------------------------------------------------------

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  STRATA_CHECK(dataset_ != nullptr, "DataLoader: the dataset is null");
  STRATA_CHECK(options_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ",
               options_.batch_size);
  STRATA_CHECK(options_.workers >= 0, "DataLoader: workers must be >= 0, got ",
               options_.workers);
  STRATA_CHECK(options_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ",
               options_.prefetch);
  if (options_.sampler) {
    STRATA_CHECK(!options_.shuffle, "DataLoader: the sampler shuffles (DistributedSampler::"
                 "shuffle); the loader's own shuffle must be false with a sampler");
    (void)options_.sampler->num_samples(dataset_->size());  // validates it
  }
}

int64_t DistributedSampler::num_samples(int64_t dataset_size) const {
  STRATA_CHECK(num_replicas >= 1, "DistributedSampler: num_replicas must be >= 1, got ",
               num_replicas);
  STRATA_CHECK(rank >= 0 && rank < num_replicas, "DistributedSampler: rank ", rank,
               " is out of range for ", num_replicas, " replicas");
  STRATA_CHECK(dataset_size >= 0, "DistributedSampler: negative dataset size ", dataset_size);
  if (drop_last) return dataset_size / num_replicas;
  if (pad) return (dataset_size + num_replicas - 1) / num_replicas;
  return (dataset_size - rank + num_replicas - 1) / num_replicas;  // positions rank, rank + R, ...
}

std::vector<int64_t> DistributedSampler::indices(int64_t dataset_size, int64_t epoch) const {
  const int64_t per_rank = num_samples(dataset_size);
  STRATA_CHECK(epoch >= 0, "DistributedSampler::indices: epoch must be >= 0, got ", epoch);
  std::vector<int64_t> all;
  if (shuffle) {
    all = random_permutation(dataset_size, seed, static_cast<uint64_t>(epoch));
  } else {
    for (int64_t i = 0; i < dataset_size; ++i) all.push_back(i);
  }
  const int64_t total = drop_last || pad ? per_rank * num_replicas : dataset_size;
  // Pad by repeating from the start (several times over when the set is smaller than the
  // padding), or cut.
  for (size_t i = 0; static_cast<int64_t>(all.size()) < total; ++i) all.push_back(all[i]);
  all.resize(static_cast<size_t>(total));
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t i = rank; i < total; i += num_replicas) mine.push_back(all[static_cast<size_t>(i)]);
  return mine;
}

size_t DataLoader::size() const {
  const int64_t n = options_.sampler ? options_.sampler->num_samples(dataset_->size())
                                     : dataset_->size();
  const int64_t batches = options_.drop_last ? n / options_.batch_size
                                             : (n + options_.batch_size - 1) / options_.batch_size;
  return static_cast<size_t>(batches);
}

void DataLoader::set_epoch(int64_t epoch) {
  STRATA_CHECK(epoch >= 0, "DataLoader::set_epoch: epoch must be >= 0, got ", epoch);
  epoch_ = epoch;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  STRATA_CHECK(epoch >= 0, "DataLoader::order: epoch must be >= 0, got ", epoch);
  const int64_t n = dataset_->size();
  if (options_.sampler) return options_.sampler->indices(n, epoch);
  if (options_.shuffle) return random_permutation(n, options_.seed, static_cast<uint64_t>(epoch));
  std::vector<int64_t> sequential(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sequential[static_cast<size_t>(i)] = i;
  return sequential;
}

DataLoader::Iterator DataLoader::begin() {
  const int64_t epoch = epoch_++;
  auto run = std::make_unique<detail::EpochRun>(dataset_, options_, order(epoch), epoch,
                                                static_cast<int64_t>(size()));
  return Iterator(std::move(run));
}

}  // namespace strata::data
