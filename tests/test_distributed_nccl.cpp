// The NCCL process group (distributed::new_nccl_group) as one process on cuda:0, with no
// bootstrap group (a GPU machine may have no MPI): on one rank every collective leaves the
// values as they were (avg divides by 1), which checks the dtypes, the launch, the ordering
// against the caller's kernels and the completion; DistributedDataParallel and fit() over the
// group equal the plain model. Each case skips with the reason without a GPU or NCCL, except
// the ones that check the errors new_nccl_group gives when it cannot make a group.
// NOTE: several ranks (the header check over MPI, mismatches, timeouts) need a multi-GPU
// machine and mpirun; nothing here covers them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "strata/detail/cuda_hooks.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata {
namespace {

using distributed::ReduceOp;
using test::kCpuDevice;
using test::kCudaDevice;

#define SKIP_WITHOUT_NCCL()                                                    \
  do {                                                                         \
    if (!cuda_is_available()) {                                                \
      GTEST_SKIP() << test::cuda_unavailable_reason();                         \
    }                                                                          \
    std::string why_not_nccl;                                                  \
    if (!detail::cuda_nccl_built(&why_not_nccl)) GTEST_SKIP() << why_not_nccl; \
  } while (false)

std::shared_ptr<distributed::ProcessGroup> one_gpu_group() {
  return distributed::new_nccl_group(nullptr, kCudaDevice);
}

// Bitwise equality of two tensors' values, compared on the host as doubles (every dtype used
// here converts to double exactly).
void expect_same_values(const Tensor& got, const Tensor& expected, const std::string& what) {
  ASSERT_EQ(got.shape(), expected.shape()) << what;
  const std::vector<double> a = got.to(kCpuDevice).to_vector<double>();
  const std::vector<double> b = expected.to(kCpuDevice).to_vector<double>();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i] && !(std::isnan(a[i]) && std::isnan(b[i]))) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " values differ, first at "
                     << first << ": " << (bad ? a[first] : 0.0) << " vs " << (bad ? b[first] : 0.0);
}

// `n` random values of `dtype` on cuda:0: in [-50, 50) (whole numbers for the integer types),
// uint8 in [0, 100).
Tensor device_values(int64_t n, DType dtype, uint32_t seed) {
  const double low = dtype == kUInt8 ? 0.0 : -50.0;
  return test::host_random({n}, dtype, seed, low, low + 100.0).to(kCudaDevice);
}

// ---- errors that every machine can check ---------------------------------------------------

// Without NCCL or a GPU the error says which is missing; with both, a device that does not
// exist is the error (so the case runs everywhere).
TEST(DistributedNccl, NewGroupSaysWhyItCannotBeMade) {
  std::string nccl_why, cuda_why;
  const bool built = detail::cuda_nccl_built(&nccl_why);
  const int devices = detail::cuda_device_count(&cuda_why);
  EXPECT_EQ(distributed::nccl_available(), built && devices > 0);
  if (built && devices > 0) {
    test::expect_error([&] { distributed::new_nccl_group(nullptr, Device(kCUDA, devices)); },
                       {"new_nccl_group", "cuda:" + std::to_string(devices), "does not exist"});
    return;
  }
  // new_nccl_group checks the build first, then the device.
  const std::string why = built ? cuda_why : nccl_why;
  EXPECT_TRUE(why.find("without the CUDA backend") != std::string::npos ||
              why.find("without NCCL") != std::string::npos ||
              why.find("no CUDA device") != std::string::npos ||
              why.find("cannot load") != std::string::npos)
      << why;
  test::expect_error([] { distributed::new_nccl_group(nullptr, kCudaDevice); },
                     {"new_nccl_group: ", why});
}

