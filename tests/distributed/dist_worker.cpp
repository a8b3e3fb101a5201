// One rank of a process-group scenario, run by test_distributed.cpp under
// `mpirun -np N strata_dist_worker SCENARIO`:
//   collectives  every collective, f32/f64/i64, odd sizes, each rank's values distinct, checked
//                element by element against the closed form; several in flight at once
//   mismatch     the ranks all_reduce different sizes: every rank gets an error naming both,
//                then the group still works
//   timeout      rank 1 skips an all_reduce: rank 0's wait fails within its 2 s timeout naming
//                rank 1, and the job ends non-zero
//   die          rank 1 exits mid-training (no MPI_Finalize): the job ends non-zero
//   ddp          DistributedDataParallel: 20 SGD steps on each rank's share of the batch equal
//                20 steps of one process on the whole batch (f64 to 1e-12, f32 to 1e-6
//                relative, norm-wise per parameter); no_sync
//                accumulation equals one large step; unused parameters are an error or, with
//                find_unused_parameters, zeros; a different model on one rank is an error
//   syncbn       SyncBatchNorm on each rank's share equals BatchNorm on the whole batch:
//                outputs, input gradients, summed weight gradients, running statistics
//   resume       DDP training checkpointed by rank 0 after 5 of 10 steps and resumed on every
//                rank (a fresh model and optimizer) ends bitwise equal to an uninterrupted run
//   fit          train::fit with a process group equals fit() of one process on the whole
//                batch (weights, training and validation logs), evaluate() over the group
//                equals one process's, only rank 0 prints and writes logs, a stop asked on one
//                rank stops all, and a fit resumed from rank 0's checkpoint on every rank
//                equals an uninterrupted one; a model without DDP is an error
//   fit_die      rank 1 exits in the middle of fit(): the job ends non-zero
// Prints "rank R: SCENARIO ok" and exits 0 when everything held; otherwise says what was wrong
// and exits 1.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "strata/distributed.h"
#include "strata/nn/distributed_data_parallel.h"
#include "strata/strata.h"

