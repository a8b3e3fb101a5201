// The layers: modules around nn::functional with their parameters, initialized as PyTorch
// initializes them (so results are comparable), plus Sequential to chain them.
//
//   nn::Sequential net(nn::Conv2d(1, 6, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
//                      nn::Linear(6 * 12 * 12, 10));
//   Tensor logits = net(images);  // images: [N, 1, 28, 28]
//
// Parameters are created on the CPU in float32; move a whole network with net.to(device) or
// net.to(kFloat64).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "strata/nn/functional.h"
#include "strata/nn/module.h"

namespace strata::nn {

using functional::Size2;
using functional::Size3;

// ---- containers ---------------------------------------------------------------------------

// What a container takes: a module by value (moved in) or a shared pointer to one.
template <class M>
concept ModuleArgument = std::is_base_of_v<Module, std::decay_t<M>> ||
                         std::is_convertible_v<std::decay_t<M>, std::shared_ptr<Module>>;

// Modules held in order, registered as "0", "1", ... (torch.nn.ModuleList): their parameters
// are found, moved and saved with the owner's, and the owner's forward calls them. It has no
// forward of its own.
//   nn::ModuleList blocks;
//   for (int i = 0; i < 3; ++i) blocks.push_back(nn::Linear(64, 64));
//   for (const auto& block : blocks) x = (*block)(x);
class ModuleList : public Module {
 public:
  ModuleList() : Module("ModuleList") {}
  // Takes modules by value (moved in) or as shared pointers (shared with the caller).
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && (ModuleArgument<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::is_same_v<std::decay_t<Ms>, ModuleList> && ...)))
  explicit ModuleList(Ms&&... modules) : ModuleList() {
    (push_back(std::forward<Ms>(modules)), ...);
  }

  template <class M>
  void push_back(std::shared_ptr<M> module) {
    add_child(std::to_string(size()), std::move(module));
  }
  template <class M, class = std::enable_if_t<std::is_base_of_v<Module, std::decay_t<M>>>>
  void push_back(M&& module) {
    push_back(std::make_shared<std::decay_t<M>>(std::forward<M>(module)));
  }

  size_t size() const { return named_children().size(); }
  bool empty() const { return size() == 0; }
  Module& operator[](size_t index) const { return *ptr(index); }
  // The module at `index` as held (shared), or as a T (null when it is not one).
  std::shared_ptr<Module> ptr(size_t index) const;
  template <class T>
  std::shared_ptr<T> ptr(size_t index) const {
    return std::dynamic_pointer_cast<T>(ptr(index));
  }

  // The modules in order: `for (const std::shared_ptr<nn::Module>& m : list)`.
  class Iterator {
   public:
    using Entries = std::vector<std::pair<std::string, std::shared_ptr<Module>>>;
    explicit Iterator(Entries::const_iterator at) : at_(at) {}
    const std::shared_ptr<Module>& operator*() const { return at_->second; }
    Iterator& operator++() {
      ++at_;
      return *this;
    }
    bool operator==(const Iterator& other) const { return at_ == other.at_; }

   private:
    Entries::const_iterator at_;
  };
  Iterator begin() const { return Iterator(named_children().begin()); }
  Iterator end() const { return Iterator(named_children().end()); }

 protected:
  explicit ModuleList(std::string type_name) : Module(std::move(type_name)) {}
};

// Runs its modules in order, each one's output the next one's input. Children are named
// "0", "1", ... as in PyTorch, or by the caller (torch's Sequential(OrderedDict(...))):
//   nn::Sequential net({{"conv", std::make_shared<nn::Conv2d>(1, 6, 5)},
//                       {"act", std::make_shared<nn::ReLU>()}});
//   net.named_children()[0].first == "conv"; net["conv"] is the Conv2d.
class Sequential : public ModuleList {
 public:
  Sequential() : ModuleList("Sequential") {}
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && (ModuleArgument<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::is_same_v<std::decay_t<Ms>, Sequential> && ...)))
  explicit Sequential(Ms&&... modules) : Sequential() {
    (push_back(std::forward<Ms>(modules)), ...);
  }
  // Named children, in order.
  explicit Sequential(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named);

  using ModuleList::push_back;
  // Appends a module under its own name.
  void push_back(const std::string& name, std::shared_ptr<Module> module);
  using ModuleList::operator[];
  // The child named `name` (an error listing the names when there is none).
  Module& operator[](const std::string& name) const;

  Tensor forward(const Tensor& input) override;
};

