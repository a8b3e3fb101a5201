// The neural-network functional API: activations, linear and convolution, pooling,
// normalization, dropout, embedding and losses, as torch.nn.functional names them. Every
// function validates its inputs before any kernel runs (a strata::Error names the function,
// the shapes, dtypes and devices), runs on the inputs' device, and is differentiable through
// the tape. Inputs are float32 or float64; class indices are int64.
// Usage: `namespace F = strata::nn::functional;  auto y = F::relu(F::linear(x, w, b));`
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "strata/generator.h"
#include "strata/tensor.h"

namespace strata::nn::functional {

// A height/width pair that a single number also gives: `conv2d(x, w, b, 2)` means stride
// (2, 2), `conv2d(x, w, b, {2, 1})` stride 2 in height and 1 in width.
struct Size2 {
  int64_t h = 1, w = 1;
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT(google-explicit-constructor)
  Size2(int64_t height, int64_t width) : h(height), w(width) {}
};

// ---- activations (elementwise unless stated) ------------------------------------------------
Tensor relu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor elu(const Tensor& x, double alpha = 1.0);
// log(1 + exp(beta * x)) / beta, and x itself where beta * x > 20 (as PyTorch).
Tensor softplus(const Tensor& x, double beta = 1.0);
// The exact form x * Phi(x), Phi the standard normal CDF.
Tensor gelu(const Tensor& x);
// Along `dim` (negative counts from the end), stable for large inputs.
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Maxout: splits axis `dim` of size units * pieces into `units` groups of `pieces`
// consecutive entries and keeps each group's maximum, so that axis becomes `units` long.
Tensor maxout(const Tensor& x, int64_t pieces, int64_t dim = -1);

// ---- linear and convolution -----------------------------------------------------------------
// x [..., in_features], weight [out_features, in_features], bias [out_features] or undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
// x [N, C, L] (or unbatched [C, L]), weight [K, C / groups, R], bias [K] or undefined.
Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1);
// The transposed convolution ("deconvolution"): the gradient of conv2d with respect to its
// input, as a layer. x [N, C_in, H, W] (or unbatched [C_in, H, W]), weight [C_in,
// C_out / groups, R, S] (PyTorch's layout), bias [C_out] or undefined. Output H' = (H - 1) *
// stride - 2 * padding + dilation * (R - 1) + output_padding + 1 (W' likewise); output_padding
// (smaller than stride or dilation) picks among the sizes a strided conv2d maps to H.
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
                        Size2 stride = 1, Size2 padding = 0, Size2 output_padding = 0,
                        int64_t groups = 1, Size2 dilation = 1);
// x [N, C, H, W] (or unbatched [C, H, W]), weight [K, C / groups, R, S], bias [K] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Size2 stride = 1, Size2 padding = 0, Size2 dilation = 1, int64_t groups = 1);

// ---- pooling (stride defaults to the kernel size; padding at most half the kernel) ----------
// Max pooling: the window of output i covers i * stride - padding + a * dilation for a in
// [0, kernel_size), and input positions outside [0, L) are skipped (-inf padding). Output
// length floor((L + 2 padding - dilation (kernel_size - 1) - 1) / stride) + 1, or with
// ceil_mode the ceiling, less a last window that would start past the input and its left
// padding (PyTorch's rule). Within a window a tie goes to the first maximum and a NaN wins.
// x [N, C, L] (or [C, L]) for 1-D, [N, C, H, W] (or [C, H, W]) for 2-D.
Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = {},
                  int64_t padding = 0, int64_t dilation = 1, bool ceil_mode = false);
Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = {},
                  Size2 padding = 0, Size2 dilation = 1, bool ceil_mode = false);
// As max_pool1d/2d, also returning where each maximum came from (PyTorch's
// return_indices=True): {values, indices}, indices int64 of the values' shape holding the
// position along L (1-D) or h * W + w within the (n, c) plane (2-D). Only the values carry
// gradients.
std::pair<Tensor, Tensor> max_pool1d_with_indices(const Tensor& x, int64_t kernel_size,
                                                  std::optional<int64_t> stride = {},
                                                  int64_t padding = 0, int64_t dilation = 1,
                                                  bool ceil_mode = false);
std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Size2 kernel_size,
                                                  std::optional<Size2> stride = {},
                                                  Size2 padding = 0, Size2 dilation = 1,
                                                  bool ceil_mode = false);
// The partial inverse of max pooling: zeros of the output size with x put back at indices
// (as max_pool*_with_indices returned them, of x's shape). Output size (in - 1) * stride -
// 2 * padding + kernel_size per axis, or output_size, which must lie within stride of it.
// Repeated indices in a plane get the mean of their values (PyTorch leaves them undefined);
// every input receives the gradient of the position it went to. Indices out of the output
// plane throw.
Tensor max_unpool1d(const Tensor& x, const Tensor& indices, int64_t kernel_size,
                    std::optional<int64_t> stride = {}, int64_t padding = 0,
                    std::optional<int64_t> output_size = {});
