// Transforms: Standardize and MinMaxScale statistics (fitted on training data only, per
// feature / channel / whole tensor, in float64 chunks), one_hot, to_float, and the random crop
// and flip on small hand-made images, reproducible from a Generator.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <set>
#include <thread>
#include <vector>

#include "strata/data/dataloader.h"
#include "strata/data/transforms.h"
#include "test_util.h"

namespace strata {
namespace {

using data::Statistics;

// Population mean and std of column `column` of a row-major [rows, columns] table.
std::pair<double, double> column_statistics(const std::vector<double>& values, int64_t rows,
                                            int64_t columns, int64_t column) {
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += values[static_cast<size_t>(r * columns + column)];
  const double mean = total / static_cast<double>(rows);
  double squares = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const double d = values[static_cast<size_t>(r * columns + column)] - mean;
    squares += d * d;
  }
  return {mean, std::sqrt(squares / static_cast<double>(rows))};
}

void expect_near_all(const std::vector<double>& actual, const std::vector<double>& expected,
                     double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_NEAR(actual[i], expected[i], tolerance) << "at " << i;
  }
}

// ---- Standardize ---------------------------------------------------------------------------

TEST(DataTransforms, StandardizePerFeatureMatchesPopulationStatistics) {
  // [4, 2]: column 0 = 1, 2, 3, 4 (mean 2.5, std sqrt(1.25)); column 1 = 10, 10, 30, 30.
  const Tensor train = test::f32({1, 10, 2, 10, 3, 30, 4, 30}, {4, 2});
  data::Standardize standardize;
  standardize.fit(train);
  EXPECT_EQ(standardize.mean().shape(), (Shape{2}));
  EXPECT_EQ(standardize.mean().dtype(), DType::Float64);
  expect_near_all(standardize.mean().to_vector<double>(), {2.5, 20.0}, 1e-12);
  expect_near_all(standardize.std().to_vector<double>(), {std::sqrt(1.25), 10.0}, 1e-12);

  const Tensor scaled = standardize(train);
  EXPECT_EQ(scaled.dtype(), DType::Float32);
  const double s = std::sqrt(1.25);
  // f32 outputs of a subtraction and a division: a few ulps of values near 1.
  expect_near_all(scaled.to_vector<double>(),
                  {-1.5 / s, -1, -0.5 / s, -1, 0.5 / s, 1, 1.5 / s, 1}, 1e-6);
}

TEST(DataTransforms, StandardizeUsesTrainingStatisticsOnly) {
  const Tensor train = test::random_f64({50, 3}, -1.0, 1.0, 1);
  const Tensor validation = test::random_f64({20, 3}, 100.0, 200.0, 2);  // nothing like train
  data::Standardize standardize;
  standardize.fit(train);
  const std::vector<double> mean = standardize.mean().to_vector<double>();
  const std::vector<double> std = standardize.std().to_vector<double>();

  const std::vector<double> train_values = train.to_vector<double>();
  for (int64_t c = 0; c < 3; ++c) {
    const auto [m, d] = column_statistics(train_values, 50, 3, c);
    EXPECT_NEAR(mean[static_cast<size_t>(c)], m, 1e-12);
    EXPECT_NEAR(std[static_cast<size_t>(c)], d, 1e-12);
  }

  // Scaling the validation data uses the training numbers and changes nothing stored.
  const std::vector<double> scaled = standardize(validation).to_vector<double>();
  const std::vector<double> raw = validation.to_vector<double>();
  for (size_t i = 0; i < raw.size(); ++i) {
    EXPECT_NEAR(scaled[i], (raw[i] - mean[i % 3]) / std[i % 3], 1e-9);
  }
  EXPECT_EQ(standardize.mean().to_vector<double>(), mean);
  EXPECT_EQ(standardize.std().to_vector<double>(), std);
  // The validation data is far from standardized by the training statistics.
  EXPECT_GT(scaled[0], 50.0);
}

