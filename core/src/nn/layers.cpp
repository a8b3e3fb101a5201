// The layers of nn/layers.h: each registers its parameters (initialized as PyTorch's layers
// are) and buffers, and forwards to nn::functional.
#include "strata/nn/layers.h"

#include <cmath>
#include <sstream>

#include "internal.h"
#include "strata/autograd.h"
#include "strata/nn/init.h"

namespace strata::nn {

namespace F = functional;

namespace {

// PyTorch's default for Linear and Conv: weight from kaiming_uniform_(a = sqrt(5)), which is
// uniform in ±1/sqrt(fan_in), and bias uniform in the same bound.
Tensor default_weight(const Shape& shape) {
  Tensor w = empty(shape, kFloat32);
  init::kaiming_uniform_(w, std::sqrt(5.0));
  return w;
}

Tensor default_bias(int64_t size, int64_t fan_in) {
  Tensor b = empty({size}, kFloat32);
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  init::uniform_(b, -bound, bound);
  return b;
}

// NOTE: strings are built with a stream: GCC 12 gives a false -Wrestrict on chains of
// std::string operator+ at -O3.
template <class... Parts>
std::string repr(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

std::string size2_str(const Size2& s) { return repr("(", s.h, ", ", s.w, ")"); }
std::string size3_str(const Size3& s) { return repr("(", s.d, ", ", s.h, ", ", s.w, ")"); }

const char* bool_str(bool b) { return b ? "true" : "false"; }

}  // namespace

// ---- containers ---------------------------------------------------------------------------

namespace {

// The child of `module` named `name`, or an error listing the names it has.
std::shared_ptr<Module> child_named(const Module& module, const std::string& name) {
  std::string names;
  for (const auto& [child_name, child] : module.named_children()) {
    if (child_name == name) return child;
    names += (names.empty() ? "" : ", ") + child_name;
  }
  STRATA_CHECK(false, module.type_name(), ": no module named '", name, "' (it holds ",
               names.empty() ? "none" : names, ")");
  return nullptr;
}

}  // namespace

std::shared_ptr<Module> ModuleList::ptr(size_t index) const {
  STRATA_CHECK(index < size(), type_name(), ": index ", index, " out of range for ", size(),
               " modules");
  return named_children()[index].second;
}

Sequential::Sequential(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named)
    : Sequential() {
  for (auto& [name, module] : named) push_back(name, std::move(module));
}

void Sequential::push_back(const std::string& name, std::shared_ptr<Module> module) {
  STRATA_CHECK(module != nullptr, "Sequential: module '", name, "' is null");
  add_child(name, std::move(module));
}

Module& Sequential::operator[](const std::string& name) const { return *child_named(*this, name); }

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  for (const auto& entry : named_children()) x = (*entry.second)(x);
  return x;
}

ModuleDict::ModuleDict(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named)
    : ModuleDict() {
  for (auto& [name, module] : named) insert(name, std::move(module));
}

void ModuleDict::insert(const std::string& name, std::shared_ptr<Module> module) {
  STRATA_CHECK(module != nullptr, "ModuleDict: module '", name, "' is null");
  add_child(name, std::move(module));
}

bool ModuleDict::contains(const std::string& name) const {
  for (const auto& entry : named_children()) {
    if (entry.first == name) return true;
  }
  return false;
}

std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> names;
  for (const auto& entry : named_children()) names.push_back(entry.first);
  return names;
}

std::shared_ptr<Module> ModuleDict::ptr(const std::string& name) const {
  return child_named(*this, name);
}

// ---- linear layers ------------------------------------------------------------------------