// Modules by name, in insertion order (torch.nn.ModuleDict): registered under their names, so
// state_dict keys read "heads.classifier.weight". No forward of its own.
class ModuleDict : public Module {
 public:
  ModuleDict() : Module("ModuleDict") {}
  explicit ModuleDict(std::vector<std::pair<std::string, std::shared_ptr<Module>>> named);

  // Adds `module` under `name` (an error when the name is taken or contains '.').
  void insert(const std::string& name, std::shared_ptr<Module> module);
  template <class M, class = std::enable_if_t<std::is_base_of_v<Module, std::decay_t<M>>>>
  void insert(const std::string& name, M&& module) {
    insert(name, std::make_shared<std::decay_t<M>>(std::forward<M>(module)));
  }

  size_t size() const { return named_children().size(); }
  bool contains(const std::string& name) const;
  // The names, in insertion order.
  std::vector<std::string> keys() const;
  Module& operator[](const std::string& name) const { return *ptr(name); }
  std::shared_ptr<Module> ptr(const std::string& name) const;
  template <class T>
  std::shared_ptr<T> ptr(const std::string& name) const {
    return std::dynamic_pointer_cast<T>(ptr(name));
  }
};

// ---- options -------------------------------------------------------------------------------
// Every layer with more than one setting (the 3-D pooling layers aside) takes an options struct,
// for designated initializers that name each argument (C++20):
//   nn::Conv2d conv({.in = 3, .out = 16, .kernel = 3, .padding = 1, .bias = false});
// A misspelled field is a compile error. The positional constructors stay; the defaults are
// the same. Layers with one setting (Dropout, LeakyReLU, Softmax, ...) take just that.
// NOTE: a pooling kernel as a bare braced pair, MaxPool2d({2, 3}), would read as either form;
// write MaxPool2d(Size2(2, 3)) or MaxPool2d({.kernel = {2, 3}}).

struct LinearOptions {
  int64_t in = 0, out = 0;
  bool bias = true;
};

struct EmbeddingOptions {
  int64_t num_embeddings = 0, embedding_dim = 0;
  std::optional<int64_t> padding_idx = std::nullopt;
};

struct Conv1dOptions {
  int64_t in = 0, out = 0, kernel = 0;
  int64_t stride = 1, padding = 0, dilation = 1, groups = 1;
  bool bias = true;
};

struct Conv2dOptions {
  int64_t in = 0, out = 0;
  Size2 kernel = 0, stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

struct Conv3dOptions {
  int64_t in = 0, out = 0;
  Size3 kernel = 0, stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

struct ConvTranspose2dOptions {
  int64_t in = 0, out = 0;
  Size2 kernel = 0, stride = 1, padding = 0, output_padding = 0;
  int64_t groups = 1;
  bool bias = true;
  Size2 dilation = 1;
};

struct MaxPool1dOptions {
  int64_t kernel = 0;
  std::optional<int64_t> stride = std::nullopt;  // the kernel size when not given
  int64_t padding = 0, dilation = 1;
  bool ceil_mode = false;
};

struct MaxPool2dOptions {
  Size2 kernel = 0;
  std::optional<Size2> stride = std::nullopt;  // the kernel size when not given
  Size2 padding = 0, dilation = 1;
  bool ceil_mode = false;
};

struct AvgPool1dOptions {
  int64_t kernel = 0;
  std::optional<int64_t> stride = std::nullopt;
  int64_t padding = 0;
  bool count_include_pad = true;
};

struct AvgPool2dOptions {
  Size2 kernel = 0;
  std::optional<Size2> stride = std::nullopt;
  Size2 padding = 0;
  bool count_include_pad = true;
};

// BatchNorm1d / BatchNorm2d; momentum std::nullopt gives a cumulative average.
struct BatchNormOptions {
  int64_t features = 0;
  double eps = 1e-5;
  std::optional<double> momentum = 0.1;
  bool affine = true, track_running_stats = true;
};

struct LayerNormOptions {
  Shape shape;
  double eps = 1e-5;
  bool affine = true;
};

struct GroupNormOptions {
  int64_t groups = 0, channels = 0;
  double eps = 1e-5;
  bool affine = true;
};

// InstanceNorm1d / InstanceNorm2d.
struct InstanceNormOptions {
  int64_t features = 0;
  double eps = 1e-5;
  bool affine = false;
};

// ---- linear layers ------------------------------------------------------------------------

// y = x Wᵀ + b over the last axis. W [out, in] and b [out] start uniform in ±1/sqrt(in).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  explicit Linear(const LinearOptions& o) : Linear(o.in, o.out, o.bias) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_features, out_features;
  Tensor weight, bias;  // bias undefined when built without one
};

// Maxout (Goodfellow et al., 2013): `pieces` linear maps per output unit, keeping the largest:
// y_i = max_j (x W_ij + b_ij). One Linear to out_features * pieces, then the max over each
// unit's pieces.
class Maxout : public Module {
 public:
  Maxout(int64_t in_features, int64_t out_features, int64_t pieces);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_features, out_features, pieces;
  Tensor weight, bias;  // [out_features * pieces, in_features], [out_features * pieces]
};

// A lookup table of num_embeddings rows of size embedding_dim, N(0, 1) initialized; the row at
// padding_idx starts at zero and gets no gradient.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim,
            std::optional<int64_t> padding_idx = std::nullopt);
  explicit Embedding(const EmbeddingOptions& o)
      : Embedding(o.num_embeddings, o.embedding_dim, o.padding_idx) {}
  Tensor forward(const Tensor& indices) override;
  std::string extra_repr() const override;

  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx = std::nullopt;
  Tensor weight;
};

