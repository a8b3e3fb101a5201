// Data-dependent selection: nonzero and masked_select. Neither needs a kernel of its own: the
// positions of a mask's true entries come from a cumsum (each true entry's rank) and a scatter
// (each rank's position), after one small read of the count (a device-to-host copy on CUDA);
// values then move with index_select, whose tape node makes masked_select differentiable.
#include <vector>

#include "internal.h"

namespace strata {

namespace {

// The row-major positions of the true entries of the bool `mask` (any shape): int64 [count].
Tensor true_positions(const Tensor& mask) {
  NoGradGuard no_grad;
  const Tensor flat = mask.reshape({-1});
  const int64_t numel = flat.numel();
  const TensorOptions int64 = TensorOptions(kInt64).device(mask.device());
  if (numel == 0) return empty({0}, int64);
  // rank[i]: the true entries up to and including i, so a true entry i goes to rank[i] - 1.
  const Tensor rank = cumsum(flat, 0);
  const int64_t count = rank.narrow(0, numel - 1, 1).item<int64_t>();
  // The false entries all go to a spare slot past the end, dropped afterwards.
  const Tensor slot = where(flat, sub(rank, 1.0), scalar_tensor(static_cast<double>(count), int64));
  Tensor positions = empty({count + 1}, int64);
  detail::backend_of(positions).scatter(positions, 0, slot.contiguous(),
                                        arange(static_cast<double>(numel), int64));
  return positions.narrow(0, 0, count);
}

}  // namespace

Tensor nonzero(const Tensor& x) {
  detail::check_defined(x, "nonzero");
  NoGradGuard no_grad;
  const Tensor positions = true_positions(x.dtype() == DType::Bool ? x : ne(x, 0.0));
  const int64_t count = positions.numel();
  if (count == 0 || x.dim() == 0) {
    return empty({count, x.dim()}, TensorOptions(kInt64).device(x.device()));
  }
  // Coordinate d of the flat position p is (p / stride_d) % size_d (row-major strides).
  std::vector<Tensor> coordinates(static_cast<size_t>(x.dim()));
  int64_t stride = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    const auto size = static_cast<double>(x.size(d));
    coordinates[static_cast<size_t>(d)] =
        remainder(floor_divide(positions, static_cast<double>(stride)), size);
    stride *= x.size(d);
  }
  return stack(coordinates, 1);
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  detail::check_defined(x, "masked_select");
  detail::check_defined(mask, "masked_select", "mask");
  STRATA_CHECK(mask.dtype() == DType::Bool, "masked_select: the mask must be bool, got ",
               detail::describe(mask));
  detail::check_same_device(x, mask, "masked_select");
  // x and the mask broadcast together, as in PyTorch.
  const Shape shape = broadcast_shapes(x.shape(), mask.shape(), "masked_select");
  const Tensor positions = true_positions(mask.expand(shape));
  return index_select(x.expand(shape).reshape({-1}), 0, positions);
}

Tensor Tensor::nonzero() const { return strata::nonzero(*this); }
Tensor Tensor::masked_select(const Tensor& mask) const {
  return strata::masked_select(*this, mask);
}

}  // namespace strata
