// linear and embedding, each one recorded op with its backward below its forward.
// - linear runs as one GEMM: the bias is broadcast into the output first and the product
//   x @ w^T accumulates onto it (the backend reads w^T as a strided view, no copy), so an MLP
//   layer costs one kernel plus one copy; x of rank > 2 is folded to [M, in] and back.
// - embedding picks rows by index_select and sends gradients back with index_add; indices are
//   range-checked on the host first (one small device-to-host read on CUDA).
#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// A [rows, cols] matrix with arbitrary strides seen as the [1, rows, cols] operand the
// backend's batched matmul takes.
Tensor as_batch_of_one(const Tensor& matrix) {
  return detail::make_view(matrix, {1, matrix.size(0), matrix.size(1)},
                           {0, matrix.stride(0), matrix.stride(1)}, matrix.offset());
}

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  detail::check_defined(x, "linear", "input");
  detail::check_defined(weight, "linear", "weight");
  STRATA_CHECK(weight.dim() == 2, "linear: weight must be 2-D [out_features, in_features], got ",
               detail::describe(weight));
  STRATA_CHECK(x.dim() >= 1, "linear: input must have at least one dimension, got ",
               detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()) && x.dtype() == weight.dtype(),
               "linear: input and weight must share a floating dtype, got input ",
               detail::describe(x), ", weight ", detail::describe(weight));
  detail::check_same_device(x, weight, "linear");
  STRATA_CHECK(x.size(-1) == weight.size(1), "linear: input has ", x.size(-1),
               " features but weight expects ", weight.size(1), " (input ", detail::describe(x),
               ", weight ", detail::describe(weight), ")");
  if (bias.defined()) {
    STRATA_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0),
                 "linear: bias must be [", weight.size(0), "] to match weight ",
                 detail::describe(weight), ", got ", detail::describe(bias));
    STRATA_CHECK(bias.dtype() == weight.dtype(), "linear: bias dtype ",
                 dtype_name(bias.dtype()), " does not match weight dtype ",
                 dtype_name(weight.dtype()), " (bias ", detail::describe(bias), ", weight ",
                 detail::describe(weight), ")");
    detail::check_same_device(weight, bias, "linear");
  }
}

}  // namespace

// x [..., in], weight [out, in], bias [out]: out [..., out] = x @ weight^T + bias.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (amp::needs_low_precision({&x, &weight, &bias})) {
    return linear(amp::cast_to_low_precision(x), amp::cast_to_low_precision(weight),
                  amp::cast_to_low_precision(bias));
  }
  check_linear(x, weight, bias);
  const int64_t in_features = weight.size(1), out_features = weight.size(0);
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t rows = numel_of(out_shape);
  out_shape.push_back(out_features);
  Tensor out = Tensor::empty(out_shape, x.options());
  Backend& backend = detail::backend_of(out);
  // x2: [M, in] (a view unless x's leading dims cannot fold), out2: [M, out].
  const Tensor x2 = x.detach().reshape({rows, in_features});
  const Tensor out2 = detail::make_view(out, {rows, out_features},
                                        contiguous_strides({rows, out_features}), 0);
  if (out.numel() > 0) {
    if (bias.defined()) {
      backend.copy(out2, detail::broadcast_view(bias.detach(), {rows, out_features}));
    }
    if (in_features > 0) {
      // w^T: [in, out] over weight's storage (strides swapped), read in place by the GEMM.
      const Tensor wt = detail::make_view(weight, {1, in_features, out_features},
                                          {0, weight.stride(1), weight.stride(0)},
                                          weight.offset());
      backend.matmul(as_batch_of_one(out2), as_batch_of_one(x2), wt,
                     /*accumulate=*/bias.defined());
    } else if (!bias.defined()) {
      out.fill_(0.0);  // an empty sum
    }
  }
  if (needs_grad({&x, &weight, &bias})) {
    record(
        "linear", {x, weight, bias}, out,
        [x, x2, w = amp::SavedTensor(weight), rows, out_features](const Tensor& g, const Needs& n) {
          // g2 [M, out]: grad_x = g2 @ w, grad_w = g2^T @ x2, grad_b = g2 summed over rows.
          // A pass that creates a graph reads x itself (x2 is cut from the tape).
          const Tensor g2 = g.reshape({rows, out_features});
          Grads grads(3);
          if (n[0]) grads[0] = matmul(g2, w.get("linear")).reshape(x.shape());
          if (n[1]) {
            grads[1] = matmul(g2.t(), GradMode::is_enabled() ? x.reshape(x2.shape()) : x2);
          }
          if (n[2]) grads[2] = sum(g2, {0});
          return grads;
        });
  }
  return out;
}

