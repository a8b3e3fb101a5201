// Recurrent stacks of the CUDA backend through cuDNN 9's RNN API (backend.h's rnn_forward /
// rnn_backward contract; float32 and float64): cudnnRNNForward, cudnnRNNBackwardData_v8 and
// cudnnRNNBackwardWeights_v8 on the time-major batch [T, B, *] described as
// CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED with one length per batch row (padded I/O enabled,
// padding filled with zeros), the states [L*D, B, H] as 3-D packed tensors.
// Our weights stay separate tensors in PyTorch's layout; they are copied (device to device)
// into a packed cuDNN weight space, and backward copies the weight-space gradient back out.
// Where each gate block lands in that space is asked of cudnnGetRNNWeightParams once per
// configuration and cached as a copy plan (adjacent blocks merged into one copy). The packed
// space itself is cached too (PackedWeightsCache): a call whose weights are the same storages,
// at the same addresses and versions (Tensor::version) as a cached space's reuses it without
// copying; any in-place write to a weight bumps its version and so repacks.
// The reserve tensor is cuDNN's reserve space as uint8, nothing else: backward uses the packed
// weights of the weights it is given. Layer dropout is core's business; the dropout descriptor
// here drops 0. The per-row lengths go up through page-locked memory (host_upload.h), so no
// call waits for the device; data pointers reach cuDNN 16-byte aligned (aligned.h).
#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "aligned.h"
#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "cudnn_utils.h"
#include "host_upload.h"
#include "strata/backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// ---- owning wrappers of the RNN descriptors -------------------------------------------------

class RnnDescriptor {
 public:
  RnnDescriptor() { CUDNN_CHECK(cudnnCreateRNNDescriptor(&desc_)); }
  ~RnnDescriptor() { static_cast<void>(cudnnDestroyRNNDescriptor(desc_)); }
  RnnDescriptor(const RnnDescriptor&) = delete;
  RnnDescriptor& operator=(const RnnDescriptor&) = delete;
  cudnnRNNDescriptor_t get() const { return desc_; }

 private:
  cudnnRNNDescriptor_t desc_ = nullptr;
};

class RnnDataDescriptor {
 public:
  RnnDataDescriptor() { CUDNN_CHECK(cudnnCreateRNNDataDescriptor(&desc_)); }
  ~RnnDataDescriptor() { static_cast<void>(cudnnDestroyRNNDataDescriptor(desc_)); }
  RnnDataDescriptor(const RnnDataDescriptor&) = delete;
  RnnDataDescriptor& operator=(const RnnDataDescriptor&) = delete;
  cudnnRNNDataDescriptor_t get() const { return desc_; }

 private:
  cudnnRNNDataDescriptor_t desc_ = nullptr;
};

class DropoutDescriptor {
 public:
  DropoutDescriptor() { CUDNN_CHECK(cudnnCreateDropoutDescriptor(&desc_)); }
  ~DropoutDescriptor() { static_cast<void>(cudnnDestroyDropoutDescriptor(desc_)); }
  DropoutDescriptor(const DropoutDescriptor&) = delete;
  DropoutDescriptor& operator=(const DropoutDescriptor&) = delete;
  cudnnDropoutDescriptor_t get() const { return desc_; }

 private:
  cudnnDropoutDescriptor_t desc_ = nullptr;
};

// ---- the configuration -----------------------------------------------------------------------

cudnnRNNMode_t cudnn_rnn_mode(RnnMode mode) {
  switch (mode) {
    case RnnMode::Tanh: return CUDNN_RNN_TANH;
    case RnnMode::Relu: return CUDNN_RNN_RELU;
    case RnnMode::Lstm: return CUDNN_LSTM;
    case RnnMode::Gru: return CUDNN_GRU;
  }
  STRATA_ASSERT(false, "rnn: unknown RnnMode ", static_cast<int>(mode));
  return CUDNN_RNN_TANH;
}

// The (layer, direction) pair's 4 entries of `weights`: w_ih, w_hh, b_ih, b_hh.
enum WeightSlot : size_t { kWih = 0, kWhh = 1, kBih = 2, kBhh = 3 };

