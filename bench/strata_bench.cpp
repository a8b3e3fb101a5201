// strata_bench: Strata's speed on a few fixed workloads, beside OpenBLAS called directly.
// Output: one machine-readable line per result, `<impl>.<device>.<workload> <value> <unit>`
// (impl: strata or openblas; torch_bench.py prints the same names for PyTorch), then a human
// table whose lines, like every other comment, start with '#'. Rules every workload keeps:
// - warm-up first, then the median of several timed repetitions;
// - the same thread count on both sides (--threads, default: every core);
// - on CUDA the clock stops only after backend_for(device).synchronize().
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "strata/detail/cpu_memory.h"
#include "strata/detail/cuda_memory.h"
#include "strata/distributed.h"
#include "strata/nn/distributed_data_parallel.h"
#include "strata/strata.h"

#if STRATA_BENCH_MPI
#include <mpi.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int threads = 0;  // 0: every core
  bool cuda = false;
  int64_t small_iters = 1000000;     // total iterations of the one-element add
  int64_t backward_iters = 200000;   // total iterations of the two ops + backward
  int reps = 7;                      // timed repetitions per workload; the median is reported
  std::vector<int64_t> sizes = {512, 1024, 2048};
  std::string only;  // run just the workloads whose group is named here ("train", "ops")
};

struct Result {
  std::string name;   // "strata.cpu.matmul_f32_2048"
  double value = 0.0;
  std::string unit;   // "GFLOP/s", "ns", "us"
};

std::vector<Result> g_results;

void report(const std::string& name, double value, const std::string& unit) {
  std::printf("%s %.6g %s\n", name.c_str(), value, unit.c_str());
  std::fflush(stdout);
  g_results.push_back({name, value, unit});
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Runs `body(count)` (which must do `count` iterations and finish them, synchronizing a
// device if it has one) once to warm up, picks `count` so a repetition lasts about
// `target_s`, then returns the median seconds per iteration over `reps` repetitions.
double time_per_iteration(const std::function<void(int64_t)>& body, int reps, double target_s,
                          int64_t max_count) {
  auto start = Clock::now();
  body(1);
  double single = seconds_since(start);
  start = Clock::now();
  body(1);
  single = std::min(single, seconds_since(start));
  int64_t count = 1;
  if (single > 0.0) {
    count = static_cast<int64_t>(target_s / single);
  }
  count = std::clamp<int64_t>(count, 1, max_count);
  std::vector<double> per_iteration;
  for (int r = 0; r < reps; ++r) {
    start = Clock::now();
    body(count);
    per_iteration.push_back(seconds_since(start) / static_cast<double>(count));
  }
  return median(per_iteration);
}

// Like time_per_iteration with a fixed number of iterations per repetition (total / reps),
// after a warm-up of one repetition: for the per-op overhead workloads.
double time_fixed(const std::function<void(int64_t)>& body, int reps, int64_t total) {
  const int64_t count = std::max<int64_t>(1, total / reps);
  body(std::max<int64_t>(1, count / 4));  // warm-up: caches, allocator, branch predictors
  std::vector<double> per_iteration;
  for (int r = 0; r < reps; ++r) {
    const auto start = Clock::now();
    body(count);
    per_iteration.push_back(seconds_since(start) / static_cast<double>(count));
  }
  return median(per_iteration);
}

double gflops(int64_t n, double seconds) {
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  return flops / seconds * 1e-9;
}

// ---- workloads -------------------------------------------------------------------------------

namespace optim = strata::optim;

void bench_matmul(const Options& opt, strata::Device device) {
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  for (const int64_t n : opt.sizes) {
    strata::Generator gen(1234 + static_cast<uint64_t>(n));
    const strata::Tensor a_host = strata::randn({n, n}, strata::kFloat32, &gen);
    const strata::Tensor b_host = strata::randn({n, n}, strata::kFloat32, &gen);
    const strata::Tensor a = a_host.to(device);
    const strata::Tensor b = b_host.to(device);

    // Each product is dropped at once, as `torch.matmul(a, b)` in torch_bench.py is, so both
    // sides allocate (and free) one output per call.
    const double strata_s = time_per_iteration(
        [&](int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            const strata::Tensor product = strata::matmul(a, b);
          }
          backend.synchronize();
        },
        opt.reps, 0.25, 1000);
    const std::string workload = "matmul_f32_" + std::to_string(n);
    report("strata." + dev + "." + workload, gflops(n, strata_s), "GFLOP/s");

    if (!device.is_cpu()) {
      continue;  // OpenBLAS is the CPU reference only
    }
    const std::vector<float> av = a_host.to_vector<float>();
    const std::vector<float> bv = b_host.to_vector<float>();
    std::vector<float> cv(static_cast<size_t>(n * n), 0.0F);
    const int ni = static_cast<int>(n);
    const double blas_s = time_per_iteration(
        [&](int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.0F, av.data(),
                        ni, bv.data(), ni, 0.0F, cv.data(), ni);
          }
        },
        opt.reps, 0.25, 1000);
    report("openblas." + dev + "." + workload, gflops(n, blas_s), "GFLOP/s");

    // Sanity: both computed the same product (float32 sums of n terms of N(0,1)^2).
    const std::vector<float> strata_c = strata::matmul(a, b).to_vector<float>();
    double max_diff = 0.0;
    double max_ref = 0.0;
    for (size_t i = 0; i < cv.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(strata_c[i] - cv[i])));
      max_ref = std::max(max_ref, static_cast<double>(std::fabs(cv[i])));
    }
    std::printf("# check %s: max |strata - openblas| = %.3g (max |c| = %.3g)%s\n",
                workload.c_str(), max_diff, max_ref,
                max_diff > 1e-3 * max_ref ? "  MISMATCH" : "");
  }
}

