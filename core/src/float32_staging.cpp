// Float32Staging: half-precision tensors run through float32 kernels (see the header).
#include "strata/detail/float32_staging.h"

#include <algorithm>

#include "strata/backend.h"

namespace strata::detail {

namespace {

bool is_reduced(const Tensor& t) { return t.defined() && is_reduced_floating(t.dtype()); }

// A contiguous float32 tensor holding t's values, converted by t's own backend (no tape).
Tensor widened(const Tensor& t) {
  Tensor wide = Tensor::empty(t.shape(), TensorOptions(DType::Float32).device(t.device()));
  if (t.numel() > 0) backend_for(t.device()).copy(wide, t);
  return wide;
}

}  // namespace

bool any_reduced_floating(std::initializer_list<const Tensor*> tensors) {
  for (const Tensor* t : tensors) {
    if (is_reduced(*t)) return true;
  }
  return false;
}

bool any_reduced_floating(const std::vector<Tensor>& tensors) {
  for (const Tensor& t : tensors) {
    if (is_reduced(t)) return true;
  }
  return false;
}

bool any_reduced_floating(const std::vector<std::vector<Tensor>>& lists) {
  for (const std::vector<Tensor>& list : lists) {
    if (any_reduced_floating(list)) return true;
  }
  return false;
}

Tensor Float32Staging::input(const Tensor& t) { return is_reduced(t) ? widened(t) : t; }

std::vector<Tensor> Float32Staging::inputs(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(input(t));
  return out;
}

Tensor Float32Staging::output(const Tensor& t) {
  if (!is_reduced(t)) return t;
  Tensor twin = widened(t);
  outputs_.emplace_back(t, twin);
  return twin;
}

std::vector<Tensor> Float32Staging::outputs(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(output(t));
  return out;
}

std::vector<std::vector<Tensor>> Float32Staging::outputs(
    const std::vector<std::vector<Tensor>>& lists) {
  std::vector<std::vector<Tensor>> out;
  out.reserve(lists.size());
  for (const std::vector<Tensor>& list : lists) out.push_back(outputs(list));
  return out;
}

int64_t staging_piece_rows(const std::vector<const Tensor*>& batched, int64_t min_rows) {
  constexpr int64_t kPieceElements = int64_t{1} << 18;
  int64_t row_elements = 1;
  for (const Tensor* t : batched) {
    if (t->defined() && t->dim() > 0 && t->size(0) > 0) {
      row_elements = std::max(row_elements, t->numel() / t->size(0));
    }
  }
  return std::max({kPieceElements / row_elements, min_rows, int64_t{1}});
}

void Float32Staging::finish() {
  for (auto& [narrow, twin] : outputs_) {
    if (narrow.numel() > 0) backend_for(narrow.device()).copy(narrow, twin);
  }
  outputs_.clear();
}

}  // namespace strata::detail