size_t weight_index(int64_t pseudo_layer, WeightSlot slot) {
  return static_cast<size_t>(pseudo_layer) * 4 + slot;
}

// One device-to-device copy between weights[weight] (from byte `tensor_offset`) and the cuDNN
// weight space (from byte `space_offset`).
struct WeightCopy {
  size_t weight = 0;
  size_t tensor_offset = 0;
  size_t space_offset = 0;
  size_t bytes = 0;
};

// Where our weights go in cuDNN's weight space, for one configuration.
struct WeightPlan {
  size_t space_bytes = 0;
  std::vector<WeightCopy> copies;
};

// device, dtype, mode, input_size, hidden_size, num_layers, bidirectional, bias, math type.
using RnnKey = std::array<int64_t, 9>;

// Leaked on purpose, as the backends are.
struct RnnRegistry {
  std::mutex mutex;
  std::map<RnnKey, WeightPlan> plans;
};
RnnRegistry& rnn_registry() {
  static auto* registry = new RnnRegistry;
  return *registry;
}

// The descriptors of one call: the RNN itself, x [T, B, in] and y [T, B, D*H] with one length
// per row, and the states [L*D, B, H] (hx, hy, cx, cy and their gradients share it).
struct RnnDescriptors {
  DropoutDescriptor dropout;
  RnnDescriptor rnn;
  RnnDataDescriptor x, y;
  TensorDescriptor state;
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  bool has_bias = false;
  std::vector<int32_t> seq_lengths;  // one per batch row, on the host
  RnnKey key{};
  // The padding fill, in the type cuDNN reads for `type` (read when the data descriptors are
  // set; kept here so its address stays valid for the descriptors' lifetime regardless).
  float fill_f = 0.0f;
  double fill_d = 0.0;

  RnnDescriptors(cudnnHandle_t handle, int device, const RnnParams& p,
                 const std::vector<Tensor>& weights, DType dtype, const char* op) {
    const int64_t directions = p.directions();
    STRATA_ASSERT(static_cast<int64_t>(weights.size()) == 4 * p.num_layers * directions, op,
                  ": ", weights.size(), " weights for ", p.num_layers, " layers x ", directions,
                  " directions");
    STRATA_ASSERT(p.lengths.empty() || static_cast<int64_t>(p.lengths.size()) == p.batch, op,
                  ": ", p.lengths.size(), " lengths for a batch of ", p.batch);
    type = cudnn_data_type(dtype, op);
    has_bias = weights[kBih].defined();
    const bool tf32 = dtype == DType::Float32 && allow_tf32();
    // float32 without TF32: only FMA kernels, so results match the CPU's (as conv.cpp).
    const cudnnMathType_t math =
        dtype == DType::Float32 && !tf32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;

    const int seq_len = cudnn_int(p.seq_len, op, "seq_len");
    const int batch = cudnn_int(p.batch, op, "batch");
    const int input_size = cudnn_int(p.input_size, op, "input_size");
    const int hidden = cudnn_int(p.hidden_size, op, "hidden_size");
    const int layers = cudnn_int(p.num_layers, op, "num_layers");
    const int out_size = cudnn_int(directions * p.hidden_size, op, "directions * hidden_size");
    const int states = cudnn_int(p.num_layers * directions, op, "num_layers * directions");

    // NOTE: probability 0 needs no state buffer; cuDNN would only apply it between layers.
    CUDNN_CHECK(cudnnSetDropoutDescriptor(dropout.get(), handle, 0.0f, nullptr, 0, 0));
    // NOTE: the unpacked layouts are refused unless padded I/O is enabled in auxFlags.
    CUDNN_CHECK(cudnnSetRNNDescriptor_v8(
        rnn.get(), CUDNN_RNN_ALGO_STANDARD, cudnn_rnn_mode(p.mode),
        has_bias ? CUDNN_RNN_DOUBLE_BIAS : CUDNN_RNN_NO_BIAS,
        p.bidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL, CUDNN_LINEAR_INPUT, type,
        type, math, input_size, hidden, /*projSize=*/hidden, layers, dropout.get(),
        CUDNN_RNN_PADDED_IO_ENABLED));

    seq_lengths.assign(static_cast<size_t>(batch), seq_len);
    for (size_t b = 0; b < p.lengths.size(); ++b) {
      seq_lengths[b] = cudnn_int(p.lengths[b], op, "a sequence length");
    }
    void* fill = type == CUDNN_DATA_DOUBLE ? static_cast<void*>(&fill_d) : &fill_f;
    CUDNN_CHECK(cudnnSetRNNDataDescriptor(x.get(), type, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED,
                                          seq_len, batch, input_size, seq_lengths.data(), fill));
    CUDNN_CHECK(cudnnSetRNNDataDescriptor(y.get(), type, CUDNN_RNN_DATA_LAYOUT_SEQ_MAJOR_UNPACKED,
                                          seq_len, batch, out_size, seq_lengths.data(), fill));

    const std::array<int, 3> dims = {states, batch, hidden};
    const std::array<int, 3> strides = {
        cudnn_int(p.batch * p.hidden_size, op, "batch * hidden_size"), hidden, 1};
    CUDNN_CHECK(cudnnSetTensorNdDescriptor(state.get(), type, 3, dims.data(), strides.data()));

    key = {device,          static_cast<int64_t>(dtype), static_cast<int64_t>(p.mode),
           p.input_size,    p.hidden_size,               p.num_layers,
           p.bidirectional, has_bias,                    static_cast<int64_t>(math)};
  }
};

