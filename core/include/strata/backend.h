// The one interface every backend implements (CPU in cpu_fallback/, CUDA in cuda/).
// Rules every kernel keeps:
// - Inputs are already validated by the op in core/: kernels check nothing about shapes or
//   dtypes beyond what the contract below promises, and record nothing on the tape.
// - Outputs are allocated by the caller on this backend's device. Unless a kernel says
//   otherwise, `out` is contiguous and inputs are strided views already broadcast to the
//   output's shape (stride 0 on broadcast dimensions), with the dtype stated.
// - `out` may be the same tensor as an input of an elementwise kernel (in-place update).
// - Random kernels follow the rule in philox.h, so every backend draws the same numbers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "strata/device.h"
#include "strata/dtype.h"

namespace strata {

class Tensor;

enum class UnaryOp : uint8_t {
  Neg, Abs, Sign, Exp, Log, Sqrt, Reciprocal,
};

enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum,
  // Python's // and %: the quotient rounds toward -inf, the remainder takes the divisor's sign.
  FloorDivide, Remainder,
  // Comparisons write bool.
  Eq, Ne, Lt, Le, Gt, Ge,
};

inline bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq; }

enum class ReduceOp : uint8_t { Sum, Max, Min, ArgMax, ArgMin };

// Inclusive running sum or product along an axis (Backend::scan).
enum class ScanOp : uint8_t { Sum, Prod };

// ---- neural-network kernel parameters ---------------------------------------------------
// A 2-D convolution (a 1-D one is a 2-D one with height 1): x [N, C, H, W], w [K, C/groups,
// R, S], out [N, K, P, Q] with P = (H + 2*pad_h - dilation_h*(R-1) - 1) / stride_h + 1 and Q
// alike. The op in core/ has checked that P, Q >= 1 and that groups divides C and K.
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// A 2-D pooling window: x [N, C, H, W], out [N, C, P, Q], with P and Q taken from out's shape
// (core/ decides them, ceil_mode included). The window of output (i, j) covers rows
// i*stride_h - pad_h + a*dilation_h for a in [0, kernel_h), and columns alike; positions
// outside the input are skipped (max pooling's -inf padding). core/ has checked that
// pad <= kernel / 2 and that every window holds at least one in-bounds element.
struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
};

// Pointwise activations with a kernel of their own. `alpha` is the slope of LeakyRelu, the
// alpha of Elu and the beta of Softplus (which, as PyTorch's, is linear where beta*x > 20);
// the others ignore it. Gelu is the exact (erf) form.
enum class Activation : uint8_t { Relu, Sigmoid, Tanh, LeakyRelu, Elu, Softplus, Gelu };

// The recurrence of a stack of recurrent layers (see rnn_forward):
// - Tanh / Relu (Elman): h' = act(W_ih x + b_ih + W_hh h + b_hh).
// - Lstm: gates i, f, g, o = chunks of W_ih x + b_ih + W_hh h + b_hh; c' = σ(f) c + σ(i)
//   tanh(g), h' = σ(o) tanh(c').
// - Gru: r, z, n chunks; r = σ(x_r + h_r), z = σ(x_z + h_z), n = tanh(x_n + r ⊙ h_n),
//   h' = (1 - z) n + z h, where x_* = chunks of W_ih x + b_ih and h_* of W_hh h + b_hh.
enum class RnnMode : uint8_t { Tanh, Relu, Lstm, Gru };

// The number of gate blocks in a weight's rows: 4 for Lstm, 3 for Gru, else 1.
constexpr int64_t rnn_gate_count(RnnMode mode) {
  return mode == RnnMode::Lstm ? 4 : mode == RnnMode::Gru ? 3 : 1;
}