void bench_small_add(const Options& opt, strata::Device device) {
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  const strata::Tensor a = strata::full({1}, 1.5, strata::TensorOptions().device(device));
  const strata::Tensor b = strata::full({1}, 2.5, strata::TensorOptions().device(device));
  size_t sink = 0;
  const double s = time_fixed(
      [&](int64_t count) {
        for (int64_t i = 0; i < count; ++i) {
          const strata::Tensor c = a + b;
          sink += reinterpret_cast<uintptr_t>(c.impl());
        }
        backend.synchronize();
      },
      opt.reps, opt.small_iters);
  const float check = (a + b).item<float>();
  if (check != 4.0F) {
    std::printf("# check add_f32_1elem: 1.5 + 2.5 gave %g  MISMATCH\n", static_cast<double>(check));
  }
  if (sink == 1) {
    std::printf("#\n");  // keeps `sink` alive
  }
  report("strata." + dev + ".add_f32_1elem", s * 1e9, "ns");
}

// y = (a * b + a).sum(); y.backward(); with 1-element a, b requiring grad, grads dropped first.
void bench_two_ops_backward(const Options& opt, strata::Device device) {
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  const auto options = strata::TensorOptions().device(device).requires_grad(true);
  strata::Tensor a = strata::full({1}, 3.0, options);
  strata::Tensor b = strata::full({1}, 2.0, options);
  const double s = time_fixed(
      [&](int64_t count) {
        for (int64_t i = 0; i < count; ++i) {
          a.zero_grad();
          b.zero_grad();
          const strata::Tensor y = (a * b + a).sum();
          y.backward();
        }
        backend.synchronize();
      },
      opt.reps, opt.backward_iters);
  // d/da = b + 1 = 3, d/db = a = 3.
  const float ga = a.grad().item<float>();
  const float gb = b.grad().item<float>();
  if (ga != 3.0F || gb != 3.0F) {
    std::printf("# check mul_add_sum_backward_f32_1elem: grads %g %g, expected 3 3  MISMATCH\n",
                static_cast<double>(ga), static_cast<double>(gb));
  }
  report("strata." + dev + ".mul_add_sum_backward_f32_1elem", s * 1e6, "us");
}