// indices: int64 of any shape, weight [num_embeddings, dim] -> out indices.shape + [dim].
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  detail::check_defined(indices, "embedding", "indices");
  detail::check_defined(weight, "embedding", "weight");
  STRATA_CHECK(indices.dtype() == DType::Int64, "embedding: indices must be int64, got ",
               detail::describe(indices));
  STRATA_CHECK(weight.dim() == 2, "embedding: weight must be 2-D [num_embeddings, dim], got ",
               detail::describe(weight));
  STRATA_CHECK(is_floating(weight.dtype()),
               "embedding: weight must be floating (f32, f64, f16 or bf16), got ",
               detail::describe(weight));
  detail::check_same_device(indices, weight, "embedding");
  const int64_t num_embeddings = weight.size(0), dim = weight.size(1);
  std::optional<int64_t> padding = padding_idx;
  if (padding) {
    STRATA_CHECK(*padding >= -num_embeddings && *padding < num_embeddings,
                 "embedding: padding_idx ", *padding, " is out of range for ", num_embeddings,
                 " embeddings (weight ", detail::describe(weight), ")");
    if (*padding < 0) *padding += num_embeddings;  // counts from the end, as PyTorch
  }
  const Tensor flat = indices.reshape({-1}).contiguous();
  if (flat.numel() > 0) {
    NoGradGuard no_grad;
    const int64_t lo = min(flat).item<int64_t>(), hi = max(flat).item<int64_t>();
    STRATA_CHECK(lo >= 0 && hi < num_embeddings, "embedding: index ", lo < 0 ? lo : hi,
                 " is out of range for ", num_embeddings, " embeddings (indices ",
                 detail::describe(indices), ", weight ", detail::describe(weight), ")");
  }
  Shape out_shape = indices.shape();
  out_shape.push_back(dim);
  Tensor out = Tensor::empty(out_shape, weight.options());
  if (out.numel() > 0) {
    const Tensor out2 = detail::make_view(out, {flat.numel(), dim},
                                          contiguous_strides({flat.numel(), dim}), 0);
    detail::backend_of(out).index_select(out2, weight.detach().contiguous(), 0, flat);
  }
  if (needs_grad({&weight})) {
    record("embedding", {weight}, out,
           [flat, padding, num_embeddings, dim](const Tensor& g, const Needs&) {
             // Rows gathered k times receive k gradients; the padding row receives none.
             Tensor grad = zeros({num_embeddings, dim}, g.options());
             if (g.numel() > 0) {
               detail::backend_of(grad).index_add(
                   grad, 0, flat, g.reshape({flat.numel(), dim}).contiguous());
             }
             if (padding) grad.select(0, *padding).zero_();
             // Linear in g: its own gradient looks the rows up again (none for the padding).
             return Grads{autograd::linear_in_grad(
                 "embedding_backward", g, grad,
                 [flat, padding, g_shape = g.shape()](const Tensor& h) {
                   Tensor rows = index_select(h, 0, flat);
                   if (padding) {
                     rows = mul(rows,
                                ne(flat, static_cast<double>(*padding)).to(h.dtype()).unsqueeze(1));
                   }
                   return rows.reshape(g_shape);
                 })};
           });
  }
  return out;
}

}  // namespace strata::nn::functional