Linear::Linear(int64_t in_features_, int64_t out_features_, bool with_bias)
    : Module("Linear"), in_features(in_features_), out_features(out_features_) {
  STRATA_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got in=",
               in_features, " out=", out_features);
  weight = register_parameter("weight", default_weight({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", default_bias(out_features, in_features));
}

Tensor Linear::forward(const Tensor& input) { return F::linear(input, weight, bias); }

std::string Linear::extra_repr() const {
  return repr("in_features=", in_features, ", out_features=", out_features,
              ", bias=", bool_str(bias.defined()));
}

Maxout::Maxout(int64_t in_features_, int64_t out_features_, int64_t pieces_)
    : Module("Maxout"), in_features(in_features_), out_features(out_features_), pieces(pieces_) {
  STRATA_CHECK(in_features > 0 && out_features > 0 && pieces > 0,
               "Maxout: sizes must be positive, got in=", in_features, " out=", out_features,
               " pieces=", pieces);
  weight = register_parameter("weight", default_weight({out_features * pieces, in_features}));
  bias = register_parameter("bias", default_bias(out_features * pieces, in_features));
}

Tensor Maxout::forward(const Tensor& input) {
  return F::maxout(F::linear(input, weight, bias), pieces, -1);
}

std::string Maxout::extra_repr() const {
  return repr("in_features=", in_features, ", out_features=", out_features, ", pieces=", pieces);
}

Embedding::Embedding(int64_t num_embeddings_, int64_t embedding_dim_,
                     std::optional<int64_t> padding_idx_)
    : Module("Embedding"), num_embeddings(num_embeddings_), embedding_dim(embedding_dim_),
      padding_idx(padding_idx_) {
  STRATA_CHECK(num_embeddings > 0 && embedding_dim > 0, "Embedding: sizes must be positive, got ",
               num_embeddings, " x ", embedding_dim);
  if (padding_idx) {
    STRATA_CHECK(*padding_idx >= -num_embeddings && *padding_idx < num_embeddings,
                 "Embedding: padding_idx ", *padding_idx, " out of range for ", num_embeddings,
                 " embeddings");
    if (*padding_idx < 0) padding_idx = *padding_idx + num_embeddings;
  }
  Tensor w = empty({num_embeddings, embedding_dim}, kFloat32);
  init::normal_(w, 0.0, 1.0);
  if (padding_idx) w.select(0, *padding_idx).zero_();
  weight = register_parameter("weight", w);
}

Tensor Embedding::forward(const Tensor& indices) {
  return F::embedding(indices, weight, padding_idx);
}

std::string Embedding::extra_repr() const {
  std::string s = repr(num_embeddings, ", ", embedding_dim);
  if (padding_idx) s += repr(", padding_idx=", *padding_idx);
  return s;
}

// ---- convolution --------------------------------------------------------------------------

namespace {

void check_conv_sizes(const char* layer, int64_t in, int64_t out, int64_t groups) {
  STRATA_CHECK(in > 0 && out > 0 && groups > 0, layer,
               ": channels and groups must be positive, got in=", in, " out=", out,
               " groups=", groups);
  STRATA_CHECK(in % groups == 0 && out % groups == 0, layer, ": groups=", groups,
               " must divide in_channels=", in, " and out_channels=", out);
}

}  // namespace

Conv1d::Conv1d(int64_t in_channels_, int64_t out_channels_, int64_t kernel_size_,
               int64_t stride_, int64_t padding_, int64_t dilation_, int64_t groups_,
               bool with_bias)
    : Module("Conv1d"), in_channels(in_channels_), out_channels(out_channels_),
      kernel_size(kernel_size_), stride(stride_), padding(padding_), dilation(dilation_),
      groups(groups_) {
  check_conv_sizes("Conv1d", in_channels, out_channels, groups);
  STRATA_CHECK(kernel_size > 0, "Conv1d: kernel_size must be positive, got ", kernel_size);
  weight = register_parameter("weight",
                              default_weight({out_channels, in_channels / groups, kernel_size}));
  if (with_bias) {
    bias = register_parameter("bias", default_bias(out_channels, in_channels / groups * kernel_size));
  }
}

Tensor Conv1d::forward(const Tensor& input) {
  return F::conv1d(input, weight, bias, stride, padding, dilation, groups);
}

std::string Conv1d::extra_repr() const {
  std::string s = repr(in_channels, ", ", out_channels, ", kernel_size=(", kernel_size,
                       ",), stride=(", stride, ",)");
  if (padding != 0) s += repr(", padding=(", padding, ",)");
  if (dilation != 1) s += repr(", dilation=(", dilation, ",)");
  if (groups != 1) s += repr(", groups=", groups);
  if (!bias.defined()) s += ", bias=false";
  return s;
}

Conv2d::Conv2d(int64_t in_channels_, int64_t out_channels_, Size2 kernel_size_, Size2 stride_,
               Size2 padding_, Size2 dilation_, int64_t groups_, bool with_bias)
    : Module("Conv2d"), in_channels(in_channels_), out_channels(out_channels_),
      kernel_size(kernel_size_), stride(stride_), padding(padding_), dilation(dilation_),
      groups(groups_) {
  check_conv_sizes("Conv2d", in_channels, out_channels, groups);
  STRATA_CHECK(kernel_size.h > 0 && kernel_size.w > 0, "Conv2d: kernel_size must be positive, got ",
               size2_str(kernel_size));
  weight = register_parameter(
      "weight", default_weight({out_channels, in_channels / groups, kernel_size.h, kernel_size.w}));
  if (with_bias) {
    bias = register_parameter(
        "bias", default_bias(out_channels, in_channels / groups * kernel_size.h * kernel_size.w));
  }
}

Tensor Conv2d::forward(const Tensor& input) {
  return F::conv2d(input, weight, bias, stride, padding, dilation, groups);
}

Conv3d::Conv3d(int64_t in_channels_, int64_t out_channels_, Size3 kernel_size_, Size3 stride_,
               Size3 padding_, Size3 dilation_, int64_t groups_, bool with_bias)
    : Module("Conv3d"),
      in_channels(in_channels_),
      out_channels(out_channels_),
      kernel_size(kernel_size_),
      stride(stride_),
      padding(padding_),
      dilation(dilation_),
      groups(groups_) {
  check_conv_sizes("Conv3d", in_channels, out_channels, groups);
  STRATA_CHECK(kernel_size.d > 0 && kernel_size.h > 0 && kernel_size.w > 0,
               "Conv3d: kernel_size must be positive, got ", size3_str(kernel_size));
  weight =
      register_parameter("weight", default_weight({out_channels, in_channels / groups,
                                                   kernel_size.d, kernel_size.h, kernel_size.w}));
  if (with_bias) {
    bias =
        register_parameter("bias", default_bias(out_channels, in_channels / groups * kernel_size.d *
                                                                  kernel_size.h * kernel_size.w));
  }
}

Tensor Conv3d::forward(const Tensor& input) {
  return F::conv3d(input, weight, bias, stride, padding, dilation, groups);
}

std::string Conv3d::extra_repr() const {
  std::string s = repr(in_channels, ", ", out_channels, ", kernel_size=", size3_str(kernel_size),
                       ", stride=", size3_str(stride));
  if (padding.d != 0 || padding.h != 0 || padding.w != 0) {
    s += repr(", padding=", size3_str(padding));
  }
  if (dilation.d != 1 || dilation.h != 1 || dilation.w != 1) {
    s += repr(", dilation=", size3_str(dilation));
  }
  if (groups != 1) s += repr(", groups=", groups);
  if (!bias.defined()) s += ", bias=false";
  return s;
}

ConvTranspose2d::ConvTranspose2d(int64_t in_channels_, int64_t out_channels_, Size2 kernel_size_,
                                 Size2 stride_, Size2 padding_, Size2 output_padding_,
                                 int64_t groups_, bool with_bias, Size2 dilation_)
    : Module("ConvTranspose2d"),
      in_channels(in_channels_),
      out_channels(out_channels_),
      kernel_size(kernel_size_),
      stride(stride_),
      padding(padding_),
      output_padding(output_padding_),
      groups(groups_),
      dilation(dilation_) {
  check_conv_sizes("ConvTranspose2d", in_channels, out_channels, groups);
  STRATA_CHECK(kernel_size.h > 0 && kernel_size.w > 0,
               "ConvTranspose2d: kernel_size must be positive, got ", size2_str(kernel_size));
  // PyTorch's fan-in for this layout: weight.size(1) * R * S.
  weight = register_parameter(
      "weight", default_weight({in_channels, out_channels / groups, kernel_size.h, kernel_size.w}));
  if (with_bias) {
    bias = register_parameter(
        "bias", default_bias(out_channels, out_channels / groups * kernel_size.h * kernel_size.w));
  }
}

Tensor ConvTranspose2d::forward(const Tensor& input) {
  return F::conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
                             dilation);
}

std::string ConvTranspose2d::extra_repr() const {
  std::string s = repr(in_channels, ", ", out_channels, ", kernel_size=", size2_str(kernel_size),
                       ", stride=", size2_str(stride));
  if (padding.h != 0 || padding.w != 0) s += repr(", padding=", size2_str(padding));
  if (output_padding.h != 0 || output_padding.w != 0) {
    s += repr(", output_padding=", size2_str(output_padding));
  }
  if (dilation.h != 1 || dilation.w != 1) s += repr(", dilation=", size2_str(dilation));
  if (groups != 1) s += repr(", groups=", groups);
  if (!bias.defined()) s += ", bias=false";
  return s;
}

std::string Conv2d::extra_repr() const {
  std::string s = repr(in_channels, ", ", out_channels, ", kernel_size=", size2_str(kernel_size),
                       ", stride=", size2_str(stride));
  if (padding.h != 0 || padding.w != 0) s += repr(", padding=", size2_str(padding));
  if (dilation.h != 1 || dilation.w != 1) s += repr(", dilation=", size2_str(dilation));
  if (groups != 1) s += repr(", groups=", groups);
  if (!bias.defined()) s += ", bias=false";
  return s;
}

// ---- pooling ------------------------------------------------------------------------------

MaxPool1d::MaxPool1d(int64_t kernel_size_, std::optional<int64_t> stride_, int64_t padding_,
                     int64_t dilation_, bool ceil_mode_)
    : Module("MaxPool1d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_), dilation(dilation_), ceil_mode(ceil_mode_) {}

Tensor MaxPool1d::forward(const Tensor& input) {
  return F::max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode);
}

std::pair<Tensor, Tensor> MaxPool1d::forward_with_indices(const Tensor& input) {
  return F::max_pool1d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode);
}

