// Tensor and Storage: ownership, geometry queries, host access, conversions, in-place updates
// and the autograd accessors. Computation lives in ops/; this file only moves bytes and keeps
// the bookkeeping right.
#include "strata/tensor.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "internal.h"
#include "strata/detail/cuda_hooks.h"

namespace strata {

// ---- Storage ------------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Device device)
    : nbytes_(nbytes), device_(device), backend_(&backend_for(device)) {
  data_ = backend_->allocate(nbytes);
}

Storage::Storage(size_t nbytes, Pinned)
    : nbytes_(nbytes), device_(DeviceType::CPU), pinned_(true) {
  data_ = detail::cuda_host_alloc(nbytes);
  if (data_ == nullptr) {
    std::string why;
    const int devices = detail::cuda_device_count(&why);
    STRATA_CHECK(false, "pin_memory: no page-locked memory for ", nbytes, " bytes: ",
                 devices == 0 ? why : "cudaHostAlloc failed (out of pinned memory?)");
  }
}

Storage::~Storage() {
  if (data_ == nullptr) return;
  if (pinned_) {
    detail::cuda_host_free(data_);
  } else {
    backend_->deallocate(data_, nbytes_);
  }
}

void Storage::raise_version_to(uint64_t version) {
  uint64_t current = version_.load(std::memory_order_acquire);
  while (current < version &&
         !version_.compare_exchange_weak(current, version, std::memory_order_acq_rel)) {
  }
}

TensorImpl::TensorImpl() = default;
TensorImpl::~TensorImpl() = default;

namespace detail {

Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

Tensor broadcast_view(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const size_t rank = shape.size(), lead = rank - t.shape().size();
  Strides strides(rank, 0);
  for (size_t i = lead; i < rank; ++i) {
    const int64_t size = t.shape()[i - lead];
    STRATA_ASSERT(size == shape[i] || size == 1, "broadcast_view ", shape_str(t.shape()), " to ",
                  shape_str(shape));
    strides[i] = size == shape[i] ? t.strides()[i - lead] : 0;
  }
  return make_view(t, shape, std::move(strides), t.offset());
}

Tensor convert(const Tensor& t, DType dtype) {
  if (t.dtype() == dtype) return t;
  Tensor out = Tensor::empty(t.shape(), TensorOptions(dtype).device(t.device()));
  if (out.numel() > 0) backend_of(t).copy(out, t);
  return out;
}

std::string describe(const Tensor& t) {
  if (!t.defined()) return "(undefined tensor)";
  return concat(shape_str(t.shape()), " ", dtype_name(t.dtype()), " ", t.device().str());
}

void check_defined(const Tensor& t, const char* op, const char* what) {
  STRATA_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  STRATA_CHECK(a.device() == b.device(), op, ": tensors are on different devices (",
               describe(a), " and ", describe(b), "); move one with .to(device)");
}

}  // namespace detail

// ---- properties ---------------------------------------------------------------------------

TensorImpl* Tensor::impl() const {
  STRATA_CHECK(impl_ != nullptr, "Tensor: this tensor is undefined (default-constructed)");
  return impl_.get();
}

Tensor Tensor::empty(const Shape& shape, TensorOptions options) {
  // The strides multiply every nonzero size, even when another is 0 (found by fuzzing
  // read_idx: [4294902535, 2324335359, 0] holds no element but its strides overflow), and the
  // byte count must fit in size_t.
  int64_t span = static_cast<int64_t>(strata::element_size(options.dtype_));
  for (int64_t s : shape) {
    STRATA_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
    STRATA_CHECK(!__builtin_mul_overflow(span, std::max<int64_t>(s, 1), &span), "empty: shape ",
                 shape_str(shape), " of ", dtype_name(options.dtype_),
                 " is too large to address (over 2^63 bytes)");
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(
      static_cast<size_t>(numel_of(shape)) * strata::element_size(options.dtype_),
      options.device_);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype_;
  Tensor out(std::move(impl));
  if (options.requires_grad_) out.set_requires_grad(true);
  return out;
}

int64_t Tensor::size(int64_t d) const {
  STRATA_CHECK(dim() > 0, "size: a 0-dim tensor has no dimension ", d);
  return shape()[normalize_axis(d, dim(), "size")];
}
int64_t Tensor::stride(int64_t d) const {
  STRATA_CHECK(dim() > 0, "stride: a 0-dim tensor has no dimension ", d);
  return strides()[normalize_axis(d, dim(), "stride")];
}
Device Tensor::device() const { return impl()->storage->device(); }

bool Tensor::is_contiguous() const {
  // No element can be out of place in an empty tensor (PyTorch's rule too); the strides of one
  // made by empty() would not pass the loop below ([2,0,3] has strides [3,3,1]).
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  auto* bytes = static_cast<char*>(impl()->storage->data());
  return bytes + impl()->offset * static_cast<int64_t>(element_size());
}

template <typename T>
T* Tensor::data() const {
  STRATA_CHECK(dtype_of<std::remove_const_t<T>>::value == dtype(), "data<T>: tensor has dtype ",
               dtype_name(dtype()), " but ", dtype_name(dtype_of<std::remove_const_t<T>>::value),
               " was asked for");
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;
template bool* Tensor::data<bool>() const;
template int32_t* Tensor::data<int32_t>() const;
template Half* Tensor::data<Half>() const;
template BFloat16* Tensor::data<BFloat16>() const;
template const float* Tensor::data<const float>() const;
template const double* Tensor::data<const double>() const;
template const int64_t* Tensor::data<const int64_t>() const;
template const uint8_t* Tensor::data<const uint8_t>() const;
template const bool* Tensor::data<const bool>() const;
template const int32_t* Tensor::data<const int32_t>() const;
template const Half* Tensor::data<const Half>() const;
template const BFloat16* Tensor::data<const BFloat16>() const;

// ---- host access --------------------------------------------------------------------------

namespace {
// An element as a T: the 16-bit floats go through float on either side.
template <typename T, typename S>
T to_host_value(S value) {
  constexpr bool source_half = std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>;
  constexpr bool target_half = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
  if constexpr (std::is_same_v<T, S>) return value;
  else if constexpr (source_half) return to_host_value<T>(static_cast<float>(value));
  else if constexpr (target_half) return T(static_cast<float>(value));
  else return static_cast<T>(value);
}
}  // namespace

template <typename T>
std::vector<T> Tensor::to_vector() const {
  detail::check_defined(*this, "to_vector", "the tensor");
  const Tensor host = contiguous().cpu();
  const int64_t n = host.numel();
  std::vector<T> values(static_cast<size_t>(n));
  STRATA_DISPATCH_ALL_AND_HALF(host.dtype(), "to_vector", [&] {
    const auto* src = static_cast<const scalar_t*>(host.raw_data());
    for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = to_host_value<T>(src[i]);
  });
  return values;
}

template <typename T>
T Tensor::item() const {
  detail::check_defined(*this, "item", "the tensor");
  STRATA_CHECK(numel() == 1, "item: expected a tensor with one element, got ",
               detail::describe(*this));
  return to_vector<T>()[0];
}

#define STRATA_INSTANTIATE_HOST_ACCESS(T)                    \
  template std::vector<T> Tensor::to_vector<T>() const;      \
  template T Tensor::item<T>() const;
STRATA_INSTANTIATE_HOST_ACCESS(float)
STRATA_INSTANTIATE_HOST_ACCESS(double)
STRATA_INSTANTIATE_HOST_ACCESS(int64_t)
STRATA_INSTANTIATE_HOST_ACCESS(int)
STRATA_INSTANTIATE_HOST_ACCESS(uint8_t)
STRATA_INSTANTIATE_HOST_ACCESS(bool)
STRATA_INSTANTIATE_HOST_ACCESS(Half)
STRATA_INSTANTIATE_HOST_ACCESS(BFloat16)
#undef STRATA_INSTANTIATE_HOST_ACCESS

// ---- conversions --------------------------------------------------------------------------

Tensor Tensor::to(Device target) const {
  detail::check_defined(*this, "to", "the tensor");
  const Device source = device();
  if (source == target) return *this;
  backend_for(target);  // fails early, with the reason, when the target does not exist
  const Tensor src = contiguous();
  Tensor out = Tensor::empty(shape(), TensorOptions(dtype()).device(target));
  const size_t nbytes = static_cast<size_t>(numel()) * element_size();
  if (nbytes > 0) {
    if (source.is_cpu()) {
      backend_for(target).copy_from_host(out.raw_data(), src.raw_data(), nbytes);
    } else if (target.is_cpu()) {
      backend_for(source).copy_to_host(out.raw_data(), src.raw_data(), nbytes);
    } else {  // between two CUDA devices, staged through the host
      std::vector<char> staging(nbytes);
      backend_for(source).copy_to_host(staging.data(), src.raw_data(), nbytes);
      backend_for(target).copy_from_host(out.raw_data(), staging.data(), nbytes);
    }
  }
  if (autograd::needs_grad({this})) {
    autograd::record("to", {*this}, out, [source](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g.to(source)};
    });
  }
  return out;
}

Tensor Tensor::to(DType target) const {
  detail::check_defined(*this, "to", "the tensor");
  const DType source = dtype();
  if (source == target) return *this;
  Tensor out = detail::convert(*this, target);
  if (is_floating(target) && is_floating(source) && autograd::needs_grad({this})) {
    autograd::record("to", {*this}, out, [source](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g.to(source)};
    });
  }
  return out;
}

Tensor Tensor::contiguous() const {
  detail::check_defined(*this, "contiguous", "the tensor");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::pin_memory() const {
  detail::check_defined(*this, "pin_memory", "the tensor");
  STRATA_CHECK(device().is_cpu(), "pin_memory: the tensor (shape ", shape_str(shape()), ", ",
               dtype_name(dtype()), ") is on ", device().str(),
               "; only CPU tensors are pinned");
  if (is_pinned() && is_contiguous()) return *this;
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(
      static_cast<size_t>(numel()) * strata::element_size(dtype()), Storage::Pinned{});
  impl->shape = shape();
  impl->strides = contiguous_strides(shape());
  impl->dtype = dtype();
  Tensor out(std::move(impl));
  if (out.numel() > 0) detail::backend_of(*this).copy(out, *this);
  return out;
}

bool Tensor::is_pinned() const { return impl()->storage->pinned(); }

Tensor Tensor::clone() const {
  detail::check_defined(*this, "clone", "the tensor");
  Tensor out = Tensor::empty(shape(), options());
  if (out.numel() > 0) detail::backend_of(*this).copy(out, *this);
  if (autograd::needs_grad({this})) {
    autograd::record("clone", {*this}, out, [](const Tensor& g, const std::vector<bool>&) {
      return std::vector<Tensor>{g};
    });
  }
  return out;
}

// ---- in place -----------------------------------------------------------------------------

namespace {

void check_in_place(const Tensor& t, const char* op) {
  STRATA_CHECK(!(t.requires_grad() && GradMode::is_enabled()), op, ": in-place update of ",
               t.is_leaf() ? "a leaf tensor" : "a tensor in the autograd graph", " (",
               detail::describe(t),
               ") that requires grad; wrap it in NoGradGuard or use the out-of-place op");
}

// Writes `value` (already broadcast to t's shape and on t's device) into t, whatever t's strides.
void assign(const Tensor& t, const Tensor& value) {
  if (t.numel() > 0) detail::backend_of(t).copy(t, value);
}

}  // namespace

namespace {
void fill_in_place(Tensor& t, double value) {
  if (t.numel() == 0) return;
  if (t.is_contiguous()) {
    detail::backend_of(t).fill(t, value);
  } else {
    const Tensor scalar = full({}, value, t.options());
    assign(t, detail::broadcast_view(scalar, t.shape()));
  }
}
}  // namespace

uint64_t Tensor::version() const { return impl()->storage->version(); }

void Tensor::bump_version() const { impl()->storage->bump_version(); }

Tensor& Tensor::fill_(double value) {
  check_in_place(*this, "fill_");
  fill_in_place(*this, value);
  bump_version();
  return *this;
}

Tensor& Tensor::zero_() {
  check_in_place(*this, "zero_");
  fill_in_place(*this, 0.0);
  bump_version();
  return *this;
}


Tensor& Tensor::copy_(const Tensor& src) {
  check_in_place(*this, "copy_");
  detail::check_defined(src, "copy_", "source");
  Shape target = broadcast_shapes(shape(), src.shape(), "copy_");
  STRATA_CHECK(target == shape(), "copy_: source ", detail::describe(src),
               " cannot be broadcast to the destination ", detail::describe(*this));
  const Tensor local = src.detach().to(device());
  assign(*this, detail::broadcast_view(local, shape()));
  bump_version();
  return *this;
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  check_in_place(*this, "add_");
  detail::check_defined(other, "add_", "other");
  NoGradGuard no_grad;
  // The optimizer's path: same shape, dtype and device, this contiguous. Updates in place
  // through the backend, with at most one temporary (other * alpha).
  if (is_contiguous() && other.shape() == shape() && other.dtype() == dtype() &&
      other.device() == device() && is_floating(dtype())) {
    if (numel() == 0) return *this;
    Backend& backend = detail::backend_of(*this);
    if (alpha == 1.0) {
      backend.binary(BinaryOp::Add, *this, *this, other);
    } else {
      const Tensor scaled = Tensor::empty(shape(), options());
      backend.binary_scalar(BinaryOp::Mul, scaled, other, alpha, false);
      backend.binary(BinaryOp::Add, *this, *this, scaled);
    }
    bump_version();
    return *this;
  }
  Tensor update = alpha == 1.0 ? other : mul(other, alpha);
  const Tensor sum = add(*this, update);
  STRATA_CHECK(sum.shape() == shape(), "add_: other ", detail::describe(other),
               " cannot be broadcast to ", detail::describe(*this));
  assign(*this, detail::convert(sum, dtype()));
  bump_version();
  return *this;
}

Tensor& Tensor::mul_(double value) {
  check_in_place(*this, "mul_");
  if (numel() == 0) return *this;
  if (is_contiguous()) {
    detail::backend_of(*this).binary_scalar(BinaryOp::Mul, *this, *this, value, false);
  } else {
    NoGradGuard no_grad;
    assign(*this, mul(*this, value));
  }
  bump_version();
  return *this;
}

// ---- autograd accessors -------------------------------------------------------------------

namespace {
autograd::AutogradMeta& ensure_meta(TensorImpl* impl) {
  if (!impl->autograd) impl->autograd = std::make_unique<autograd::AutogradMeta>();
  return *impl->autograd;
}
}  // namespace

bool Tensor::requires_grad() const {
  const auto& meta = impl()->autograd;
  return meta != nullptr && meta->requires_grad;
}

Tensor& Tensor::set_requires_grad(bool enable) {
  STRATA_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed; this one (",
               detail::describe(*this), ") was made by ", grad_fn()->name,
               " — use detach() for a new leaf");
  STRATA_CHECK(!enable || is_floating(dtype()),
               "set_requires_grad: only floating tensors (f32, f64) can require grad, got ",
               detail::describe(*this));
  ensure_meta(impl()).requires_grad = enable;
  return *this;
}

bool Tensor::is_leaf() const {
  const auto& meta = impl()->autograd;
  return meta == nullptr || meta->grad_fn == nullptr;
}

const Tensor& Tensor::grad() const {
  static const Tensor undefined;
  const auto& meta = impl()->autograd;
  return meta != nullptr ? meta->grad : undefined;
}

Tensor& Tensor::mutable_grad() { return ensure_meta(impl()).grad; }

void Tensor::zero_grad() {
  if (impl()->autograd) impl()->autograd->grad = Tensor();
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<autograd::Node> none;
  const auto& meta = impl()->autograd;
  return meta != nullptr ? meta->grad_fn : none;
}

void Tensor::backward(const Tensor& gradient, std::optional<bool> retain_graph,
                      bool create_graph) const {
  autograd::run_backward({*this}, {gradient}, retain_graph.value_or(create_graph), create_graph);
}

Tensor Tensor::detach() const {
  detail::check_defined(*this, "detach", "the tensor");
  return detail::make_view(*this, shape(), strides(), offset());
}

}  // namespace strata

namespace strata {

void Tensor::set_data(const Tensor& source) {
  detail::check_defined(*this, "set_data", "target");
  detail::check_defined(source, "set_data", "source");
  STRATA_CHECK(is_leaf(), "set_data: only a leaf tensor's data can be replaced, got a result of ",
               grad_fn()->name, " (", detail::describe(*this), ")");
  TensorImpl& self = *impl();
  const TensorImpl& other = *source.impl();
  // The data seen through this tensor changes: its version moves past the old one (the new
  // storage's counter is raised, never lowered), so caches keyed on it rebuild.
  const uint64_t old_version = self.storage ? self.storage->version() : 0;
  if (other.storage) other.storage->raise_version_to(old_version + 1);
  self.storage = other.storage;
  self.shape = other.shape;
  self.strides = other.strides;
  self.offset = other.offset;
  self.dtype = other.dtype;
  if (self.autograd) self.autograd->accumulator.reset();  // graphs built before see old data
  if (self.autograd && self.autograd->grad.defined()) {
    const Tensor& g = self.autograd->grad;
    if (g.device() != source.device() || g.dtype() != source.dtype() || g.shape() != source.shape()) {
      self.autograd->grad = Tensor();
    }
  }
}

}  // namespace strata