namespace {

using namespace strata;
using distributed::ReduceOp;

int g_failures = 0;
int g_rank = 0;

void expect(bool ok, const std::string& what) {
  if (ok) return;
  ++g_failures;
  std::fprintf(stderr, "rank %d: FAILED: %s\n", g_rank, what.c_str());
}

// Element i of rank r's tensor: distinct per rank and element, exact in every dtype used, and
// ordered differently on different ranks (so max and min pick different ranks).
double value(int r, int64_t i) { return static_cast<double>((i * 7 + r * 13) % 29 + 100 * r); }

Tensor filled(int r, int64_t n, DType dtype) {
  std::vector<double> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[static_cast<size_t>(i)] = value(r, i);
  return from_vector<double>(values, {n}).to(dtype);
}

bool equal(const Tensor& actual, const std::vector<double>& expected) {
  const Tensor a = actual.to(kFloat64);
  const double* data = a.data<double>();
  for (size_t i = 0; i < expected.size(); ++i) {
    if (data[i] != expected[i]) {
      std::fprintf(stderr, "rank %d: element %zu is %g, expected %g\n", g_rank, i, data[i],
                   expected[i]);
      return false;
    }
  }
  return true;
}

void collectives(distributed::ProcessGroup& group) {
  const int size = group.size(), rank = group.rank();
  for (DType dtype : {kFloat32, kFloat64, kInt64}) {
    for (int64_t n : {1, 7, 1000, 4099}) {
      const std::string what = std::string(dtype_name(dtype)) + " x" + std::to_string(n);
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min, ReduceOp::Avg}) {
        if (op == ReduceOp::Avg && !is_floating(dtype)) continue;
        Tensor t = filled(rank, n, dtype);
        group.all_reduce(t, op).wait();
        std::vector<double> want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          double acc = value(0, i);
          for (int r = 1; r < size; ++r) {
            const double v = value(r, i);
            acc = op == ReduceOp::Max   ? std::max(acc, v)
                  : op == ReduceOp::Min ? std::min(acc, v)
                                        : acc + v;
          }
          want[static_cast<size_t>(i)] = op == ReduceOp::Avg ? acc / size : acc;
        }
        if (op == ReduceOp::Avg && dtype == kFloat32) {
          for (double& w : want) w = static_cast<double>(static_cast<float>(w));
        }
        expect(equal(t, want), "all_reduce " + std::string(reduce_op_name(op)) + " " + what);
      }
      for (int root = 0; root < size; ++root) {
        Tensor t = filled(rank, n, dtype);
        group.broadcast(t, root).wait();
        std::vector<double> want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = value(root, i);
        expect(equal(t, want), "broadcast from " + std::to_string(root) + " " + what);
      }
      {
        Tensor out = zeros({size * n}, TensorOptions(dtype));
        group.all_gather(out, filled(rank, n, dtype)).wait();
        std::vector<double> want;
        for (int r = 0; r < size; ++r) {
          for (int64_t i = 0; i < n; ++i) want.push_back(value(r, i));
        }
        expect(equal(out, want), "all_gather " + what);
      }
      {
        // Rank r's input [size * n]: its block b holds value(r, b * n + i).
        Tensor out = zeros({n}, TensorOptions(dtype));
        group.reduce_scatter(out, filled(rank, size * n, dtype), ReduceOp::Sum).wait();
        std::vector<double> want(static_cast<size_t>(n), 0.0);
        for (int r = 0; r < size; ++r) {
          for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] += value(r, rank * n + i);
        }
        expect(equal(out, want), "reduce_scatter " + what);
      }
    }
  }
  // Several collectives in flight before any wait; a 2-D tensor gathered along dim 0.
  std::vector<Tensor> tensors;
  std::vector<distributed::Work> works;
  for (int k = 0; k < 5; ++k) {
    tensors.push_back(filled(rank, 100 + k, kFloat32));
    works.push_back(group.all_reduce(tensors.back()));
  }
  works.push_back(group.barrier());
  for (const distributed::Work& w : works) w.wait();
  for (int k = 0; k < 5; ++k) {
    std::vector<double> want(static_cast<size_t>(100 + k), 0.0);
    for (int r = 0; r < size; ++r) {
      for (int64_t i = 0; i < 100 + k; ++i) want[static_cast<size_t>(i)] += value(r, i);
    }
    expect(equal(tensors[static_cast<size_t>(k)], want),
           "in-flight all_reduce " + std::to_string(k));
  }
  Tensor gathered = zeros({2 * size, 3});
  group.all_gather(gathered, full({2, 3}, static_cast<double>(rank))).wait();
  std::vector<double> want_gathered;
  for (int r = 0; r < size; ++r) want_gathered.insert(want_gathered.end(), 6, r);
  expect(equal(gathered, want_gathered), "2-D all_gather");
}

void mismatch(distributed::ProcessGroup& group) {
  Tensor t = ones({10 + group.rank()});
  try {
    group.all_reduce(t).wait();
    expect(false, "all_reduce of different sizes did not fail");
  } catch (const Error& e) {
    const std::string message = e.what();
    expect(message.find("rank 0 called all_reduce") != std::string::npos &&
               message.find("10 f32 elements") != std::string::npos &&
               message.find("11 f32 elements") != std::string::npos,
           "the mismatch message names the ranks and sizes: " + message);
    std::printf("rank %d: mismatch reported: %s\n", group.rank(), message.c_str());
  }
  // The data never moved, and the group goes on.
  expect(equal(t, std::vector<double>(static_cast<size_t>(t.numel()), 1.0)),
         "the mismatched tensor is untouched");
  Tensor u = ones({4});
  group.all_reduce(u).wait();
  expect(equal(u, std::vector<double>(4, group.size())), "all_reduce after a mismatch");
}

// ---- DistributedDataParallel -------------------------------------------------------------

namespace F = nn::functional;

