// Helpers shared by the files of core/src (not installed): building views over existing
// storage without touching the tape, describing tensors in error messages, common checks.
#pragma once

#include <string>

#include "strata/autograd.h"
#include "strata/backend.h"
#include "strata/error.h"
#include "strata/ops.h"
#include "strata/tensor.h"

namespace strata::detail {

// A tensor over `base`'s storage with the given geometry; no autograd state.
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset);

// `t` seen with `shape` by NumPy broadcasting (stride 0 on broadcast dims); no autograd.
Tensor broadcast_view(const Tensor& t, const Shape& shape);

// `t` converted to `dtype` without recording (returns t when it already has it).
Tensor convert(const Tensor& t, DType dtype);

// "[3,4] f32 cpu", for error messages.
std::string describe(const Tensor& t);

void check_defined(const Tensor& t, const char* op, const char* what = "input");
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

// Strides to view a tensor of (shape, strides) as new_shape without copying, if possible.
bool compute_view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape,
                          Strides& new_strides);

// Replaces a single -1 in `shape` by what makes numel match; throws naming `op` otherwise.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op, const Tensor& input);

inline Backend& backend_of(const Tensor& t) { return backend_for(t.device()); }

}  // namespace strata::detail