// A stack of num_layers layers over a time-major batch x [seq_len, batch, input_size]. Layer
// l > 0 reads layer l-1's output (hidden_size * directions features). With bidirectional, each
// layer runs a forward and a reverse direction and concatenates their outputs per step
// (forward first). `lengths`, when not empty, gives each batch row's length (1..seq_len, any
// order): row b is read at steps [0, lengths[b]) only; the reverse direction starts at step
// lengths[b]-1; its outputs at steps >= lengths[b] are zero and its final state is the one
// after its last valid step (PyTorch's packed-sequence semantics).
struct RnnParams {
  RnnMode mode = RnnMode::Lstm;
  int64_t seq_len = 0, batch = 0, input_size = 0, hidden_size = 0;
  int64_t num_layers = 1;
  bool bidirectional = false;
  std::vector<int64_t> lengths;  // empty: every row has seq_len steps

  int64_t directions() const { return bidirectional ? 2 : 1; }
  int64_t gates() const { return rnn_gate_count(mode); }
};

// ---- optimizer updates ------------------------------------------------------------------------
// The first-order optimizers of strata/optim.h, as one kernel each. The per-parameter state
// tensors (state[k] of Backend::optimizer_update, zeros on the first step unless noted) are:
//   Sgd      [momentum_buffer]                 (only read when momentum != 0)
//   Adagrad  [sum]                             (starts at initial_accumulator_value)
//   Adadelta [square_avg, acc_delta]
//   RmsProp  [square_avg, momentum_buffer, grad_avg]  (the last two only read when used)
//   Adam     [exp_avg, exp_avg_sq, max_exp_avg_sq]    (Adam, AdamW, AMSGrad; the last: amsgrad)
//   Adamax   [exp_avg, exp_inf]
//   NAdam    [exp_avg, exp_avg_sq]
enum class OptimizerKind : uint8_t { Sgd, Adagrad, Adadelta, RmsProp, Adam, Adamax, NAdam };

// The hyperparameters of one update. Per element, with p the parameter, g its gradient and
// t = steps[i]:
//   g = maximize ? -g : g
//   p = p * (1 - lr * decoupled_weight_decay)          (AdamW's decay; 0 leaves p)
//   g = g + weight_decay * p + l1 * sign(p)            (L2 coupled into the gradient, L1)
// then, as PyTorch computes them:
//   Sgd      if momentum != 0: buf = (t == 1 ? g : momentum * buf + (1 - dampening) * g),
//            g = nesterov ? g + momentum * buf : buf;   p -= lr * g
//   Adagrad  sum += g²;  p -= lr / (1 + (t - 1) * lr_decay) * g / (√sum + eps)
//   Adadelta sq = rho sq + (1 - rho) g²;  d = √(acc + eps) / √(sq + eps) * g;
//            acc = rho acc + (1 - rho) d²;  p -= lr * d
//   RmsProp  sq = alpha sq + (1 - alpha) g²;  centered: ga = alpha ga + (1 - alpha) g,
//            avg = √(sq - ga²) + eps, else avg = √sq + eps;
//            momentum != 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg
//   Adam     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g²;
//            amsgrad: vmax = max(vmax, v), v̂ = vmax, else v̂ = v;
//            p -= lr / (1 - beta1^t) * m / (√v̂ / √(1 - beta2^t) + eps)
//   Adamax   m = beta1 m + (1 - beta1) g;  u = max(beta2 u, |g| + eps);
//            p -= lr / (1 - beta1^t) * m / u
//   NAdam    μ_t = beta1 (1 - ½ 0.96^(t ψ)), μ_{t+1} likewise (ψ = momentum_decay);
//            m, v as Adam;  d = √(v / (1 - beta2^t)) + eps;
//            p -= lr (1 - μ_t) / (1 - Π_t) g / d + lr μ_{t+1} / (1 - Π_t μ_{t+1}) m / d
//            with Π_t = mu_products[i], the product μ_1 ... μ_t (kept by the optimizer).
struct OptimizerUpdate {
  OptimizerKind kind = OptimizerKind::Sgd;
  double lr = 0.0;
  double weight_decay = 0.0;            // coupled L2
  double decoupled_weight_decay = 0.0;  // AdamW
  double l1 = 0.0;
  bool maximize = false;
  double momentum = 0.0;    // Sgd, RmsProp
  double dampening = 0.0;   // Sgd
  bool nesterov = false;    // Sgd
  double lr_decay = 0.0;    // Adagrad
  double rho = 0.9;         // Adadelta
  double alpha = 0.99;      // RmsProp
  bool centered = false;    // RmsProp
  double beta1 = 0.9, beta2 = 0.999;  // Adam, Adamax, NAdam
  bool amsgrad = false;               // Adam
  double momentum_decay = 4e-3;       // NAdam
  double eps = 1e-8;
  std::vector<int64_t> steps;       // per tensor, >= 1
  std::vector<double> mu_products;  // NAdam: per tensor, Π_t including μ_t
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;