std::shared_ptr<nn::Sequential> mlp(DType dtype, int64_t hidden = 16) {
  manual_seed(11);
  auto net = std::make_shared<nn::Sequential>(nn::Linear(6, hidden), nn::Tanh(),
                                              nn::Linear(hidden, 8), nn::Tanh(), nn::Linear(8, 4));
  net->to(dtype);
  return net;
}

// The largest |a - b| / max(|b|, tiny) over two modules' parameters, in order.
double max_relative_difference(nn::Module& a, nn::Module& b) {
  const std::vector<Tensor> pa = a.parameters(), pb = b.parameters();
  double worst = 0.0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor x = pa[i].detach().to(kFloat64), y = pb[i].detach().to(kFloat64);
    const double* xd = x.data<double>();
    const double* yd = y.data<double>();
    for (int64_t k = 0; k < x.numel(); ++k) {
      worst = std::max(worst, std::abs(xd[k] - yd[k]) / std::max(std::abs(yd[k]), 1e-3));
    }
  }
  return worst;
}

// The largest ||a - b|| / ||b|| over two modules' parameter tensors, in order.
double max_normwise_difference(nn::Module& a, nn::Module& b) {
  const std::vector<Tensor> pa = a.parameters(), pb = b.parameters();
  double worst = 0.0;
  for (size_t i = 0; i < pa.size(); ++i) {
    const Tensor x = pa[i].detach().to(kFloat64), y = pb[i].detach().to(kFloat64);
    const double difference = std::sqrt(sum(mul(sub(x, y), sub(x, y))).item<double>());
    worst = std::max(worst, difference / std::sqrt(sum(mul(y, y)).item<double>()));
  }
  return worst;
}

void ddp_matches_one_process(distributed::ProcessGroup& group, DType dtype, double tolerance) {
  const int size = group.size(), rank = group.rank();
  const int64_t share = 8;  // examples per rank
  Generator gen(5);
  const Tensor x = randn({share * size, 6}, TensorOptions(dtype), &gen);
  const Tensor y = randn({share * size, 4}, TensorOptions(dtype), &gen);
  // A tiny bucket cap: several buckets, started while backward still runs.
  nn::DistributedDataParallel ddp(
      mlp(dtype),
      std::shared_ptr<distributed::ProcessGroup>(&group, [](distributed::ProcessGroup*) {}),
      {.bucket_cap_mb = 0.0001});
  expect(ddp.bucket_names().size() >= 3, "several buckets");
  auto reference = mlp(dtype);
  optim::SGD sgd(ddp.parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::SGD reference_sgd(reference->parameters(), {.lr = 0.1, .momentum = 0.9});
  const Tensor my_x = x.narrow(0, rank * share, share), my_y = y.narrow(0, rank * share, share);
  for (int step = 0; step < 20; ++step) {
    sgd.zero_grad();
    F::mse_loss(ddp(my_x), my_y).backward();
    sgd.step();
    reference_sgd.zero_grad();
    F::mse_loss((*reference)(x), y).backward();
    reference_sgd.step();
  }
  const double difference = max_normwise_difference(ddp.module(), *reference);
  std::printf(
      "rank %d: ddp %s, 20 steps: parameters %.3g apart (norm-wise), largest element "
      "%.3g apart (relative)\n",
      rank, dtype_name(dtype), difference, max_relative_difference(ddp.module(), *reference));
  expect(difference <= tolerance,
         "DDP equals one process on the whole batch (" + std::string(dtype_name(dtype)) + ")");

  // no_sync: two half-shares accumulated, the second synchronized, equal one step on the
  // whole batch (each half's loss halved, as gradient accumulation does).
  auto accumulated = std::make_shared<nn::DistributedDataParallel>(
      mlp(dtype), std::shared_ptr<distributed::ProcessGroup>(&group, [](auto*) {}),
      nn::DistributedDataParallelOptions{.bucket_cap_mb = 0.0001});
  auto whole = mlp(dtype);
  {
    auto guard = accumulated->no_sync();
    mul(F::mse_loss((*accumulated)(my_x.narrow(0, 0, share / 2)), my_y.narrow(0, 0, share / 2)),
        0.5)
        .backward();
  }
  mul(F::mse_loss((*accumulated)(my_x.narrow(0, share / 2, share / 2)),
                  my_y.narrow(0, share / 2, share / 2)),
      0.5)
      .backward();
  F::mse_loss((*whole)(x), y).backward();
  const std::vector<Tensor> got = accumulated->parameters(), want = whole->parameters();
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); ++i) {
    const Tensor d = sub(got[i].grad(), want[i].grad()).abs().max().to(kFloat64);
    const Tensor m = want[i].grad().abs().max().to(kFloat64);
    worst = std::max(worst, d.item<double>() / std::max(m.item<double>(), 1e-6));
  }
  expect(worst <= tolerance,
         "no_sync accumulation equals one large step, difference " + std::to_string(worst));
}