TEST(DataTransforms, StandardizePerChannelAndGlobal) {
  // [2, 2, 1, 2]: channel 0 holds 0, 2, 4, 6 (mean 3, std sqrt(5)), channel 1 holds 5 x 4.
  const Tensor images = test::f32({0, 2, 5, 5, 4, 6, 5, 5}, {2, 2, 1, 2});
  data::Standardize per_channel({.statistics = Statistics::PerChannel});
  per_channel.fit(images);
  EXPECT_EQ(per_channel.mean().shape(), (Shape{2}));
  expect_near_all(per_channel.mean().to_vector<double>(), {3.0, 5.0}, 1e-12);
  // The constant channel gets std 1, so it maps to 0 rather than NaN.
  expect_near_all(per_channel.std().to_vector<double>(), {std::sqrt(5.0), 1.0}, 1e-12);
  const double s = std::sqrt(5.0);
  expect_near_all(per_channel(images).to_vector<double>(),
                  {-3 / s, -1 / s, 0, 0, 1 / s, 3 / s, 0, 0}, 1e-6);
  // The same statistics apply to images of another size with the same channels.
  EXPECT_EQ(per_channel(zeros({3, 2, 4, 4})).shape(), (Shape{3, 2, 4, 4}));
  EXPECT_THROW(per_channel(zeros({3, 3, 4, 4})), Error);

  data::Standardize global({.statistics = Statistics::Global});
  global.fit(images);
  EXPECT_EQ(global.mean().dim(), 0);
  EXPECT_NEAR(global.mean().item<double>(), 4.0, 1e-12);
  EXPECT_NEAR(global.std().item<double>(), std::sqrt(28.0 / 8.0), 1e-12);
}

TEST(DataTransforms, StandardizeChunksMatchAFloat64Reference) {
  // 1.2 million elements: more than one chunk; uint8 pixels with a large mean.
  const int64_t rows = 3000, columns = 400;
  std::vector<uint8_t> pixels(static_cast<size_t>(rows * columns));
  // Varies along rows and columns (i * 7 alone would repeat every row: 400 * 7 % 50 == 0).
  for (size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<uint8_t>(200 + (i * 7 + i / 400 * 3) % 50);
  }
  const Tensor images = test::u8(pixels, {rows, columns});
  data::Standardize standardize({.statistics = Statistics::Global});
  standardize.fit(images);
  double total = 0.0;
  for (uint8_t p : pixels) total += p;
  const double mean = total / static_cast<double>(pixels.size());
  double squares = 0.0;
  for (uint8_t p : pixels) squares += (p - mean) * (p - mean);
  EXPECT_NEAR(standardize.mean().item<double>(), mean, 1e-9);
  EXPECT_NEAR(standardize.std().item<double>(), std::sqrt(squares / static_cast<double>(pixels.size())),
              1e-9);
  EXPECT_EQ(standardize(images).dtype(), DType::Float32);  // integers scale to float32

  data::Standardize per_feature;
  per_feature.fit(images);
  const std::vector<double> values = images.to_vector<double>();
  for (const int64_t c : {0, 17, 399}) {
    const auto [m, d] = column_statistics(values, rows, columns, c);
    EXPECT_NEAR(per_feature.mean().to_vector<double>()[static_cast<size_t>(c)], m, 1e-9);
    EXPECT_NEAR(per_feature.std().to_vector<double>()[static_cast<size_t>(c)], d, 1e-9);
  }
}