// Asks cuDNN where linear layer `lin` (matrix, or bias when `bias`) of `pseudo_layer` is in the
// weight space at `space`; returns its byte offset and checks it holds `elements` elements.
size_t weight_param_offset(cudnnHandle_t handle, const RnnDescriptors& d, size_t space_bytes,
                           void* space, int pseudo_layer, int lin, bool bias, int64_t elements,
                           size_t element_size, const char* op) {
  TensorDescriptor desc;
  void* addr = nullptr;
  if (bias) {
    CUDNN_CHECK(cudnnGetRNNWeightParams(handle, d.rnn.get(), pseudo_layer, space_bytes, space,
                                        lin, nullptr, nullptr, desc.get(), &addr));
  } else {
    CUDNN_CHECK(cudnnGetRNNWeightParams(handle, d.rnn.get(), pseudo_layer, space_bytes, space,
                                        lin, desc.get(), &addr, nullptr, nullptr));
  }
  STRATA_ASSERT(addr != nullptr, op, ": cuDNN gives no ", bias ? "bias" : "matrix",
                " for pseudo-layer ", pseudo_layer, ", linear layer ", lin);
  cudnnDataType_t type{};
  int rank = 0;
  std::array<int, 8> dims{}, strides{};
  CUDNN_CHECK(cudnnGetTensorNdDescriptor(desc.get(), static_cast<int>(dims.size()), &type, &rank,
                                         dims.data(), strides.data()));
  int64_t count = 1;
  for (int i = 0; i < rank; ++i) count *= dims[static_cast<size_t>(i)];
  STRATA_ASSERT(count == elements, op, ": cuDNN's ", bias ? "bias" : "matrix", " of pseudo-layer ",
                pseudo_layer, ", linear layer ", lin, " has ", count, " elements, expected ",
                elements);
  const auto offset = static_cast<size_t>(static_cast<const char*>(addr) -
                                          static_cast<const char*>(space));
  STRATA_ASSERT(offset % element_size == 0 &&
                    offset + static_cast<size_t>(elements) * element_size <= space_bytes,
                op,
                ": cuDNN puts a weight block at byte ", offset,
                " of a ", space_bytes, "-byte weight space");
  return offset;
}

