// Dataset, TensorDataset, Subset, splits, k-fold and DataLoader: batch counts, shuffle orders as
// a function of (seed, epoch), identical batches with and without worker threads, clean stops
// (break, destruction) and worker exceptions surfacing at their batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <numeric>
#include <set>
#include <thread>
#include <vector>

#include "strata/data/dataloader.h"
#include "strata/data/dataset.h"
#include "cuda_test_util.h"
#include "test_util.h"

namespace strata {
namespace {

using data::Batch;
using data::DataLoader;
using data::DataLoaderOptions;
using data::Dataset;
using data::Example;
using data::TensorDataset;

// Example i has input [i, 10 i] (float32) and target i (int64), so a batch names its examples.
std::shared_ptr<TensorDataset> numbered_dataset(int64_t n) {
  std::vector<float> inputs;
  std::vector<int64_t> targets;
  for (int64_t i = 0; i < n; ++i) {
    inputs.push_back(static_cast<float>(i));
    inputs.push_back(static_cast<float>(10 * i));
    targets.push_back(i);
  }
  return std::make_shared<TensorDataset>(test::f32(inputs, {n, 2}), test::i64(targets, {n}));
}

// The example numbers of every batch of one pass.
std::vector<std::vector<int64_t>> pass(DataLoader& loader) {
  std::vector<std::vector<int64_t>> batches;
  for (const Batch& batch : loader) batches.push_back(batch.target.to_vector<int64_t>());
  return batches;
}

std::vector<int64_t> flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> all;
  for (const auto& batch : batches) all.insert(all.end(), batch.begin(), batch.end());
  return all;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> values(static_cast<size_t>(n));
  std::iota(values.begin(), values.end(), int64_t{0});
  return values;
}

// Runs `body` on its own thread and fails (instead of hanging the suite) when it takes longer
// than `seconds`; a hung thread is then left behind, detached.
void run_bounded(const std::function<void()>& body, double seconds) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread runner([body, done] {
    try {
      body();
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  });
  if (finished.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) {
    runner.detach();
    FAIL() << "did not finish within " << seconds << " s (deadlock?)";
  }
  runner.join();
  finished.get();  // rethrows a failure of the body
}

// A dataset that counts its calls, can sleep to reorder worker completions, and can throw at
// one example; examples are numbered as in numbered_dataset.
class ProbeDataset : public Dataset {
 public:
  explicit ProbeDataset(int64_t n, int64_t throw_at = -1, bool jitter = false)
      : n_(n), throw_at_(throw_at), jitter_(jitter) {}

  int64_t size() const override { return n_; }
  Example get(int64_t index) const override {
    ++get_calls;
    if (index == throw_at_) throw Error("ProbeDataset: cannot read example " + std::to_string(index));
    return {test::f32({static_cast<float>(index), static_cast<float>(10 * index)}, {2}),
            scalar_tensor(static_cast<double>(index), kInt64)};
  }
  Batch get_batch(const std::vector<int64_t>& indices) const override {
    ++batch_calls;
    // Later batches of an unshuffled pass finish first: workers complete out of order.
    if (jitter_) std::this_thread::sleep_for(std::chrono::microseconds(200 * (indices.front() % 4)));
    return Dataset::get_batch(indices);
  }

  mutable std::atomic<int64_t> get_calls{0};
  mutable std::atomic<int64_t> batch_calls{0};

