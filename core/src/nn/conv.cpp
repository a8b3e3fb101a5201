// nn::functional::conv1d and conv2d: validate, run the backend's conv2d kernels, record the
// backward. conv1d is conv2d over [N, C, 1, L]; an unbatched input ([C, L] / [C, H, W]) runs
// as a batch of one, as PyTorch's. The backward: grad x by conv2d_backward_data, grad w by
// conv2d_backward_filter, grad bias = grad_out summed over N, P and Q; each of the three maps
// is itself differentiable, for double backward.
#include <string>

#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// "(input [64,3,32,32] f32 cpu, weight [6,1,5,5] f32 cpu)" and the bias when there is one.
std::string operands(const Tensor& x, const Tensor& w, const Tensor& bias) {
  std::string s = "(input " + detail::describe(x) + ", weight " + detail::describe(w);
  if (bias.defined()) s += ", bias " + detail::describe(bias);
  return s + ")";
}

// Checks everything conv1d/conv2d need before a kernel runs. `spatial` is 1 or 2; for conv1d
// the params' height entries are the identity (stride 1, no padding, dilation 1).
void check_conv(const char* op, int64_t spatial, const Tensor& x, const Tensor& w,
                const Tensor& bias, const Conv2dParams& p) {
  detail::check_defined(x, op, "input");
  detail::check_defined(w, op, "weight");
  const int64_t rank = spatial + 2;
  STRATA_CHECK(x.dim() == rank || x.dim() == rank - 1, op, ": expected a ", rank - 1,
               "-D (unbatched) or ", rank, "-D (batched) input, got ", operands(x, w, bias));
  STRATA_CHECK(w.dim() == rank, op, ": expected a ", rank, "-D weight, got ", operands(x, w, bias));
  detail::check_same_device(x, w, op);
  if (bias.defined()) detail::check_same_device(x, bias, op);
  STRATA_CHECK(is_floating(x.dtype()) && w.dtype() == x.dtype() &&
                   (!bias.defined() || bias.dtype() == x.dtype()),
               op, ": expected floating input, weight and bias of one dtype, got ",
               operands(x, w, bias));
  STRATA_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op, ": stride must be >= 1, got ",
               spatial == 1 ? "" : std::to_string(p.stride_h) + "x", p.stride_w);
  STRATA_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, op, ": dilation must be >= 1, got ",
               spatial == 1 ? "" : std::to_string(p.dilation_h) + "x", p.dilation_w);
  STRATA_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be >= 0, got ",
               spatial == 1 ? "" : std::to_string(p.pad_h) + "x", p.pad_w);
  STRATA_CHECK(p.groups >= 1, op, ": groups must be >= 1, got ", p.groups);
  for (int64_t d = 0; d < w.dim(); ++d) {
    STRATA_CHECK(w.size(d) >= 1, op, ": weight has an empty dimension ", operands(x, w, bias));
  }
  const int64_t batched = x.dim() == rank ? 1 : 0;
  const int64_t channels = x.size(batched);
  const int64_t out_channels = w.size(0);
  STRATA_CHECK(out_channels % p.groups == 0, op, ": groups ", p.groups,
               " does not divide the weight's ", out_channels, " output channels ",
               operands(x, w, bias));
  STRATA_CHECK(channels % p.groups == 0, op, ": groups ", p.groups, " does not divide the input's ",
               channels, " channels ", operands(x, w, bias));
  STRATA_CHECK(channels == w.size(1) * p.groups, op, ": input has ", channels,
               " channels but weight expects ", w.size(1) * p.groups,
               p.groups > 1 ? " (" + std::to_string(w.size(1)) + " per group times " +
                                  std::to_string(p.groups) + " groups) "
                            : std::string(" "),
               operands(x, w, bias));
  if (bias.defined()) {
    STRATA_CHECK(bias.dim() == 1 && bias.size(0) == out_channels, op,
                 ": expected a bias of shape [", out_channels, "] ", operands(x, w, bias));
  }
  // Spatial sizes: the kernel, dilated, must fit in the padded input.
  const int64_t in_w = x.size(-1), kernel_w = w.size(-1);
  const int64_t in_h = spatial == 2 ? x.size(-2) : 1, kernel_h = spatial == 2 ? w.size(-2) : 1;
  const int64_t eff_h = p.dilation_h * (kernel_h - 1) + 1;
  const int64_t eff_w = p.dilation_w * (kernel_w - 1) + 1;
  const bool fits = in_h + 2 * p.pad_h >= eff_h && in_w + 2 * p.pad_w >= eff_w;
  if (spatial == 2) {
    STRATA_CHECK(fits, op, ": kernel ", kernel_h, "x", kernel_w, " (", eff_h, "x", eff_w,
                 " dilated) is larger than the padded input ", in_h + 2 * p.pad_h, "x",
                 in_w + 2 * p.pad_w, " ", operands(x, w, bias));
  } else {
    STRATA_CHECK(fits, op, ": kernel ", kernel_w, " (", eff_w,
                 " dilated) is larger than the padded input ", in_w + 2 * p.pad_w, " ",
                 operands(x, w, bias));
  }
}

