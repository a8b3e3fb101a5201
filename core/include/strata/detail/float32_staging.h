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
//
// Kernels over large batched tensors (convolution, pooling, activations) stage piece by piece
// instead, so that the float32 copies alive at once are one piece's, not the whole tensor's
// (which would make a half-precision step's peak memory larger than a float32 one's):
//
//   if (any_reduced_floating({&out, &x})) {
//     return stage_in_pieces({out}, {x, indices}, 1, [&](const auto& outs, const auto& ins) {
//       max_pool2d_forward(outs[0], ins[1], ins[0], params);
//     });
//   }
#pragma once

#include <algorithm>
#include <cstdint>
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

// Rows of dim 0 per staging piece for kernels over `batched` tensors (all with dim 0 the same
// batch): enough for about 256K elements of the largest one's rows (1 MB of float32), and at
// least `min_rows` (a kernel that splits its threads over rows wants a row per thread).
int64_t staging_piece_rows(const std::vector<const Tensor*>& batched, int64_t min_rows = 1);

// Runs kernel(outs, ins) once per piece of dim 0 (staging_piece_rows of all the tensors, at
// least min_rows): outs holds the pieces of `outputs` staged as Float32Staging::output, ins the
// pieces of `inputs` staged as Float32Staging::input (tensors of other dtypes, indices say,
// are passed as their pieces; undefined ones stay undefined). Every defined tensor's dim 0 is
// the same batch.
template <typename Kernel>
void stage_in_pieces(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                     int64_t min_rows, Kernel&& kernel) {
  std::vector<const Tensor*> all;
  for (const Tensor& t : outputs) all.push_back(&t);
  for (const Tensor& t : inputs) all.push_back(&t);
  int64_t rows = 0;
  for (const Tensor* t : all) {
    if (t->defined()) rows = t->size(0);
  }
  const auto piece_of = [](const Tensor& t, int64_t begin, int64_t count) {
    return t.defined() ? t.narrow(0, begin, count) : Tensor();
  };
  const int64_t piece_rows = staging_piece_rows(all, min_rows);
  // No rows make one empty piece, so the kernel still runs once (a filter gradient over no
  // images is zeros).
  int64_t begin = 0;
  do {
    const int64_t count = std::min(piece_rows, rows - begin);
    Float32Staging stage;
    std::vector<Tensor> outs, ins;
    for (const Tensor& t : outputs) outs.push_back(stage.output(piece_of(t, begin, count)));
    for (const Tensor& t : inputs) ins.push_back(stage.input(piece_of(t, begin, count)));
    kernel(outs, ins);
    stage.finish();
    begin += count;
  } while (begin < rows);
}

}  // namespace strata::detail