struct TwoHeads : nn::Module {
  std::shared_ptr<nn::Linear> used, unused;
  TwoHeads() : Module("TwoHeads") {
    manual_seed(3);
    used = register_module("used", std::make_shared<nn::Linear>(3, 2));
    unused = register_module("unused", std::make_shared<nn::Linear>(3, 2));
  }
  Tensor forward(const Tensor& x) override { return (*used)(x); }
};

void ddp(distributed::ProcessGroup& group) {
  const std::shared_ptr<distributed::ProcessGroup> shared(&group, [](auto*) {});
  // Norm-wise: an element near zero can differ more, relatively (8.6e-6 measured in f32).
  ddp_matches_one_process(group, kFloat64, 1e-12);
  ddp_matches_one_process(group, kFloat32, 1e-6);

  {
    nn::DistributedDataParallel strict(std::make_shared<TwoHeads>(), shared);
    try {
      sum(strict(ones({4, 3}))).backward();
      expect(false, "an unused parameter did not fail");
    } catch (const Error& e) {
      const std::string message = e.what();
      expect(message.find("module.unused.weight") != std::string::npos &&
                 message.find("find_unused_parameters") != std::string::npos,
             "the unused-parameter message names it: " + message);
    }
    nn::DistributedDataParallel lenient(std::make_shared<TwoHeads>(), shared,
                                        {.find_unused_parameters = true});
    sum(lenient(ones({4, 3}))).backward();
    const auto params = lenient.named_parameters();
    for (const auto& [name, p] : params) {
      const bool is_used = name.find("unused") == std::string::npos;
      expect(p.grad().defined() == is_used, "gradient defined exactly for the used " + name);
    }
  }

  // A model that differs on one rank is refused at construction, on every rank.
  try {
    nn::DistributedDataParallel odd(mlp(kFloat32, group.rank() == 1 ? 12 : 16), shared);
    expect(false, "different models were accepted");
  } catch (const Error& e) {
    const std::string message = e.what();
    expect(message.find("differs across ranks") != std::string::npos &&
               message.find("module.0.weight") != std::string::npos,
           "the message names the parameter: " + message);
  }
}

// The largest |a - b| over two tensors' elements.
double max_difference(const Tensor& a, const Tensor& b) {
  return sub(a.to(kFloat64), b.to(kFloat64)).abs().max().item<double>();
}