TEST(DataTransforms, StandardizeErrorsAndKnownStatistics) {
  data::Standardize standardize;
  EXPECT_THROW(standardize(zeros({2, 3})), Error);  // not fitted
  standardize.fit(test::random_f32({5, 3}, 0.0, 1.0, 3));
  EXPECT_THROW(standardize(zeros({2, 4})), Error);  // other features
  EXPECT_THROW(data::Standardize().fit(zeros({0, 3})), Error);
  EXPECT_THROW(data::Standardize({.statistics = Statistics::PerChannel}).fit(zeros({4})), Error);

  // MNIST's usual global statistics, set rather than fitted.
  data::Standardize known({.statistics = Statistics::Global});
  known.set_statistics(scalar_tensor(0.1307), scalar_tensor(0.3081));
  EXPECT_NEAR(known(full({1, 2}, 0.1307 + 0.3081)).to_vector<double>()[0], 1.0, 1e-6);
  EXPECT_THROW(known.set_statistics(scalar_tensor(0.0), scalar_tensor(0.0)), Error);
  EXPECT_THROW(known.set_statistics(zeros({2}), ones({2})), Error);

  // Copies carry the statistics.
  const data::Standardize copy = standardize;
  EXPECT_EQ(copy.mean().to_vector<double>(), standardize.mean().to_vector<double>());
}

// ---- MinMaxScale ---------------------------------------------------------------------------

TEST(DataTransforms, MinMaxScaleToUnitAndGivenRange) {
  // column 0: 2..6, column 1 constant 7.
  const Tensor train = test::f64({2, 7, 4, 7, 6, 7}, {3, 2});
  data::MinMaxScale unit;
  unit.fit(train);
  expect_near_all(unit.data_min().to_vector<double>(), {2, 7}, 0);
  expect_near_all(unit.data_max().to_vector<double>(), {6, 7}, 0);
  expect_near_all(unit(train).to_vector<double>(), {0, 0, 0.5, 0, 1, 0}, 1e-12);
  // Data outside the training range maps outside [0, 1] (no clipping, as scikit-learn).
  expect_near_all(unit(test::f64({10, 8}, {1, 2})).to_vector<double>(), {2, 1}, 1e-12);

  data::MinMaxScale symmetric({.min = -1.0, .max = 1.0});
  symmetric.fit(train);
  expect_near_all(symmetric(train).to_vector<double>(), {-1, -1, 0, -1, 1, -1}, 1e-12);

  data::MinMaxScale per_channel({.statistics = Statistics::PerChannel});
  per_channel.fit(test::u8({0, 255, 10, 20, 0, 51, 10, 30}, {2, 2, 2}));
  const Tensor scaled = per_channel(test::u8({255, 10}, {1, 2, 1}));
  EXPECT_EQ(scaled.dtype(), DType::Float32);
  expect_near_all(scaled.to_vector<double>(), {1.0, 0.0}, 1e-6);

  EXPECT_THROW(data::MinMaxScale({.min = 1.0, .max = 1.0}), Error);
  EXPECT_THROW(unit(zeros({2, 3})), Error);
}

// ---- one_hot, to_float ---------------------------------------------------------------------

TEST(DataTransforms, OneHotValuesAndErrors) {
  const Tensor encoded = data::one_hot(test::i64({2, 0, 1}), 3);
  EXPECT_EQ(encoded.dtype(), DType::Float32);
  EXPECT_EQ(encoded.shape(), (Shape{3, 3}));
  EXPECT_EQ(encoded.to_vector<float>(), (std::vector<float>{0, 0, 1, 1, 0, 0, 0, 1, 0}));
  EXPECT_EQ(data::one_hot(test::i64({1}), 2, DType::Float64).dtype(), DType::Float64);

  try {
    data::one_hot(test::i64({0, 3, 10, 2}), 10);
    FAIL() << "no error for label 10 of 10 classes";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("label 10 at position 2"), std::string::npos) << message;
    EXPECT_NE(message.find("[0, 10)"), std::string::npos) << message;
  }
  EXPECT_THROW(data::one_hot(test::i64({-1}), 3), Error);
  EXPECT_THROW(data::one_hot(test::f32({1}), 3), Error);  // labels must be int64
  EXPECT_THROW(data::one_hot(test::i64({0}), 0), Error);
}

TEST(DataTransforms, ToFloatScalesPixels) {
  const Tensor pixels = data::to_float(test::u8({0, 51, 255}, {3}));
  EXPECT_EQ(pixels.dtype(), DType::Float32);
  expect_near_all(pixels.to_vector<double>(), {0.0, 0.2, 1.0}, 1e-7);
  expect_near_all(data::to_float(test::u8({4}), 1.0).to_vector<double>(), {4.0}, 0);
}