// ---- max pooling -------------------------------------------------------------------------------
// Forward (values and indices) and backward (grad_x from grad_out through the saved indices,
// timed alone: the graph is kept and its backward re-run) of two common max poolings, float32:
// 2x2 stride 2 over [64, 32, 32, 32], and 3x3 stride 2 padding 1 (ResNet's stem) over
// [64, 16, 28, 28]. torch_bench.py times F.max_pool2d and y.backward(g, retain_graph=True).

struct MaxPoolWorkload {
  const char* name;
  strata::Shape shape;
  int64_t kernel, stride, padding;
};

void bench_max_pool(const Options& opt, strata::Device device) {
  namespace F = strata::nn::functional;
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  const std::vector<MaxPoolWorkload> workloads = {
      {"k2s2_64x32x32x32", {64, 32, 32, 32}, 2, 2, 0},
      {"k3s2p1_64x16x28x28", {64, 16, 28, 28}, 3, 2, 1},
  };
  for (const MaxPoolWorkload& w : workloads) {
    strata::Generator gen(11);
    const auto options = strata::TensorOptions().device(device);
    strata::Tensor x = strata::randn(w.shape, options, &gen);
    const double forward_s = time_per_iteration(
        [&](int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            (void)F::max_pool2d(x, w.kernel, F::Size2(w.stride), w.padding);
          }
          backend.synchronize();
        },
        opt.reps, 0.25, 10000);
    report("strata." + dev + ".max_pool2d_fwd_f32_" + w.name, forward_s * 1e6, "us");

    x.set_requires_grad(true);
    const strata::Tensor y = F::max_pool2d(x, w.kernel, F::Size2(w.stride), w.padding);
    const strata::Tensor g = strata::randn(y.shape(), options, &gen);
    const double backward_s = time_per_iteration(
        [&](int64_t count) {
          for (int64_t i = 0; i < count; ++i) {
            x.zero_grad();
            y.backward(g, /*retain_graph=*/true);
          }
          backend.synchronize();
        },
        opt.reps, 0.25, 10000);
    // Sanity: the gradient's total is grad_out's (each output routes to one input).
    const double grad_total = x.grad().sum().item<double>(), g_total = g.sum().item<double>();
    std::printf("# check max_pool2d_bwd_f32_%s: sum(grad_x) %.4f vs sum(grad_out) %.4f%s\n",
                w.name, grad_total, g_total,
                std::abs(grad_total - g_total) > 1e-2 * (1 + std::abs(g_total)) ? "  MISMATCH"
                                                                                  : "");
    report("strata." + dev + ".max_pool2d_bwd_f32_" + w.name, backward_s * 1e6, "us");
  }
}

// ---- training steps ---------------------------------------------------------------------------
// One step = forward, cross-entropy loss, backward, SGD with momentum 0.9 (lr 0.01): the same
// networks, batch sizes and update as torch_bench.py's train_* workloads, float32.

namespace nn = strata::nn;

// Autocast for `precision` ("bf16", "f16"; nothing for "f32") in `guard`, for its scope.
void start_autocast(std::optional<strata::amp::AutocastGuard>& guard, strata::Device device,
                    const std::string& precision) {
  if (precision != "f32") {
    guard.emplace(device.type, precision == "f16" ? strata::kFloat16 : strata::kBFloat16);
  }
}

// The CIFAR-10 CNN of the training and memory rows: two conv-conv-pool blocks, two linear layers.
nn::Sequential cifar_cnn() {
  return nn::Sequential(nn::Conv2d(3, 32, 3, 1, 1), nn::ReLU(), nn::Conv2d(32, 32, 3, 1, 1),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(32, 64, 3, 1, 1), nn::ReLU(),
                        nn::Conv2d(64, 64, 3, 1, 1), nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                        nn::Linear(64 * 8 * 8, 512), nn::ReLU(), nn::Linear(512, 10));
}

