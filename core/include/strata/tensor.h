// Tensor: a shared handle to a view (shape, strides, offset, dtype) of a Storage, plus its
// autograd state. Copying a Tensor copies the handle, not the data; views share storage.
// Every method that computes is a thin call into the functional API in ops.h, where the
// validation, the backend dispatch and the tape recording live.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "strata/device.h"
#include "strata/dtype.h"
#include "strata/shape.h"

namespace strata {

class Backend;
class Tensor;
struct ValuesAndIndices;  // ops.h
namespace autograd {
struct Node;
struct AutogradMeta;
}  // namespace autograd

// Owns one allocation on one device; freed through the backend that made it. Also keeps the
// allocation's version: a counter of the in-place writes to it (see Tensor::version).
class Storage {
 public:
  Storage(size_t nbytes, Device device);
  // Page-locked host memory (see Tensor::pin_memory); throws strata::Error when it cannot be
  // had (no CUDA device, or the driver refuses).
  struct Pinned {};
  Storage(size_t nbytes, Pinned);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

  // The number of in-place writes to this allocation so far (0 when made).
  uint64_t version() const { return version_.load(std::memory_order_acquire); }
  void bump_version() { version_.fetch_add(1, std::memory_order_acq_rel); }
  // Raises the version to at least `version` (set_data: a tensor's version never goes back).
  void raise_version_to(uint64_t version);

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Backend* backend_ = nullptr;
  bool pinned_ = false;
  std::atomic<uint64_t> version_{0};
};

// What a new tensor is made as: `zeros({2, 3}, kFloat64)`, `ones({4}, Device(kCUDA))`,
// `randn({3}, TensorOptions().dtype(kFloat64).requires_grad(true))`.
struct TensorOptions {
  DType dtype_ = DType::Float32;
  Device device_ = Device(DeviceType::CPU);
  bool requires_grad_ = false;

  TensorOptions() = default;
  TensorOptions(DType dtype) : dtype_(dtype) {}     // NOLINT(google-explicit-constructor)
  TensorOptions(Device device) : device_(device) {}  // NOLINT(google-explicit-constructor)
  TensorOptions(DeviceType type) : device_(type) {}  // NOLINT(google-explicit-constructor)

  TensorOptions dtype(DType dtype) const { auto o = *this; o.dtype_ = dtype; return o; }
  TensorOptions device(Device device) const { auto o = *this; o.device_ = device; return o; }
  TensorOptions requires_grad(bool on = true) const {
    auto o = *this;
    o.requires_grad_ = on;
    return o;
  }
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::unique_ptr<autograd::AutogradMeta> autograd;

  TensorImpl();
  ~TensorImpl();
};

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialized contiguous tensor.
  static Tensor empty(const Shape& shape, TensorOptions options = {});