// The copy plan of this configuration, made on first use by asking cuDNN about the weight
// space at `space` (space_bytes long, the size cuDNN asked for).
// Linear layers 0..G-1 are the input matrices / biases of the gates in PyTorch's order (i, f,
// g, o for Lstm; r, z, n for Gru), G..2G-1 the recurrent ones; block g of our [G*H, cols]
// weight is rows [g*H, (g+1)*H), contiguous.
WeightPlan make_weight_plan(cudnnHandle_t handle, const RnnDescriptors& d, const RnnParams& p,
                            size_t element_size, size_t space_bytes, void* space,
                            const char* op) {
  WeightPlan plan;
  plan.space_bytes = space_bytes;
  const int64_t gates = p.gates(), hidden = p.hidden_size, directions = p.directions();
  const auto add = [&](size_t weight, int64_t gate, int64_t block_elements, size_t offset) {
    const size_t bytes = static_cast<size_t>(block_elements) * element_size;
    const WeightCopy copy{weight, static_cast<size_t>(gate) * bytes, offset, bytes};
    if (!plan.copies.empty()) {
      WeightCopy& last = plan.copies.back();
      if (last.weight == copy.weight && last.tensor_offset + last.bytes == copy.tensor_offset &&
          last.space_offset + last.bytes == copy.space_offset) {
        last.bytes += copy.bytes;
        return;
      }
    }
    plan.copies.push_back(copy);
  };
  for (int64_t layer = 0; layer < p.num_layers; ++layer) {
    const int64_t in_cols = layer == 0 ? p.input_size : directions * hidden;
    for (int64_t dir = 0; dir < directions; ++dir) {
      const int64_t pseudo = layer * directions + dir;
      const int pseudo_int = static_cast<int>(pseudo);
      for (int64_t lin = 0; lin < 2 * gates; ++lin) {
        const bool recurrent = lin >= gates;
        const int64_t gate = lin % gates;
        const int64_t cols = recurrent ? hidden : in_cols;
        const size_t offset = weight_param_offset(handle, d, space_bytes, space, pseudo_int,
                                                  static_cast<int>(lin), false, hidden * cols,
                                                  element_size, op);
        add(weight_index(pseudo, recurrent ? kWhh : kWih), gate, hidden * cols, offset);
      }
      if (!d.has_bias) continue;
      for (int64_t lin = 0; lin < 2 * gates; ++lin) {
        const bool recurrent = lin >= gates;
        const int64_t gate = lin % gates;
        const size_t offset = weight_param_offset(handle, d, space_bytes, space, pseudo_int,
                                                  static_cast<int>(lin), true, hidden,
                                                  element_size, op);
        add(weight_index(pseudo, recurrent ? kBhh : kBih), gate, hidden, offset);
      }
    }
  }
  return plan;
}

WeightPlan weight_plan_for(cudnnHandle_t handle, const RnnDescriptors& d, const RnnParams& p,
                           size_t element_size, size_t space_bytes, void* space, const char* op) {
  RnnRegistry& registry = rnn_registry();
  {
    std::lock_guard<std::mutex> lock(registry.mutex);
    auto it = registry.plans.find(d.key);
    if (it != registry.plans.end()) {
      STRATA_ASSERT(it->second.space_bytes == space_bytes, op,
                    ": cuDNN's weight space changed size for one configuration");
      return it->second;
    }
  }
  WeightPlan plan = make_weight_plan(handle, d, p, element_size, space_bytes, space, op);
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.plans.emplace(d.key, plan);
  return plan;
}

// Our weights copied into a cuDNN weight space (from the caching allocator, back to it when the
// last holder lets go, which the stream order makes safe), with what it was packed from: each
// weight's storage (weak, so the cache keeps no weight alive, and a storage freed and another
// made at the same address never match), data pointer and version.
struct PackedWeights {
  RnnKey key;
  size_t bytes;
  ScratchBuffer space;
  WeightPlan plan;
  struct Source {
    std::weak_ptr<Storage> storage;
    const void* data = nullptr;
    uint64_t version = 0;
  };
  std::vector<Source> sources;  // one per weight (empty for an undefined one)