// `batch_dim`: the input axis that holds the batch (labels: one per row of it); 1 for the
// time-major sequences of the recurrent rows. `precision` "bf16" runs the forward pass and the
// loss under bf16 autocast; "f16" under f16 autocast with a GradScaler (PyTorch AMP's recipe);
// the workload's name gets the suffix.
void bench_train_step(const Options& opt, strata::Device device, const std::string& name,
                      nn::Module& net, const strata::Shape& input_shape, int64_t classes,
                      size_t batch_dim = 0, const std::string& precision = "f32") {
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  net.to(device);
  net.train();
  strata::Generator gen(7);
  const auto options = strata::TensorOptions().device(device);
  const strata::Tensor x = strata::randn(input_shape, options, &gen);
  const strata::Tensor y =
      strata::randint(0, classes, {input_shape[batch_dim]}, options.dtype(strata::kInt64), &gen);
  optim::SGD sgd(net.parameters(), {.lr = 0.01, .momentum = 0.9});
  std::optional<strata::amp::GradScaler> scaler;
  if (precision == "f16") scaler.emplace();
  double first_loss = 0.0, last_loss = 0.0;
  auto step = [&]() {
    sgd.zero_grad();
    strata::Tensor loss;
    {
      std::optional<strata::amp::AutocastGuard> autocast;
      start_autocast(autocast, device, precision);
      loss = nn::functional::cross_entropy(net(x), y);
    }
    if (scaler) {
      scaler->scale(loss).backward();
      scaler->step(sgd);
      scaler->update();
    } else {
      loss.backward();
      sgd.step();
    }
    return loss;
  };
  first_loss = step().item<double>();
  const double s = time_per_iteration(
      [&](int64_t count) {
        for (int64_t i = 0; i < count; ++i) step();
        backend.synchronize();
      },
      opt.reps, 1.0, 1000);
  last_loss = step().item<double>();
  const std::string row = precision == "f32" ? name : name + "_" + precision;
  // Sanity: repeated steps on one batch must lower its loss.
  std::printf("# check %s: loss %.4f -> %.4f%s\n", row.c_str(), first_loss, last_loss,
              last_loss < first_loss ? "" : "  MISMATCH (loss did not fall)");
  report("strata." + dev + "." + row, s * 1e3, "ms");
}

// Sequence classifier: a one-layer LSTM over a time-major [T, B, 64] sequence; the last
// layer's final hidden state h_n [B, 256] goes through Linear(256, 10).
struct LstmClassifier : nn::Module {
  std::shared_ptr<nn::LSTM> lstm;
  std::shared_ptr<nn::Linear> fc;
  LstmClassifier() : Module("LstmClassifier") {
    lstm = register_module("lstm", std::make_shared<nn::LSTM>(64, 256));
    fc = register_module("fc", std::make_shared<nn::Linear>(256, 10));
  }
  strata::Tensor forward(const strata::Tensor& x) override {
    const auto [output, state] = lstm->forward(x, {strata::Tensor(), strata::Tensor()});
    const strata::Tensor& h_n = std::get<0>(state);  // [num_layers, B, 256]
    return fc->forward(h_n.select(0, h_n.size(0) - 1));
  }
};

nn::Sequential mlp_784() {
  return nn::Sequential(nn::Linear(784, 512), nn::ReLU(), nn::Linear(512, 256), nn::ReLU(),
                        nn::Linear(256, 10));
}

nn::Sequential lenet5() {
  return nn::Sequential(nn::Conv2d(1, 6, 5), nn::ReLU(), nn::MaxPool2d(2), nn::Conv2d(6, 16, 5),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(16 * 4 * 4, 120),
                        nn::ReLU(), nn::Linear(120, 84), nn::ReLU(), nn::Linear(84, 10));
}

