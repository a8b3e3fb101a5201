// Collective communication between processes (torch.distributed): a ProcessGroup holds the
// ranks of one job and runs the collectives data-parallel training needs — all_reduce,
// broadcast, all_gather, reduce_scatter, barrier — on an established engine, never a
// transport of Strata's own. The MPI group (Open MPI, from Debian's libopenmpi-dev) moves CPU
// tensors; it is built when CMake finds MPI (STRATA_MPI, AUTO by default). The NCCL group moves
// CUDA tensors GPU to GPU; it is built with the CUDA backend when CMake finds nccl.h and libnccl
// (STRATA_NCCL, AUTO by default), and takes the ranks of a bootstrap group (normally MPI's).
// - Every collective returns a Work handle at once; the group's own thread runs the
//   collectives one after another, in the order they were called, while the caller computes.
//   Work::wait() blocks until it is done.
// - Before its data moves, a collective's description (kind, dtype, element count, root,
//   operation) is compared across the ranks: a mismatch fails the collective on every rank
//   with an error naming the ranks and what each passed, rather than corrupting memory.
// - A collective that does not finish within the group's timeout (5 minutes by default) fails
//   wait() with an error naming the collective and the ranks that never reached it. The group
//   is then broken: later calls fail, and destroying it ends the job (MPI_Abort), so a rank
//   that dies or hangs ends the job with a message, never a silent hang.
// Usage (run with `mpirun -np 2 ./train`):
//   auto group = distributed::new_mpi_group();
//   group->all_reduce(grad, distributed::ReduceOp::Avg).wait();
//   // or, one GPU per rank:
//   auto nccl = distributed::new_nccl_group(group, Device(kCUDA, distributed::local_rank()));
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "strata/tensor.h"

namespace strata::distributed {

enum class ReduceOp { Sum, Avg, Max, Min };

const char* reduce_op_name(ReduceOp op);

// A collective in flight. Copies share the same collective.
class Work {
 public:
  struct State;  // defined by the group that made it

  Work() = default;  // nothing to wait for
  explicit Work(std::shared_ptr<State> state) : state_(std::move(state)) {}

  bool is_completed() const;
  // Blocks until the collective is done, for at most the group's timeout (or `timeout`);
  // throws strata::Error when it failed (mismatched ranks, an MPI error) or timed out.
  void wait() const;
  void wait(std::chrono::milliseconds timeout) const;

 private:
  std::shared_ptr<State> state_;
};

struct ProcessGroupOptions {
  // How long wait() waits for a collective before failing it (and breaking the group).
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

// The ranks of one job. Tensors passed to a collective must be contiguous and stay alive and
// untouched until its Work completes (the group writes results into them in place).
class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend_name() const = 0;
  virtual const ProcessGroupOptions& options() const = 0;

  // tensor = op over every rank's tensor (same shape and dtype everywhere), on every rank.
  // Avg is the sum divided by size() (floating tensors only).
  virtual Work all_reduce(const Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  // tensor = root's tensor, on every rank.
  virtual Work broadcast(const Tensor& tensor, int root = 0) = 0;
  // output [size() * n, ...] = every rank's input [n, ...], concatenated in rank order along
  // dim 0 (all_gather_into_tensor).
  virtual Work all_gather(const Tensor& output, const Tensor& input) = 0;
  // output [n, ...] = rank r's slice r of op over every rank's input [size() * n, ...]
  // (reduce_scatter_tensor).
  virtual Work reduce_scatter(const Tensor& output, const Tensor& input,
                              ReduceOp op = ReduceOp::Sum) = 0;
  // Completes once every rank has called it.
  virtual Work barrier() = 0;
};

// The sum of `t` over every rank, as a differentiable op (torch.distributed.nn's all_reduce):
// its backward sums the incoming gradients over every rank the same way, which is the
// gradient of the sum of every rank's loss. Blocks until done. Every rank must call it, and
// its backward, in the same order (a model's graph does). SyncBatchNorm's statistics use it.
Tensor differentiable_all_reduce(const Tensor& t, ProcessGroup& group);

// This process's rank among the job's processes on its own machine, from the launcher's
// environment (Open MPI's OMPI_COMM_WORLD_LOCAL_RANK, MPICH's MPI_LOCALRANKID, Slurm's
// SLURM_LOCALID, torchrun's LOCAL_RANK); 0 when none is set. With several GPUs per machine,
// local rank k takes cuda:k.
int local_rank();

// Whether this Strata was built with MPI (STRATA_MPI).
bool mpi_available();

// The group of every process of the MPI job (MPI_COMM_WORLD), initializing MPI on first use
// (MPI_THREAD_SERIALIZED; finalized at exit) unless the program already did, with at least
// that thread level. While a group lives, its thread makes this process's MPI calls: a program
// that calls MPI itself meanwhile must initialize MPI with MPI_THREAD_MULTIPLE. Throws
// strata::Error when built without MPI.
std::shared_ptr<ProcessGroup> new_mpi_group(ProcessGroupOptions options = {});

// Whether this Strata was built with NCCL (STRATA_NCCL) and a CUDA device is usable.
bool nccl_available();

// An NCCL group (backend_name() "nccl") on CUDA device `device` with the ranks of `bootstrap`:
// rank 0 makes the NCCL unique id and broadcasts it over `bootstrap` (every rank must call this
// together), then each rank joins the communicator on `device` (one device per rank). The
// bootstrap group also carries each collective's description for the mismatch check (a few
// bytes per collective); do not run collectives on it from another thread meanwhile.
// `bootstrap` may be null for a group of one process (rank 0 of 1; no MPI needed).
// - Collectives take contiguous tensors on `device`: f32, f64, f16, bf16, i32, i64, uint8
//   (bool for broadcast and all_gather); Avg for floating tensors only.
// - Ordering: a collective runs after the work already queued on the device when it was called
//   (the CUDA backend's stream), on a stream of the group's own, so it overlaps later kernels.
//   wait() returns once it has finished on the device: its result is then usable anywhere.
// - A collective not done within options.timeout fails wait() and breaks the group: its NCCL
//   communicator is aborted and later calls fail. Destroying the group lets pending collectives
//   finish, then destroys the communicator (aborts it when broken).
// Throws strata::Error when built without CUDA or NCCL, when `device` is not a usable CUDA
// device, or when the communicator cannot be made.
std::shared_ptr<ProcessGroup> new_nccl_group(std::shared_ptr<ProcessGroup> bootstrap, Device device,
                                             ProcessGroupOptions options = {});

}  // namespace strata::distributed