// ---- RandomCrop ----------------------------------------------------------------------------

// [N, 1, 3, 3] copies of the image 1..9.
Tensor small_images(int64_t n) {
  std::vector<float> values;
  for (int64_t i = 0; i < n; ++i) {
    for (int v = 1; v <= 9; ++v) values.push_back(static_cast<float>(v));
  }
  return test::f32(values, {n, 1, 3, 3});
}

// The 3x3 window at (top, left) of the 1..9 image padded by one zero on each side.
std::vector<float> padded_window(int64_t top, int64_t left) {
  std::vector<float> window;
  for (int64_t r = 0; r < 3; ++r) {
    for (int64_t c = 0; c < 3; ++c) {
      const int64_t row = top + r - 1, column = left + c - 1;  // in the unpadded image
      const bool inside = row >= 0 && row < 3 && column >= 0 && column < 3;
      window.push_back(inside ? static_cast<float>(row * 3 + column + 1) : 0.0f);
    }
  }
  return window;
}

TEST(DataTransforms, RandomCropCutsWindowsOfTheZeroPaddedImage) {
  const int64_t n = 200;
  data::RandomCrop crop(3, 1);
  Generator generator(4);
  const Tensor out = crop(small_images(n), generator);
  ASSERT_EQ(out.shape(), (Shape{n, 1, 3, 3}));
  const std::vector<float> values = out.to_vector<float>();
  std::set<std::pair<int64_t, int64_t>> offsets;
  for (int64_t example = 0; example < n; ++example) {
    const std::vector<float> got(values.begin() + example * 9, values.begin() + example * 9 + 9);
    bool matched = false;
    for (int64_t top = 0; top <= 2 && !matched; ++top) {
      for (int64_t left = 0; left <= 2 && !matched; ++left) {
        if (got == padded_window(top, left)) {
          offsets.insert({top, left});
          matched = true;
        }
      }
    }
    EXPECT_TRUE(matched) << "example " << example << " is no window of the padded image";
  }
  // Each example draws its own offset: all 9 positions appear among 200 examples.
  EXPECT_EQ(offsets.size(), 9u);

  // Reproducible from the generator's state.
  Generator again(4);
  EXPECT_EQ(crop(small_images(n), again).to_vector<float>(), values);
  Generator other(5);
  EXPECT_NE(crop(small_images(n), other).to_vector<float>(), values);
}