// Each training step in float32, then in mixed precision: bf16 autocast on the CPU (PyTorch's
// CPU default), f16 autocast with a GradScaler on CUDA (PyTorch AMP). Every model is built anew
// from one seed, so both precisions start from the same weights.
void bench_train(const Options& opt, strata::Device device) {
  const std::vector<std::string> precisions = {"f32", device.is_cpu() ? "bf16" : "f16"};
  for (const std::string& precision : precisions) {
    strata::manual_seed(5);
    nn::Sequential mlp = mlp_784();
    bench_train_step(opt, device, "train_mlp_b128", mlp, {128, 784}, 10, 0, precision);
  }
  for (const std::string& precision : precisions) {
    strata::manual_seed(5);
    nn::Sequential lenet = lenet5();
    bench_train_step(opt, device, "train_lenet_b64", lenet, {64, 1, 28, 28}, 10, 0, precision);
  }
  for (const std::string& precision : precisions) {
    strata::manual_seed(5);
    nn::Sequential cifar = cifar_cnn();
    bench_train_step(opt, device, "train_cifar_cnn_b64", cifar, {64, 3, 32, 32}, 10, 0,
                     precision);
  }
  for (const std::string& precision : precisions) {
    strata::manual_seed(5);
    LstmClassifier lstm;  // seq 32, batch 32, input 64, hidden 256
    bench_train_step(opt, device, "train_lstm_b32", lstm, {32, 32, 64}, 10, /*batch_dim=*/1,
                     precision);
  }
}

// The activation memory of the CIFAR CNN step: the bytes held between the end of the forward
// pass (loss included) and backward, that is what the tape saved, in float32 and in mixed
// precision (bf16 autocast on the CPU, f16 on CUDA; the casts of the weights count too). On the
// CPU also the peak over the whole step; CUDA's allocator counts no peak, so there only the
// bytes held.
void bench_activation_memory(const Options& opt, strata::Device device) {
  (void)opt;
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  const auto allocated = [&]() -> int64_t {
    if (device.is_cpu()) return strata::detail::cpu_memory_stats().allocated_bytes;
    strata::backend_for(device).synchronize();
    return static_cast<int64_t>(strata::detail::cuda_memory_stats(device.index).allocated_bytes);
  };
  const std::string low = device.is_cpu() ? "bf16" : "f16";
  for (const std::string& precision : {std::string("f32"), low}) {
    strata::manual_seed(5);
    nn::Sequential cifar = cifar_cnn();
    cifar.to(device);
    strata::Generator gen(7);
    const auto options = strata::TensorOptions().device(device);
    const strata::Tensor x = strata::randn({64, 3, 32, 32}, options, &gen);
    const strata::Tensor y = strata::randint(0, 10, {64}, options.dtype(strata::kInt64), &gen);
    if (device.is_cpu()) strata::detail::start_cpu_memory_tracking();
    const int64_t before = allocated();
    strata::Tensor loss;
    {
      std::optional<strata::amp::AutocastGuard> autocast;
      start_autocast(autocast, device, precision);
      loss = nn::functional::cross_entropy(cifar(x), y);
    }
    const int64_t saved = allocated() - before;
    loss.backward();
    const std::string suffix = precision == "f32" ? "" : "_" + precision;
    report("strata." + dev + ".activation_memory_cifar_cnn_b64" + suffix,
           static_cast<double>(saved) / 1e6, "MB");
    if (device.is_cpu()) {
      const int64_t peak = strata::detail::cpu_memory_stats().peak_allocated_bytes;
      strata::detail::stop_cpu_memory_tracking();
      report("strata.cpu.peak_memory_cifar_cnn_b64" + suffix, static_cast<double>(peak) / 1e6,
             "MB");
    }
  }
}

// One Adam step (the update alone) over the parameters of the MLP 784-512-256-10 (535,818
// values in 6 tensors), their gradients fixed.
void bench_adam_step(const Options& opt, strata::Device device) {
  strata::Backend& backend = strata::backend_for(device);
  const std::string dev = device.is_cpu() ? "cpu" : "cuda";
  nn::Sequential mlp(nn::Linear(784, 512), nn::ReLU(), nn::Linear(512, 256), nn::ReLU(),
                     nn::Linear(256, 10));
  mlp.to(device);
  strata::Generator gen(11);
  for (strata::Tensor& p : mlp.parameters()) {
    p.mutable_grad() = strata::randn(p.shape(), strata::TensorOptions().device(device), &gen);
  }
  optim::Adam adam(mlp.parameters(), {.lr = 1e-3});
  const double s = time_per_iteration(
      [&](int64_t count) {
        for (int64_t i = 0; i < count; ++i) adam.step();
        backend.synchronize();
      },
      opt.reps, 0.5, 100000);
  report("strata." + dev + ".adam_step_mlp", s * 1e6, "us");
}