 private:
  int64_t n_;
  int64_t throw_at_;
  bool jitter_;
};

// ---- datasets ------------------------------------------------------------------------------

TEST(DataDataset, TensorDatasetGetAndGatheredBatch) {
  auto dataset = numbered_dataset(10);
  EXPECT_EQ(dataset->size(), 10);
  const Example example = dataset->get(7);
  EXPECT_EQ(example.input.to_vector<float>(), (std::vector<float>{7, 70}));
  EXPECT_EQ(example.target.item<int64_t>(), 7);

  const Batch shuffled = dataset->get_batch({3, 1, 7, 1});
  EXPECT_EQ(shuffled.input.shape(), (Shape{4, 2}));
  EXPECT_EQ(shuffled.input.to_vector<float>(), (std::vector<float>{3, 30, 1, 10, 7, 70, 1, 10}));
  EXPECT_EQ(shuffled.target.to_vector<int64_t>(), (std::vector<int64_t>{3, 1, 7, 1}));

  const Batch consecutive = dataset->get_batch({4, 5, 6});
  EXPECT_EQ(consecutive.target.to_vector<int64_t>(), (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(consecutive.input.to_vector<float>(), (std::vector<float>{4, 40, 5, 50, 6, 60}));
}

TEST(DataDataset, TensorDatasetInputsOnlyAndErrors) {
  TensorDataset inputs_only(zeros({5, 3}));
  EXPECT_FALSE(inputs_only.get_batch({0, 2}).target.defined());
  EXPECT_EQ(inputs_only.get_batch({0, 2}).input.shape(), (Shape{2, 3}));

  EXPECT_THROW(TensorDataset(zeros({5, 3}), zeros({4})), Error);
  EXPECT_THROW(TensorDataset(scalar_tensor(1.0)), Error);
  auto dataset = numbered_dataset(4);
  EXPECT_THROW(dataset->get(4), Error);
  EXPECT_THROW(dataset->get_batch({0, -1}), Error);
  try {
    dataset->get_batch({2, 9});
    FAIL() << "no error for index 9";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("index 9"), std::string::npos) << error.what();
  }
}

TEST(DataDataset, DefaultGetBatchStacksExamples) {
  ProbeDataset dataset(6);
  const Batch batch = dataset.get_batch({5, 0, 2});
  EXPECT_EQ(batch.input.shape(), (Shape{3, 2}));
  EXPECT_EQ(batch.input.to_vector<float>(), (std::vector<float>{5, 50, 0, 0, 2, 20}));
  EXPECT_EQ(batch.target.to_vector<int64_t>(), (std::vector<int64_t>{5, 0, 2}));
  EXPECT_EQ(dataset.get_calls.load(), 3);
}

TEST(DataDataset, SubsetMapsIndicesAndBatchesThroughTheDataset) {
  auto probe = std::make_shared<ProbeDataset>(10);
  data::Subset subset(probe, {9, 4, 4, 0});
  EXPECT_EQ(subset.size(), 4);
  EXPECT_EQ(subset.get(0).target.item<int64_t>(), 9);
  probe->get_calls = 0;
  EXPECT_EQ(subset.get_batch({1, 3, 0}).target.to_vector<int64_t>(),
            (std::vector<int64_t>{4, 0, 9}));
  EXPECT_EQ(probe->batch_calls.load(), 1);  // one get_batch of the parent, not a get per example
  EXPECT_THROW(subset.get(4), Error);
  EXPECT_THROW(data::Subset(probe, {10}), Error);
  EXPECT_THROW(data::Subset(nullptr, {0}), Error);
}

TEST(DataDataset, RandomPermutationDependsOnSeedAndStream) {
  const std::vector<int64_t> order = data::random_permutation(50, 7, 0);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, iota(50));
  EXPECT_EQ(order, data::random_permutation(50, 7, 0));
  EXPECT_NE(order, data::random_permutation(50, 8, 0));
  EXPECT_NE(order, data::random_permutation(50, 7, 1));
  EXPECT_TRUE(data::random_permutation(0, 1).empty());
  EXPECT_EQ(data::random_permutation(1, 1), (std::vector<int64_t>{0}));
}

TEST(DataDataset, TrainValidationSplitPartitions) {
  const data::SplitIndices split = data::train_validation_split(103, 0.2, 5);
  EXPECT_EQ(split.validation.size(), 21u);  // ceil(103 * 0.2), as scikit-learn counts
  EXPECT_EQ(split.train.size(), 82u);
  EXPECT_TRUE(std::is_sorted(split.train.begin(), split.train.end()));
  EXPECT_TRUE(std::is_sorted(split.validation.begin(), split.validation.end()));
  std::vector<int64_t> all = split.train;
  all.insert(all.end(), split.validation.begin(), split.validation.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, iota(103));  // disjoint and covering

  EXPECT_EQ(data::train_validation_split(103, 0.2, 5).validation, split.validation);
  EXPECT_NE(data::train_validation_split(103, 0.2, 6).validation, split.validation);
  // Random, not the last 20%.
  EXPECT_NE(split.validation, std::vector<int64_t>(all.end() - 21, all.end()));

  EXPECT_THROW(data::train_validation_split(10, 0.0), Error);
  EXPECT_THROW(data::train_validation_split(10, 1.0), Error);

  auto dataset = numbered_dataset(103);
  auto [train, validation] = data::train_validation_split(dataset, 0.2, 5);
  EXPECT_EQ(train->size(), 82);
  EXPECT_EQ(validation->indices(), split.validation);
  EXPECT_EQ(validation->get(0).target.item<int64_t>(), split.validation.front());
}

TEST(DataDataset, KFoldCoversEveryExampleOnceAsValidation) {
  const std::vector<data::Fold> folds = data::kfold(10, 3, 1);
  ASSERT_EQ(folds.size(), 3u);
  EXPECT_EQ(folds[0].validation.size(), 4u);  // the first n % k folds are one larger
  EXPECT_EQ(folds[1].validation.size(), 3u);
  EXPECT_EQ(folds[2].validation.size(), 3u);
  std::vector<int64_t> validated;
  for (const data::Fold& fold : folds) {
    validated.insert(validated.end(), fold.validation.begin(), fold.validation.end());
    // train is the complement of validation.
    std::vector<int64_t> both = fold.train;
    both.insert(both.end(), fold.validation.begin(), fold.validation.end());
    std::sort(both.begin(), both.end());
    EXPECT_EQ(both, iota(10));
    EXPECT_TRUE(std::is_sorted(fold.train.begin(), fold.train.end()));
  }
  std::sort(validated.begin(), validated.end());
  EXPECT_EQ(validated, iota(10));

  const std::vector<data::Fold> ordered = data::kfold(7, 2, 0, /*shuffle=*/false);
  EXPECT_EQ(ordered[0].validation, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(ordered[1].validation, (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(ordered[1].train, (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_NE(data::kfold(20, 4, 1)[0].validation, data::kfold(20, 4, 2)[0].validation);

  EXPECT_THROW(data::kfold(10, 1), Error);
  EXPECT_THROW(data::kfold(3, 4), Error);
}

// ---- DataLoader: counts and orders ---------------------------------------------------------

TEST(DataLoader, BatchCountsWithAndWithoutDropLast) {
  auto dataset = numbered_dataset(10);
  DataLoader keep(dataset, {.batch_size = 3});
  EXPECT_EQ(keep.size(), 4u);
  const auto batches = pass(keep);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches.back(), (std::vector<int64_t>{9}));

  DataLoader drop(dataset, {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(drop.size(), 3u);
  EXPECT_EQ(pass(drop).size(), 3u);

  DataLoader even(numbered_dataset(9), {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(even.size(), 3u);
  DataLoader too_small(numbered_dataset(2), {.batch_size = 3, .drop_last = true});
  EXPECT_EQ(too_small.size(), 0u);
  EXPECT_TRUE(pass(too_small).empty());
  DataLoader one(numbered_dataset(2), {.batch_size = 3});
  EXPECT_EQ(pass(one), (std::vector<std::vector<int64_t>>{{0, 1}}));
}

TEST(DataLoader, BatchesHoldInputsAndTargets) {
  DataLoader loader(numbered_dataset(5), {.batch_size = 2});
  auto it = loader.begin();
  EXPECT_EQ(it->input.shape(), (Shape{2, 2}));
  EXPECT_EQ(it->input.to_vector<float>(), (std::vector<float>{0, 0, 1, 10}));
  EXPECT_EQ(it->target.dtype(), DType::Int64);
  EXPECT_EQ(it.batch_index(), 0);
  ++it;
  EXPECT_EQ(it.batch_index(), 1);
  EXPECT_EQ((*it).target.to_vector<int64_t>(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(it->input.device().is_cpu());
}

TEST(DataLoader, WithoutShuffleTheOrderIsSequential) {
  DataLoader loader(numbered_dataset(7), {.batch_size = 2});
  EXPECT_EQ(flatten(pass(loader)), iota(7));
  EXPECT_EQ(flatten(pass(loader)), iota(7));
}

TEST(DataLoader, EveryExampleOncePerShuffledEpoch) {
  DataLoader loader(numbered_dataset(37), {.batch_size = 5, .shuffle = true, .seed = 3});
  for (int epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> seen = flatten(pass(loader));
    EXPECT_NE(seen, iota(37)) << "epoch " << epoch << " not shuffled";
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, iota(37)) << "epoch " << epoch;
  }
}

TEST(DataLoader, ShuffleIsAFunctionOfSeedAndEpoch) {
  auto dataset = numbered_dataset(40);
  DataLoader first(dataset, {.batch_size = 8, .shuffle = true, .seed = 11});
  DataLoader second(dataset, {.batch_size = 8, .shuffle = true, .seed = 11});
  const auto epoch0 = pass(first);
  const auto epoch1 = pass(first);
  EXPECT_NE(epoch0, epoch1);  // a new iteration is a new epoch
  EXPECT_EQ(first.epoch(), 2);
  EXPECT_EQ(pass(second), epoch0);  // same seed, same epoch: same batches

  // A resumed run: a fresh loader set to epoch 1 continues the same sequence.
  DataLoader resumed(dataset, {.batch_size = 8, .shuffle = true, .seed = 11});
  resumed.set_epoch(1);
  EXPECT_EQ(pass(resumed), epoch1);
  resumed.set_epoch(0);
  EXPECT_EQ(pass(resumed), epoch0);
  EXPECT_EQ(flatten(epoch1), resumed.order(1));

  DataLoader other_seed(dataset, {.batch_size = 8, .shuffle = true, .seed = 12});
  EXPECT_NE(pass(other_seed), epoch0);
  EXPECT_THROW(resumed.set_epoch(-1), Error);
}

TEST(DataLoader, RejectsBadOptions) {
  auto dataset = numbered_dataset(4);
  EXPECT_THROW(DataLoader(nullptr), Error);
  EXPECT_THROW(DataLoader(dataset, {.batch_size = 0}), Error);
  EXPECT_THROW(DataLoader(dataset, {.workers = -1}), Error);
  EXPECT_THROW(DataLoader(dataset, {.workers = 1, .prefetch = 0}), Error);
}

TEST(DataLoader, OneGetBatchPerBatch) {
  auto probe = std::make_shared<ProbeDataset>(10);
  auto subset = std::make_shared<data::Subset>(probe, iota(10));
  DataLoader loader(subset, {.batch_size = 4, .shuffle = true});
  EXPECT_EQ(pass(loader).size(), 3u);
  EXPECT_EQ(probe->batch_calls.load(), 3);
}

// ---- DataLoader: worker threads ------------------------------------------------------------

TEST(DataLoader, WorkersGiveTheSameBatchesAsTheCallingThread) {
  run_bounded([] {
    auto dataset = std::make_shared<ProbeDataset>(45, -1, /*jitter=*/true);
    DataLoader serial(dataset, {.batch_size = 4, .shuffle = true, .seed = 2});
    const auto expected0 = pass(serial), expected1 = pass(serial);
    for (const int64_t workers : {1, 2, 3}) {
      for (const int64_t prefetch : {1, 3}) {
        DataLoader threaded(dataset, {.batch_size = 4, .shuffle = true, .seed = 2,
                                      .workers = workers, .prefetch = prefetch});
        EXPECT_EQ(pass(threaded), expected0) << workers << " workers, prefetch " << prefetch;
        EXPECT_EQ(pass(threaded), expected1) << workers << " workers, prefetch " << prefetch;
      }
    }
    // The values too, not only the order.
    DataLoader threaded(dataset, {.batch_size = 4, .workers = 2});
    for (const Batch& batch : threaded) {
      const auto ids = batch.target.to_vector<int64_t>();
      std::vector<float> expected;
      for (const int64_t id : ids) {
        expected.push_back(static_cast<float>(id));
        expected.push_back(static_cast<float>(10 * id));
      }
      EXPECT_EQ(batch.input.to_vector<float>(), expected);
    }
  }, 20.0);
}

TEST(DataLoader, WorkersLoadAtMostPrefetchAhead) {
  run_bounded([] {
    auto dataset = std::make_shared<ProbeDataset>(1000);
    DataLoader loader(dataset, {.batch_size = 1, .workers = 2, .prefetch = 2});
    auto it = loader.begin();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Batch 0 is consumed; the workers may hold at most workers * prefetch = 4 more.
    EXPECT_LE(dataset->batch_calls.load(), 1 + 4);
    EXPECT_GE(dataset->batch_calls.load(), 1);
  }, 10.0);
}

TEST(DataLoader, EarlyBreakAndDestructionJoinTheWorkers) {
  run_bounded([] {
    auto dataset = std::make_shared<ProbeDataset>(2000);
    {
      DataLoader loader(dataset, {.batch_size = 2, .shuffle = true, .workers = 3});
      int64_t seen = 0;
      for (const Batch& batch : loader) {
        (void)batch;
        if (++seen == 3) break;  // the iterator dies here and joins its threads
      }
      EXPECT_EQ(seen, 3);
      // The loader can start another epoch right away.
      int64_t again = 0;
      for (const Batch& batch : loader) {
        (void)batch;
        if (++again == 2) break;
      }
      EXPECT_EQ(again, 2);
    }
    // Far fewer loads than the 1000 batches of an epoch: the threads stopped.
    EXPECT_LT(dataset->batch_calls.load(), 100);

    // The loader destroyed while an iteration is running: the iterator keeps what it needs.
    auto loader = std::make_unique<DataLoader>(dataset, DataLoaderOptions{.batch_size = 2,
                                                                          .workers = 2});
    auto it = loader->begin();
    loader.reset();
    ++it;
    EXPECT_EQ(it->target.to_vector<int64_t>(), (std::vector<int64_t>{2, 3}));
    // ... and the iterator destroyed mid-epoch with workers blocked on a full queue.
  }, 20.0);
}

TEST(DataLoader, WorkerExceptionIsRethrownAtItsBatch) {
  for (const int64_t workers : {0, 1, 3}) {
    run_bounded([workers] {
      // Example 13 is in batch 3 of an unshuffled pass with batch_size 4 (12..15).
      auto dataset = std::make_shared<ProbeDataset>(40, /*throw_at=*/13);
      DataLoader loader(dataset, {.batch_size = 4, .workers = workers, .prefetch = 2});
      std::vector<int64_t> delivered;
      try {
        for (const Batch& batch : loader) delivered.push_back(batch.target.to_vector<int64_t>()[0]);
        FAIL() << "no exception with " << workers << " workers";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("cannot read example 13"), std::string::npos)
            << error.what();
      }
      EXPECT_EQ(delivered, (std::vector<int64_t>{0, 4, 8})) << workers << " workers";
    }, 10.0);
  }
}

TEST(DataLoader, ExceptionInTheFirstBatchComesFromBegin) {
  run_bounded([] {
    auto dataset = std::make_shared<ProbeDataset>(8, /*throw_at=*/0);
    DataLoader loader(dataset, {.batch_size = 2, .workers = 2});
    EXPECT_THROW(loader.begin(), Error);
    EXPECT_THROW(pass(loader), Error);
  }, 10.0);
}

TEST(DataLoader, TransformIsDeterministicWhateverTheWorkers) {
  run_bounded([] {
    auto dataset = numbered_dataset(30);
    auto noisy = [](Batch& batch, Generator& generator) {
      batch.input = add(batch.input, rand(batch.input.shape(), kFloat32, &generator));
    };
    const auto collect = [&](int64_t workers) {
      DataLoader loader(dataset, {.batch_size = 4, .shuffle = true, .seed = 9,
                                  .workers = workers, .transform = noisy});
      std::vector<float> values;
      for (int epoch = 0; epoch < 2; ++epoch) {
        for (const Batch& batch : loader) {
          const auto v = batch.input.to_vector<float>();
          values.insert(values.end(), v.begin(), v.end());
        }
      }
      return values;
    };
    const std::vector<float> serial = collect(0);
    EXPECT_EQ(collect(2), serial);
    EXPECT_EQ(collect(3), serial);
    // The noise differs between batches and epochs (each gets its own generator), and the
    // transform changed the inputs.
    std::set<float> fractions;
    for (size_t i = 0; i < serial.size(); i += 2) fractions.insert(serial[i] - std::floor(serial[i]));
    EXPECT_GT(fractions.size(), serial.size() / 2 - 5);
  }, 20.0);
}

TEST(DataLoader, PinMemoryOnTheCpuIsIgnored) {
  DataLoader loader(numbered_dataset(6), {.batch_size = 4, .workers = 1, .pin_memory = true,
                                          .device = Device(kCPU)});
  EXPECT_EQ(flatten(pass(loader)), iota(6));
}

TEST(PinMemory, OrdinaryTensorsAreNotPinned) {
  EXPECT_FALSE(arange(4.0, kFloat32).is_pinned());
  if (cuda_is_available()) GTEST_SKIP() << "a CUDA device is present: pinning works here";
  test::expect_error([] { (void)arange(4.0, kFloat32).pin_memory(); },
                     {"pin_memory", "16 bytes", "CUDA"});
}

TEST(PinMemory, CopiesValuesIntoPinnedMemory) {
  SKIP_WITHOUT_CUDA();
  const Tensor x = arange(12.0, kFloat32).reshape({3, 4}).t();  // not contiguous
  const Tensor pinned = x.pin_memory();
  EXPECT_TRUE(pinned.is_pinned());
  EXPECT_TRUE(pinned.is_contiguous());
  EXPECT_TRUE(pinned.device().is_cpu());
  EXPECT_EQ(pinned.to_vector<float>(), x.to_vector<float>());
  EXPECT_EQ(pinned.pin_memory().raw_data(), pinned.raw_data()) << "already pinned: no copy";
  EXPECT_EQ(pinned.cuda().cpu().to_vector<float>(), x.to_vector<float>());
  test::expect_error([&] { (void)pinned.cuda().pin_memory(); }, {"pin_memory", "cuda"});
}

TEST(PinMemory, LoaderDeliversTheSameBatchesOnCuda) {
  SKIP_WITHOUT_CUDA();
  for (int64_t workers : {0, 2}) {
    DataLoader loader(numbered_dataset(10), {.batch_size = 4, .shuffle = true, .seed = 3,
                                             .workers = workers, .pin_memory = true,
                                             .device = Device(kCUDA)});
    DataLoader reference(numbered_dataset(10), {.batch_size = 4, .shuffle = true, .seed = 3});
    std::vector<Batch> on_cuda, on_cpu;
    for (const Batch& batch : loader) on_cuda.push_back(batch);
    for (const Batch& batch : reference) on_cpu.push_back(batch);
    ASSERT_EQ(on_cuda.size(), on_cpu.size());
    for (size_t i = 0; i < on_cuda.size(); ++i) {
      EXPECT_TRUE(on_cuda[i].input.device().is_cuda());
      EXPECT_EQ(on_cuda[i].input.to_vector<float>(), on_cpu[i].input.to_vector<float>());
      EXPECT_EQ(on_cuda[i].target.to_vector<int64_t>(), on_cpu[i].target.to_vector<int64_t>());
    }
  }
}

}  // namespace
}  // namespace strata

namespace strata {
namespace {

using data::DistributedSampler;

// PyTorch's DistributedSampler without shuffling, worked by hand: 10 examples on 3 ranks pad
// to 12 with examples 0 and 1 again; with drop_last they cut to 9.
TEST(DataDistributedSampler, ShardsAsPyTorchsSampler) {
  const auto share = [](int64_t rank, bool drop_last) {
    return DistributedSampler{
        .num_replicas = 3, .rank = rank, .shuffle = false, .drop_last = drop_last}
        .indices(10, 0);
  };
  EXPECT_EQ(share(0, false), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(share(1, false), (std::vector<int64_t>{1, 4, 7, 0}));
  EXPECT_EQ(share(2, false), (std::vector<int64_t>{2, 5, 8, 1}));
  EXPECT_EQ(share(1, true), (std::vector<int64_t>{1, 4, 7}));
  // A set smaller than the padding repeats itself more than once.
  EXPECT_EQ((DistributedSampler{.num_replicas = 4, .rank = 3, .shuffle = false}.indices(2, 0)),
            (std::vector<int64_t>{1}));
}

// Across the ranks each epoch visits every example once (drop_last) or once plus the padding;
// the ranks agree on one permutation per epoch, and epochs differ.
TEST(DataDistributedSampler, CoversEveryExampleOncePerEpoch) {
  for (int64_t ranks : {1, 2, 3, 4}) {
    for (bool drop_last : {false, true}) {
      std::vector<int64_t> seen_epoch0;
      for (int64_t epoch : {0, 1}) {
        std::vector<int64_t> seen;
        for (int64_t r = 0; r < ranks; ++r) {
          const DistributedSampler sampler{
              .num_replicas = ranks, .rank = r, .seed = 9, .drop_last = drop_last};
          const std::vector<int64_t> mine = sampler.indices(23, epoch);
          EXPECT_EQ(static_cast<int64_t>(mine.size()), sampler.num_samples(23));
          seen.insert(seen.end(), mine.begin(), mine.end());
        }
        std::vector<int64_t> sorted = seen;
        std::sort(sorted.begin(), sorted.end());
        const std::set<int64_t> distinct(sorted.begin(), sorted.end());
        if (drop_last) {
          EXPECT_EQ(distinct.size(), sorted.size()) << "no example twice with drop_last";
          EXPECT_EQ(static_cast<int64_t>(sorted.size()), 23 / ranks * ranks);
        } else {
          EXPECT_EQ(distinct.size(), 23u) << ranks << " ranks: every example visited";
          EXPECT_EQ(static_cast<int64_t>(sorted.size()), (23 + ranks - 1) / ranks * ranks);
        }
        if (epoch == 0) seen_epoch0 = seen;
        if (epoch == 1 && ranks > 1) {
          EXPECT_NE(seen, seen_epoch0) << "set_epoch reshuffles";
        }
      }
    }
  }
}

// Without padding (evaluation) the shares are uneven by at most one and, shuffled or not,
// every example is visited exactly once; a rank beyond the data gets nothing.
TEST(DataDistributedSampler, WithoutPaddingVisitsEveryExampleExactlyOnce) {
  const auto share = [](int64_t ranks, int64_t rank, bool shuffle, int64_t n) {
    return DistributedSampler{
        .num_replicas = ranks, .rank = rank, .shuffle = shuffle, .seed = 4, .pad = false}
        .indices(n, 1);
  };
  EXPECT_EQ(share(3, 0, false, 10), (std::vector<int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(share(3, 1, false, 10), (std::vector<int64_t>{1, 4, 7}));
  EXPECT_EQ(share(3, 2, false, 10), (std::vector<int64_t>{2, 5, 8}));
  EXPECT_TRUE(share(4, 3, false, 2).empty());
  for (int64_t ranks : {2, 3, 5}) {
    std::vector<int64_t> seen;
    for (int64_t r = 0; r < ranks; ++r) {
      const std::vector<int64_t> mine = share(ranks, r, true, 23);
      EXPECT_EQ(
          static_cast<int64_t>(mine.size()),
          (DistributedSampler{.num_replicas = ranks, .rank = r, .pad = false}.num_samples(23)));
      seen.insert(seen.end(), mine.begin(), mine.end());
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(23);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << ranks << " ranks";
  }
}

TEST(DataDistributedSampler, DataLoaderVisitsOnlyItsShare) {
  auto dataset = numbered_dataset(10);
  DataLoader loader(
      dataset, {.batch_size = 3,
                .sampler = DistributedSampler{.num_replicas = 3, .rank = 1, .shuffle = false}});
  EXPECT_EQ(loader.size(), 2u);
  EXPECT_EQ(pass(loader), (std::vector<std::vector<int64_t>>{{1, 4, 7}, {0}}));
  test::expect_error(
      [&] { DataLoader both(dataset, {.shuffle = true, .sampler = DistributedSampler{}}); },
      {"DataLoader", "sampler", "shuffle"});
  test::expect_error([] { (void)DistributedSampler{.num_replicas = 2, .rank = 2}.indices(5, 0); },
                     {"DistributedSampler", "rank 2", "2 replicas"});
}

}  // namespace
}  // namespace strata