Tensor max_unpool2d(const Tensor& x, const Tensor& indices, Size2 kernel_size,
                    std::optional<Size2> stride = {}, Size2 padding = 0,
                    std::optional<Size2> output_size = {});
// count_include_pad: whether zero padding counts in each window's divisor (PyTorch's default).
Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride = {},
                  int64_t padding = 0, bool count_include_pad = true);
Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride = {},
                  Size2 padding = 0, bool count_include_pad = true);
// Output [N, C, output_size.h, output_size.w] whatever the input size; window i along an axis
// of length L covers [floor(i * L / out), ceil((i + 1) * L / out)), as PyTorch's.
Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size);
// The maximum over the same windows as adaptive_avg_pool2d. Output [N, C, output_size.h,
// output_size.w]. Where the output size divides the input size it is max_pool2d (whose
// gradient goes to one maximum); otherwise a max per window (which shares it among ties).
Tensor adaptive_max_pool2d(const Tensor& x, Size2 output_size);

// ---- volumes (3-D convolution and pooling) ----------------------------------------------------
// A size per axis of a volume (depth, height, width); one number is all three.
struct Size3 {
  int64_t d = 1, h = 1, w = 1;
  Size3(int64_t all) : d(all), h(all), w(all) {}  // NOLINT(google-explicit-constructor)
  Size3(int64_t depth, int64_t height, int64_t width) : d(depth), h(height), w(width) {}
};

// x [N, C, D, H, W] (or unbatched [C, D, H, W]), weight [K, C / groups, T, R, S], bias [K] or
// undefined -> [N, K, D', H', W'], sizes as conv2d's per axis. Composed of one conv2d per
// kernel depth slice over [N * D', C, H, W] (cuDNN or im2col per slice), summed: its gradients,
// second derivatives included, are conv2d's.
Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Size3 stride = 1, Size3 padding = 0, Size3 dilation = 1, int64_t groups = 1);
// Max and average pooling over [N, C, D, H, W] (or [C, D, H, W]) windows, as PyTorch's (floor
// mode; the stride defaults to the kernel). Composed of max_pool2d / avg_pool2d per depth
// slice.
Tensor max_pool3d(const Tensor& x, Size3 kernel_size, std::optional<Size3> stride = {},
                  Size3 padding = 0, Size3 dilation = 1);
Tensor avg_pool3d(const Tensor& x, Size3 kernel_size, std::optional<Size3> stride = {},
                  Size3 padding = 0, bool count_include_pad = true);

// ---- resizing ---------------------------------------------------------------------------------
enum class InterpolateMode { Nearest, Bilinear };

// A scale per spatial axis; one number scales both.
struct Scale2 {
  double h = 1.0, w = 1.0;
  Scale2(double both) : h(both), w(both) {}  // NOLINT(google-explicit-constructor)
  Scale2(double height, double width) : h(height), w(width) {}
};

// What interpolate does: exactly one of size (the output's H and W) and scale_factor (the
// output is floor(input size * scale)).
struct InterpolateOptions {
  std::optional<Size2> size = std::nullopt;
  std::optional<Scale2> scale_factor = std::nullopt;
  InterpolateMode mode = InterpolateMode::Nearest;
  // Bilinear only: whether the corner pixels of input and output line up (PyTorch's
  // align_corners); otherwise pixel centers are mapped, as PyTorch's default.
  bool align_corners = false;
};

// Resizes x [N, C, H, W] (or unbatched [C, H, W]) as PyTorch's F.interpolate (nearest, or
// bilinear with either corner rule). Nearest picks rows and columns (index_select); bilinear
// is separable, A_h @ x @ A_w^T with constant interpolation matrices. Both are differentiable
// to any order. `F::interpolate(x, {.scale_factor = 2.0})`.
Tensor interpolate(const Tensor& x, const InterpolateOptions& options);

// ---- normalization --------------------------------------------------------------------------
// x [N, C] or [N, C, *]. In training, normalizes with the batch statistics and, when
// running_mean/running_var are defined, updates them in place (running_var with the unbiased
// variance); otherwise normalizes with the running statistics. weight/bias [C] or undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                  bool training = false, double momentum = 0.1, double eps = 1e-5);
// Normalizes over the trailing dimensions named by normalized_shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);

// x [N, C, *] normalized over each of num_groups groups of C / num_groups channels (and every
// position) per example, with the biased variance; weight/bias [C] or undefined.
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// x [N, C, *] normalized per example and channel over the positions (group_norm with one
// group per channel); PyTorch's default, without running statistics.
Tensor instance_norm(const Tensor& x, const Tensor& weight = Tensor(), const Tensor& bias = Tensor(),
                     double eps = 1e-5);

