// oneDNN's matmul primitive for bf16 products (see onednn_matmul.h). Primitives are made once
// per geometry (oneDNN compiles each for its shapes) and kept; every call wraps the tensors'
// own memory, so nothing is copied but an operand whose strides oneDNN cannot take.
#include "onednn_matmul.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "strata/error.h"

#if STRATA_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace strata::cpu {

#if STRATA_WITH_ONEDNN

namespace {

dnnl::engine& engine() {
  static dnnl::engine cpu_engine(dnnl::engine::kind::cpu, 0);
  return cpu_engine;
}

// An operand as oneDNN reads it: dims {B or 1, rows, cols} with its strides; a batch of one
// (or a broadcast batch, stride 0) is dims[0] = 1.
struct Operand {
  Tensor tensor;  // the one read (a contiguous copy when the strides are not usable)
  dnnl::memory::dims dims, strides;
};

Operand operand_of(const Tensor& t) {
  Operand op;
  // A zero stride on a matrix dim (an expanded row or column) is not a layout oneDNN takes.
  op.tensor = (t.size(1) > 1 && t.stride(1) == 0) || (t.size(2) > 1 && t.stride(2) == 0)
                  ? t.contiguous()
                  : t;
  const Tensor& u = op.tensor;
  const bool broadcast = u.size(0) == 1 || u.stride(0) == 0;
  op.dims = {broadcast ? 1 : u.size(0), u.size(1), u.size(2)};
  op.strides = {broadcast ? u.size(1) * u.size(2) : u.stride(0), u.stride(1), u.stride(2)};
  return op;
}

using Key = std::tuple<dnnl::memory::dims, dnnl::memory::dims, dnnl::memory::dims,
                       dnnl::memory::dims, dnnl::memory::dims, bool>;

dnnl::matmul primitive_for(const Operand& a, const Operand& b, const dnnl::memory::desc& dst,
                           const dnnl::memory::dims& dst_dims, bool accumulate) {
  static std::mutex mutex;
  static std::map<Key, dnnl::matmul> cache;
  const Key key{a.dims, a.strides, b.dims, b.strides, dst_dims, accumulate};
  std::lock_guard<std::mutex> lock(mutex);
  auto found = cache.find(key);
  if (found != cache.end()) return found->second;
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc a_md(a.dims, dt::bf16, a.strides);
  const dnnl::memory::desc b_md(b.dims, dt::bf16, b.strides);
  dnnl::primitive_attr attr;
  if (accumulate) {  // out = a @ b + out, rounded once
    dnnl::post_ops sum;
    sum.append_sum(1.0f);
    attr.set_post_ops(sum);
  }
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, dst), attr, engine());
  return cache.emplace(key, dnnl::matmul(pd)).first->second;
}

bool detect() {
  const char* setting = std::getenv("STRATA_CPU_BF16_GEMM");
  if (setting != nullptr && std::strcmp(setting, "0") == 0) return false;
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

}  // namespace

bool onednn_bf16_matmul_available() {
  static const bool available = detect();
  return available;
}

void onednn_bf16_matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  const Operand lhs = operand_of(a), rhs = operand_of(b);
  const dnnl::memory::dims dst_dims = {out.size(0), out.size(1), out.size(2)};
  const dnnl::memory::desc dst_md(dst_dims, dnnl::memory::data_type::bf16,
                                  dnnl::memory::format_tag::abc);
  try {
    dnnl::matmul product = primitive_for(lhs, rhs, dst_md, dst_dims, accumulate);
    using dt = dnnl::memory::data_type;
    dnnl::memory a_mem({lhs.dims, dt::bf16, lhs.strides}, engine(), lhs.tensor.raw_data());
    dnnl::memory b_mem({rhs.dims, dt::bf16, rhs.strides}, engine(), rhs.tensor.raw_data());
    dnnl::memory c_mem(dst_md, engine(), out.raw_data());
    dnnl::stream stream(engine());
    product.execute(stream,
                    {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    stream.wait();
  } catch (const dnnl::error& e) {
    STRATA_CHECK(false, "matmul: oneDNN failed on bf16 operands ", shape_str(a.shape()), " and ",
                 shape_str(b.shape()), ": ", e.what());
  }
}

#else  // built without oneDNN

bool onednn_bf16_matmul_available() { return false; }

void onednn_bf16_matmul(const Tensor&, const Tensor&, const Tensor&, bool) {
  STRATA_ASSERT(false, "onednn_bf16_matmul: built without oneDNN");
}

#endif

}  // namespace strata::cpu
