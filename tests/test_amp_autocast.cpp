// Autocast: the output dtype of 40 ops under an AutocastGuard against PyTorch's
// (tests/data/autocast_dtypes.txt from gen_autocast_dtypes.py), and the guard's behaviour:
// defaults, nesting, disabling, the weight-cast cache, gradients reaching float32 parameters in
// float32, backward running without autocast, and the errors.
// NOTE: Strata follows PyTorch's CUDA op lists on both device types (PyTorch 1.13's CPU lists
// differ: softmax, exp, sum and others follow their input there, and LSTM is not cast). So the
// table's expectation for an op is its `cuda` line where PyTorch's CUDA autocast lists the op,
// read with bf16 for f16 (the lists do not depend on the low-precision dtype), and otherwise
// its `cpu` line (an op in neither list follows its inputs on both devices). The test runs on
// the CPU with bf16, the CPU's default autocast dtype.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fixtures.h"
#include "strata/amp/autocast.h"
#include "strata/detail/cpu_memory.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

namespace F = nn::functional;
using amp::AutocastGuard;

// ---- the dtype table ---------------------------------------------------------------------------

// An op given the dtype of its first floating input and of the others (its parameters).
using DtypeOp = std::function<Tensor(DType first, DType rest)>;

Tensor r(const Shape& shape, DType dtype, double lo = -1.0, double hi = 1.0) {
  static uint32_t seed = 1;
  return test::random_f32(shape, lo, hi, seed++).to(dtype);
}