void syncbn(distributed::ProcessGroup& group) {
  const std::shared_ptr<distributed::ProcessGroup> shared(&group, [](auto*) {});
  const int size = group.size(), rank = group.rank();
  const int64_t share = 3;
  Generator gen(21);
  const Tensor x = randn({share * size, 4, 5, 5}, TensorOptions(kFloat64), &gen);
  const Tensor weights = randn({share * size, 4, 5, 5}, TensorOptions(kFloat64), &gen);

  nn::SyncBatchNorm sync(4, shared);
  nn::BatchNorm2d whole(4);
  for (nn::Module* m : std::vector<nn::Module*>{&sync, &whole}) m->to(kFloat64);
  {
    NoGradGuard no_grad;  // a non-trivial affine part, the same in both
    for (nn::BatchNorm* bn : std::vector<nn::BatchNorm*>{&sync, &whole}) {
      bn->weight.copy_(from_vector<double>({0.5, 1.5, -1.0, 2.0}, {4}));
      bn->bias.copy_(from_vector<double>({0.1, -0.2, 0.3, 0.0}, {4}));
    }
  }
  Tensor mine = x.narrow(0, rank * share, share).clone().set_requires_grad(true);
  Tensor all = x.clone().set_requires_grad(true);
  double worst = 0.0;
  for (int step = 0; step < 3; ++step) {  // running statistics over several steps
    const Tensor y = sync(mine);
    sum(mul(y, weights.narrow(0, rank * share, share))).backward();
    const Tensor y_all = whole(all);
    sum(mul(y_all, weights)).backward();
    worst = std::max(worst, max_difference(y, y_all.narrow(0, rank * share, share)));
  }
  worst = std::max(worst, max_difference(mine.grad(), all.grad().narrow(0, rank * share, share)));
  for (Tensor* g : {&sync.weight.mutable_grad(), &sync.bias.mutable_grad()}) {
    group.all_reduce(*g).wait();  // each rank holds its share's part of the weight gradient
  }
  worst = std::max(worst, max_difference(sync.weight.grad(), whole.weight.grad()));
  worst = std::max(worst, max_difference(sync.bias.grad(), whole.bias.grad()));
  worst = std::max(worst, max_difference(sync.running_mean, whole.running_mean));
  worst = std::max(worst, max_difference(sync.running_var, whole.running_var));
  std::printf("rank %d: SyncBatchNorm vs BatchNorm on the whole batch: largest difference %.3g\n",
              rank, worst);
  expect(worst < 1e-10, "SyncBatchNorm equals BatchNorm on the whole batch");
  sync.eval();
  whole.eval();
  expect(max_difference(sync(mine), whole(all).narrow(0, rank * share, share)) < 1e-10,
         "evaluation uses the running statistics");
}

// `steps` SGD steps of `ddp` on this rank's share of a fixed batch.
void train_steps(nn::DistributedDataParallel& ddp, optim::SGD& sgd, int steps) {
  const int size = ddp.process_group().size(), rank = ddp.process_group().rank();
  Generator gen(5);
  const Tensor x = randn({4 * size, 6}, TensorOptions(kFloat64), &gen);
  const Tensor y = randn({4 * size, 4}, TensorOptions(kFloat64), &gen);
  for (int step = 0; step < steps; ++step) {
    sgd.zero_grad();
    F::mse_loss(ddp(x.narrow(0, 4 * rank, 4)), y.narrow(0, 4 * rank, 4)).backward();
    sgd.step();
  }
}

void resume(distributed::ProcessGroup& group) {
  const std::shared_ptr<distributed::ProcessGroup> shared(&group, [](auto*) {});
  const optim::SGDOptions options{.lr = 0.05, .momentum = 0.9};
  nn::DistributedDataParallel straight(mlp(kFloat64), shared);
  optim::SGD straight_sgd(straight.parameters(), options);
  train_steps(straight, straight_sgd, 10);

  // Rank 0 names the file; every rank reads it (one machine: a shared file system).
  Tensor pid = full({1}, static_cast<double>(::getpid()), TensorOptions(kInt64));
  group.broadcast(pid, 0).wait();
  const std::string path =
      (std::filesystem::temp_directory_path() /
       ("strata_dist_resume_" + std::to_string(pid.item<int64_t>()) + ".safetensors"))
          .string();
  {
    nn::DistributedDataParallel first(mlp(kFloat64), shared);
    optim::SGD first_sgd(first.parameters(), options);
    train_steps(first, first_sgd, 5);
    if (group.rank() == 0) io::save_checkpoint(path, io::capture(first, first_sgd, nullptr, 0, 5));
    group.barrier().wait();
  }
  nn::DistributedDataParallel resumed(mlp(kFloat64, 16), shared);
  {
    NoGradGuard no_grad;  // a different start, so only the checkpoint can make them equal
    for (Tensor& p : resumed.parameters()) p.fill_(0.25);
  }
  optim::SGD resumed_sgd(resumed.parameters(), options);
  io::restore(io::load_checkpoint(path), resumed, resumed_sgd, nullptr);
  train_steps(resumed, resumed_sgd, 5);
  group.barrier().wait();
  if (group.rank() == 0) std::filesystem::remove(path);
  const double difference = max_relative_difference(resumed.module(), straight.module());
  std::printf("rank %d: resumed vs uninterrupted: largest relative difference %.3g\n", group.rank(),
              difference);
  expect(difference == 0.0, "a resumed run equals an uninterrupted one bit for bit");
}