TEST(DistributedNccl, NewGroupOnTheCpuIsAnError) {
  test::expect_error([] { distributed::new_nccl_group(nullptr, kCpuDevice); },
                     {"new_nccl_group", "CUDA device", "cpu"});
  test::expect_error(
      [] {
        distributed::new_nccl_group(nullptr, kCudaDevice,
                                    {.timeout = std::chrono::milliseconds(0)});
      },
      {"new_nccl_group", "timeout must be positive"});
}

// ---- one rank on cuda:0 --------------------------------------------------------------------

TEST(DistributedNccl, OneProcessGroupIsRankZeroOfOne) {
  SKIP_WITHOUT_NCCL();
  const auto group =
      distributed::new_nccl_group(nullptr, kCudaDevice, {.timeout = std::chrono::seconds(30)});
  EXPECT_EQ(group->backend_name(), "nccl");
  EXPECT_EQ(group->rank(), 0);
  EXPECT_EQ(group->size(), 1);
  EXPECT_EQ(group->options().timeout, std::chrono::seconds(30));
  EXPECT_TRUE(distributed::nccl_available());
}

TEST(DistributedNccl, AllReduceOnOneRankKeepsTheValues) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  uint32_t seed = 1;
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt32, kInt64, kUInt8}) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
      if (op == ReduceOp::Avg && !is_floating(dtype)) continue;
      for (int64_t n : {1, 1001}) {
        const Tensor original = device_values(n, dtype, seed++);
        Tensor t = original.clone();
        group->all_reduce(t, op).wait();
        expect_same_values(t, original,
                           std::string("all_reduce ") + distributed::reduce_op_name(op) + " of " +
                               std::to_string(n) + " " + dtype_name(dtype));
      }
    }
  }
}

TEST(DistributedNccl, AvgOfAnIntegerOrBoolTensorIsAnError) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  const Tensor labels = zeros({4}, TensorOptions(kInt64).device(kCudaDevice));
  test::expect_error([&] { group->all_reduce(labels, ReduceOp::Avg); },
                     {"all_reduce", "avg needs a floating tensor", "i64", "cuda:0"});
  const Tensor mask = zeros({4}, TensorOptions(kBool).device(kCudaDevice));
  test::expect_error([&] { group->all_reduce(mask, ReduceOp::Max); }, {"all_reduce", "bool"});
  // A bool tensor still moves (as bytes).
  Tensor flags = ones({5}, TensorOptions(kBool).device(kCudaDevice));
  group->broadcast(flags, 0).wait();
  expect_same_values(flags, ones({5}, TensorOptions(kBool)), "broadcast of bool");
}

TEST(DistributedNccl, BroadcastAllGatherAndReduceScatterOnOneRank) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  for (DType dtype : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kUInt8}) {
    const Tensor original = device_values(1001, dtype, 40).reshape({7, 143});
    Tensor t = original.clone();
    group->broadcast(t, 0).wait();
    expect_same_values(t, original, std::string("broadcast of ") + dtype_name(dtype));

    Tensor gathered = zeros({7, 143}, original.options());
    group->all_gather(gathered, original).wait();
    expect_same_values(gathered, original, std::string("all_gather of ") + dtype_name(dtype));

    Tensor scattered = zeros({7, 143}, original.options());
    group->reduce_scatter(scattered, original, ReduceOp::Sum).wait();
    expect_same_values(scattered, original, std::string("reduce_scatter of ") + dtype_name(dtype));
  }
  Tensor empty = zeros({0}, TensorOptions(kFloat32).device(kCudaDevice));
  group->all_reduce(empty).wait();  // nothing to move: completes without an NCCL call
  test::expect_error([&] { group->broadcast(empty, 1); }, {"broadcast", "root 1", "size 1"});
}

TEST(DistributedNccl, CollectivesSeeWhatTheCallersKernelsWrote) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  // A product long enough to still be running when all_gather is called: the gather must wait
  // for it (the group's stream waits on an event of the backend's stream).
  Generator gen(7);
  const Tensor a = randn({2048, 2048}, TensorOptions(kFloat32), &gen).to(kCudaDevice);
  for (int round = 0; round < 3; ++round) {
    const Tensor product = mul(matmul(a, a), 0.5);
    Tensor gathered = zeros({2048, 2048}, product.options());
    group->all_gather(gathered, product).wait();
    expect_same_values(gathered, product, "all_gather right after a matmul");
  }
}