std::string MaxPool1d::extra_repr() const {
  std::string s = repr("kernel_size=", kernel_size, ", stride=", stride, ", padding=", padding);
  if (dilation != 1) s += repr(", dilation=", dilation);
  if (ceil_mode) s += ", ceil_mode=true";
  return s;
}

MaxPool2d::MaxPool2d(Size2 kernel_size_, std::optional<Size2> stride_, Size2 padding_,
                     Size2 dilation_, bool ceil_mode_)
    : Module("MaxPool2d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_), dilation(dilation_), ceil_mode(ceil_mode_) {}

Tensor MaxPool2d::forward(const Tensor& input) {
  return F::max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
}

std::pair<Tensor, Tensor> MaxPool2d::forward_with_indices(const Tensor& input) {
  return F::max_pool2d_with_indices(input, kernel_size, stride, padding, dilation, ceil_mode);
}

std::string MaxPool2d::extra_repr() const {
  std::string s = repr("kernel_size=", size2_str(kernel_size), ", stride=", size2_str(stride),
                       ", padding=", size2_str(padding));
  if (dilation.h != 1 || dilation.w != 1) s += repr(", dilation=", size2_str(dilation));
  if (ceil_mode) s += ", ceil_mode=true";
  return s;
}

MaxUnpool1d::MaxUnpool1d(int64_t kernel_size_, std::optional<int64_t> stride_,
                         int64_t padding_)
    : Module("MaxUnpool1d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_) {}

Tensor MaxUnpool1d::forward(const Tensor& input, const Tensor& indices,
                            std::optional<int64_t> output_size) {
  return F::max_unpool1d(input, indices, kernel_size, stride, padding, output_size);
}

std::string MaxUnpool1d::extra_repr() const {
  return repr("kernel_size=", kernel_size, ", stride=", stride, ", padding=", padding);
}

MaxUnpool2d::MaxUnpool2d(Size2 kernel_size_, std::optional<Size2> stride_, Size2 padding_)
    : Module("MaxUnpool2d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_) {}

Tensor MaxUnpool2d::forward(const Tensor& input, const Tensor& indices,
                            std::optional<Size2> output_size) {
  return F::max_unpool2d(input, indices, kernel_size, stride, padding, output_size);
}

std::string MaxUnpool2d::extra_repr() const {
  return repr("kernel_size=", size2_str(kernel_size), ", stride=", size2_str(stride),
              ", padding=", size2_str(padding));
}

AvgPool1d::AvgPool1d(int64_t kernel_size_, std::optional<int64_t> stride_, int64_t padding_,
                     bool count_include_pad_)
    : Module("AvgPool1d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_), count_include_pad(count_include_pad_) {}

Tensor AvgPool1d::forward(const Tensor& input) {
  return F::avg_pool1d(input, kernel_size, stride, padding, count_include_pad);
}

std::string AvgPool1d::extra_repr() const {
  return repr("kernel_size=", kernel_size, ", stride=", stride, ", padding=", padding,
              ", count_include_pad=", bool_str(count_include_pad));
}

AvgPool2d::AvgPool2d(Size2 kernel_size_, std::optional<Size2> stride_, Size2 padding_,
                     bool count_include_pad_)
    : Module("AvgPool2d"), kernel_size(kernel_size_), stride(stride_.value_or(kernel_size_)),
      padding(padding_), count_include_pad(count_include_pad_) {}

Tensor AvgPool2d::forward(const Tensor& input) {
  return F::avg_pool2d(input, kernel_size, stride, padding, count_include_pad);
}

std::string AvgPool2d::extra_repr() const {
  return repr("kernel_size=", size2_str(kernel_size), ", stride=", size2_str(stride),
              ", padding=", size2_str(padding), ", count_include_pad=", bool_str(count_include_pad));
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Size2 output_size_)
    : Module("AdaptiveAvgPool2d"), output_size(output_size_) {}

Tensor AdaptiveAvgPool2d::forward(const Tensor& input) {
  return F::adaptive_avg_pool2d(input, output_size);
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  return repr("output_size=", size2_str(output_size));
}

MaxPool3d::MaxPool3d(Size3 kernel_size_, std::optional<Size3> stride_, Size3 padding_,
                     Size3 dilation_)
    : Module("MaxPool3d"),
      kernel_size(kernel_size_),
      stride(stride_.value_or(kernel_size_)),
      padding(padding_),
      dilation(dilation_) {}

Tensor MaxPool3d::forward(const Tensor& input) {
  return F::max_pool3d(input, kernel_size, stride, padding, dilation);
}

std::string MaxPool3d::extra_repr() const {
  return repr("kernel_size=", size3_str(kernel_size), ", stride=", size3_str(stride),
              ", padding=", size3_str(padding), ", dilation=", size3_str(dilation));
}

AvgPool3d::AvgPool3d(Size3 kernel_size_, std::optional<Size3> stride_, Size3 padding_,
                     bool count_include_pad_)
    : Module("AvgPool3d"),
      kernel_size(kernel_size_),
      stride(stride_.value_or(kernel_size_)),
      padding(padding_),
      count_include_pad(count_include_pad_) {}

Tensor AvgPool3d::forward(const Tensor& input) {
  return F::avg_pool3d(input, kernel_size, stride, padding, count_include_pad);
}

std::string AvgPool3d::extra_repr() const {
  return repr("kernel_size=", size3_str(kernel_size), ", stride=", size3_str(stride),
              ", padding=", size3_str(padding),
              ", count_include_pad=", bool_str(count_include_pad));
}

AdaptiveMaxPool2d::AdaptiveMaxPool2d(Size2 output_size_)
    : Module("AdaptiveMaxPool2d"), output_size(output_size_) {}

Tensor AdaptiveMaxPool2d::forward(const Tensor& input) {
  return F::adaptive_max_pool2d(input, output_size);
}

std::string AdaptiveMaxPool2d::extra_repr() const {
  return repr("output_size=", size2_str(output_size));
}

Upsample::Upsample(F::InterpolateOptions options_)
    : Module("Upsample"), options(std::move(options_)) {
  STRATA_CHECK(options.size.has_value() != options.scale_factor.has_value(),
               "Upsample: give exactly one of size and scale_factor");
}

Tensor Upsample::forward(const Tensor& input) { return F::interpolate(input, options); }

std::string Upsample::extra_repr() const {
  std::string s = options.size ? repr("size=", size2_str(*options.size))
                               : repr("scale_factor=(", options.scale_factor->h, ", ",
                                      options.scale_factor->w, ")");
  s += options.mode == F::InterpolateMode::Nearest ? ", mode=nearest" : ", mode=bilinear";
  if (options.align_corners) s += ", align_corners=true";
  return s;
}

// ---- reshaping and regularization ---------------------------------------------------------

Flatten::Flatten(int64_t start_dim_, int64_t end_dim_)
    : Module("Flatten"), start_dim(start_dim_), end_dim(end_dim_) {}

Tensor Flatten::forward(const Tensor& input) { return input.flatten(start_dim, end_dim); }

std::string Flatten::extra_repr() const {
  return repr("start_dim=", start_dim, ", end_dim=", end_dim);
}

Dropout::Dropout(double p_) : Module("Dropout"), p(p_) {
  STRATA_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& input) {
  return F::dropout(input, p, is_training(), generator);
}

std::string Dropout::extra_repr() const { return repr("p=", p); }

// ---- normalization ------------------------------------------------------------------------

BatchNorm::BatchNorm(const char* type_name, int64_t rank_low, int64_t rank_high,
                     int64_t num_features_, double eps_, std::optional<double> momentum_,
                     bool affine_, bool track_running_stats_)
    : Module(type_name),
      num_features(num_features_),
      eps(eps_),
      momentum(momentum_),
      affine(affine_),
      track_running_stats(track_running_stats_),
      rank_low_(rank_low),
      rank_high_(rank_high) {
  STRATA_CHECK(num_features > 0, type_name, ": num_features must be positive, got ",
               num_features);
  STRATA_CHECK(!momentum || (*momentum >= 0.0 && *momentum <= 1.0), type_name,
               ": momentum must be in [0, 1] (or std::nullopt for a cumulative average), got ",
               momentum.value_or(0.0));
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({num_features}));
    running_var = register_buffer("running_var", ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  }
}

Tensor BatchNorm::forward(const Tensor& input) {
  STRATA_CHECK(input.defined() && input.dim() >= rank_low_ && input.dim() <= rank_high_,
               type_name(), ": expected ",
               rank_low_ == rank_high_ ? repr(rank_low_, "-D input")
                                       : repr(rank_low_, "-D or ", rank_high_, "-D input"),
               ", got ", input.defined() ? shape_str(input.shape()) : std::string("undefined"));
  STRATA_CHECK(input.size(1) == num_features, type_name(), ": expected ", num_features,
               " channels, got input ", shape_str(input.shape()));
  // Batch statistics when training, and in eval mode too when no running ones are kept.
  const bool use_batch_stats = is_training() || !track_running_stats;
  if (is_training() && track_running_stats) {
    NoGradGuard no_grad;
    num_batches_tracked.add_(ones({}, TensorOptions(kInt64).device(input.device())));
  }
  return F::batch_norm(input, track_running_stats ? running_mean : Tensor(),
                       track_running_stats ? running_var : Tensor(), weight, bias, use_batch_stats,
                       is_training() && track_running_stats ? running_factor() : 0.0, eps);
}

double BatchNorm::running_factor() const {
  if (momentum) return *momentum;
  // One small read of the count (a device-to-host copy on CUDA), only without a momentum.
  const auto batches = num_batches_tracked.item<int64_t>();
  return batches > 0 ? 1.0 / static_cast<double>(batches) : 0.0;
}

std::string BatchNorm::extra_repr() const {
  const std::string momentum_text = momentum ? repr(*momentum) : std::string("None");
  return repr(num_features, ", eps=", eps, ", momentum=", momentum_text,
              ", affine=", bool_str(affine),
              ", track_running_stats=", bool_str(track_running_stats));
}

LayerNorm::LayerNorm(Shape normalized_shape_, double eps_, bool elementwise_affine)
    : Module("LayerNorm"), normalized_shape(std::move(normalized_shape_)), eps(eps_) {
  STRATA_CHECK(!normalized_shape.empty() && numel_of(normalized_shape) > 0,
               "LayerNorm: normalized_shape must name at least one non-empty dim, got ",
               shape_str(normalized_shape));
  if (elementwise_affine) {
    weight = register_parameter("weight", ones(normalized_shape));
    bias = register_parameter("bias", zeros(normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& input) {
  return F::layer_norm(input, normalized_shape, weight, bias, eps);
}

std::string LayerNorm::extra_repr() const {
  return repr(shape_str(normalized_shape), ", eps=", eps,
              ", elementwise_affine=", bool_str(weight.defined()));
}

GroupNorm::GroupNorm(int64_t num_groups_, int64_t num_channels_, double eps_, bool affine)
    : Module("GroupNorm"), num_groups(num_groups_), num_channels(num_channels_), eps(eps_) {
  STRATA_CHECK(num_groups >= 1 && num_channels >= 1 && num_channels % num_groups == 0,
               "GroupNorm: ", num_channels, " channels cannot be split into ", num_groups,
               " groups");
  if (affine) {
    weight = register_parameter("weight", ones({num_channels}));
    bias = register_parameter("bias", zeros({num_channels}));
  }
}

Tensor GroupNorm::forward(const Tensor& input) {
  detail::check_defined(input, "GroupNorm");
  STRATA_CHECK(input.dim() >= 2 && input.size(1) == num_channels, "GroupNorm: expected an ",
               "input [N, ", num_channels, ", *], got ", detail::describe(input));
  return F::group_norm(input, num_groups, weight, bias, eps);
}

std::string GroupNorm::extra_repr() const {
  return repr(num_groups, ", ", num_channels, ", eps=", eps, ", affine=",
              bool_str(weight.defined()));
}

InstanceNorm::InstanceNorm(std::string type, int64_t rank, int64_t num_features_, double eps_,
                           bool affine)
    : Module(std::move(type)), num_features(num_features_), eps(eps_), rank_(rank) {
  STRATA_CHECK(num_features >= 1, type_name(), ": num_features must be positive, got ",
               num_features);
  if (affine) {
    weight = register_parameter("weight", ones({num_features}));
    bias = register_parameter("bias", zeros({num_features}));
  }
}

Tensor InstanceNorm::forward(const Tensor& input) {
  detail::check_defined(input, type_name().c_str());
  STRATA_CHECK(input.dim() == rank_ && input.size(1) == num_features, type_name(),
               ": expected an input of ", rank_, " dimensions with ", num_features,
               " channels in dimension 1, got ", detail::describe(input));
  return F::instance_norm(input, weight, bias, eps);
}

std::string InstanceNorm::extra_repr() const {
  return repr(num_features, ", eps=", eps, ", affine=", bool_str(weight.defined()));
}

PixelShuffle::PixelShuffle(int64_t factor) : Module("PixelShuffle"), upscale_factor(factor) {
  STRATA_CHECK(factor >= 1, "PixelShuffle: the upscale factor must be at least 1, got ", factor);
}
Tensor PixelShuffle::forward(const Tensor& input) {
  return F::pixel_shuffle(input, upscale_factor);
}
std::string PixelShuffle::extra_repr() const { return repr("upscale_factor=", upscale_factor); }

PixelUnshuffle::PixelUnshuffle(int64_t factor)
    : Module("PixelUnshuffle"), downscale_factor(factor) {
  STRATA_CHECK(factor >= 1, "PixelUnshuffle: the downscale factor must be at least 1, got ",
               factor);
}
Tensor PixelUnshuffle::forward(const Tensor& input) {
  return F::pixel_unshuffle(input, downscale_factor);
}
std::string PixelUnshuffle::extra_repr() const {
  return repr("downscale_factor=", downscale_factor);
}

// ---- activations --------------------------------------------------------------------------

Tensor ReLU::forward(const Tensor& input) { return F::relu(input); }
Tensor Sigmoid::forward(const Tensor& input) { return F::sigmoid(input); }
Tensor Tanh::forward(const Tensor& input) { return F::tanh(input); }
Tensor GELU::forward(const Tensor& input) { return F::gelu(input); }
Tensor LeakyReLU::forward(const Tensor& input) { return F::leaky_relu(input, negative_slope); }
std::string LeakyReLU::extra_repr() const { return repr("negative_slope=", negative_slope); }
Tensor ELU::forward(const Tensor& input) { return F::elu(input, alpha); }
std::string ELU::extra_repr() const { return repr("alpha=", alpha); }
Tensor Softplus::forward(const Tensor& input) { return F::softplus(input, beta); }
std::string Softplus::extra_repr() const { return repr("beta=", beta, ", threshold=20"); }
Tensor Softmax::forward(const Tensor& input) { return F::softmax(input, dim); }
std::string Softmax::extra_repr() const { return repr("dim=", dim); }
Tensor LogSoftmax::forward(const Tensor& input) { return F::log_softmax(input, dim); }
std::string LogSoftmax::extra_repr() const { return repr("dim=", dim); }

}  // namespace strata::nn
