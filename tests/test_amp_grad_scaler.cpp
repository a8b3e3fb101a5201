// GradScaler: scales, skipped steps, growth and backoff against PyTorch's over 30 steps with
// infinities and a NaN injected (tests/data/grad_scaler.txt from gen_grad_scaler.py), the
// fused check-and-unscale kernel on every floating dtype (and CPU-vs-CUDA parity), clipping
// after unscale_, the state dict, and misuse.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "fixtures.h"
#include "strata/amp/grad_scaler.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using amp::GradScaler;
using amp::GradScalerOptions;

struct TraceStep {
  int step;
  double scale_used;
  bool skipped;
  double scale_after;
  int64_t tracker_after;
  std::vector<double> params;  // w0 w1 w2 b0 b1 after the step
  std::vector<double> grads;   // the unscaled gradients the optimizer saw
};

// The runs of grad_scaler.txt by name ("interval3", "interval2000").
std::map<std::string, std::vector<TraceStep>> read_trace() {
  const std::string path = test::data_path("grad_scaler.txt");
  std::ifstream in(path);
  STRATA_CHECK(in.good(), "cannot open ", path);
  std::map<std::string, std::vector<TraceStep>> runs;
  std::string line, run;
  const auto number = [](const std::string& text) {
    if (text == "inf") return std::numeric_limits<double>::infinity();
    if (text == "-inf") return -std::numeric_limits<double>::infinity();
    if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
    return std::stod(text);
  };
  while (std::getline(in, line)) {
    if (line.rfind("# run ", 0) == 0) {
      run = line.substr(6, line.find(' ', 6) - 6);
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string field; fields >> field;) f.push_back(field);
    STRATA_CHECK(f.size() == 16, "grad_scaler.txt: a line of ", f.size(), " fields");
    TraceStep s;
    s.step = std::stoi(f[0]);
    s.scale_used = number(f[1]);
    s.skipped = f[2] == "1";
    s.scale_after = number(f[4]);
    s.tracker_after = std::stoll(f[5]);
    for (int i = 6; i < 11; ++i) s.params.push_back(number(f[i]));
    for (int i = 11; i < 16; ++i) s.grads.push_back(number(f[i]));
    runs[run].push_back(s);
  }
  return runs;
}

// The generator's model: loss = sum(cw * w) + sum(cb * b), cw = [0.5, -0.25, 1] k,
// cb = [0.125, -2] k, k = 1 + step % 3, SGD lr 0.1; `inject` puts a value into a coefficient
// at a step: {step, {"w" or "b", index, value}}.
struct Injection {
  int step;
  bool in_w;
  int index;
  double value;
};

void replay(const std::vector<TraceStep>& trace, int64_t growth_interval,
            const std::vector<Injection>& inject) {
  Tensor w = test::f32({0.5f, -1.25f, 2.0f});
  Tensor b = test::f32({0.75f, -0.375f});
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  optim::SGD sgd({w, b}, {.lr = 0.1});
  GradScaler scaler({.growth_interval = growth_interval});
  ASSERT_EQ(trace.size(), 30u);
  for (const TraceStep& expected : trace) {
    SCOPED_TRACE("step " + std::to_string(expected.step));
    const double k = 1.0 + expected.step % 3;
    std::vector<double> cw = {0.5 * k, -0.25 * k, 1.0 * k}, cb = {0.125 * k, -2.0 * k};
    for (const Injection& i : inject) {
      if (i.step == expected.step) (i.in_w ? cw : cb)[static_cast<size_t>(i.index)] = i.value;
    }
    sgd.zero_grad();
    const Tensor loss = add(sum(mul(test::f64(cw).to(kFloat32), w)),
                            sum(mul(test::f64(cb).to(kFloat32), b)));
    EXPECT_EQ(scaler.get_scale(), expected.scale_used);
    scaler.scale(loss).backward();
    const bool stepped = scaler.step(sgd);
    EXPECT_EQ(!stepped, expected.skipped);
    test::expect_values(cat({w.grad(), b.grad()}), {5}, expected.grads, 0.0, 0.0);
    scaler.update();
    EXPECT_EQ(scaler.get_scale(), expected.scale_after);
    EXPECT_EQ(scaler.growth_tracker(), expected.tracker_after);
    // PyTorch's SGD rounds once (a fused multiply-add): within an ulp of float32.
    test::expect_values(cat({w, b}).detach(), {5}, expected.params, 2e-7, 1e-7);
  }
}

TEST(GradScaler, MatchesPyTorchsScalesAndSkippedStepsWithGrowthEveryThreeSteps) {
  const auto runs = read_trace();
  const double inf = std::numeric_limits<double>::infinity();
  replay(runs.at("interval3"), 3,
         {{4, true, 1, inf}, {5, false, 1, inf}, {11, true, 1, inf},
          {20, false, 0, std::numeric_limits<double>::quiet_NaN()}});
}

TEST(GradScaler, MatchesPyTorchsScalesWithTheDefaultGrowthInterval) {
  const auto runs = read_trace();
  replay(runs.at("interval2000"), 2000, {{7, true, 1, std::numeric_limits<double>::infinity()}});
}

// ---- the fused kernel ----------------------------------------------------------------------------