  PackedWeights(CudaBackend& backend, cudnnHandle_t handle, const RnnDescriptors& d,
                const RnnParams& p, const std::vector<Tensor>& weights, size_t element_size,
                const char* op)
      : key(d.key),
        bytes(weight_space_size(handle, d)),
        space(backend, bytes),
        plan(weight_plan_for(handle, d, p, element_size, bytes, space.get(), op)),
        sources(weights.size()) {
    // The versions are read before the copies are queued: a write after this repacks.
    for (size_t i = 0; i < weights.size(); ++i) {
      if (!weights[i].defined()) continue;
      sources[i] = {weights[i].storage(), weights[i].raw_data(), weights[i].version()};
    }
    // Zeroed first so that whatever the plan does not cover (alignment gaps) is defined.
    CUDA_CHECK(cudaMemsetAsync(space.get(), 0, bytes, backend.stream()));
    for (const WeightCopy& c : plan.copies) {
      CUDA_CHECK(cudaMemcpyAsync(
          static_cast<char*>(space.get()) + c.space_offset,
          static_cast<const char*>(weights[c.weight].raw_data()) + c.tensor_offset, c.bytes,
          cudaMemcpyDeviceToDevice, backend.stream()));
    }
  }

  // Packed from exactly these weights as they are now.
  bool matches(const RnnKey& k, const std::vector<Tensor>& weights) const {
    if (k != key || weights.size() != sources.size()) return false;
    for (size_t i = 0; i < weights.size(); ++i) {
      const Source& s = sources[i];
      if (!weights[i].defined()) {
        if (s.data != nullptr) return false;
        continue;
      }
      const std::shared_ptr<Storage> storage = s.storage.lock();
      if (storage == nullptr || storage != weights[i].storage() ||
          s.data != weights[i].raw_data() || s.version != weights[i].version()) {
        return false;
      }
    }
    return true;
  }

  // Packed from these weights' storages, at any version: a newer packing replaces it.
  bool same_weights(const RnnKey& k, const std::vector<Tensor>& weights) const {
    if (k != key || weights.size() != sources.size()) return false;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (!weights[i].defined()) continue;
      const std::shared_ptr<Storage> storage = sources[i].storage.lock();
      if (storage == nullptr || storage != weights[i].storage()) return false;
    }
    return true;
  }

  // A weight it was packed from is gone: it can never match again.
  bool expired() const {
    for (const Source& s : sources) {
      if (s.data != nullptr && s.storage.expired()) return true;
    }
    return false;
  }

  static size_t weight_space_size(cudnnHandle_t handle, const RnnDescriptors& d) {
    size_t size = 0;
    CUDNN_CHECK(cudnnGetRNNWeightSpaceSize(handle, d.rnn.get(), &size));
    return size;
  }
};

// The packed weight spaces of the last few weight sets used, most recent first. Entries whose
// weights died are dropped at the next lookup; a repacking replaces the entry of the same
// weights; past kMaxEntries the least recently used goes.
// NOTE: each entry is a second copy of its weights in device memory: the cache costs at most
// the size of the kMaxEntries largest recurrent stacks in use (PyTorch's unflattened weights
// cost the same copy on every call instead).
struct PackedWeightsCache {
  static constexpr size_t kMaxEntries = 16;
  std::mutex mutex;
  std::list<std::shared_ptr<const PackedWeights>> entries;
};
PackedWeightsCache& packed_weights_cache() {
  static auto* cache = new PackedWeightsCache;  // leaked on purpose, as the backends are
  return *cache;
}

// The packed weight space of `weights` for this configuration: a cached one when they have not
// changed since it was packed, else a new packing (cached in turn).
std::shared_ptr<const PackedWeights> packed_weights_for(CudaBackend& backend,
                                                        cudnnHandle_t handle,
                                                        const RnnDescriptors& d,
                                                        const RnnParams& p,
                                                        const std::vector<Tensor>& weights,
                                                        size_t element_size, const char* op) {
  PackedWeightsCache& cache = packed_weights_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mutex);
    cache.entries.remove_if([](const auto& entry) { return entry->expired(); });
    for (auto it = cache.entries.begin(); it != cache.entries.end(); ++it) {
      if ((*it)->matches(d.key, weights)) {
        cache.entries.splice(cache.entries.begin(), cache.entries, it);
        return cache.entries.front();
      }
    }
  }
  auto packed = std::make_shared<const PackedWeights>(backend, handle, d, p, weights,
                                                      element_size, op);
  std::lock_guard<std::mutex> lock(cache.mutex);
  cache.entries.remove_if([&](const auto& entry) { return entry->same_weights(d.key, weights); });
  cache.entries.push_front(packed);
  while (cache.entries.size() > PackedWeightsCache::kMaxEntries) cache.entries.pop_back();
  return packed;
}

