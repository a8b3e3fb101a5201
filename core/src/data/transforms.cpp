// Standardize, MinMaxScale, one_hot, to_float, RandomCrop, RandomHorizontalFlip.
// Statistics are reduced in float64 over chunks of examples (a float32 sum of 47 million MNIST
// pixels would lose digits, and a float64 copy of the whole set would cost 376 MB), then kept
// on the CPU; apply() converts them once per (dtype, device) it sees.
#include "strata/data/transforms.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/ops.h"

namespace strata::data {

namespace {

// float64 elements per chunk of examples reduced at once (8 MB).
constexpr int64_t kChunkElements = int64_t{1} << 20;

std::string describe(const Tensor& t) {
  return shape_str(t.shape()) + " " + dtype_name(t.dtype()) + " " + t.device().str();
}

const char* statistics_name(Statistics statistics) {
  switch (statistics) {
    case Statistics::PerFeature: return "PerFeature";
    case Statistics::PerChannel: return "PerChannel";
    case Statistics::Global: return "Global";
  }
  return "?";
}

// Throws unless `x` has the rank `statistics` needs (and at least one example).
void check_rank(const char* where, const Tensor& x, Statistics statistics) {
  STRATA_CHECK(x.defined(), where, ": the tensor is undefined");
  const int64_t needed = statistics == Statistics::PerChannel ? 2 : 1;
  STRATA_CHECK(x.dim() >= needed, where, ": statistics ", statistics_name(statistics), " need ",
               needed == 2 ? "[N, C, ...]" : "[N, ...]", ", got ", describe(x));
}

// The dims reduced for one statistic.
std::vector<int64_t> reduced_dims(int64_t rank, Statistics statistics) {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (statistics == Statistics::PerFeature && d != 0) continue;
    if (statistics == Statistics::PerChannel && d == 1) continue;
    dims.push_back(d);
  }
  return dims;
}

// The shape of the statistics of `x`.
Shape statistics_shape(const Tensor& x, Statistics statistics) {
  switch (statistics) {
    case Statistics::PerFeature: return Shape(x.shape().begin() + 1, x.shape().end());
    case Statistics::PerChannel: return Shape{x.size(1)};
    case Statistics::Global: return Shape{};
  }
  return Shape{};
}

// A shape that broadcasts statistics against an input of rank `rank`.
Shape broadcast_statistics_shape(const Tensor& statistic, int64_t rank, Statistics statistics) {
  if (statistics != Statistics::PerChannel) return statistic.shape();
  Shape shape(static_cast<size_t>(rank - 1), 1);
  shape[0] = statistic.size(0);
  return shape;
}

// Throws unless `x` matches statistics fitted with shape `fitted`.
void check_matches(const char* where, const Tensor& x, const Tensor& fitted,
                   Statistics statistics) {
  check_rank(where, x, statistics);
  switch (statistics) {
    case Statistics::PerFeature:
      STRATA_CHECK(statistics_shape(x, statistics) == fitted.shape(), where,
                   ": fitted on examples of shape ", shape_str(fitted.shape()), ", got ",
                   describe(x));
      break;
    case Statistics::PerChannel:
      STRATA_CHECK(x.size(1) == fitted.size(0), where, ": fitted on ", fitted.size(0),
                   " channels, got ", describe(x), " with ", x.size(1));
      break;
    case Statistics::Global: break;
  }
}

// Calls `visit` with consecutive chunks of `x`'s examples converted to float64.
void for_each_chunk(const Tensor& x, const std::function<void(const Tensor&)>& visit) {
  const int64_t examples = x.size(0);
  const int64_t per_example = std::max<int64_t>(1, x.numel() / std::max<int64_t>(1, examples));
  const int64_t rows = std::max<int64_t>(1, kChunkElements / per_example);
  for (int64_t start = 0; start < examples; start += rows) {
    visit(x.narrow(0, start, std::min(rows, examples - start)).to(DType::Float64));
  }
}

// The float dtype an input is scaled in: its own, or float32 for integers and bools.
DType output_dtype(const Tensor& x) {
  return is_floating(x.dtype()) ? x.dtype() : DType::Float32;
}

}  // namespace