std::map<std::string, DtypeOp> table_ops() {
  const Tensor labels = test::i64({0, 2, 1});
  std::map<std::string, DtypeOp> ops;
  ops["matmul"] = [](DType a, DType b) { return matmul(r({3, 4}, a), r({4, 5}, b)); };
  ops["mm"] = [](DType a, DType b) { return matmul(r({3, 4}, a), r({4, 2}, b)); };
  ops["bmm"] = [](DType a, DType b) { return matmul(r({2, 3, 4}, a), r({2, 4, 5}, b)); };
  ops["linear"] = [](DType a, DType b) { return F::linear(r({3, 4}, a), r({5, 4}, b), r({5}, b)); };
  ops["conv1d"] = [](DType a, DType b) {
    return F::conv1d(r({2, 3, 8}, a), r({4, 3, 3}, b), r({4}, b));
  };
  ops["conv2d"] = [](DType a, DType b) {
    return F::conv2d(r({2, 3, 6, 6}, a), r({4, 3, 3, 3}, b), r({4}, b));
  };
  const auto recurrent = [](RnnMode mode, int64_t gates) {
    return [mode, gates](DType a, DType b) {
      F::RecurrentOptions options;
      options.mode = mode;
      return F::recurrent(r({5, 2, 3}, a), Tensor(), Tensor(),
                          {r({gates * 4, 3}, b), r({gates * 4, 4}, b), r({gates * 4}, b),
                           r({gates * 4}, b)},
                          options)
          .output;
    };
  };
  ops["lstm"] = recurrent(RnnMode::Lstm, 4);
  ops["gru"] = recurrent(RnnMode::Gru, 3);
  ops["rnn_cell"] = [](DType a, DType b) {
    return F::rnn_tanh_cell(r({2, 3}, a), zeros({2, 4}, a), r({4, 3}, b), r({4, 4}, b),
                            r({4}, b), r({4}, b));
  };
  ops["softmax"] = [](DType a, DType) { return F::softmax(r({3, 4}, a), 1); };
  ops["log_softmax"] = [](DType a, DType) { return F::log_softmax(r({3, 4}, a), 1); };
  ops["cross_entropy"] = [labels](DType a, DType) { return F::cross_entropy(r({3, 4}, a), labels); };
  ops["nll_loss"] = [labels](DType a, DType) { return F::nll_loss(r({3, 4}, a), labels); };
  ops["mse_loss"] = [](DType a, DType b) { return F::mse_loss(r({3, 4}, a), r({3, 4}, b)); };
  ops["l1_loss"] = [](DType a, DType b) { return F::l1_loss(r({3, 4}, a), r({3, 4}, b)); };
  ops["smooth_l1_loss"] = [](DType a, DType b) {
    return F::smooth_l1_loss(r({3, 4}, a), r({3, 4}, b));
  };
  ops["binary_cross_entropy_with_logits"] = [](DType a, DType b) {
    return F::binary_cross_entropy_with_logits(r({3, 4}, a), r({3, 4}, b, 0.0, 1.0));
  };
  ops["binary_cross_entropy"] = [](DType a, DType b) {
    return F::binary_cross_entropy(r({3, 4}, a, 0.1, 0.9), r({3, 4}, b, 0.0, 1.0));
  };
  ops["layer_norm"] = [](DType a, DType b) {
    return F::layer_norm(r({3, 4}, a), {4}, r({4}, b), r({4}, b));
  };
  ops["batch_norm"] = [](DType a, DType b) {
    return F::batch_norm(r({4, 3}, a), zeros({3}, b), ones({3}, b), r({3}, b), r({3}, b), true);
  };
  ops["exp"] = [](DType a, DType) { return exp(r({3, 4}, a)); };
  ops["log"] = [](DType a, DType) { return log(r({3, 4}, a, 0.5, 2.0)); };
  ops["sqrt"] = [](DType a, DType) { return sqrt(r({3, 4}, a, 0.5, 2.0)); };
  ops["pow_scalar"] = [](DType a, DType) { return pow(r({3, 4}, a), 2.0); };
  ops["pow_tensor"] = [](DType a, DType b) { return pow(r({3, 4}, a, 0.5, 2.0), r({3, 4}, b)); };
  ops["sum"] = [](DType a, DType) { return sum(r({3, 4}, a)); };
  ops["mean"] = [](DType a, DType) { return mean(r({3, 4}, a)); };
  ops["add"] = [](DType a, DType b) { return add(r({3, 4}, a), r({3, 4}, b)); };
  ops["mul"] = [](DType a, DType b) { return mul(r({3, 4}, a), r({3, 4}, b)); };
  ops["cat"] = [](DType a, DType b) { return cat({r({3, 4}, a), r({2, 4}, b)}); };
  ops["stack"] = [](DType a, DType b) { return stack({r({3, 4}, a), r({3, 4}, b)}); };
  ops["where"] = [](DType a, DType b) {
    const Tensor x = r({3, 4}, a);
    return where(gt(x, 0.0), x, r({3, 4}, b));
  };
  ops["relu"] = [](DType a, DType) { return F::relu(r({3, 4}, a)); };
  ops["gelu"] = [](DType a, DType) { return F::gelu(r({3, 4}, a)); };
  ops["sigmoid"] = [](DType a, DType) { return F::sigmoid(r({3, 4}, a)); };
  ops["tanh"] = [](DType a, DType) { return F::tanh(r({3, 4}, a)); };
  ops["dropout"] = [](DType a, DType) { return F::dropout(r({3, 4}, a), 0.5, true); };
  ops["max_pool2d"] = [](DType a, DType) { return F::max_pool2d(r({1, 2, 4, 4}, a), 2); };
  ops["avg_pool2d"] = [](DType a, DType) { return F::avg_pool2d(r({1, 2, 4, 4}, a), 2); };
  ops["embedding"] = [](DType a, DType) {
    return F::embedding(test::i64({1, 0, 3}), r({5, 4}, a));
  };
  return ops;
}

struct Expectation {
  std::string op, case_name, dtype;  // dtype: "f32", "bf16", ... or "error"
};

// The table's expectations for the CPU with bf16 (see the file's NOTE).
std::vector<Expectation> expectations() {
  const std::string path = test::data_path("autocast_dtypes.txt");
  std::ifstream in(path);
  STRATA_CHECK(in.good(), "cannot open ", path);
  std::map<std::string, std::vector<Expectation>> cpu, cuda;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string device, op, case_name, dtype;
    fields >> device >> op >> case_name >> dtype;
    (device == "cuda" ? cuda : cpu)[op].push_back({op, case_name, dtype});
  }
  // "f32_f16" -> "f32_bf16", "f16" -> "bf16" (no name holds both f16 and bf16).
  const auto as_bf16 = [](std::string text) {
    for (size_t at = text.find("f16"); at != std::string::npos; at = text.find("f16", at + 4)) {
      text.replace(at, 3, "bf16");
    }
    return text;
  };
  std::vector<Expectation> out;
  for (const auto& [op, rows] : cpu) {
    if (!cuda.count(op)) {
      out.insert(out.end(), rows.begin(), rows.end());
      continue;
    }
    for (const Expectation& row : cuda.at(op)) {
      // The f16 cases, renamed to bf16, stand for the CUDA list with bf16 as its dtype.
      if (row.case_name.find("f16") == std::string::npos || row.case_name.find("bf16") !=
                                                                std::string::npos) {
        continue;
      }
      out.push_back({op, as_bf16(row.case_name), as_bf16(row.dtype)});
    }
  }
  return out;
}