TEST(DistributedNccl, SeveralWorksInFlightAndABarrier) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  std::vector<Tensor> originals, tensors;
  std::vector<distributed::Work> works;
  for (int i = 0; i < 8; ++i) {
    originals.push_back(device_values(1001 + i, kFloat32, static_cast<uint32_t>(100 + i)));
    tensors.push_back(originals.back().clone());
    works.push_back(group->all_reduce(tensors.back(), i % 2 ? ReduceOp::Avg : ReduceOp::Max));
  }
  works.push_back(group->barrier());
  // Waited in reverse order: each completes on its own.
  for (size_t k = works.size(); k-- > 0;) {
    works[k].wait();
    EXPECT_TRUE(works[k].is_completed());
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    expect_same_values(tensors[i], originals[i], "all_reduce #" + std::to_string(i));
  }
  group->barrier().wait(std::chrono::seconds(60));
}

TEST(DistributedNccl, DestroyingTheGroupFinishesTheWorkInFlight) {
  SKIP_WITHOUT_NCCL();
  auto group = one_gpu_group();
  const Tensor original = device_values(100000, kFloat32, 9);
  Tensor t = original.clone();
  const distributed::Work work = group->all_reduce(t, ReduceOp::Sum);
  group.reset();  // waits for the all-reduce, then destroys the communicator
  EXPECT_TRUE(work.is_completed());
  work.wait();
  expect_same_values(t, original, "all_reduce finished by the group's destructor");
}

TEST(DistributedNccl, TensorsOffTheGroupsDeviceAreErrorsNamingTheOp) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  const Tensor host = zeros({4});
  test::expect_error([&] { group->all_reduce(host); },
                     {"all_reduce", "must be on cuda:0", "[4] f32 cpu", "MPI group"});
  test::expect_error([&] { group->broadcast(host, 0); }, {"broadcast", "cuda:0", "cpu"});
  const Tensor device = zeros({4, 6}, TensorOptions(kFloat32).device(kCudaDevice));
  test::expect_error([&] { group->all_gather(device, host); },
                     {"all_gather", "input", "cuda:0", "cpu"});
  test::expect_error([&] { group->all_reduce(device.transpose(0, 1)); },
                     {"all_reduce", "contiguous", "[6,4]"});
  const Tensor wrong = zeros({5, 6}, TensorOptions(kFloat32).device(kCudaDevice));
  test::expect_error([&] { group->all_gather(wrong, device); }, {"all_gather", "expected"});
  const Tensor other_dtype = zeros({4, 6}, TensorOptions(kFloat64).device(kCudaDevice));
  test::expect_error([&] { group->reduce_scatter(other_dtype, device); },
                     {"reduce_scatter", "dtype"});
}

// ---- data-parallel training over the group -------------------------------------------------

namespace F = nn::functional;

std::shared_ptr<nn::Sequential> mlp_on_gpu() {
  manual_seed(23);
  auto net = std::make_shared<nn::Sequential>(nn::Linear(6, 16), nn::Tanh(), nn::Linear(16, 8),
                                              nn::Tanh(), nn::Linear(8, 4));
  net->to(kCudaDevice);
  return net;
}

std::shared_ptr<nn::Sequential> classifier_on_gpu() {
  manual_seed(17);
  auto net = std::make_shared<nn::Sequential>(nn::Linear(6, 16), nn::Tanh(), nn::Linear(16, 3));
  net->to(kCudaDevice);
  return net;
}