  // ---- properties -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl()->shape; }
  const Strides& strides() const { return impl()->strides; }
  int64_t size(int64_t dim) const;    // negative dims count from the end
  int64_t stride(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(impl()->shape.size()); }
  int64_t numel() const { return numel_of(impl()->shape); }
  int64_t offset() const { return impl()->offset; }
  DType dtype() const { return impl()->dtype; }
  Device device() const;
  TensorOptions options() const { return TensorOptions(dtype()).device(device()); }
  bool is_contiguous() const;
  size_t element_size() const { return strata::element_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return impl()->storage; }
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }
  TensorImpl* impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // Pointer to element 0 of this view (storage data + offset).
  void* raw_data() const;
  template <typename T>
  T* data() const;  // checks that T matches dtype()

  // ---- values on the host -----------------------------------------------------------------
  // The single value of a one-element tensor, converted to T.
  template <typename T>
  T item() const;
  // All values in row-major order, converted to T (copies from the device if needed).
  template <typename T>
  std::vector<T> to_vector() const;
  std::string str() const;  // readable printing, like PyTorch's repr

  // ---- conversions ------------------------------------------------------------------------
  Tensor to(Device device) const;  // returns *this when already there
  Tensor to(DType dtype) const;
  Tensor cpu() const { return to(Device(DeviceType::CPU)); }
  Tensor cuda(int index = 0) const { return to(Device(DeviceType::CUDA, index)); }
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor clone() const;
  // A contiguous copy of this CPU tensor in page-locked host memory, from which copies to a
  // CUDA device run by DMA, faster and without a staging buffer (PyTorch's pin_memory);
  // *this when already pinned. Throws strata::Error for a CUDA tensor and when no CUDA device
  // can provide pinned memory.
  Tensor pin_memory() const;
  bool is_pinned() const;

  // ---- views (share storage; differentiable) ----------------------------------------------
  Tensor view(const Shape& shape) const;     // needs compatible strides; -1 infers one size
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor expand(const Shape& shape) const;            // -1 keeps a size
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;

  // ---- arithmetic (see ops.h) -------------------------------------------------------------
  Tensor neg() const;
  Tensor abs() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor pow(double exponent) const;
  Tensor clamp(std::optional<double> min, std::optional<double> max) const;
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor max() const;
  Tensor max(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor min() const;
  Tensor min(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor argmax(std::optional<int64_t> dim = std::nullopt, bool keepdim = false) const;
  Tensor argmin(std::optional<int64_t> dim = std::nullopt, bool keepdim = false) const;
  Tensor matmul(const Tensor& other) const;
  Tensor flip(const std::vector<int64_t>& dims) const;
  Tensor repeat(const std::vector<int64_t>& repeats) const;
  Tensor masked_fill(const Tensor& mask, double value) const;
  ValuesAndIndices sort(int64_t dim = -1, bool descending = false) const;
  Tensor argsort(int64_t dim = -1, bool descending = false) const;
  ValuesAndIndices topk(int64_t k, int64_t dim = -1, bool largest = true, bool sorted = true) const;
  ValuesAndIndices kthvalue(int64_t k, int64_t dim = -1, bool keepdim = false) const;
  Tensor cumsum(int64_t dim) const;
  Tensor cumprod(int64_t dim) const;
  Tensor nonzero() const;
  Tensor masked_select(const Tensor& mask) const;
  Tensor index(const std::vector<Tensor>& indices) const;  // x[i, j], x[mask]: see ops.h

  // ---- version (PyTorch's _version) ------------------------------------------------------
  // A counter of the in-place writes to this tensor's storage, shared by every view of it
  // (views, detach() and the tensor itself see one counter). Every in-place path of Strata
  // bumps it: fill_, zero_, copy_, add_, mul_, the optimizers' updates, batch_norm's running
  // statistics, load_state_dict (through copy_), and set_data (which never lets it go back).
  // Out-of-place ops leave it alone. Caches of derived data (the CUDA RNN's packed weights)
  // compare it to know when to rebuild.
  // NOTE: code that writes a tensor's data through raw pointers (data<T>(), raw_data(), a
  // backend kernel into an existing tensor) must call bump_version() afterwards, or such caches
  // keep serving the old values.
  uint64_t version() const;
  void bump_version() const;

  // ---- in place (not recorded on the tape; refused on tensors that need grad while grad
  //      mode is on, as PyTorch refuses them) ------------------------------------------------
  Tensor& fill_(double value);
  Tensor& zero_();
  Tensor& copy_(const Tensor& src);  // broadcasts src, converts dtype, crosses devices
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& mul_(double value);
  // x[indices] = values, or += with accumulate (index_put in ops.h); refused while values
  // require grad, as the update is not recorded.
  Tensor& index_put_(const std::vector<Tensor>& indices, const Tensor& values,
                     bool accumulate = false);

  // ---- autograd ---------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires_grad);  // leaves only
  bool is_leaf() const;
  // Accumulated gradient of a leaf (undefined before the first backward).
  const Tensor& grad() const;
  Tensor& mutable_grad();
  void zero_grad();  // drops the accumulated gradient
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  // Gradient of this tensor with respect to every leaf that requires grad, accumulated into
  // their .grad(). A non-scalar tensor needs `gradient` of its shape. create_graph records
  // the backward pass, so the accumulated gradients can be differentiated again;
  // retain_graph defaults to create_graph.
  void backward(const Tensor& gradient = Tensor(), std::optional<bool> retain_graph = std::nullopt,
                bool create_graph = false) const;
  // Calls hook with this tensor's gradient in every backward pass (autograd::register_hook);
  // a hook may return a replacement, or nothing. Returns an id for remove_hook.
  template <typename Hook>
  int64_t register_hook(Hook hook) const;
  void remove_hook(int64_t id) const;
  // Keeps the gradient of a non-leaf in .grad() as backward passes reach it (a leaf's is kept
  // anyway); retains_grad() says whether it does.
  void retain_grad() const;
  bool retains_grad() const;
  // A tensor sharing data that is cut from the tape.
  Tensor detach() const;
  // Points this tensor at `source`'s data (storage, shape, strides, dtype), keeping its
  // identity and autograd settings, so every handle to it sees the change: how Module::to
  // moves parameters that layers also hold as members. Drops an accumulated gradient whose
  // device or dtype no longer matches. Leaves only.
  void set_data(const Tensor& source);

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

namespace detail {
int64_t register_grad_hook(const Tensor& t, std::function<Tensor(const Tensor&)> hook);
}  // namespace detail

template <typename Hook>
int64_t Tensor::register_hook(Hook hook) const {
  using Result = std::invoke_result_t<Hook&, const Tensor&>;
  if constexpr (std::is_void_v<Result>) {
    return detail::register_grad_hook(*this, [hook = std::move(hook)](const Tensor& grad) mutable {
      hook(grad);
      return Tensor();
    });
  } else {
    static_assert(std::is_convertible_v<Result, Tensor>,
                  "register_hook: the hook must return a Tensor or nothing");
    return detail::register_grad_hook(
        *this,
        [hook = std::move(hook)](const Tensor& grad) mutable -> Tensor { return hook(grad); });
  }
}

// ---- creation ---------------------------------------------------------------------------
Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor zeros_like(const Tensor& like);
Tensor ones_like(const Tensor& like);
Tensor full_like(const Tensor& like, double value);
// [start, end) by step; int64 unless options say otherwise.
Tensor arange(double end, TensorOptions options = kInt64);
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = kInt64);
// From host values; the shape defaults to 1-D. dtype defaults to T's dtype.
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape = {},
                   std::optional<TensorOptions> options = std::nullopt);
// A 0-dim tensor holding one value.
Tensor scalar_tensor(double value, TensorOptions options = {});
// The [n, m] identity (ones on the main diagonal); m defaults to n.
Tensor eye(int64_t n, std::optional<int64_t> m = std::nullopt, TensorOptions options = {});

class Generator;
// Uniform in [0, 1), standard normal, integers in [low, high); `generator` defaults to the
// process-wide one (see manual_seed).
Tensor rand(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);
Tensor randn(const Shape& shape, TensorOptions options = {}, Generator* generator = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions options = kInt64,
               Generator* generator = nullptr);

}  // namespace strata