TEST(DataTransforms, RandomCropWithoutPaddingAndErrors) {
  Generator generator(1);
  // A crop the size of the image without padding is the image.
  EXPECT_EQ(data::RandomCrop(3)(small_images(2), generator).to_vector<float>(),
            small_images(2).to_vector<float>());
  // 2x2 crops of 1..9 start at one of 4 places.
  const std::vector<float> cropped =
      data::RandomCrop(2)(small_images(1), generator).to_vector<float>();
  const std::vector<std::vector<float>> windows = {{1, 2, 4, 5}, {2, 3, 5, 6}, {4, 5, 7, 8},
                                                   {5, 6, 8, 9}};
  EXPECT_NE(std::find(windows.begin(), windows.end(), cropped), windows.end());
  // uint8 images stay uint8.
  EXPECT_EQ(data::RandomCrop(2, 1)(test::u8(std::vector<uint8_t>(9, 1), {1, 1, 3, 3}), generator)
                .dtype(),
            DType::UInt8);

  EXPECT_THROW(data::RandomCrop(4)(small_images(1), generator), Error);
  EXPECT_THROW(data::RandomCrop(2)(zeros({3, 3}), generator), Error);
  EXPECT_THROW(data::RandomCrop(0), Error);
  EXPECT_THROW(data::RandomCrop(2, -1), Error);

  // As a batch transform: only the input changes.
  data::Batch batch{small_images(2), test::i64({0, 1})};
  data::RandomCrop(2)(batch, generator);
  EXPECT_EQ(batch.input.shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ(batch.target.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
}

// ---- RandomHorizontalFlip ------------------------------------------------------------------

TEST(DataTransforms, RandomHorizontalFlipMirrorsChosenExamples) {
  const std::vector<float> image = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<float> mirrored = {3, 2, 1, 6, 5, 4, 9, 8, 7};
  Generator generator(8);
  EXPECT_EQ(data::RandomHorizontalFlip(1.0)(small_images(1), generator).to_vector<float>(),
            mirrored);
  EXPECT_EQ(data::RandomHorizontalFlip(0.0)(small_images(1), generator).to_vector<float>(),
            image);

  const int64_t n = 100;
  data::RandomHorizontalFlip flip;
  Generator seeded(3);
  const std::vector<float> values = flip(small_images(n), seeded).to_vector<float>();
  int64_t flipped = 0;
  for (int64_t example = 0; example < n; ++example) {
    const std::vector<float> got(values.begin() + example * 9, values.begin() + example * 9 + 9);
    ASSERT_TRUE(got == image || got == mirrored) << "example " << example;
    flipped += got == mirrored ? 1 : 0;
  }
  // Each example decides on its own: about half of 100 (binomial, 6 sigma = 30).
  EXPECT_GT(flipped, 20);
  EXPECT_LT(flipped, 80);
  Generator again(3);
  EXPECT_EQ(flip(small_images(n), again).to_vector<float>(), values);

  // [N, H, W] (no channel dim) and uint8.
  const Tensor gray = test::u8({1, 2, 3, 4}, {1, 2, 2});
  EXPECT_EQ(data::RandomHorizontalFlip(1.0)(gray, generator).to_vector<uint8_t>(),
            (std::vector<uint8_t>{2, 1, 4, 3}));
  EXPECT_THROW(data::RandomHorizontalFlip(1.5), Error);
  EXPECT_THROW(data::RandomHorizontalFlip()(test::f32({1, 2}), generator), Error);
}

// ---- in a DataLoader -----------------------------------------------------------------------

TEST(DataTransforms, AugmentationInLoaderThreadsIsReproducible) {
  // The CIFAR recipe of transforms.h's header comment, on 3x3 images.
  auto dataset = std::make_shared<data::TensorDataset>(small_images(24), arange(24.0));
  const data::RandomCrop crop(3, 1);
  const data::RandomHorizontalFlip flip;
  data::DataLoaderOptions options{.batch_size = 5, .shuffle = true, .seed = 4};
  options.transform = [=](data::Batch& batch, Generator& generator) {
    batch.input = flip(crop(batch.input, generator), generator);
  };
  const auto collect = [&](int64_t workers) {
    data::DataLoaderOptions with_workers = options;
    with_workers.workers = workers;
    data::DataLoader loader(dataset, with_workers);
    std::vector<float> values;
    for (const data::Batch& batch : loader) {
      EXPECT_EQ(batch.input.shape()[1], 1);
      const auto v = batch.input.to_vector<float>();
      values.insert(values.end(), v.begin(), v.end());
    }
    return values;
  };
  const std::vector<float> serial = collect(0);
  EXPECT_EQ(serial.size(), 24u * 9u);
  EXPECT_EQ(collect(3), serial);
}

TEST(DataTransforms, StandardizeAppliesFromSeveralThreads) {
  data::Standardize standardize;
  standardize.fit(test::random_f32({40, 6}, -2.0, 3.0, 11));
  const Tensor x32 = test::random_f32({8, 6}, -2.0, 3.0, 12);
  const Tensor x64 = test::random_f64({8, 6}, -2.0, 3.0, 13);
  const std::vector<float> expected32 = standardize(x32).to_vector<float>();
  const std::vector<double> expected64 = standardize(x64).to_vector<double>();
  // Alternating dtypes makes the threads replace each other's cached statistics.
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (standardize(x32).to_vector<float>() != expected32) ++mismatches;
        if (standardize(x64).to_vector<double>() != expected64) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace strata