// ---- Standardize ---------------------------------------------------------------------------

Standardize::Standardize(const Standardize& other)
    : options_(other.options_), mean_(other.mean_), std_(other.std_) {}

Standardize& Standardize::operator=(const Standardize& other) {
  if (this == &other) return *this;
  options_ = other.options_;
  mean_ = other.mean_;
  std_ = other.std_;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  cached_mean_ = Tensor();
  cached_std_ = Tensor();
  return *this;
}

Standardize& Standardize::fit(const Tensor& train) {
  check_rank("Standardize::fit", train, options_.statistics);
  STRATA_CHECK(train.size(0) > 0, "Standardize::fit: no examples in ", describe(train));
  NoGradGuard no_grad;
  const std::vector<int64_t> dims = reduced_dims(train.dim(), options_.statistics);
  const Shape shape = statistics_shape(train, options_.statistics);
  const double count = static_cast<double>(train.numel() / std::max<int64_t>(1, numel_of(shape)));

  // Two passes (the mean, then the squared deviations from it): the one-pass E[x^2] - E[x]^2
  // cancels catastrophically when the mean is large against the spread (raw pixels).
  Tensor total;
  for_each_chunk(train, [&](const Tensor& chunk) {
    const Tensor part = sum(chunk, dims);
    total = total.defined() ? add(total, part) : part;
  });
  const Tensor mean = div(total, count);
  const Tensor mean_broadcast =
      mean.reshape(broadcast_statistics_shape(mean, train.dim(), options_.statistics));
  Tensor squares;
  for_each_chunk(train, [&](const Tensor& chunk) {
    const Tensor deviation = sub(chunk, mean_broadcast);
    const Tensor part = sum(mul(deviation, deviation), dims);
    squares = squares.defined() ? add(squares, part) : part;
  });
  const Tensor std = sqrt(div(squares, count));

  std::vector<double> mean_values = mean.to_vector<double>();
  std::vector<double> std_values = std.to_vector<double>();
  for (size_t i = 0; i < std_values.size(); ++i) {
    // A constant statistic: its deviations are rounding noise, so std 1 (it maps to 0).
    if (std_values[i] < 10.0 * DBL_EPSILON * std::max(1.0, std::abs(mean_values[i]))) {
      std_values[i] = 1.0;
    }
  }
  // NOTE: from_vector's empty shape means 1-D, so the Global statistics are reshaped to 0-D.
  return set_statistics(from_vector<double>(mean_values).reshape(shape),
                        from_vector<double>(std_values).reshape(shape));
}

Standardize& Standardize::set_statistics(const Tensor& mean, const Tensor& std) {
  STRATA_CHECK(mean.defined() && std.defined(),
               "Standardize::set_statistics: mean and std must be defined");
  STRATA_CHECK(mean.shape() == std.shape(), "Standardize::set_statistics: mean ",
               describe(mean), " and std ", describe(std), " differ in shape");
  const int64_t expected_rank = options_.statistics == Statistics::PerChannel ? 1
                                : options_.statistics == Statistics::Global   ? 0
                                                                              : -1;
  STRATA_CHECK(expected_rank < 0 || mean.dim() == expected_rank,
               "Standardize::set_statistics: statistics ", statistics_name(options_.statistics),
               " are ", expected_rank == 1 ? "[C]" : "a 0-D tensor", ", got ", describe(mean));
  NoGradGuard no_grad;
  Tensor mean64 = mean.detach().to(DType::Float64).cpu().contiguous();
  Tensor std64 = std.detach().to(DType::Float64).cpu().contiguous();
  for (const double value : std64.to_vector<double>()) {
    STRATA_CHECK(value > 0.0 && std::isfinite(value),
                 "Standardize::set_statistics: every std must be positive and finite, got ",
                 value);
  }
  std::lock_guard<std::mutex> lock(cache_mutex_);
  mean_ = std::move(mean64);
  std_ = std::move(std64);
  cached_mean_ = Tensor();
  cached_std_ = Tensor();
  return *this;
}