// ---- data-parallel training (--only dist, under mpirun -np N) -------------------------------

#if STRATA_BENCH_MPI

// Seconds per call of each body, timed on every rank alike: a fixed count (ranks must call the
// same collectives), barriers around each repetition, the bodies' repetitions interleaved (so
// both see the same machine), the median of `reps` each; rank 0's clock.
std::vector<double> time_collectively(strata::distributed::ProcessGroup& group, int reps,
                                      int64_t count,
                                      const std::vector<std::function<void()>>& bodies) {
  for (const auto& body : bodies) body();  // warm-up
  std::vector<std::vector<double>> times(bodies.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t b = 0; b < bodies.size(); ++b) {
      group.barrier().wait();
      const auto start = Clock::now();
      for (int64_t i = 0; i < count; ++i) bodies[b]();
      group.barrier().wait();
      times[b].push_back(std::chrono::duration<double>(Clock::now() - start).count() /
                         static_cast<double>(count));
    }
  }
  std::vector<double> medians;
  for (std::vector<double>& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

// A data-parallel training step of a fixed global batch (global_batch / ranks examples each),
// SGD with momentum, through DistributedDataParallel.
void bench_ddp_step(const Options& opt, strata::distributed::ProcessGroup& group,
                    const std::string& name, nn::Sequential model, strata::Shape input_shape) {
  const std::shared_ptr<strata::distributed::ProcessGroup> shared(&group, [](auto*) {});
  const int64_t global_batch = input_shape[0];
  input_shape[0] = global_batch / group.size();
  nn::DistributedDataParallel ddp(std::make_shared<nn::Sequential>(std::move(model)), shared);
  strata::Generator gen(7 + static_cast<uint64_t>(group.rank()));
  const strata::Tensor x = strata::randn(input_shape, {}, &gen);
  const strata::Tensor y = strata::randint(0, 10, {input_shape[0]}, strata::kInt64, &gen);
  optim::SGD sgd(ddp.parameters(), {.lr = 0.01, .momentum = 0.9});
  const double s = time_collectively(group, opt.reps, 50, {[&] {
                                       sgd.zero_grad();
                                       nn::functional::cross_entropy(ddp(x), y).backward();
                                       sgd.step();
                                     }})[0];
  if (group.rank() == 0) {
    report("strata.cpu.ddp" + std::to_string(group.size()) + "_" + name, s * 1e3, "ms");
  }
}

// The all-reduce of 16 MB of float32 through the process group, beside a bare MPI_Allreduce
// of the same buffer (MPI initialized here with MPI_THREAD_MULTIPLE, so both can call it).
void bench_distributed(const Options& opt) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  {
    auto group = strata::distributed::new_mpi_group();
    const std::string prefix = ".cpu.ddp" + std::to_string(group->size()) + "_";
    const int64_t n = 4 * 1024 * 1024;
    strata::Tensor buffer = strata::ones({n});
    const double bytes = static_cast<double>(n) * 4.0;
    const std::vector<double> s = time_collectively(
        *group, opt.reps, 20,
        {[&] { group->all_reduce(buffer, strata::distributed::ReduceOp::Sum).wait(); },
         [&] {
           MPI_Allreduce(MPI_IN_PLACE, buffer.raw_data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                         MPI_COMM_WORLD);
         }});
    const double strata_s = s[0], mpi_s = s[1];
    if (group->rank() == 0) {
      report("strata" + prefix + "allreduce_16mb", bytes / strata_s / 1e9, "GB/s");
      report("mpi" + prefix + "allreduce_16mb", bytes / mpi_s / 1e9, "GB/s");
    }
    strata::manual_seed(5);
    bench_ddp_step(opt, *group, "train_mlp_b128", mlp_784(), {128, 784});
    strata::manual_seed(5);
    bench_ddp_step(opt, *group, "train_lenet_b64", lenet5(), {64, 1, 28, 28});
  }
  MPI_Finalize();
}