// ---- convolution --------------------------------------------------------------------------

// Over [N, C, L]: weight [out, in / groups, kernel]; weight and bias start uniform in
// ±1/sqrt(in / groups * kernel) as PyTorch's.
class Conv1d : public Module {
 public:
  Conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true);
  explicit Conv1d(const Conv1dOptions& o)
      : Conv1d(o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups, o.bias) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels, kernel_size, stride, padding, dilation, groups;
  Tensor weight, bias;
};

// Over [N, C, H, W]: weight [out, in / groups, kh, kw].
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
         Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1, bool bias = true);
  explicit Conv2d(const Conv2dOptions& o)
      : Conv2d(o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups, o.bias) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, padding, dilation;
  int64_t groups;
  Tensor weight, bias;
};

// The transposed convolution (functional::conv_transpose2d): weight [in_channels,
// out_channels / groups, R, S], initialized as PyTorch's ConvTranspose2d.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Size2 stride = 1,
                  Size2 padding = 0, Size2 output_padding = 0, int64_t groups = 1, bool bias = true,
                  Size2 dilation = 1);
  explicit ConvTranspose2d(const ConvTranspose2dOptions& o)
      : ConvTranspose2d(o.in, o.out, o.kernel, o.stride, o.padding, o.output_padding, o.groups,
                        o.bias, o.dilation) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels;
  Size2 kernel_size, stride, padding, output_padding;
  int64_t groups;
  Size2 dilation;
  Tensor weight, bias;
};

// Over [N, C, D, H, W] (functional::conv3d): weight [out, in / groups, kd, kh, kw], weight and
// bias uniform in ±1/sqrt(in / groups * kd * kh * kw) as PyTorch's.
class Conv3d : public Module {
 public:
  Conv3d(int64_t in_channels, int64_t out_channels, Size3 kernel_size, Size3 stride = 1,
         Size3 padding = 0, Size3 dilation = 1, int64_t groups = 1, bool bias = true);
  explicit Conv3d(const Conv3dOptions& o)
      : Conv3d(o.in, o.out, o.kernel, o.stride, o.padding, o.dilation, o.groups, o.bias) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels;
  Size3 kernel_size, stride, padding, dilation;
  int64_t groups;
  Tensor weight, bias;
};

// ---- pooling ------------------------------------------------------------------------------

// Max pooling (functional::max_pool1d/2d); forward_with_indices also returns where each
// maximum came from, for MaxUnpool1d/2d.
class MaxPool1d : public Module {
 public:
  explicit MaxPool1d(int64_t kernel_size, std::optional<int64_t> stride = {},
                     int64_t padding = 0, int64_t dilation = 1, bool ceil_mode = false);
  explicit MaxPool1d(const MaxPool1dOptions& o)
      : MaxPool1d(o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode) {}
  Tensor forward(const Tensor& input) override;
  std::pair<Tensor, Tensor> forward_with_indices(const Tensor& input);
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding, dilation;
  bool ceil_mode;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Size2 kernel_size, std::optional<Size2> stride = {}, Size2 padding = 0,
                     Size2 dilation = 1, bool ceil_mode = false);
  explicit MaxPool2d(const MaxPool2dOptions& o)
      : MaxPool2d(o.kernel, o.stride, o.padding, o.dilation, o.ceil_mode) {}
  Tensor forward(const Tensor& input) override;
  std::pair<Tensor, Tensor> forward_with_indices(const Tensor& input);
  std::string extra_repr() const override;
  Size2 kernel_size, stride, padding, dilation;
  bool ceil_mode;
};