// The convolution's three bilinear maps, each differentiable through the other two, so a
// graph-creating pass (double backward) differentiates a conv to any order. For y = C(x, w)
// and any g shaped as y: <g, C(x, w)> = <D(g, w), x> = <W(x, g), w>, where D is the gradient
// with respect to x (conv2d_backward_data, a transposed convolution) and W the one with respect
// to w (conv2d_backward_filter). All take validated 4-D tensors.
Tensor conv_map(const Tensor& x, const Tensor& w, const Conv2dParams& p);
Tensor conv_data_map(const Tensor& g, const Tensor& w, const Shape& x_shape, const Conv2dParams& p);
Tensor conv_filter_map(const Tensor& x, const Tensor& g, const Shape& w_shape,
                       const Conv2dParams& p);

Shape conv_out_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  const int64_t eff_r = p.dilation_h * (w[2] - 1) + 1;  // the dilated kernel's extent
  const int64_t eff_s = p.dilation_w * (w[3] - 1) + 1;
  return {x[0], w[0], (x[2] + 2 * p.pad_h - eff_r) / p.stride_h + 1,
          (x[3] + 2 * p.pad_w - eff_s) / p.stride_w + 1};
}

Tensor conv_map(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  Tensor out = Tensor::empty(conv_out_shape(x.shape(), w.shape(), p), x.options());
  detail::backend_of(out).conv2d_forward(out, x.detach().contiguous(), w.detach().contiguous(),
                                         Tensor(), p);
  if (needs_grad({&x, &w})) {
    record("conv2d", {x, w}, out, [x, w, p](const Tensor& g, const Needs& n) {
      return Grads{n[0] ? conv_data_map(g, w, x.shape(), p) : Tensor(),
                   n[1] ? conv_filter_map(x, g, w.shape(), p) : Tensor()};
    });
  }
  return out;
}

Tensor conv_data_map(const Tensor& g, const Tensor& w, const Shape& x_shape,
                     const Conv2dParams& p) {
  Tensor out = Tensor::empty(x_shape, g.options());
  detail::backend_of(out).conv2d_backward_data(out, g.detach().contiguous(),
                                               w.detach().contiguous(), p);
  if (needs_grad({&g, &w})) {
    record("conv2d_backward_data", {g, w}, out, [g, w, p](const Tensor& h, const Needs& n) {
      return Grads{n[0] ? conv_map(h, w, p) : Tensor(),
                   n[1] ? conv_filter_map(h, g, w.shape(), p) : Tensor()};
    });
  }
  return out;
}

Tensor conv_filter_map(const Tensor& x, const Tensor& g, const Shape& w_shape,
                       const Conv2dParams& p) {
  Tensor out = Tensor::empty(w_shape, g.options());
  detail::backend_of(out).conv2d_backward_filter(out, g.detach().contiguous(),
                                                 x.detach().contiguous(), p);
  if (needs_grad({&x, &g})) {
    record("conv2d_backward_filter", {x, g}, out, [x, g, p](const Tensor& h, const Needs& n) {
      return Grads{n[0] ? conv_data_map(g, h, x.shape(), p) : Tensor(),
                   n[1] ? conv_map(x, h, p) : Tensor()};
    });
  }
  return out;
}