TEST(Autocast, OutputDtypesMatchPyTorchsTable) {
  const auto ops = table_ops();
  const std::vector<Expectation> rows = expectations();
  int checked = 0;
  std::set<std::string> covered;
  for (const Expectation& row : rows) {
    const auto op = ops.find(row.op);
    if (op == ops.end()) continue;  // an op Strata does not have yet (addmm, prod, ...)
    const DType first = row.case_name.rfind("f32", 0) == 0 ? kFloat32 : kBFloat16;
    const DType rest = row.case_name == "f32" || row.case_name == "bf16_f32" ? kFloat32
                                                                            : kBFloat16;
    std::string got;
    try {
      AutocastGuard autocast(kCPU);
      got = dtype_name(op->second(first, rest).dtype());
    } catch (const Error&) {
      got = "error";
    }
    EXPECT_EQ(got, row.dtype) << row.op << " with inputs " << row.case_name;
    ++checked;
    covered.insert(row.op);
  }
  EXPECT_EQ(covered.size(), ops.size()) << "every op of the table is in the fixture";
  EXPECT_EQ(ops.size(), 40u);
  EXPECT_GE(checked, 95);
}

// ---- the guard ---------------------------------------------------------------------------------

TEST(Autocast, DefaultsNestingAndDisabling) {
  EXPECT_FALSE(amp::is_autocast_enabled(kCPU));
  const Tensor a = r({2, 3}, kFloat32), b = r({3, 2}, kFloat32);
  EXPECT_EQ(matmul(a, b).dtype(), kFloat32);
  {
    AutocastGuard outer(kCPU);
    EXPECT_TRUE(amp::is_autocast_enabled(kCPU));
    EXPECT_FALSE(amp::is_autocast_enabled(kCUDA)) << "one guard, one device type";
    EXPECT_EQ(amp::autocast_dtype(kCPU), kBFloat16) << "the CPU's default";
    EXPECT_EQ(matmul(a, b).dtype(), kBFloat16);
    {
      AutocastGuard inner(kCPU, kFloat16);
      EXPECT_EQ(matmul(a, b).dtype(), kFloat16);
      {
        AutocastGuard off(kCPU, std::nullopt, false);
        EXPECT_EQ(matmul(a, b).dtype(), kFloat32) << "a disabled guard turns it off";
      }
      EXPECT_EQ(matmul(a, b).dtype(), kFloat16);
    }
    EXPECT_EQ(matmul(a, b).dtype(), kBFloat16) << "the outer guard's dtype is back";
    EXPECT_EQ(matmul(a.to(kFloat64), b.to(kFloat64)).dtype(), kFloat64) << "f64 is left alone";
  }
  EXPECT_FALSE(amp::is_autocast_enabled(kCPU));
  EXPECT_EQ(amp::default_autocast_dtype(kCUDA), kFloat16);
}

TEST(Autocast, GradientsReachFloat32ParametersInFloat32) {
  nn::Linear layer(4, 3);
  const Tensor x = r({5, 4}, kFloat32);
  Tensor loss;
  {
    AutocastGuard autocast(kCPU);
    const Tensor y = layer(x);
    EXPECT_EQ(y.dtype(), kBFloat16);
    loss = F::mse_loss(y, zeros({5, 3}));
    EXPECT_EQ(loss.dtype(), kFloat32) << "losses run in float32";
  }
  loss.backward();
  for (const Tensor& p : layer.parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().dtype(), kFloat32);
  }
  // The same step in float32: the gradients agree to bf16's precision.
  Tensor reference_loss = F::mse_loss(layer(x), zeros({5, 3}));
  const std::vector<Tensor> params = layer.parameters();
  std::vector<Tensor> mixed;
  for (const Tensor& p : params) mixed.push_back(p.grad().clone());
  for (const Tensor& p : params) {
    Tensor grad = p.grad();
    grad.zero_();
  }
  reference_loss.backward();
  for (size_t i = 0; i < params.size(); ++i) {
    test::expect_close(mixed[i], params[i].grad(), 3e-2, 1e-2);  // bf16 inputs: 2^-8 each
  }
}