#else

void bench_distributed(const Options&) {
  std::printf("# skip dist: strata_bench was built without MPI (STRATA_MPI)\n");
}

#endif

void run_all(const Options& opt, strata::Device device) {
  if (opt.only.empty() || opt.only == "ops") {
    bench_small_add(opt, device);
    bench_two_ops_backward(opt, device);
    bench_max_pool(opt, device);
    bench_matmul(opt, device);
  }
  if (opt.only.empty() || opt.only == "train") {
    bench_adam_step(opt, device);
    bench_train(opt, device);
    bench_activation_memory(opt, device);
  }
  // Only when asked for: it must run under mpirun (every rank runs it).
  if (opt.only == "dist" && device.is_cpu()) bench_distributed(opt);
}

void print_table() {
  std::printf("#\n# %-44s %14s  %s\n", "result", "value", "unit");
  for (const Result& r : g_results) {
    std::printf("# %-44s %14.2f  %s\n", r.name.c_str(), r.value, r.unit.c_str());
  }
}

[[noreturn]] void usage(const char* argv0, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [--threads N] [--cuda] [--reps R] [--small-iters N] "
               "[--backward-iters N] [--sizes 512,1024,2048] [--only ops|train|dist]\n"
               "  --only dist: data-parallel rows, under mpirun -np N (one rank per process)\n",
               argv0);
  std::exit(code);
}

Options parse(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        usage(argv[0], 2);
      }
      return argv[++i];
    };
    if (arg == "--threads") {
      opt.threads = std::stoi(value());
    } else if (arg == "--cuda") {
      opt.cuda = true;
    } else if (arg == "--reps") {
      opt.reps = std::max(1, std::stoi(value()));
    } else if (arg == "--small-iters") {
      opt.small_iters = std::stoll(value());
    } else if (arg == "--backward-iters") {
      opt.backward_iters = std::stoll(value());
    } else if (arg == "--sizes") {
      opt.sizes.clear();
      const std::string list = value();
      size_t pos = 0;
      while (pos <= list.size()) {
        const size_t comma = std::min(list.find(',', pos), list.size());
        opt.sizes.push_back(std::stoll(list.substr(pos, comma - pos)));
        pos = comma + 1;
      }
    } else if (arg == "--only") {
      opt.only = value();
    } else if (arg == "-h" || arg == "--help") {
      usage(argv[0], 0);
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      usage(argv[0], 2);
    }
  }
  if (opt.threads <= 0) {
    opt.threads = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  }
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  try {
    strata::set_num_threads(opt.threads);
    openblas_set_num_threads(opt.threads);  // the direct OpenBLAS calls get the same count
    const char* coretype = std::getenv("OPENBLAS_CORETYPE");
    std::printf("# Strata %s, threads %d (strata reports %d, OpenBLAS %d)\n", strata::kVersion,
                opt.threads, strata::get_num_threads(), openblas_get_num_threads());
    std::printf("# OPENBLAS_CORETYPE=%s; OpenBLAS core %s; config %s\n",
                coretype != nullptr ? coretype : "(unset)", openblas_get_corename(),
                openblas_get_config());

    run_all(opt, strata::Device(strata::kCPU));

    if (opt.cuda) {
      if (strata::cuda_is_available()) {
        std::printf("# CUDA: %d device(s); benchmarking cuda:0\n", strata::cuda_device_count());
        run_all(opt, strata::Device(strata::kCUDA, 0));
      } else {
        std::printf("# skip cuda: strata::cuda_is_available() is false (no device, or built "
                    "without the CUDA backend)\n");
      }
    }
    print_table();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