Tensor Standardize::apply(const Tensor& x) const {
  STRATA_CHECK(fitted(), "Standardize::apply: not fitted (call fit() or set_statistics())");
  check_matches("Standardize::apply", x, mean_, options_.statistics);
  const DType dtype = output_dtype(x);
  Tensor mean, std;
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const Shape shape = broadcast_statistics_shape(mean_, x.dim(), options_.statistics);
    if (!cached_mean_.defined() || cached_mean_.dtype() != dtype ||
        cached_mean_.device() != x.device() || cached_mean_.shape() != shape) {
      cached_mean_ = mean_.reshape(shape).to(dtype).to(x.device());
      cached_std_ = std_.reshape(shape).to(dtype).to(x.device());
    }
    mean = cached_mean_;
    std = cached_std_;
  }
  return div(sub(x.to(dtype), mean), std);
}

// ---- MinMaxScale ---------------------------------------------------------------------------

MinMaxScale::MinMaxScale(MinMaxScaleOptions options) : options_(options) {
  STRATA_CHECK(std::isfinite(options_.min) && std::isfinite(options_.max) &&
                   options_.min < options_.max,
               "MinMaxScale: the range needs finite min < max, got [", options_.min, ", ",
               options_.max, "]");
}

MinMaxScale& MinMaxScale::fit(const Tensor& train) {
  check_rank("MinMaxScale::fit", train, options_.statistics);
  STRATA_CHECK(train.size(0) > 0, "MinMaxScale::fit: no examples in ", describe(train));
  NoGradGuard no_grad;
  const std::vector<int64_t> dims = reduced_dims(train.dim(), options_.statistics);
  Tensor low, high;
  for_each_chunk(train, [&](const Tensor& chunk) {
    const Tensor chunk_low = min(chunk, dims), chunk_high = max(chunk, dims);
    low = low.defined() ? minimum(low, chunk_low) : chunk_low;
    high = high.defined() ? maximum(high, chunk_high) : chunk_high;
  });
  data_min_ = low.cpu().contiguous();
  data_max_ = high.cpu().contiguous();
  return *this;
}

Tensor MinMaxScale::apply(const Tensor& x) const {
  STRATA_CHECK(fitted(), "MinMaxScale::apply: not fitted (call fit())");
  check_matches("MinMaxScale::apply", x, data_min_, options_.statistics);
  NoGradGuard no_grad;
  // scale = (max - min) / (data_max - data_min), with a zero data range taken as 1, so that
  // x -> (x - data_min) * scale + min; computed in float64 on the CPU, then converted.
  const std::vector<double> low = data_min_.to_vector<double>();
  const std::vector<double> high = data_max_.to_vector<double>();
  std::vector<double> scale(low.size());
  for (size_t i = 0; i < low.size(); ++i) {
    const double range = high[i] - low[i];
    scale[i] = (options_.max - options_.min) / (range > 0.0 ? range : 1.0);
  }
  const DType dtype = output_dtype(x);
  const Shape shape = broadcast_statistics_shape(data_min_, x.dim(), options_.statistics);
  const Tensor low_tensor = data_min_.reshape(shape).to(dtype).to(x.device());
  const Tensor scale_tensor =
      from_vector<double>(scale).reshape(shape).to(dtype).to(x.device());
  return add(mul(sub(x.to(dtype), low_tensor), scale_tensor), options_.min);
}

// ---- one_hot, to_float ---------------------------------------------------------------------

Tensor one_hot(const Tensor& labels, int64_t classes, DType dtype) {
  STRATA_CHECK(labels.defined(), "data::one_hot: the labels are undefined");
  STRATA_CHECK(labels.dtype() == DType::Int64, "data::one_hot: labels must be int64, got ",
               describe(labels));
  STRATA_CHECK(classes >= 1, "data::one_hot: classes must be >= 1, got ", classes);
  NoGradGuard no_grad;
  if (labels.numel() > 0) {
    const int64_t low = min(labels).item<int64_t>(), high = max(labels).item<int64_t>();
    if (low < 0 || high >= classes) {
      const std::vector<int64_t> values = labels.to_vector<int64_t>();
      const auto bad = std::find_if(values.begin(), values.end(),
                                    [&](int64_t v) { return v < 0 || v >= classes; });
      STRATA_CHECK(false, "data::one_hot: label ", *bad, " at position ",
                   bad - values.begin(), " is outside [0, ", classes, ") in ",
                   describe(labels));
    }
  }
  return strata::one_hot(labels, classes).to(dtype);
}