TEST(Autocast, CachesAParametersCastForTheLifeOfTheGuard) {
  Tensor w = r({4, 4}, kFloat32);
  w.set_requires_grad(true);
  const Tensor x = r({2, 4}, kFloat32);
  Tensor first_cast, second_cast;
  {
    AutocastGuard autocast(kCPU);
    first_cast = amp::cast_to_low_precision(w);
    second_cast = amp::cast_to_low_precision(w);
    EXPECT_TRUE(first_cast.is_same(second_cast)) << "one cast per guard";
    const Tensor activation = mul(w, 1.0);  // float32, but not a leaf: never cached
    EXPECT_FALSE(amp::cast_to_low_precision(activation).is_same(
        amp::cast_to_low_precision(activation)));
    {
      NoGradGuard no_grad;
      w.detach().mul_(2.0);  // an in-place update: the cast is made again
    }
    const Tensor after_update = amp::cast_to_low_precision(w);
    EXPECT_FALSE(after_update.is_same(first_cast));
    test::expect_close(after_update.to(kFloat32), mul(first_cast.to(kFloat32), 2.0), 0, 0);
  }
  {
    AutocastGuard autocast(kCPU);
    EXPECT_FALSE(amp::cast_to_low_precision(w).is_same(first_cast)) << "a new guard, a new cache";
  }
  // Both uses of one cached cast send their gradient to the parameter.
  {
    Tensor loss;
    {
      AutocastGuard autocast(kCPU);
      loss = sum(add(matmul(x, w), matmul(x, w)).to(kFloat32));
    }
    loss.backward();
    const Tensor expected = mul(matmul(x.t(), ones({2, 4})), 2.0);
    test::expect_close(w.grad(), expected, 3e-2, 1e-2);
  }
}

// linear, conv2d and the recurrent stacks keep a parameter, not its cast, for their backward
// (amp::SavedTensor): once the guard ends, no low-precision copy of a weight is held, and the
// backward casts again, to the same values.
TEST(Autocast, TheTapeKeepsParametersNotTheirCasts) {
  nn::Linear layer(1024, 512);
  Tensor x = r({2, 1024}, kFloat32);
  x.set_requires_grad(true);
  detail::start_cpu_memory_tracking();
  Tensor y;
  {
    AutocastGuard autocast(kCPU);
    y = layer(x);
  }
  const int64_t held = detail::cpu_memory_stats().allocated_bytes;
  detail::stop_cpu_memory_tracking();
  EXPECT_LT(held, 64 * 1024) << "a 1 MB bf16 cast of the weight is not kept";
  const Tensor upstream = r({2, 512}, kBFloat16);
  y.backward(upstream);
  // grad x = upstream @ bf16(w), in bf16, cast back to f32 for x.
  test::expect_close(x.grad(), matmul(upstream, layer.weight.detach().to(kBFloat16)).to(kFloat32),
                     0, 0);

  // The parameter changed between forward and backward: its cast would differ; refused.
  nn::Conv2d conv(2, 3, 3);
  Tensor image = r({1, 2, 5, 5}, kFloat32);
  image.set_requires_grad(true);
  Tensor z;
  {
    AutocastGuard autocast(kCPU);
    z = conv(image);
  }
  {
    NoGradGuard no_grad;
    conv.weight.mul_(0.5);
  }
  test::expect_error([&] { sum(z.to(kFloat32)).backward(); },
                     {"conv2d", "autocast", "modified in place", "bf16"});
}

TEST(Autocast, BackwardRunsWithoutAutocast) {
  Tensor w = r({3, 3}, kFloat32);
  w.set_requires_grad(true);
  AutocastGuard autocast(kCPU);
  const Tensor y = matmul(r({2, 3}, kFloat32), w);
  sum(y).backward();  // inside the guard: the backward's products follow the saved dtypes
  EXPECT_EQ(w.grad().dtype(), kFloat32);
  EXPECT_TRUE(amp::is_autocast_enabled(kCPU)) << "the guard's state survives backward";
}

TEST(Autocast, MisuseIsAnErrorNamingTheCall) {
  test::expect_error([] { AutocastGuard guard(kCPU, kInt64); }, {"AutocastGuard", "i64"});
  test::expect_error([] { AutocastGuard guard(kCUDA, kFloat32); }, {"AutocastGuard", "f32"});
  AutocastGuard autocast(kCPU);
  test::expect_error(
      [] { (void)F::binary_cross_entropy(r({2}, kFloat32, 0.1, 0.9), ones({2})); },
      {"binary_cross_entropy", "binary_cross_entropy_with_logits"});
}

}  // namespace
}  // namespace strata