TEST(GradScaler, KernelUnscalesEveryFloatingDtypeAndFindsNonFiniteValues) {
  Backend& cpu = cpu_backend();
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dtype));
    // Large enough to split over threads, with the non-finite value near the end.
    Tensor big = full({70000}, 1024.0, dtype);
    Tensor small = test::f32({2048.0f, -512.0f}).to(dtype);
    Tensor flag = zeros({1});
    cpu.non_finite_check_and_unscale({big, small}, flag, 1.0 / 1024);
    EXPECT_EQ(flag.item<float>(), 0.0f);
    EXPECT_EQ(max(big).item<double>(), 1.0);
    test::expect_values(small, {2}, {2.0, -0.5}, 0.0, 0.0);
    big.narrow(0, 69990, 1).fill_(std::numeric_limits<double>::infinity());
    cpu.non_finite_check_and_unscale({small, big}, flag, 0.5);
    EXPECT_EQ(flag.item<float>(), 1.0f) << "an infinity anywhere sets the flag";
    test::expect_values(small, {2}, {1.0, -0.25}, 0.0, 0.0);  // every tensor is scaled
    Tensor nan_grad = test::f32({std::nanf("")}).to(dtype);
    Tensor fresh = zeros({1});
    cpu.non_finite_check_and_unscale({nan_grad}, fresh, 1.0);
    EXPECT_EQ(fresh.item<float>(), 1.0f) << "a NaN sets it too";
  }
}

TEST(GradScaler, KernelMatchesOnCuda) {
  if (!cuda_is_available()) GTEST_SKIP() << test::cuda_unavailable_reason();
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor host = test::random_f32({1000}, -4096, 4096, 3).to(dtype);
    host.narrow(0, 777, 1).fill_(std::numeric_limits<double>::infinity());
    Tensor device = host.to(test::kCudaDevice);
    Tensor host_flag = zeros({1}), device_flag = zeros({1}, TensorOptions().device(test::kCudaDevice));
    cpu_backend().non_finite_check_and_unscale({host}, host_flag, 1.0 / 64);
    backend_for(test::kCudaDevice).non_finite_check_and_unscale({device}, device_flag, 1.0 / 64);
    test::expect_close(device.cpu(), host, 0.0, 0.0);
    EXPECT_EQ(device_flag.item<float>(), host_flag.item<float>());
  }
}

// ---- the workflow ---------------------------------------------------------------------------------

TEST(GradScaler, UnscaleBeforeClippingShowsTheTrueGradients) {
  Tensor w = test::f32({3.0f, 4.0f});
  w.set_requires_grad(true);
  optim::SGD sgd({w}, {.lr = 1.0});
  GradScaler scaler;
  scaler.scale(sum(mul(w, w))).backward();  // true gradient 2w = [6, 8], norm 10
  scaler.unscale_(sgd);
  test::expect_values(w.grad(), {2}, {6.0, 8.0}, 0.0, 0.0);
  EXPECT_NEAR(nn::utils::clip_grad_norm_({w}, 5.0), 10.0, 1e-5);
  EXPECT_TRUE(scaler.step(sgd)) << "step() does not unscale twice";
  test::expect_values(w.detach(), {2}, {0.0, 0.0}, 0.0, 1e-6);
  scaler.update();
  EXPECT_EQ(scaler.get_scale(), 65536.0);
  EXPECT_EQ(scaler.growth_tracker(), 1);
}

TEST(GradScaler, StateDictRoundTripsAndADisabledScalerPassesThrough) {
  GradScaler scaler({.init_scale = 1024.0, .growth_interval = 10});
  Tensor w = test::f32({1.0f});
  w.set_requires_grad(true);
  optim::SGD sgd({w}, {.lr = 0.5});
  scaler.scale(mul(w, 2.0)).backward();
  scaler.step(sgd);
  scaler.update();
  const auto state = scaler.state_dict();
  EXPECT_EQ(state.at("scale"), 1024.0);
  EXPECT_EQ(state.at("_growth_tracker"), 1.0);
  EXPECT_EQ(state.at("growth_interval"), 10.0);
  GradScaler restored;
  restored.load_state_dict(state);
  EXPECT_EQ(restored.get_scale(), 1024.0);
  EXPECT_EQ(restored.growth_tracker(), 1);
  EXPECT_EQ(restored.state_dict(), state);

  GradScaler disabled({.enabled = false});
  const Tensor loss = test::f32({3.0f});
  EXPECT_TRUE(disabled.scale(loss).is_same(loss));
  EXPECT_EQ(disabled.get_scale(), 1.0);
  EXPECT_TRUE(disabled.state_dict().empty());
}

TEST(GradScaler, MisuseIsAnErrorNamingTheCall) {
  Tensor w = test::f32({1.0f, 2.0f});
  w.set_requires_grad(true);
  optim::SGD sgd({w}, {.lr = 0.1});
  GradScaler scaler;
  test::expect_error([&] { scaler.update(); }, {"GradScaler::update", "no inf checks"});
  scaler.scale(sum(w)).backward();
  scaler.unscale_(sgd);
  test::expect_error([&] { scaler.unscale_(sgd); }, {"GradScaler::unscale_", "already"});
  scaler.step(sgd);
  test::expect_error([&] { scaler.unscale_(sgd); }, {"GradScaler::unscale_", "after step()"});
  test::expect_error([&] { scaler.step(sgd); }, {"GradScaler::step", "already"});
  scaler.update();

  Tensor half_param = test::f32({1.0f}).to(kFloat16);
  half_param.set_requires_grad(true);
  optim::SGD half_sgd({half_param}, {.lr = 0.1});
  scaler.scale(sum(half_param)).backward();
  test::expect_error([&] { scaler.unscale_(half_sgd); }, {"GradScaler::unscale_", "f16", "f32"});
  test::expect_error([] { GradScaler bad({.backoff_factor = 1.5}); }, {"GradScaler", "backoff"});
  test::expect_error([&] { scaler.load_state_dict({{"scale", 2.0}}); },
                     {"GradScaler::load_state_dict", "growth_factor"});
}

}  // namespace
}  // namespace strata