// The partial inverse of MaxPool1d/2d (functional::max_unpool1d/2d): takes the pooled values
// and their indices, so it has no one-argument forward.
//   auto [pooled, indices] = pool.forward_with_indices(x);
//   Tensor restored = unpool.forward(pooled, indices, Size2(x.size(-2), x.size(-1)));
class MaxUnpool1d : public Module {
 public:
  explicit MaxUnpool1d(int64_t kernel_size, std::optional<int64_t> stride = {},
                       int64_t padding = 0);
  using Module::forward;  // the one-argument form throws: unpooling needs the indices
  Tensor forward(const Tensor& input, const Tensor& indices,
                 std::optional<int64_t> output_size = {});
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding;
};

class MaxUnpool2d : public Module {
 public:
  explicit MaxUnpool2d(Size2 kernel_size, std::optional<Size2> stride = {}, Size2 padding = 0);
  using Module::forward;  // the one-argument form throws: unpooling needs the indices
  Tensor forward(const Tensor& input, const Tensor& indices,
                 std::optional<Size2> output_size = {});
  std::string extra_repr() const override;
  Size2 kernel_size, stride, padding;
};

class AvgPool1d : public Module {
 public:
  explicit AvgPool1d(int64_t kernel_size, std::optional<int64_t> stride = {},
                     int64_t padding = 0, bool count_include_pad = true);
  explicit AvgPool1d(const AvgPool1dOptions& o)
      : AvgPool1d(o.kernel, o.stride, o.padding, o.count_include_pad) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding;
  bool count_include_pad;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, std::optional<Size2> stride = {}, Size2 padding = 0,
                     bool count_include_pad = true);
  explicit AvgPool2d(const AvgPool2dOptions& o)
      : AvgPool2d(o.kernel, o.stride, o.padding, o.count_include_pad) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Size2 kernel_size, stride, padding;
  bool count_include_pad;
};

class MaxPool3d : public Module {
 public:
  explicit MaxPool3d(Size3 kernel_size, std::optional<Size3> stride = {}, Size3 padding = 0,
                     Size3 dilation = 1);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Size3 kernel_size, stride, padding, dilation;
};

class AvgPool3d : public Module {
 public:
  explicit AvgPool3d(Size3 kernel_size, std::optional<Size3> stride = {}, Size3 padding = 0,
                     bool count_include_pad = true);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Size3 kernel_size, stride, padding;
  bool count_include_pad;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Size2 output_size);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Size2 output_size;
};

class AdaptiveMaxPool2d : public Module {
 public:
  explicit AdaptiveMaxPool2d(Size2 output_size);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Size2 output_size;
};

// Resizing (functional::interpolate): `nn::Upsample({.scale_factor = 2.0, .mode =
// F::InterpolateMode::Bilinear})`.
class Upsample : public Module {
 public:
  explicit Upsample(functional::InterpolateOptions options);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  functional::InterpolateOptions options;
};

// ---- reshaping and regularization ---------------------------------------------------------

// Flattens dims start_dim..end_dim into one ([N, C, H, W] -> [N, C*H*W] by default).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};

// Inverted dropout: active in training mode only (see functional::dropout for why scaling
// during training equals scaling the weights at test time).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  double p;
  Generator* generator = nullptr;  // default_generator() when null
};

// ---- normalization ------------------------------------------------------------------------

// Batch normalization over channels: BatchNorm1d takes [N, C] or [N, C, L], BatchNorm2d
// [N, C, H, W]. Buffers running_mean (0), running_var (1) and num_batches_tracked, as
// PyTorch's; weight starts at 1 and bias at 0. The running statistics move by `momentum` per
// training batch, or, with momentum = std::nullopt, are the cumulative average of every batch
// so far (PyTorch's momentum=None). track_running_stats = false keeps none: batch statistics
// in evaluation too.
// NOTE: freeze() stops the weight and bias from training, not the running statistics: a
// frozen BatchNorm in train mode still updates them (call eval() on it to keep them fixed).
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;

  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  Tensor weight, bias;                                       // undefined unless affine
  Tensor running_mean, running_var, num_batches_tracked;     // undefined unless tracked

 protected:
  BatchNorm(const char* type_name, int64_t expected_rank_low, int64_t expected_rank_high,
            int64_t num_features, double eps, std::optional<double> momentum, bool affine,
            bool track_running_stats);
  // The weight of the current batch in the running statistics: momentum, or 1 / the number of
  // batches tracked (after counting this one) for a cumulative average.
  double running_factor() const;

 private:
  int64_t rank_low_, rank_high_;
};