Tensor to_float(const Tensor& images, double scale) {
  STRATA_CHECK(images.defined(), "to_float: the images are undefined");
  const Tensor values = images.to(DType::Float32);
  return scale == 1.0 ? values : mul(values, scale);
}

// ---- RandomCrop ----------------------------------------------------------------------------

RandomCrop::RandomCrop(int64_t size, int64_t padding) : size_(size), padding_(padding) {
  STRATA_CHECK(size >= 1, "RandomCrop: size must be >= 1, got ", size);
  STRATA_CHECK(padding >= 0, "RandomCrop: padding must be >= 0, got ", padding);
}

Tensor RandomCrop::operator()(const Tensor& images, Generator& generator) const {
  STRATA_CHECK(images.defined(), "RandomCrop: the images are undefined");
  STRATA_CHECK(images.dim() == 4, "RandomCrop: images must be [N, C, H, W], got ",
               describe(images));
  const int64_t n = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2) + 2 * padding_, width = images.size(3) + 2 * padding_;
  STRATA_CHECK(size_ <= height && size_ <= width, "RandomCrop: a ", size_, "x", size_,
               " crop does not fit images ", describe(images), " padded by ", padding_);
  NoGradGuard no_grad;
  // images: [N, C, H, W] -> padded: [N, C, H + 2p, W + 2p], zeros around the images.
  Tensor padded = images;
  if (padding_ > 0) {
    padded = zeros({n, channels, height, width}, images.options());
    padded.narrow(2, padding_, images.size(2)).narrow(3, padding_, images.size(3)).copy_(images);
  }
  // Per-example offsets (all tops, then all lefts), uniform over the positions that fit.
  const std::vector<int64_t> tops =
      randint(0, height - size_ + 1, {n}, DType::Int64, &generator).to_vector<int64_t>();
  const std::vector<int64_t> lefts =
      randint(0, width - size_ + 1, {n}, DType::Int64, &generator).to_vector<int64_t>();
  Tensor out = Tensor::empty({n, channels, size_, size_}, images.options());
  for (int64_t example = 0; example < n; ++example) {
    const auto e = static_cast<size_t>(example);
    out.select(0, example)
        .copy_(padded.select(0, example).narrow(1, tops[e], size_).narrow(2, lefts[e], size_));
  }
  return out;
}

void RandomCrop::operator()(Batch& batch, Generator& generator) const {
  batch.input = (*this)(batch.input, generator);
}

// ---- RandomHorizontalFlip ------------------------------------------------------------------

RandomHorizontalFlip::RandomHorizontalFlip(double p) : p_(p) {
  STRATA_CHECK(p >= 0.0 && p <= 1.0, "RandomHorizontalFlip: p must be in [0, 1], got ", p);
}

Tensor RandomHorizontalFlip::operator()(const Tensor& images, Generator& generator) const {
  STRATA_CHECK(images.defined(), "RandomHorizontalFlip: the images are undefined");
  STRATA_CHECK(images.dim() >= 2, "RandomHorizontalFlip: images must be [N, C, H, W] or "
               "[N, H, W], got ", describe(images));
  NoGradGuard no_grad;
  const int64_t n = images.size(0), width = images.size(-1);
  // flip[i]: example i is mirrored; shaped [N, 1, ...] to broadcast over the example.
  const Tensor draws = rand({n}, DType::Float64, &generator);
  Shape mask_shape(static_cast<size_t>(images.dim()), 1);
  mask_shape[0] = n;
  const Tensor flip = lt(draws, p_).reshape(mask_shape).to(images.device());
  const Tensor reversed = arange(static_cast<double>(width - 1), -1.0, -1.0,
                                 TensorOptions(DType::Int64).device(images.device()));
  const Tensor mirrored = index_select(images, images.dim() - 1, reversed);
  return where(flip, mirrored, images);
}

void RandomHorizontalFlip::operator()(Batch& batch, Generator& generator) const {
  batch.input = (*this)(batch.input, generator);
}

}  // namespace strata::data