// ---- fit ------------------------------------------------------------------------------------

std::shared_ptr<nn::Sequential> classifier() {
  manual_seed(17);
  auto net = std::make_shared<nn::Sequential>(nn::Linear(6, 16), nn::Tanh(), nn::Linear(16, 3));
  net->to(kFloat64);
  return net;
}

// 48 training examples (a multiple of every per-step batch below, so no rank repeats one) and
// 25 validation ones (split unevenly between the ranks).
std::shared_ptr<data::Dataset> classification_set(int64_t n, uint64_t seed) {
  Generator gen(seed);
  const Tensor x = randn({n, 6}, TensorOptions(kFloat64), &gen);
  const Tensor y = argmax(x.narrow(1, 0, 3), 1);
  return std::make_shared<data::TensorDataset>(x, y);
}

// Asks to stop after epoch `epoch`, on one rank only.
struct StopOnOneRank : train::Callback {
  int rank;
  int64_t epoch;
  StopOnOneRank(int rank_, int64_t epoch_) : rank(rank_), epoch(epoch_) {}
  void on_epoch_end(train::TrainContext& context) override {
    if (context.rank == rank && context.epoch == epoch) context.stop_training = true;
  }
};

double largest_log_difference(const train::History& a, const train::History& b) {
  double worst = a.size() == b.size() ? 0.0 : 1e300;
  for (size_t e = 0; e < std::min(a.size(), b.size()); ++e) {
    for (const auto& [name, value] : b.at(e)) {
      if (name == "seconds") continue;
      const auto found = a.at(e).find(name);
      worst = std::max(worst, found == a.at(e).end() ? 1e300 : std::abs(found->second - value));
    }
  }
  return worst;
}

// A directory every rank names alike (rank 0's pid).
std::filesystem::path shared_directory(distributed::ProcessGroup& group, const std::string& what) {
  Tensor pid = full({1}, static_cast<double>(::getpid()), TensorOptions(kInt64));
  group.broadcast(pid, 0).wait();
  return std::filesystem::temp_directory_path() /
         ("strata_dist_" + what + "_" + std::to_string(pid.item<int64_t>()));
}