// The largest |a - b| over two modules' parameters, in order.
double largest_parameter_difference(nn::Module& a, nn::Module& b) {
  const std::vector<Tensor> pa = a.parameters(), pb = b.parameters();
  EXPECT_EQ(pa.size(), pb.size());
  double worst = 0.0;
  for (size_t i = 0; i < std::min(pa.size(), pb.size()); ++i) {
    const std::vector<double> x = pa[i].detach().to(kCpuDevice).to_vector<double>();
    const std::vector<double> y = pb[i].detach().to(kCpuDevice).to_vector<double>();
    for (size_t k = 0; k < x.size(); ++k) worst = std::max(worst, std::abs(x[k] - y[k]));
  }
  return worst;
}

// The same kernels on the same inputs give the same bits; the margin is for cuBLAS choosing
// another algorithm for one of the calls (its workspace may differ), a few float32 ulps.
constexpr double kSameRunTolerance = 1e-6;

TEST(DistributedNccl, DataParallelOnOneGpuEqualsThePlainModel) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  // A tiny bucket cap: several buckets, each all-reduced while backward still runs.
  nn::DistributedDataParallel ddp(mlp_on_gpu(), group, {.bucket_cap_mb = 0.0001});
  EXPECT_GE(ddp.bucket_names().size(), 3u);
  auto plain = mlp_on_gpu();
  optim::SGD sgd(ddp.parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::SGD plain_sgd(plain->parameters(), {.lr = 0.1, .momentum = 0.9});
  Generator gen(5);
  const Tensor x = randn({16, 6}, TensorOptions(kFloat32), &gen).to(kCudaDevice);
  const Tensor y = randn({16, 4}, TensorOptions(kFloat32), &gen).to(kCudaDevice);
  for (int step = 0; step < 5; ++step) {
    sgd.zero_grad();
    F::mse_loss(ddp(x), y).backward();
    sgd.step();
    plain_sgd.zero_grad();
    F::mse_loss((*plain)(x), y).backward();
    plain_sgd.step();
  }
  EXPECT_LE(largest_parameter_difference(ddp.module(), *plain), kSameRunTolerance);
  // The training moved the weights (the comparison is not of two untouched models).
  EXPECT_GT(largest_parameter_difference(ddp.module(), *mlp_on_gpu()), 1e-3);
}

TEST(DistributedNccl, FitOverTheNcclGroupEqualsPlainFit) {
  SKIP_WITHOUT_NCCL();
  const auto group = one_gpu_group();
  Generator gen(3);
  const Tensor x = randn({48, 6}, TensorOptions(kFloat32), &gen);
  const Tensor labels = argmax(x.narrow(1, 0, 3), 1);
  const auto train_set = std::make_shared<data::TensorDataset>(x, labels);
  // No shuffling: one process's loader and a one-rank DistributedSampler then give the same
  // batches in the same order.
  train::FitOptions options{.epochs = 3,
                            .batch_size = 8,
                            .shuffle = false,
                            .metrics = {"accuracy"},
                            .verbose = train::Verbosity::Silent};

  auto plain = classifier_on_gpu();
  optim::SGD plain_sgd(plain->parameters(), {.lr = 0.2, .momentum = 0.9});
  const train::History expected =
      train::fit(*plain, nn::CrossEntropyLoss{}, plain_sgd, train_set, options);

  nn::DistributedDataParallel ddp(classifier_on_gpu(), group);
  optim::SGD sgd(ddp.parameters(), {.lr = 0.2, .momentum = 0.9});
  options.process_group = group;
  const train::History got = train::fit(ddp, nn::CrossEntropyLoss{}, sgd, train_set, options);

  EXPECT_LE(largest_parameter_difference(ddp.module(), *plain), kSameRunTolerance);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t e = 0; e < expected.size(); ++e) {
    for (const char* name : {"loss", "accuracy"}) {
      EXPECT_NEAR(got.at(e).at(name), expected.at(e).at(name), kSameRunTolerance)
          << name << " of epoch " << e;
    }
  }
}

}  // namespace
}  // namespace strata