  // ---- memory -----------------------------------------------------------------------------
  // Returns memory for at least `nbytes` bytes (nbytes may be 0), aligned to 64 bytes.
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
  // Plain byte copies between host memory and this device, and within this device.
  virtual void copy_from_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t nbytes) = 0;
  virtual void copy_on_device(void* dst, const void* src, size_t nbytes) = 0;
  // Waits until every kernel queued on this device has finished.
  virtual void synchronize() = 0;

  // ---- elementwise ------------------------------------------------------------------------
  // dst[i] = convert(src[i]). dst and src have the same shape and any strides; dtypes may differ.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  // Every element of contiguous `out` = value (converted to out's dtype).
  virtual void fill(const Tensor& out, double value) = 0;
  // out[i] = start + i * step, for contiguous 1-D out of any numeric dtype.
  virtual void arange(const Tensor& out, double start, double step) = 0;
  // out = op(in); in has out's dtype.
  virtual void unary(UnaryOp op, const Tensor& out, const Tensor& in) = 0;
  // out = op(a, b); a and b share one dtype; out has it too, or bool for comparisons. Integer
  // division by zero (Div, FloorDivide, Remainder) gives 0: the ops refuse it before.
  virtual void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  // out = op(a, scalar), or op(scalar, a) when scalar_first; scalar is converted to a's dtype.
  virtual void binary_scalar(BinaryOp op, const Tensor& out, const Tensor& a, double scalar,
                             bool scalar_first) = 0;
  // out = cond ? a : b; cond is bool, a and b have out's dtype.
  virtual void where(const Tensor& out, const Tensor& cond, const Tensor& a,
                     const Tensor& b) = 0;

  // ---- reductions -------------------------------------------------------------------------
  // `in` is contiguous and read as [outer, size, inner]; `out` is contiguous [outer, inner].
  // Sum/Max/Min write in's dtype (Sum of bool/uint8 is never asked for: the op promotes
  // first); ArgMax/ArgMin write int64 indices in [0, size), the first one on ties.
  // size >= 1 always.
  virtual void reduce(ReduceOp op, const Tensor& out, const Tensor& in, int64_t outer,
                      int64_t size, int64_t inner) = 0;

  // ---- sorting ----------------------------------------------------------------------------
  // Sorts every row of contiguous `in`, read as [outer, size, inner], along its middle axis:
  // `values` (in's dtype) and `indices` (int64 positions in [0, size)) are contiguous and
  // shaped as in. Ascending, or descending when asked; NaN sorts above every number (last
  // ascending, first descending) and -0.0 ties with 0.0. The sort is stable: equal values keep
  // their order, so every backend gives the same indices. Any dtype; size >= 1.
  virtual void sort(const Tensor& values, const Tensor& indices, const Tensor& in, int64_t outer,
                    int64_t size, int64_t inner, bool descending) = 0;

  // ---- scans ------------------------------------------------------------------------------
  // out = the inclusive running sum (Sum) or product (Prod) of contiguous `in`, read as
  // [outer, size, inner], along its middle axis; out is contiguous, shaped as in and of its
  // dtype: float32, float64, float16, bfloat16 or int64 (the op promotes the others). The
  // running value is float64 for float32 and float64 (PyTorch's CPU kernel), float32 for the
  // 16-bit floats and wrapping 64-bit for int64, rounded once per output. size >= 1.
  virtual void scan(ScanOp op, const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
                    int64_t inner) = 0;

  // ---- linear algebra ---------------------------------------------------------------------
  // out[b] = a[b] @ b[b] (+ out[b] if accumulate), float32 or float64. out is contiguous
  // [B, M, N]; a is [B, M, K] and b is [B, K, N], each with any strides (batch stride 0 when
  // broadcast). A backend copies an operand whose inner matrix is neither row- nor
  // column-major contiguous.
  virtual void matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) = 0;

  // ---- indexing (every tensor contiguous; index is int64 and already range-checked) --------
  // out = in.index_select(dim, index): out.shape[dim] = index.numel().
  virtual void index_select(const Tensor& out, const Tensor& in, int64_t dim,
                            const Tensor& index) = 0;
  // out.index_select(dim, index) += src, accumulating over repeated indices.
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                         const Tensor& src) = 0;
  // out[..i..] = in[..index[..i..] along dim..]; index and out share a shape.
  virtual void gather(const Tensor& out, const Tensor& in, int64_t dim, const Tensor& index) = 0;
  // out[..index[..i..] along dim..] += src[..i..]; index and src share a shape.
  virtual void scatter_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src) = 0;
  // out[..index[..i..] along dim..] = src[..i..]; index and src share a shape; any dtype.
  // Where indices repeat, the CPU backend keeps the value that comes last in index's row-major
  // order; the CUDA backend keeps any one of them.
  virtual void scatter(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) = 0;

  // ---- neural-network kernels (float32/float64; every tensor contiguous) -------------------
  // out = conv(x, w) (+ bias[k] on channel k when bias is defined). Shapes: see Conv2dParams.
  virtual void conv2d_forward(const Tensor& out, const Tensor& x, const Tensor& w,
                              const Tensor& bias, const Conv2dParams& params) = 0;
  // grad_x = the gradient of conv(x, w) with respect to x, given grad_out (overwrites grad_x).
  virtual void conv2d_backward_data(const Tensor& grad_x, const Tensor& grad_out,
                                    const Tensor& w, const Conv2dParams& params) = 0;
  // grad_w = the gradient with respect to w, given grad_out and x (overwrites grad_w).
  virtual void conv2d_backward_filter(const Tensor& grad_w, const Tensor& grad_out,
                                      const Tensor& x, const Conv2dParams& params) = 0;

  // Max pooling over x [N, C, H, W] (see Pool2dParams): out [N, C, P, Q] = each window's
  // maximum, indices [N, C, P, Q] = where it was: int64 indices hold its flat position
  // h*W + w within the (n, c) plane (PyTorch's); uint8 indices (the tape's compact form, for
  // windows of at most 256 taps) hold its tap number t in the window, row-major: the tap at
  // row t / kernel_w, column t % kernel_w of the kernel. As PyTorch's kernel: start from -inf at
  // the window's first in-bounds position, scan row-major and take v when `v > best || isnan(v)` —
  // so a tie keeps the first maximum, a NaN wins and the last NaN is kept, an all -inf window gives
  // its first in-bounds position.
  virtual void max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                                  const Pool2dParams& params) = 0;
  // grad_x [N, C, H, W] (overwritten) = grad_out [N, C, P, Q] scatter-added through the
  // forward's indices (int64 or uint8, as the forward wrote them), plane by plane; params are
  // the forward's (they turn tap numbers into positions; a backend may also use them to find
  // which windows can hold a position).
  virtual void max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                   const Tensor& indices, const Pool2dParams& params) = 0;
  // Average pooling (dilation 1, windows within the padded input): each window's sum divided
  // by kernel_h * kernel_w when count_include_pad, else by its in-bounds element count.
  virtual void avg_pool2d_forward(const Tensor& out, const Tensor& x, const Pool2dParams& params,
                                  bool count_include_pad) = 0;
  // grad_x [N, C, H, W] (overwritten): each window's grad_out shared as the forward divided.
  virtual void avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                   const Pool2dParams& params, bool count_include_pad) = 0;

  // out = f(in), elementwise; out may be the same tensor as in.
  virtual void activation_forward(Activation act, const Tensor& out, const Tensor& in,
                                  double alpha) = 0;
  // grad_in = f'(in) * grad_out. Relu, sigmoid and tanh read their derivative from
  // `out` = f(in) and get `in` undefined; the other activations get `in` and may get `out`
  // undefined (the tape keeps only what the derivative reads).
  virtual void activation_backward(Activation act, const Tensor& grad_in,
                                   const Tensor& grad_out, const Tensor& in, const Tensor& out,
                                   double alpha) = 0;

  // Softmax (or log-softmax when `log`) along the middle axis of in read as [outer, size,
  // inner], computed stably (the max is subtracted first).
  virtual void softmax_forward(const Tensor& out, const Tensor& in, int64_t outer, int64_t size,
                               int64_t inner, bool log) = 0;
  // From the forward's output: grad_in = out * (grad_out - sum(grad_out * out)), or for
  // log-softmax grad_in = grad_out - exp(out) * sum(grad_out); sums along the size axis.
  virtual void softmax_backward(const Tensor& grad_in, const Tensor& grad_out, const Tensor& out,
                                int64_t outer, int64_t size, int64_t inner, bool log) = 0;

  // Batch normalization in training mode over x [N, C, S] (S = H*W, or 1 for [N, C] input).
  // Per channel c: mean and biased variance over N and S; save_mean[c] = mean, save_invstd[c]
  // = 1 / sqrt(var + eps); out = (x - mean) * invstd * weight[c] + bias[c]. When running_mean
  // is defined, running = (1 - momentum) * running + momentum * batch, with the unbiased
  // variance for running_var. weight and bias are always defined ([C]).
  virtual void batch_norm_forward(const Tensor& out, const Tensor& save_mean,
                                  const Tensor& save_invstd, const Tensor& running_mean,
                                  const Tensor& running_var, const Tensor& x,
                                  const Tensor& weight, const Tensor& bias, double momentum,
                                  double eps) = 0;
  // The gradients of batch_norm_forward's out with respect to x, weight and bias (each
  // overwritten), given the batch statistics it saved and the forward's own eps (cuDNN asks
  // for the forward's value; a backend that only uses save_invstd may ignore it).
  virtual void batch_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                   const Tensor& grad_bias, const Tensor& grad_out,
                                   const Tensor& x, const Tensor& weight,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   double eps) = 0;

  // ---- recurrent stacks (float32/float64; every tensor contiguous) ----------------------
  // `weights` holds 4 tensors per (layer, direction), layer-major, forward direction first:
  // w_ih [G*H, in_l], w_hh [G*H, H], b_ih [G*H], b_hh [G*H] with G = params.gates(), H =
  // hidden_size and in_l = input_size for layer 0, D*H above (D = directions). Biases are both
  // defined or both undefined (no bias). hx (and cx, Lstm only; undefined otherwise) are
  // [L*D, B, H], indexed layer * D + direction; they are always defined.
  // Writes y [T, B, D*H] (the last layer's outputs), hy and cy [L*D, B, H] (the final states;
  // cy undefined unless Lstm). When `reserve` is not null (training), the backend also puts
  // into *reserve a tensor of its own layout holding what rnn_backward needs.
  virtual void rnn_forward(const RnnParams& params, const std::vector<Tensor>& weights,
                           const Tensor& x, const Tensor& hx, const Tensor& cx, const Tensor& y,
                           const Tensor& hy, const Tensor& cy, Tensor* reserve) = 0;
  // The gradients of rnn_forward's outputs with respect to x, hx, cx and every weight, from
  // dy [T, B, D*H] and dhy, dcy [L*D, B, H] (dcy defined only for Lstm; entries of dy at
  // padded steps are ignored). dx, dhx, dcx and the dweights (one per weight, undefined where
  // the weight is) are overwritten; dx is zero at padded steps. x, hx, cx, y and `reserve` are
  // rnn_forward's own.
  virtual void rnn_backward(const RnnParams& params, const std::vector<Tensor>& weights,
                            const Tensor& x, const Tensor& hx, const Tensor& cx, const Tensor& y,
                            const Tensor& reserve, const Tensor& dy, const Tensor& dhy,
                            const Tensor& dcy, const Tensor& dx, const Tensor& dhx,
                            const Tensor& dcx, const std::vector<Tensor>& dweights) = 0;

  // ---- optimizer updates -------------------------------------------------------------------
  // One update of a list of parameters (one optimizer kind, one set of hyperparameters), in
  // place: params[i], grads[i] and state[k][i] are contiguous, of one shape per i, float32 or
  // float64, on this backend's device; grads are only read. u.steps[i] is parameter i's step
  // count including this one (1 on its first update). The formulas, in order, are
  // OptimizerUpdate's (below); the CUDA backend runs each dtype as one multi-tensor kernel
  // launch per up to 320 tensors (the kernel-parameter limit), the CPU backend as vectorized
  // loops.
  virtual void optimizer_update(const OptimizerUpdate& u, const std::vector<Tensor>& params,
                                const std::vector<Tensor>& grads,
                                const std::vector<std::vector<Tensor>>& state) = 0;

  // ---- mixed precision ---------------------------------------------------------------------
  // GradScaler's fused check-and-unscale (PyTorch's _amp_foreach_non_finite_check_and_unscale_):
  // for every tensor of `grads` (contiguous, floating, any mix of dtypes, on this device), each
  // element v becomes v * inv_scale (computed in float32, float64 for f64 tensors; left as it
  // is when inv_scale is 1), and found_inf (one float32 element on this device) is set to 1
  // when any element is infinite or NaN, and left as it is otherwise. Every element is scaled,
  // non-finite ones included.
  virtual void non_finite_check_and_unscale(const std::vector<Tensor>& grads,
                                            const Tensor& found_inf, double inv_scale) = 0;

  // ---- random (contiguous out; element i uses Philox block offset + i, see philox.h) ------
  // Uniform in [low, high), float32/float64.
  virtual void random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                              uint64_t offset) = 0;
  // Normal(mean, std), float32/float64.
  virtual void random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                             uint64_t offset) = 0;
  // Integers in [low, high), any numeric dtype.
  virtual void random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                          uint64_t offset) = 0;
};

// The backend for `device`. Throws strata::Error saying why when the device is not available
// (CUDA not compiled in, no device found, index out of range).
Backend& backend_for(Device device);

// The CPU backend, always present.
Backend& cpu_backend();

// True when the CUDA backend is compiled in and found at least one device.
bool cuda_is_available();
int cuda_device_count();

// Sets the number of threads CPU kernels (OpenMP and BLAS together) use.
void set_num_threads(int threads);
int get_num_threads();

// TF32 for float32 matrix products on CUDA: off by default, so results match the CPU.
void set_allow_tf32(bool allow);
bool allow_tf32();

// Deterministic kernels: off by default. When on, the CUDA backend picks only cuDNN algorithms
// that give bitwise-identical results run to run (convolution backward included), and runs
// index_add of floats (the backward of index_select and embedding) by a sort instead of
// atomics, at some cost in speed. Pooling is deterministic on both backends whatever the
// setting. The CPU backend is always deterministic.
void set_deterministic(bool on);
bool deterministic();

}  // namespace strata
