// One rank of a process-group scenario, run by test_distributed.cpp under
// `mpirun -np N strata_dist_worker SCENARIO`:
//   collectives  every collective, f32/f64/i64, odd sizes, each rank's values distinct, checked
//                element by element against the closed form; several in flight at once
//   mismatch     the ranks all_reduce different sizes: every rank gets an error naming both,
//                then the group still works
//   timeout      rank 1 skips an all_reduce: rank 0's wait fails within its 2 s timeout naming
//                rank 1, and the job ends non-zero
//   die          rank 1 exits mid-training (no MPI_Finalize): the job ends non-zero
// Prints "rank R: SCENARIO ok" and exits 0 when everything held; otherwise says what was wrong
// and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "strata/distributed.h"
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

int run(const std::string& scenario) {
  if (!distributed::mpi_available()) {
    std::fprintf(stderr, "strata_dist_worker: this Strata was built without MPI\n");
    return 77;
  }
  distributed::ProcessGroupOptions options;
  if (scenario == "timeout" || scenario == "die") options.timeout = std::chrono::seconds(2);
  auto group = distributed::new_mpi_group(options);
  g_rank = group->rank();
  if (scenario == "collectives") {
    collectives(*group);
  } else if (scenario == "mismatch") {
    mismatch(*group);
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
    std::fprintf(stderr, "usage: strata_dist_worker collectives|mismatch|timeout|die\n");
    return 2;
  }
  try {
    return run(argv[1]);
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "rank %d: error: %s\n", g_rank, e.what());
    return 3;
  }
}
