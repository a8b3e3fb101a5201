// How a backend runs a float32 kernel on float16 / bfloat16 tensors: the half-precision
// inputs are widened to float32 copies, the outputs get float32 twins, and the twins are
// narrowed back into the outputs at the end (rounding once, to nearest even). Every kernel
// without a half-precision path of its own starts with
//
//   if (any_reduced_floating({&out, &x})) {
//     Float32Staging stage;
//     conv2d_forward(stage.output(out), stage.input(x), ...);
//     return stage.finish();
//   }
//
// so it computes in float32 and stores half precision, as the DType contract says. Tensors of
// other dtypes (indices, masks, float32 itself) pass through untouched.
#pragma once

#include <initializer_list>
#include <utility>
#include <vector>

#include "strata/tensor.h"

namespace strata::detail {

// True when any defined tensor among `tensors` is f16 or bf16.
bool any_reduced_floating(std::initializer_list<const Tensor*> tensors);
bool any_reduced_floating(const std::vector<Tensor>& tensors);
bool any_reduced_floating(const std::vector<std::vector<Tensor>>& lists);

class Float32Staging {
 public:
  Float32Staging() = default;
  Float32Staging(const Float32Staging&) = delete;
  Float32Staging& operator=(const Float32Staging&) = delete;

  // `t` itself unless it is f16 or bf16; then a contiguous float32 copy of it.
  Tensor input(const Tensor& t);
  std::vector<Tensor> inputs(const std::vector<Tensor>& ts);

  // `t` itself unless it is f16 or bf16; then a float32 twin holding t's values (kernels that
  // accumulate into their output read them), narrowed back into `t` by finish().
  Tensor output(const Tensor& t);
  std::vector<Tensor> outputs(const std::vector<Tensor>& ts);
  std::vector<std::vector<Tensor>> outputs(const std::vector<std::vector<Tensor>>& lists);

  // Narrows every output twin back into its tensor. Call once, after the kernel.
  void finish();

 private:
  std::vector<std::pair<Tensor, Tensor>> outputs_;  // (half-precision tensor, float32 twin)
};

}  // namespace strata::detail