// The convolution of validated 4-D x [N, C, H, W] and w [K, C/groups, R, S]. Its backward
// runs the kernels on the saved data, or, in a pass that creates a graph, the differentiable
// maps above on x and w themselves.
Tensor conv2d_4d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  // The kernels read contiguous data; the tape keeps the original tensors as inputs.
  const Tensor xc = x.detach().contiguous();
  const Tensor wc = w.detach().contiguous();
  const Tensor bc = bias.defined() ? bias.detach().contiguous() : Tensor();
  Tensor out = Tensor::empty(conv_out_shape(x.shape(), w.shape(), p), x.options());
  Backend& backend = detail::backend_of(out);
  backend.conv2d_forward(out, xc, wc, bc, p);
  if (needs_grad({&x, &w, &bias})) {
    std::vector<Tensor> inputs{x, w};
    if (bias.defined()) inputs.push_back(bias);
    // xc is x's data cut from the tape; x itself is kept only for a graph-creating pass (it
    // shares xc's storage unless x was not contiguous).
    record("conv2d", inputs, out,
           [x, xc, ws = amp::SavedTensor(w), w_shape = w.shape(), p](const Tensor& g,
                                                                     const Needs& needs) {
             // g: [N, K, P, Q] like out.
             Grads grads(needs.size());
             if (needs.size() > 2 && needs[2]) grads[2] = g.sum({0, 2, 3});
             // The maps run their kernels alone unless the pass creates a graph, which reads
             // x itself rather than its copy cut from the tape.
             const Tensor& input = GradMode::is_enabled() ? x : xc;
             if (needs[0]) grads[0] = conv_data_map(g, ws.get("conv2d"), x.shape(), p);
             if (needs[1]) grads[1] = conv_filter_map(input, g, w_shape, p);
             return grads;
           });
  }
  return out;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride,
              Size2 padding, Size2 dilation, int64_t groups) {
  if (amp::needs_low_precision({&x, &weight, &bias})) {
    return conv2d(amp::cast_to_low_precision(x), amp::cast_to_low_precision(weight),
                  amp::cast_to_low_precision(bias), stride, padding, dilation, groups);
  }
  const Conv2dParams p{stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups};
  check_conv("conv2d", 2, x, weight, bias, p);
  if (x.dim() == 3) return conv2d_4d(x.unsqueeze(0), weight, bias, p).squeeze(0);
  return conv2d_4d(x, weight, bias, p);
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride,
              int64_t padding, int64_t dilation, int64_t groups) {
  if (amp::needs_low_precision({&x, &weight, &bias})) {
    return conv1d(amp::cast_to_low_precision(x), amp::cast_to_low_precision(weight),
                  amp::cast_to_low_precision(bias), stride, padding, dilation, groups);
  }
  const Conv2dParams p{1, stride, 0, padding, 1, dilation, groups};
  check_conv("conv1d", 1, x, weight, bias, p);
  // [N, C, L] -> [N, C, 1, L] and [K, C/groups, R] -> [K, C/groups, 1, R].
  const Tensor x4 = x.dim() == 2 ? x.unsqueeze(0).unsqueeze(2) : x.unsqueeze(2);
  const Tensor out = conv2d_4d(x4, weight.unsqueeze(2), bias, p).squeeze(2);
  return x.dim() == 2 ? out.squeeze(0) : out;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size2 stride,
                        Size2 padding, Size2 output_padding, int64_t groups, Size2 dilation) {
  if (amp::needs_low_precision({&x, &weight, &bias})) {
    return conv_transpose2d(amp::cast_to_low_precision(x), amp::cast_to_low_precision(weight),
                            amp::cast_to_low_precision(bias), stride, padding, output_padding,
                            groups, dilation);
  }
  const char* op = "conv_transpose2d";
  detail::check_defined(x, op, "input");
  detail::check_defined(weight, op, "weight");
  STRATA_CHECK(x.dim() == 3 || x.dim() == 4, op,
               ": expected a 3-D (unbatched) or 4-D (batched) input, got ",
               operands(x, weight, bias));
  STRATA_CHECK(weight.dim() == 4, op, ": expected a 4-D weight [in, out / groups, R, S], got ",
               operands(x, weight, bias));
  detail::check_same_device(x, weight, op);
  if (bias.defined()) detail::check_same_device(x, bias, op);
  STRATA_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype() &&
                   (!bias.defined() || bias.dtype() == x.dtype()),
               op, ": expected floating tensors of one dtype, got ", operands(x, weight, bias));
  STRATA_CHECK(groups >= 1, op, ": groups must be positive, got ", groups);
  STRATA_CHECK(stride.h >= 1 && stride.w >= 1 && dilation.h >= 1 && dilation.w >= 1 &&
                   padding.h >= 0 && padding.w >= 0,
               op, ": stride and dilation must be positive and padding non-negative ",
               operands(x, weight, bias));
  const Tensor x4 = x.dim() == 3 ? x.unsqueeze(0) : x;
  const int64_t in_channels = x4.size(1);
  STRATA_CHECK(weight.size(0) == in_channels && in_channels % groups == 0, op, ": input has ",
               in_channels, " channels but the weight expects ", weight.size(0),
               " (to be split into ", groups, " groups) ", operands(x, weight, bias));
  const int64_t out_channels = weight.size(1) * groups;
  if (bias.defined()) {
    STRATA_CHECK(bias.dim() == 1 && bias.size(0) == out_channels, op,
                 ": expected a bias of shape [", out_channels, "] ", operands(x, weight, bias));
  }
  const bool padding_fits = output_padding.h >= 0 && output_padding.w >= 0 &&
                            (output_padding.h < stride.h || output_padding.h < dilation.h) &&
                            (output_padding.w < stride.w || output_padding.w < dilation.w);
  STRATA_CHECK(padding_fits, op, ": output_padding (", output_padding.h, ", ", output_padding.w,
               ") must be non-negative and smaller than either stride or dilation");
  const int64_t out_h = (x4.size(2) - 1) * stride.h - 2 * padding.h +
                        dilation.h * (weight.size(2) - 1) + output_padding.h + 1;
  const int64_t out_w = (x4.size(3) - 1) * stride.w - 2 * padding.w +
                        dilation.w * (weight.size(3) - 1) + output_padding.w + 1;
  STRATA_CHECK(out_h >= 1 && out_w >= 1, op, ": the output would be ", out_h, "x", out_w, " ",
               operands(x, weight, bias));
  // The conv2d whose input gradient this is: weight [C_in, C_out / groups, R, S] is its
  // [K, C / groups, R, S], and x its output gradient.
  const Conv2dParams p{stride.h, stride.w, padding.h, padding.w, dilation.h, dilation.w, groups};
  Tensor out = conv_data_map(x4, weight, {x4.size(0), out_channels, out_h, out_w}, p);
  if (bias.defined()) out = add(out, bias.reshape({1, out_channels, 1, 1}));
  return x.dim() == 3 ? out.squeeze(0) : out;
}

}  // namespace strata::nn::functional