// Puts the per-row lengths into `buffer` (lengths.size() int32 on the device), cuDNN's
// devSeqLengths, through page-locked memory: nothing waits, and the host vector may die at
// return.
void upload_seq_lengths(int device, const ScratchBuffer& buffer,
                        const std::vector<int32_t>& lengths, cudaStream_t stream) {
  host_uploads(device).upload(buffer.get(), lengths.data(), lengths.size() * sizeof(int32_t),
                              stream);
}

void zero_bytes(void* data, size_t bytes, cudaStream_t stream) {
  if (data == nullptr || bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, stream));
}

size_t bytes_of(const Tensor& t) {
  return t.defined() ? static_cast<size_t>(t.numel()) * t.element_size() : 0;
}

void zero_async(const Tensor& t, cudaStream_t stream) {
  if (!t.defined() || t.numel() == 0) return;
  CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, static_cast<size_t>(t.numel()) * t.element_size(),
                             stream));
}

void copy_async(const Tensor& dst, const Tensor& src, cudaStream_t stream) {
  if (!dst.defined() || dst.numel() == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(),
                             static_cast<size_t>(dst.numel()) * dst.element_size(),
                             cudaMemcpyDeviceToDevice, stream));
}

}  // namespace

// x [T, B, in], hx/cx [L*D, B, H] -> y [T, B, D*H], hy/cy [L*D, B, H]; *reserve (training).
void CudaBackend::rnn_forward(const RnnParams& params, const std::vector<Tensor>& weights,
                              const Tensor& x, const Tensor& hx, const Tensor& cx, const Tensor& y,
                              const Tensor& hy, const Tensor& cy, Tensor* reserve) {
  if (detail::any_reduced_floating({&x, &hx, &cx, &y, &hy, &cy}) ||
      detail::any_reduced_floating(weights)) {
    detail::Float32Staging stage;  // the reserve is then float32, as rnn_backward stages too
    rnn_forward(params, stage.inputs(weights), stage.input(x), stage.input(hx), stage.input(cx),
                stage.output(y), stage.output(hy), stage.output(cy), reserve);
    return stage.finish();
  }
  constexpr const char* op = "rnn_forward";
  DeviceGuard guard(device_index_);
  if (params.batch == 0 || params.seq_len == 0) {
    // Nothing to run (cuDNN refuses empty sizes): the final states are the initial ones.
    copy_async(hy, hx, stream_);
    copy_async(cy, cx, stream_);
    if (reserve != nullptr) *reserve = empty({0}, TensorOptions(kUInt8).device(device()));
    return;
  }
  cudnnHandle_t handle = cudnn_handle();
  RnnDescriptors d(handle, device_index_, params, weights, x.dtype(), op);
  const bool training = reserve != nullptr;

  const std::shared_ptr<const PackedWeights> packed =
      packed_weights_for(*this, handle, d, params, weights, x.element_size(), op);

  size_t work_bytes = 0, reserve_bytes = 0;
  CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(handle, d.rnn.get(),
                                        training ? CUDNN_FWD_MODE_TRAINING
                                                 : CUDNN_FWD_MODE_INFERENCE,
                                        d.x.get(), &work_bytes, &reserve_bytes));
  ScratchBuffer work(*this, work_bytes);
  void* reserve_ptr = nullptr;
  if (training) {
    // A fresh allocation: aligned as the allocator's blocks are.
    *reserve = empty({static_cast<int64_t>(reserve_bytes)}, TensorOptions(kUInt8).device(device()));
    reserve_ptr = reserve_bytes > 0 ? reserve->raw_data() : nullptr;
  } else {
    reserve_bytes = 0;
  }
  const ScratchBuffer dev_lengths(*this, d.seq_lengths.size() * sizeof(int32_t));
  upload_seq_lengths(device_index_, dev_lengths, d.seq_lengths, stream_);

  const bool lstm = params.mode == RnnMode::Lstm;
  // hy and cy are views into one buffer with y (core's packing): often misaligned.
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), hx_a(*this, hx, Use::kIn),
      cx_a(*this, lstm ? cx : Tensor(), Use::kIn);
  AlignedData y_a(*this, y, Use::kOut), hy_a(*this, hy, Use::kOut),
      cy_a(*this, lstm ? cy : Tensor(), Use::kOut);
  // NOTE: with lengths, y's padded steps are cuDNN's padding fill (0); zeroed here as well so
  // that the contract's zeros do not rest on that alone.
  if (!params.lengths.empty()) zero_bytes(y_a.get(), bytes_of(y), stream_);

  CUDNN_CHECK(cudnnRNNForward(
      handle, d.rnn.get(), training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE,
      static_cast<const int32_t*>(dev_lengths.get()), d.x.get(), x_a.get(), d.y.get(), y_a.get(),
      d.state.get(), hx_a.get(), hy_a.get(), d.state.get(), cx_a.get(), cy_a.get(), packed->bytes,
      packed->space.get(), work_bytes, work.get(), reserve_bytes, reserve_ptr));
  for (AlignedData* written : {&y_a, &hy_a, &cy_a}) written->write_back();
}