class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(int64_t features, double epsilon = 1e-5,
                       std::optional<double> running_momentum = 0.1, bool with_affine = true,
                       bool track_running = true)
      : BatchNorm("BatchNorm1d", 2, 3, features, epsilon, running_momentum, with_affine,
                  track_running) {}
  explicit BatchNorm1d(const BatchNormOptions& o)
      : BatchNorm1d(o.features, o.eps, o.momentum, o.affine, o.track_running_stats) {}
};

class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(int64_t features, double epsilon = 1e-5,
                       std::optional<double> running_momentum = 0.1, bool with_affine = true,
                       bool track_running = true)
      : BatchNorm("BatchNorm2d", 4, 4, features, epsilon, running_momentum, with_affine,
                  track_running) {}
  explicit BatchNorm2d(const BatchNormOptions& o)
      : BatchNorm2d(o.features, o.eps, o.momentum, o.affine, o.track_running_stats) {}
};

// Normalizes over the trailing normalized_shape dims; weight 1 and bias 0 of that shape.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  explicit LayerNorm(const LayerNormOptions& o) : LayerNorm(o.shape, o.eps, o.affine) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

// Normalizes [N, C, *] over groups of channels per example (Wu & He, 2018); weight 1 and bias 0
// of shape [C] when affine. Independent of the batch size, unlike batch norm.
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, double eps = 1e-5, bool affine = true);
  explicit GroupNorm(const GroupNormOptions& o)
      : GroupNorm(o.groups, o.channels, o.eps, o.affine) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t num_groups, num_channels;
  double eps;
  Tensor weight, bias;  // undefined unless affine
};

// Normalizes each example's channels over their positions (style transfer's instance norm):
// InstanceNorm1d takes [N, C, L], InstanceNorm2d [N, C, H, W]. As PyTorch's defaults, no affine
// parameters unless asked for, and no running statistics (train and eval compute the same).
class InstanceNorm : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t num_features;
  double eps;
  Tensor weight, bias;  // undefined unless affine

 protected:
  InstanceNorm(std::string type, int64_t rank, int64_t features, double epsilon, bool affine);

 private:
  int64_t rank_;  // of the input: 3 or 4
};

class InstanceNorm1d : public InstanceNorm {
 public:
  explicit InstanceNorm1d(int64_t features, double epsilon = 1e-5, bool with_affine = false)
      : InstanceNorm("InstanceNorm1d", 3, features, epsilon, with_affine) {}
  explicit InstanceNorm1d(const InstanceNormOptions& o)
      : InstanceNorm1d(o.features, o.eps, o.affine) {}
};

class InstanceNorm2d : public InstanceNorm {
 public:
  explicit InstanceNorm2d(int64_t features, double epsilon = 1e-5, bool with_affine = false)
      : InstanceNorm("InstanceNorm2d", 4, features, epsilon, with_affine) {}
  explicit InstanceNorm2d(const InstanceNormOptions& o)
      : InstanceNorm2d(o.features, o.eps, o.affine) {}
};

// [N, C r^2, H, W] -> [N, C, H r, W r] (F::pixel_shuffle), and back.
class PixelShuffle : public Module {
 public:
  explicit PixelShuffle(int64_t upscale_factor);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t upscale_factor;
};

class PixelUnshuffle : public Module {
 public:
  explicit PixelUnshuffle(int64_t downscale_factor);
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t downscale_factor;
};

// ---- activations --------------------------------------------------------------------------

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& input) override;
};

class Sigmoid : public Module {
 public:
  Sigmoid() : Module("Sigmoid") {}
  Tensor forward(const Tensor& input) override;
};

class Tanh : public Module {
 public:
  Tanh() : Module("Tanh") {}
  Tensor forward(const Tensor& input) override;
};

class GELU : public Module {
 public:
  GELU() : Module("GELU") {}
  Tensor forward(const Tensor& input) override;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01) : Module("LeakyReLU"), negative_slope(slope) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  double negative_slope;
};

class ELU : public Module {
 public:
  explicit ELU(double alpha_value = 1.0) : Module("ELU"), alpha(alpha_value) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  double alpha;
};

class Softplus : public Module {
 public:
  explicit Softplus(double beta_value = 1.0) : Module("Softplus"), beta(beta_value) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  double beta;
};

class Softmax : public Module {
 public:
  explicit Softmax(int64_t axis) : Module("Softmax"), dim(axis) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t dim;
};

class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(int64_t axis) : Module("LogSoftmax"), dim(axis) {}
  Tensor forward(const Tensor& input) override;
  std::string extra_repr() const override;
  int64_t dim;
};

}  // namespace strata::nn
