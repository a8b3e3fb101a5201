// Transforms of whole tensors or batches: scaling fitted on training data (Standardize,
// MinMaxScale), one-hot targets, uint8 pixels to floats, and the random crop and horizontal
// flip that augment CIFAR-style [N, C, H, W] image batches.
//
//   data::Standardize standardize({.statistics = data::Statistics::PerChannel});
//   standardize.fit(train_images);            // statistics of the training split only
//   Tensor x = standardize(test_images);      // (x - mean) / std with the training statistics
//
//   data::RandomCrop crop(32, 4);  data::RandomHorizontalFlip flip;
//   loader_options.transform = [=](data::Batch& batch, Generator& generator) {
//     batch.input = flip(crop(batch.input, generator), generator);
//   };
//
// Rules kept:
//   - a fitted scaler never looks at data other than what fit() got: apply() uses the stored
//     statistics, so validation and test data are scaled with the training split's numbers;
//   - random transforms draw from the Generator they are given (Strata's Philox), so the same
//     generator state gives the same crops and flips on every run;
//   - everything runs with tensor ops on the input's device; only the per-example crop offsets
//     (a few integers) are drawn on the host.
#pragma once

#include <cstdint>
#include <mutex>

#include "strata/data/dataset.h"
#include "strata/dtype.h"
#include "strata/generator.h"
#include "strata/tensor.h"

namespace strata::data {

// Which elements share one statistic (one mean and std, or one min and max).
enum class Statistics {
  PerFeature,  // one per position of an example: over dim 0, shape x.shape()[1:]
  PerChannel,  // one per channel of [N, C, ...]: over every dim but 1, shape [C]
  Global,      // one for the whole tensor, shape []
};

struct StandardizeOptions {
  Statistics statistics = Statistics::PerFeature;
};

// x -> (x - mean) / std with mean and std (population, as scikit-learn's StandardScaler) of
// the tensor given to fit(). A statistic whose std is zero (a constant feature) gets std 1, so
// it maps to 0 instead of NaN. Integer inputs give float32 outputs.
class Standardize {
 public:
  explicit Standardize(StandardizeOptions options = {}) : options_(options) {}
  Standardize(const Standardize& other);
  Standardize& operator=(const Standardize& other);

  // Computes the statistics of `train` ([N, ...], any dtype, any device) in float64, in
  // chunks of examples (no float64 copy of the whole tensor).
  Standardize& fit(const Tensor& train);
  // Sets known statistics instead (float64 after conversion; shapes as the options say).
  Standardize& set_statistics(const Tensor& mean, const Tensor& std);
  Tensor apply(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return apply(x); }

  bool fitted() const { return mean_.defined(); }
  // float64 on the CPU, shaped as StandardizeOptions::statistics says.
  const Tensor& mean() const { return mean_; }
  const Tensor& std() const { return std_; }
  const StandardizeOptions& options() const { return options_; }

 private:
  StandardizeOptions options_;
  Tensor mean_, std_;
  // mean and std converted for the last apply() (dtype, device, broadcastable shape): a
  // loader calls apply() once per batch, from several threads.
  mutable std::mutex cache_mutex_;
  mutable Tensor cached_mean_, cached_std_;
};

struct MinMaxScaleOptions {
  double min = 0.0;  // the range the training data is mapped to, as scikit-learn's
  double max = 1.0;  // MinMaxScaler(feature_range=(min, max))
  Statistics statistics = Statistics::PerFeature;
};

// x -> (x - data_min) / (data_max - data_min) * (max - min) + min, with data_min and data_max
// of the tensor given to fit(). A constant statistic (data_max == data_min) maps to `min`.
class MinMaxScale {
 public:
  explicit MinMaxScale(MinMaxScaleOptions options = {});

  MinMaxScale& fit(const Tensor& train);
  Tensor apply(const Tensor& x) const;
  Tensor operator()(const Tensor& x) const { return apply(x); }

  bool fitted() const { return data_min_.defined(); }
  // float64 on the CPU, shaped as MinMaxScaleOptions::statistics says.
  const Tensor& data_min() const { return data_min_; }
  const Tensor& data_max() const { return data_max_; }
  const MinMaxScaleOptions& options() const { return options_; }

 private:
  MinMaxScaleOptions options_;
  Tensor data_min_, data_max_;
};

// int64 labels [N] (any shape) -> [N, classes] of `dtype` (float32 by default: the target of
// a loss that takes probabilities). Throws strata::Error naming the first label outside
// [0, classes) and its position.
// NOTE: strata::one_hot (ops.h, int64 output) has the same arguments: call this one as
// data::one_hot, since an unqualified call from inside strata::data is ambiguous.
Tensor one_hot(const Tensor& labels, int64_t classes, DType dtype = DType::Float32);

// uint8 pixels (or any dtype) -> float32 times `scale` (1/255 maps 0..255 to [0, 1]).
Tensor to_float(const Tensor& images, double scale = 1.0 / 255.0);

// Pads each side of the images [N, C, H, W] with `padding` zeros, then cuts a size x size
// window at an offset drawn per example, uniform over every position that fits (as
// torchvision's RandomCrop(size, padding)). Output [N, C, size, size].
class RandomCrop {
 public:
  explicit RandomCrop(int64_t size, int64_t padding = 0);

  Tensor operator()(const Tensor& images, Generator& generator) const;
  // Crops batch.input; usable as DataLoaderOptions::transform.
  void operator()(Batch& batch, Generator& generator) const;

  int64_t size() const { return size_; }
  int64_t padding() const { return padding_; }

 private:
  int64_t size_;
  int64_t padding_;
};

// Mirrors each image of [N, C, H, W] (or [N, H, W]: the last dim is the width) left-right with
// probability p, drawn per example.
class RandomHorizontalFlip {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);

  Tensor operator()(const Tensor& images, Generator& generator) const;
  // Flips batch.input; usable as DataLoaderOptions::transform.
  void operator()(Batch& batch, Generator& generator) const;

  double p() const { return p_; }

 private:
  double p_;
};

}  // namespace strata::data
