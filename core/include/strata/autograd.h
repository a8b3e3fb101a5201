// The autograd tape. A differentiable op that sees grad mode on and an input requiring grad
// records a Node: the edges to its inputs' nodes, the tensors its backward needs, and the
// backward function itself (kept beside the forward in the op's file). backward() replays the
// nodes reachable from the root in reverse topological order, summing gradients per node, and
// accumulates them into the .grad() of leaves. Backward functions run with grad mode off,
// unless the pass creates a graph (backward(..., create_graph=true), autograd::grad): then what
// they compute is recorded in turn, so a gradient can be differentiated again.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/tensor.h"

namespace strata {

// Grad mode is per thread and on by default.
class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Turns recording off for its scope: `{ NoGradGuard guard; w.add_(g, -lr); }`.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Turns recording on for its scope, whatever the caller's mode: an optimizer's step() runs
// under NoGradGuard but calls the loss closure with gradients on (torch.enable_grad).
class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(GradMode::is_enabled()) { GradMode::set_enabled(true); }
  ~EnableGradGuard() { GradMode::set_enabled(previous_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

// Anomaly detection (torch.autograd.set_detect_anomaly). While it is on (process-wide; off by
// default) every op recorded on the tape checks its output, and the engine checks every
// gradient a backward function returns, for NaN and infinity; the first found throws
// strata::Error naming the op, its position on the tape and whether its inputs were already
// non-finite. The check costs a reduction per op (and on CUDA a synchronization): a mode to
// find a bug with, not to train in.
class AnomalyMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

// Anomaly detection on for its scope: `{ DetectAnomalyGuard anomaly; loss.backward(); }`.
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : previous_(AnomalyMode::is_enabled()) { AnomalyMode::set_enabled(true); }
  ~DetectAnomalyGuard() { AnomalyMode::set_enabled(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

namespace autograd {

// Maps the gradient of a node's output to the gradients of its inputs (one per input; an
// undefined Tensor where an input gets none). needs_input_grad[i] says whether input i wants
// one, so a backward can skip work nobody uses (the data side of x @ w, say).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output,
                                                     const std::vector<bool>& needs_input_grad)>;

// Called with the gradient reaching a tensor; returns a replacement, or an undefined Tensor to
// keep it (torch's Tensor.register_hook).
using GradHook = std::function<Tensor(const Tensor& grad)>;

struct Node : std::enable_shared_from_this<Node> {
  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees the chain of nodes only this one keeps alive without recursing, so a graph of a
  // million steps (a long unrolled RNN) cannot overflow the stack when it is dropped.
  ~Node();

  std::string name;                            // the op, for messages: "matmul"
  // Its position on the tape: the ops recorded on this thread since its last backward() (or
  // since anomaly mode was turned on), from 1: a training step's forward pass, in order. 0 for
  // a leaf's accumulating node.
  int64_t tape_position = 0;
  std::vector<std::shared_ptr<Node>> next;     // one per input; null where no grad flows
  std::vector<bool> needs_input_grad;          // next[i] != nullptr
  BackwardFn backward;                         // released after use unless retain_graph
  std::weak_ptr<TensorImpl> leaf;              // set on the node that accumulates a leaf
  Shape output_shape;                          // the shape its incoming gradient must have
  DType output_dtype = DType::Float32;
  Device output_device;
  // A backward that is not itself differentiable (it runs kernels on saved data): a graph
  // created through it carries an error node instead, so a second derivative through it is an
  // error naming the op rather than a silently wrong number.
  bool once_differentiable = false;
  // Hooks of the tensor this node produced (register_hook on a non-leaf), in order.
  std::vector<std::pair<int64_t, GradHook>> tensor_hooks;
  std::weak_ptr<TensorImpl> retained;  // that tensor, when it called retain_grad()

  // Scratch space of the engine during one backward pass (no maps needed per pass).
  Tensor pending_grad;     // gradients that reached this node so far, summed
  int pending_edges = 0;   // edges from not-yet-run nodes still to deliver
  uint64_t visited_in = 0; // the pass that last counted this node's edges
  // grad(): the pass that last decided `relevant` (a path leads from here to an input).
  uint64_t visited_relevant = 0;
  bool relevant = false;
  std::vector<size_t> captures;  // grad(): the inputs whose gradient is this node's
};

// Called with a leaf once a backward pass has added its gradient to the leaf's .grad().
using PostAccumulateHook = std::function<void(const Tensor& leaf)>;

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;         // set on outputs of recorded ops
  std::weak_ptr<Node> accumulator;       // the leaf's accumulating node, made on first use
  std::vector<std::pair<int64_t, PostAccumulateHook>> post_accumulate_hooks;  // (id, hook)
  std::vector<std::pair<int64_t, GradHook>> grad_hooks;  // a leaf's register_hook, in order
};

// Registers `hook` on leaf `t` (torch's register_post_accumulate_grad_hook): each backward
// pass that gives t a gradient calls it once, right after adding that gradient to t.grad(),
// while the rest of the pass still runs (DistributedDataParallel starts its all-reduces from
// here). Returns an id for remove_post_accumulate_hook.
int64_t add_post_accumulate_hook(const Tensor& t, PostAccumulateHook hook);
void remove_post_accumulate_hook(const Tensor& t, int64_t id);

// Runs `callback` once when the backward pass now running on this thread has run every node
// (torch's queue_callback), before backward() returns; callbacks run in the order queued. Only
// callable from inside a backward pass (a hook or a backward function).
void queue_backward_end_callback(std::function<void()> callback);

// True when an op with these inputs must record a node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);
bool needs_grad(const std::vector<Tensor>& inputs);

// Attaches a new node to `output` (which becomes a non-leaf requiring grad).
void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            BackwardFn backward);

// Marks the node that produced `output` as once differentiable (see Node).
void mark_once_differentiable(const Tensor& output);

// Inside a backward function: `output` (the detached result the function saved, as exp's
// backward reads exp(x)) reattached to the node now running when the pass creates a graph, so
// the second derivative flows through it, as PyTorch's saved outputs do; `output` itself
// otherwise. The node must have produced exactly this tensor (same shape).
Tensor saved_output(const Tensor& output);

// Inside a backward function: when the pass creates a graph and `grad_output` requires grad,
// records `grad_input` (computed by a kernel from grad_output alone, linearly) as a node whose
// backward is `transpose` (the op's forward applied to the incoming gradient): the double
// backward of index_select, gather, pooling. Returns grad_input.
Tensor linear_in_grad(const char* name, const Tensor& grad_output, Tensor grad_input,
                      std::function<Tensor(const Tensor&)> transpose);

// Runs backward from `roots` with the given gradients (an undefined gradient means ones,
// allowed for one-element roots only). create_graph records the pass itself (see above).
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
                  bool retain_graph, bool create_graph = false);

// The gradients of `outputs` with respect to `inputs` (torch.autograd.grad), returned instead
// of accumulated into .grad(). grad_outputs: one per output (empty, or an undefined entry,
// means ones for a one-element output). retain_graph defaults to create_graph; create_graph
// makes the results differentiable (a gradient penalty, a Hessian-vector product). An input
// the outputs do not depend on is an error unless allow_unused, which gives an undefined
// Tensor for it. Only the part of the graph between the outputs and the inputs runs.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
                         bool allow_unused = false);

// A hook on the gradient of `t` (torch's Tensor.register_hook): each backward pass calls it
// with the gradient reaching t, before it is used (accumulated into a leaf's .grad(), passed
// on by a non-leaf's node, or returned by grad()); a defined return value replaces it.
// Returns an id for remove_hook.
int64_t register_hook(const Tensor& t, GradHook hook);
void remove_hook(const Tensor& t, int64_t id);

// Sums `grad` over broadcast dimensions so it has `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace autograd

// ---- gradient checking ------------------------------------------------------------------
struct GradcheckOptions {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-5;
  double rtol = 1e-3;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: input, element, analytic and numeric values
  explicit operator bool() const { return ok; }
};

// Compares the analytic gradient of fn (through the tape) with float64 central differences,
// for every input that requires grad. Inputs must be float64; fn's output may have any shape
// (its full Jacobian is checked).
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, GradcheckOptions options = {});

}  // namespace strata