// dy [T, B, D*H], dhy/dcy [L*D, B, H] -> dx [T, B, in], dhx/dcx [L*D, B, H], dweights.
void CudaBackend::rnn_backward(const RnnParams& params, const std::vector<Tensor>& weights,
                               const Tensor& x, const Tensor& hx, const Tensor& cx,
                               const Tensor& y, const Tensor& reserve, const Tensor& dy,
                               const Tensor& dhy, const Tensor& dcy, const Tensor& dx,
                               const Tensor& dhx, const Tensor& dcx,
                               const std::vector<Tensor>& dweights) {
  if (detail::any_reduced_floating({&x, &hx, &cx, &y, &dy, &dhy, &dcy, &dx, &dhx, &dcx}) ||
      detail::any_reduced_floating(weights) || detail::any_reduced_floating(dweights)) {
    detail::Float32Staging stage;
    rnn_backward(params, stage.inputs(weights), stage.input(x), stage.input(hx), stage.input(cx),
                 stage.input(y), reserve, stage.input(dy), stage.input(dhy), stage.input(dcy),
                 stage.output(dx), stage.output(dhx), stage.output(dcx), stage.outputs(dweights));
    return stage.finish();
  }
  constexpr const char* op = "rnn_backward";
  DeviceGuard guard(device_index_);
  const bool lstm = params.mode == RnnMode::Lstm;
  if (params.batch == 0 || params.seq_len == 0) {
    // The final states were the initial ones and no weight was used.
    if (dhy.defined()) {
      copy_async(dhx, dhy, stream_);
    } else {
      zero_async(dhx, stream_);
    }
    if (lstm && dcy.defined()) {
      copy_async(dcx, dcy, stream_);
    } else {
      zero_async(dcx, stream_);
    }
    for (const Tensor& dw : dweights) zero_async(dw, stream_);
    return;
  }
  cudnnHandle_t handle = cudnn_handle();
  RnnDescriptors d(handle, device_index_, params, weights, x.dtype(), op);
  STRATA_ASSERT(dweights.size() == weights.size(), op, ": ", dweights.size(),
                " weight gradients for ", weights.size(), " weights");

  const std::shared_ptr<const PackedWeights> packed =
      packed_weights_for(*this, handle, d, params, weights, x.element_size(), op);

  size_t work_bytes = 0, reserve_bytes = 0;
  CUDNN_CHECK(cudnnGetRNNTempSpaceSizes(handle, d.rnn.get(), CUDNN_FWD_MODE_TRAINING, d.x.get(),
                                        &work_bytes, &reserve_bytes));
  const size_t have = static_cast<size_t>(reserve.numel()) * reserve.element_size();
  STRATA_CHECK(have >= reserve_bytes, op, ": the reserve holds ", have,
               " bytes but cuDNN needs ", reserve_bytes,
               " (it must come from rnn_forward with the same parameters, in training)");
  ScratchBuffer work(*this, work_bytes);
  const ScratchBuffer dev_lengths(*this, d.seq_lengths.size() * sizeof(int32_t));
  upload_seq_lengths(device_index_, dev_lengths, d.seq_lengths, stream_);

  // dhy and dcy are views into one gradient buffer with dy (core's packing): often misaligned.
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), hx_a(*this, hx, Use::kIn),
      cx_a(*this, lstm ? cx : Tensor(), Use::kIn), y_a(*this, y, Use::kIn),
      dy_a(*this, dy, Use::kIn), dhy_a(*this, dhy, Use::kIn),
      dcy_a(*this, lstm ? dcy : Tensor(), Use::kIn);
  AlignedData dx_a(*this, dx, Use::kOut), dhx_a(*this, dhx, Use::kOut),
      dcx_a(*this, lstm ? dcx : Tensor(), Use::kOut);
  // The reserve is rnn_forward's own allocation (aligned); in/out all the same.
  AlignedData reserve_a(*this, reserve, Use::kInOut);
  // NOTE: dx at padded steps must be zero (contract); cuDNN is not documented to write them.
  if (!params.lengths.empty()) zero_bytes(dx_a.get(), bytes_of(dx), stream_);

  // NOTE: backward data writes into the reserve (it is in/out), which backward weights then
  // reads: the two calls must run in this order. dhy/dcy null mean zero gradients.
  void* reserve_ptr = reserve_bytes > 0 ? reserve_a.get() : nullptr;
  CUDNN_CHECK(cudnnRNNBackwardData_v8(
      handle, d.rnn.get(), static_cast<const int32_t*>(dev_lengths.get()), d.y.get(), y_a.get(),
      dy_a.get(), d.x.get(), dx_a.get(), d.state.get(), hx_a.get(), dhy_a.get(), dhx_a.get(),
      d.state.get(), cx_a.get(), dcy_a.get(), dcx_a.get(), packed->bytes, packed->space.get(),
      work_bytes, work.get(), reserve_bytes, reserve_ptr));
  for (AlignedData* written : {&dx_a, &dhx_a, &dcx_a}) written->write_back();

  bool any_dweight = false;
  for (const Tensor& dw : dweights) any_dweight = any_dweight || dw.defined();
  if (any_dweight) {
    // CUDNN_WGRAD_MODE_ADD into a zeroed space: the gradients themselves.
    ScratchBuffer dspace(*this, packed->bytes);
    CUDA_CHECK(cudaMemsetAsync(dspace.get(), 0, packed->bytes, stream_));
    CUDNN_CHECK(cudnnRNNBackwardWeights_v8(
        handle, d.rnn.get(), CUDNN_WGRAD_MODE_ADD, static_cast<const int32_t*>(dev_lengths.get()),
        d.x.get(), x_a.get(), d.state.get(), hx_a.get(), d.y.get(), y_a.get(), packed->bytes,
        dspace.get(), work_bytes, work.get(), reserve_bytes, reserve_ptr));
    // Byte copies out of the space: any alignment of the gradients will do.
    for (const WeightCopy& c : packed->plan.copies) {
      const Tensor& dw = dweights[c.weight];
      if (!dw.defined()) continue;
      CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dw.raw_data()) + c.tensor_offset,
                                 static_cast<const char*>(dspace.get()) + c.space_offset, c.bytes,
                                 cudaMemcpyDeviceToDevice, stream_));
    }
  }
  reserve_a.write_back();
}

}  // namespace strata::cuda