void fit(distributed::ProcessGroup& group) {
  const std::shared_ptr<distributed::ProcessGroup> shared(&group, [](auto*) {});
  const int size = group.size(), rank = group.rank();
  const auto train_set = classification_set(48, 3), validation_set = classification_set(25, 4);
  const int64_t share = 8;  // examples per rank and step
  const auto options = [&](int64_t batch_size) {
    return train::FitOptions{.epochs = 3,
                             .batch_size = batch_size,
                             .seed = 9,
                             .validation = validation_set,
                             .metrics = {"accuracy"},
                             .verbose = train::Verbosity::Silent};
  };

  // One process on the whole batch.
  auto whole = classifier();
  optim::SGD whole_sgd(whole->parameters(), {.lr = 0.2, .momentum = 0.9});
  const train::History expected =
      train::fit(*whole, nn::CrossEntropyLoss{}, whole_sgd, train_set, options(share * size));

  // Every rank on its share, printing into `printed` and logging to a file of its own.
  const std::filesystem::path log = std::filesystem::temp_directory_path() /
                                    ("strata_dist_fit_log_" + std::to_string(::getpid()) + ".csv");
  std::ostringstream printed;
  nn::DistributedDataParallel ddp(classifier(), shared);
  optim::SGD sgd(ddp.parameters(), {.lr = 0.2, .momentum = 0.9});
  train::FitOptions parallel = options(share);
  parallel.process_group = shared;
  parallel.verbose = train::Verbosity::Lines;
  parallel.output = &printed;
  parallel.callbacks = {std::make_shared<train::CsvLogger>(log.string())};
  const train::History got = train::fit(ddp, nn::CrossEntropyLoss{}, sgd, train_set, parallel);

  const double weights = max_relative_difference(ddp.module(), *whole);
  const double logs = largest_log_difference(got, expected);
  std::printf("rank %d: fit on %d ranks vs one process: weights %.3g, logs %.3g apart\n", rank,
              size, weights, logs);
  expect(weights < 1e-10, "fit's weights equal one process's");
  expect(logs < 1e-10, "fit's logs (loss, accuracy, val_loss, val_accuracy) equal one process's");
  expect(got.back().at("val_accuracy") == expected.back().at("val_accuracy"),
         "the validation accuracy counts every example once");
  expect(printed.str().empty() == (rank != 0), "only rank 0 prints: '" + printed.str() + "'");
  expect(std::filesystem::exists(log) == (rank == 0), "only rank 0 writes the CSV log");
  std::filesystem::remove(log);

  // evaluate() over the group: each rank evaluates its share, the sums are taken over all.
  const train::Logs evaluated = train::evaluate(ddp, nn::CrossEntropyLoss{}, validation_set,
                                                {.batch_size = 4,
                                                 .metrics = {"accuracy", "top2", "f1"},
                                                 .num_classes = 3,
                                                 .process_group = shared});
  const train::Logs evaluated_whole =
      train::evaluate(ddp.module(), nn::CrossEntropyLoss{}, validation_set,
                      {.batch_size = 4, .metrics = {"accuracy", "top2", "f1"}, .num_classes = 3});
  for (const auto& [name, value] : evaluated_whole) {
    expect(std::abs(evaluated.at(name) - value) < 1e-12, "evaluate over the group: " + name);
  }

  // A stop asked by rank 1 alone stops every rank after that epoch.
  nn::DistributedDataParallel stopped(classifier(), shared);
  optim::SGD stopped_sgd(stopped.parameters(), {.lr = 0.2});
  train::FitOptions stopping = options(share);
  stopping.process_group = shared;
  stopping.callbacks = {std::make_shared<StopOnOneRank>(1, 1)};
  const train::History cut =
      train::fit(stopped, nn::CrossEntropyLoss{}, stopped_sgd, train_set, stopping);
  expect(cut.size() == 2, "every rank stopped after epoch 2, got " + std::to_string(cut.size()));

  // Rank 0 checkpoints; a run stopped after epoch 2 and resumed on every rank from its
  // checkpoint ends as the uninterrupted run.
  const std::filesystem::path directory = shared_directory(group, "fit_resume");
  {
    nn::DistributedDataParallel first(classifier(), shared);
    optim::SGD first_sgd(first.parameters(), {.lr = 0.2, .momentum = 0.9});
    train::FitOptions checkpointed = options(share);
    checkpointed.epochs = 2;
    checkpointed.process_group = shared;
    checkpointed.callbacks = {std::make_shared<train::ModelCheckpoint>(directory.string())};
    train::fit(first, nn::CrossEntropyLoss{}, first_sgd, train_set, checkpointed);
  }
  group.barrier().wait();  // rank 0's checkpoint is on disk
  nn::DistributedDataParallel resumed(classifier(), shared);
  optim::SGD resumed_sgd(resumed.parameters(), {.lr = 0.2, .momentum = 0.9});
  const train::Resumed from = train::resume_from_latest(directory.string(), resumed, resumed_sgd);
  expect(from.epoch == 2, "resumed after 2 epochs, got " + std::to_string(from.epoch));
  train::FitOptions rest = options(share);
  rest.process_group = shared;
  rest.initial_epoch = from.epoch;
  train::fit(resumed, nn::CrossEntropyLoss{}, resumed_sgd, train_set, rest);
  const double resumed_difference = max_relative_difference(resumed.module(), ddp.module());
  std::printf("rank %d: fit resumed vs uninterrupted: %.3g apart\n", rank, resumed_difference);
  expect(resumed_difference == 0.0, "a resumed fit equals an uninterrupted one bit for bit");
  group.barrier().wait();
  if (rank == 0) std::filesystem::remove_all(directory);

  // Without DDP the ranks' gradients would never meet: an error that says what to do.
  try {
    auto plain = classifier();
    optim::SGD plain_sgd(plain->parameters(), {.lr = 0.1});
    train::FitOptions wrong = options(share);
    wrong.process_group = shared;
    train::fit(*plain, nn::CrossEntropyLoss{}, plain_sgd, train_set, wrong);
    expect(false, "fit with a process group accepted a model without DistributedDataParallel");
  } catch (const Error& e) {
    expect(std::string(e.what()).find("nn::DistributedDataParallel") != std::string::npos,
           std::string("the message says to wrap the model: ") + e.what());
  }
}