// ---- padding and reshaping ------------------------------------------------------------------
enum class PadMode {
  Constant,   // `value` outside (negative padding crops)
  Reflect,    // mirrored without repeating the edge: [a b c] pads to [c b | a b c | b a]
  Replicate,  // the edge repeated: [a b c] pads to [a a | a b c | c c]
};
// torch.nn.functional.pad: `pad` holds (before, after) pairs from the last dimension
// backwards: {1, 2} pads the last dimension with 1 before and 2 after, {1, 1, 2, 2} also the
// one before it. Reflect needs each padding smaller than its dimension; reflect and replicate
// need non-negative paddings and a non-empty dimension.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, PadMode mode = PadMode::Constant,
           double value = 0.0);
// [N, C * r^2, H, W] -> [N, C, H * r, W * r] (sub-pixel convolution), and its inverse.
Tensor pixel_shuffle(const Tensor& x, int64_t upscale_factor);
Tensor pixel_unshuffle(const Tensor& x, int64_t downscale_factor);

// ---- dropout and embedding ------------------------------------------------------------------
// Inverted dropout: in training, zeroes each element with probability p and scales the rest
// by 1 / (1 - p); identity otherwise. The mask comes from `generator` (default_generator()
// when null), so the same seed drops the same elements on the CPU and on CUDA.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true,
               Generator* generator = nullptr);
// Rows of weight [num_embeddings, dim] picked by int64 indices of any shape: output
// indices.shape + [dim]. The row at padding_idx gets no gradient.
Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<int64_t> padding_idx = std::nullopt);

// ---- losses ---------------------------------------------------------------------------------
// NOTE: validation reads a few numbers on the host (one device sync on CUDA): the min/max of
// class-index targets (range check), of binary_cross_entropy's probabilities (in [0, 1]), and
// of the -1/+1 targets of hinge, exponential, perceptron and zero_one_error.
// Mean averages over elements (for weighted class losses: divides by the summed weights of the
// targets, as PyTorch); Sum adds; None keeps one loss per sample.
enum class Reduction { Mean, Sum, None };

struct CrossEntropyOptions {
  Tensor weight;               // [C] per-class weights, or undefined
  int64_t ignore_index = -100; // class-index targets equal to it add nothing
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
};
// logits [N, C] or [N, C, d...]; target either int64 class indices [N] / [N, d...] or class
// probabilities (one-hot or soft) with logits' shape and dtype.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     const CrossEntropyOptions& options = {});
// log_probs [N, C] or [N, C, d...], target int64 [N] / [N, d...].
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight = Tensor(),
                Reduction reduction = Reduction::Mean, int64_t ignore_index = -100);
// Log loss on probabilities in [0, 1] (logs are clamped at -100, as PyTorch).
Tensor binary_cross_entropy(const Tensor& probs, const Tensor& target,
                            const Tensor& weight = Tensor(),
                            Reduction reduction = Reduction::Mean);
// The same on logits, computed stably; pos_weight [C] scales the positive term.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const Tensor& weight = Tensor(),
                                        Reduction reduction = Reduction::Mean,
                                        const Tensor& pos_weight = Tensor());
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// 0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta).
Tensor huber_loss(const Tensor& input, const Tensor& target,
                  Reduction reduction = Reduction::Mean, double delta = 1.0);
// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (huber_loss / beta).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::Mean, double beta = 1.0);
// Binary hinge on scores f and targets y in {-1, +1}: max(0, margin - y f).
Tensor hinge_loss(const Tensor& scores, const Tensor& target,
                  Reduction reduction = Reduction::Mean, double margin = 1.0);
// Multi-class hinge (PyTorch's multi_margin_loss, p = 1): scores [N, C], int64 target [N];
// per sample sum over j != y of max(0, margin - f_y + f_j) / C.
Tensor multi_margin_loss(const Tensor& scores, const Tensor& target,
                         Reduction reduction = Reduction::Mean, double margin = 1.0,
                         const Tensor& weight = Tensor());
// exp(-y f) for targets y in {-1, +1} (AdaBoost's loss).
Tensor exponential_loss(const Tensor& scores, const Tensor& target,
                        Reduction reduction = Reduction::Mean);
// max(0, -y f) for targets y in {-1, +1} (the perceptron criterion).
Tensor perceptron_loss(const Tensor& scores, const Tensor& target,
                       Reduction reduction = Reduction::Mean);
// The fraction of misclassified samples (a metric: not differentiable, returns a 0-d tensor of
// scores' dtype). scores [N, C] with int64 targets [N]: argmax != target; scores [N] with
// targets in {-1, +1}: sign(f) != y (f = 0 counts as an error).
Tensor zero_one_error(const Tensor& scores, const Tensor& target);

}  // namespace strata::nn::functional