// Rank 1 dies at epoch 2, batch 2 of a data-parallel fit().
struct DieOnRankOne : train::Callback {
  void on_batch_begin(train::TrainContext& context) override {
    if (context.rank == 1 && context.epoch == 1 && context.step == 1) std::_Exit(9);
  }
};

void fit_die(distributed::ProcessGroup& group) {
  const std::shared_ptr<distributed::ProcessGroup> shared(&group, [](auto*) {});
  nn::DistributedDataParallel ddp(classifier(), shared);
  optim::SGD sgd(ddp.parameters(), {.lr = 0.1});
  train::fit(ddp, nn::CrossEntropyLoss{}, sgd, classification_set(48, 3),
             {.epochs = 1000,
              .batch_size = 4,
              .callbacks = {std::make_shared<DieOnRankOne>()},
              .verbose = train::Verbosity::Silent,
              .process_group = shared});
  expect(false, "the job outlived a rank that died in fit()");
}

int run(const std::string& scenario) {
  if (!distributed::mpi_available()) {
    std::fprintf(stderr, "strata_dist_worker: this Strata was built without MPI\n");
    return 77;
  }
  distributed::ProcessGroupOptions options;
  if (scenario == "timeout" || scenario == "die" || scenario == "fit_die")
    options.timeout = std::chrono::seconds(2);
  auto group = distributed::new_mpi_group(options);
  g_rank = group->rank();
  if (scenario == "collectives") {
    collectives(*group);
  } else if (scenario == "mismatch") {
    mismatch(*group);
  } else if (scenario == "ddp") {
    ddp(*group);
  } else if (scenario == "syncbn") {
    syncbn(*group);
  } else if (scenario == "resume") {
    resume(*group);
  } else if (scenario == "fit") {
    fit(*group);
  } else if (scenario == "fit_die") {
    fit_die(*group);
  } else if (scenario == "timeout") {
    Tensor t = ones({8});
    if (group->rank() != 1) group->all_reduce(t).wait();  // throws: rank 1 never comes
    std::this_thread::sleep_for(std::chrono::seconds(20));
    expect(false, "rank 1 outlived the job");
  } else if (scenario == "die") {
    for (int step = 0; step < 50; ++step) {
      if (step == 3 && group->rank() == 1) std::_Exit(9);  // dies without a word to MPI
      Tensor t = ones({64});
      group->all_reduce(t).wait();
    }
    expect(false, "the job outlived a dead rank");
  } else {
    std::fprintf(stderr, "strata_dist_worker: unknown scenario %s\n", scenario.c_str());
    return 2;
  }
  if (g_failures > 0) return 1;
  std::printf("rank %d: %s ok\n", group->rank(), scenario.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: strata_dist_worker "
                 "collectives|mismatch|timeout|die|ddp|syncbn|resume|fit|fit_die\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", g_rank, e.what());
    return 3;
  }
}
