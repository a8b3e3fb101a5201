// The tape: recording nodes, and the engine that replays them. The engine counts, for every
// node reachable from the roots, how many edges point at it; a node runs once all of its
// incoming gradients have arrived (reverse topological order), and a leaf's accumulating node
// adds what reaches it into the leaf's .grad().
#include "strata/autograd.h"

#include <atomic>
#include <cmath>
#include <optional>
#include <sstream>
#include <vector>

#include "internal.h"
#include "strata/amp/autocast.h"

namespace strata {

namespace {
thread_local bool g_grad_enabled = true;
std::atomic<bool> g_anomaly_enabled{false};
// Ops recorded on this thread since its last backward(): the next node's tape position - 1.
thread_local int64_t g_tape_length = 0;
}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool enabled) { g_grad_enabled = enabled; }

bool AnomalyMode::is_enabled() { return g_anomaly_enabled.load(std::memory_order_relaxed); }
void AnomalyMode::set_enabled(bool enabled) {
  // Turning it on starts a fresh count on this thread: ops of an earlier forward pass that
  // never reached backward() (it threw, or was inference) do not shift the positions.
  if (enabled && !g_anomaly_enabled.exchange(true, std::memory_order_relaxed)) g_tape_length = 0;
  g_anomaly_enabled.store(enabled, std::memory_order_relaxed);
}

namespace autograd {

Node::~Node() {
  std::vector<std::shared_ptr<Node>> orphans;
  auto adopt = [&orphans](std::vector<std::shared_ptr<Node>>& edges) {
    for (auto& edge : edges) {
      if (edge && edge.use_count() == 1) orphans.push_back(std::move(edge));
    }
    edges.clear();
  };
  adopt(next);
  while (!orphans.empty()) {
    std::shared_ptr<Node> node = std::move(orphans.back());
    orphans.pop_back();
    adopt(node->next);  // its children move here before `node` is destroyed
  }
}

namespace {
// Makes `node` the grad_fn of `output` (which then requires grad).
void attach(Tensor& output, std::shared_ptr<Node> node) {
  auto& meta = output.impl()->autograd;
  if (!meta) meta = std::make_unique<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
}
}  // namespace

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor* t : inputs) {
    if (t->defined() && t->requires_grad()) return true;
  }
  return false;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && t.requires_grad()) return true;
  }
  return false;
}

namespace {

// The node a gradient for `t` flows into: its grad_fn, or the leaf's accumulator.
std::shared_ptr<Node> edge_to(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  if (t.grad_fn()) return t.grad_fn();
  AutogradMeta& meta = *t.impl()->autograd;
  std::shared_ptr<Node> accumulator = meta.accumulator.lock();
  if (!accumulator) {
    accumulator = std::make_shared<Node>();
    accumulator->name = "accumulate_grad";
    accumulator->leaf = t.impl_ptr();
    accumulator->output_shape = t.shape();
    accumulator->output_dtype = t.dtype();
    accumulator->output_device = t.device();
    meta.accumulator = accumulator;
  }
  return accumulator;
}

// ---- anomaly mode ----------------------------------------------------------------------------

struct NonFinite {
  int64_t nan = 0;
  int64_t inf = 0;
  bool any() const { return nan + inf > 0; }
};

// NaN and infinite elements of `t` (none for integer tensors). The common, all-finite case
// costs one product and one sum: 0 * x sums to 0 unless some x is NaN or infinite.
NonFinite count_nonfinite(const Tensor& t) {
  if (!t.defined() || !is_floating(t.dtype()) || t.numel() == 0) return {};
  NoGradGuard no_grad;
  if (!std::isnan(sum(mul(t, 0.0)).item<double>())) return {};
  return {sum(isnan(t)).item<int64_t>(), sum(isinf(t)).item<int64_t>()};
}

// "2 NaN and 1 inf of its 12 elements"
std::string count_text(const NonFinite& found, const Tensor& t) {
  std::ostringstream text;
  if (found.nan > 0) text << found.nan << " NaN";
  if (found.nan > 0 && found.inf > 0) text << " and ";
  if (found.inf > 0) text << found.inf << " inf";
  text << " of its " << t.numel() << " element" << (t.numel() == 1 ? "" : "s");
  return text.str();
}

std::string op_text(const std::string& name, int64_t position) {
  return "'" + name + "' (op " + std::to_string(position) + " on the tape)";
}

// Says which inputs already held NaN/inf, or that all were finite (the op made them).
std::string inputs_text(const std::vector<Tensor>& inputs, const char* noun) {
  std::ostringstream text;
  bool any = false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const NonFinite found = count_nonfinite(inputs[i]);
    if (!found.any()) continue;
    text << (any ? "; " : "") << noun << " " << i << " " << detail::describe(inputs[i])
         << " already held " << count_text(found, inputs[i]);
    any = true;
  }
  if (!any) return std::string("its ") + noun + "s were all finite, so the op made them";
  return text.str();
}

void check_forward(const Node& node, const std::vector<Tensor>& inputs, const Tensor& output) {
  const NonFinite found = count_nonfinite(output);
  if (!found.any()) return;
  throw Error("anomaly mode: " + op_text(node.name, node.tape_position) + " produced " +
              count_text(found, output) + " in its output " + detail::describe(output) + "; " +
              inputs_text(inputs, "input"));
}

void check_backward(const Node& node, const Tensor& grad_output,
                    const std::vector<Tensor>& input_grads) {
  for (size_t i = 0; i < input_grads.size(); ++i) {
    const NonFinite found = count_nonfinite(input_grads[i]);
    if (!found.any()) continue;
    const NonFinite incoming = count_nonfinite(grad_output);
    throw Error("anomaly mode: the backward of " + op_text(node.name, node.tape_position) +
                " returned " + count_text(found, input_grads[i]) + " in the gradient for input " +
                std::to_string(i) + " " + detail::describe(input_grads[i]) + "; " +
                (incoming.any() ? "the gradient it received already held " +
                                      count_text(incoming, grad_output)
                                : std::string("the gradient it received was finite")));
  }
}

}  // namespace

void record(const char* name, const std::vector<Tensor>& inputs, Tensor& output,
            BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->name = name;
  node->tape_position = ++g_tape_length;
  if (AnomalyMode::is_enabled()) check_forward(*node, inputs, output);
  node->next.reserve(inputs.size());
  node->needs_input_grad.reserve(inputs.size());
  for (const Tensor& input : inputs) {
    node->next.push_back(edge_to(input));
    node->needs_input_grad.push_back(node->next.back() != nullptr);
  }
  node->backward = std::move(backward);
  node->output_shape = output.shape();
  node->output_dtype = output.dtype();
  node->output_device = output.device();
  attach(output, std::move(node));
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const size_t rank = grad.shape().size(), lead = rank - shape.size();
  STRATA_ASSERT(rank >= shape.size(), "sum_to ", shape_str(grad.shape()), " -> ",
                shape_str(shape));
  std::vector<int64_t> dims;
  for (size_t i = 0; i < rank; ++i) {
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) {
      dims.push_back(static_cast<int64_t>(i));
    }
  }
  Tensor reduced = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return reduced.reshape(shape);
}

namespace {

// The end-of-pass callbacks of the backward passes running on this thread, innermost last (a
// backward function may run a backward of its own).
thread_local std::vector<std::vector<std::function<void()>>> t_end_callbacks;

// The nodes whose backward function is running on this thread, innermost last (saved_output
// reattaches to the last).
thread_local std::vector<Node*> t_running;

class RunningNode {
 public:
  explicit RunningNode(Node* node) { t_running.push_back(node); }
  ~RunningNode() { t_running.pop_back(); }
  RunningNode(const RunningNode&) = delete;
  RunningNode& operator=(const RunningNode&) = delete;
};

// Adds `gradient` to a .grad() slot: in place, or out of place (keeping its graph) when the
// pass creates a graph.
void accumulate(Tensor& grad, Tensor gradient, bool create_graph) {
  if (create_graph) {
    grad = grad.defined() ? add(grad, gradient) : std::move(gradient);
  } else if (!grad.defined()) {
    // Keep the incoming tensor only if nothing else can see or alias it.
    const bool exclusive = gradient.impl_ptr().use_count() == 1 &&
                           gradient.storage().use_count() == 1 && gradient.is_contiguous() &&
                           gradient.offset() == 0;
    grad = exclusive ? std::move(gradient) : gradient.clone();
  } else {
    grad.add_(gradient);
  }
}

void accumulate_into_leaf(const Node& node, Tensor gradient, bool create_graph) {
  const std::shared_ptr<TensorImpl> impl = node.leaf.lock();
  if (!impl) return;  // the leaf is gone: nobody can read its gradient
  Tensor leaf(impl);
  accumulate(leaf.mutable_grad(), std::move(gradient), create_graph);
  if (impl->autograd && !impl->autograd->post_accumulate_hooks.empty()) {
    // A copy: a hook may remove itself.
    const auto hooks = impl->autograd->post_accumulate_hooks;
    for (const auto& [id, hook] : hooks) hook(leaf);
  }
}

// The register_hook hooks of the tensor whose gradient reaches `node`, applied in order.
Tensor apply_grad_hooks(const Node& node, Tensor gradient) {
  std::vector<std::pair<int64_t, GradHook>> hooks;  // a copy: a hook may remove itself
  const std::shared_ptr<TensorImpl> leaf = node.leaf.lock();  // null but on a live leaf's node
  if (leaf == nullptr) {
    hooks = node.tensor_hooks;
  } else if (leaf->autograd) {
    hooks = leaf->autograd->grad_hooks;
  }
  for (const auto& [id, hook] : hooks) {
    Tensor replaced = hook(gradient);
    if (!replaced.defined()) continue;
    STRATA_CHECK(replaced.shape() == gradient.shape(), "register_hook: a hook on the gradient of ",
                 node.name == "accumulate_grad" ? std::string("a leaf") : "'" + node.name + "'",
                 " returned ", detail::describe(replaced), " for the gradient ",
                 detail::describe(gradient), "; a replacement must keep its shape");
    gradient = std::move(replaced);
  }
  return gradient;
}

// Pushes a callback list for one backward pass and runs (then pops) it at the pass's end; an
// exception drops the pass's callbacks unrun.
class EndCallbacks {
 public:
  EndCallbacks() { t_end_callbacks.emplace_back(); }
  ~EndCallbacks() {
    if (!ran_) t_end_callbacks.pop_back();
  }
  EndCallbacks(const EndCallbacks&) = delete;
  EndCallbacks& operator=(const EndCallbacks&) = delete;

  void run() {
    // A callback may queue another: run until none is left.
    for (size_t i = 0; i < t_end_callbacks.back().size(); ++i) {
      const std::function<void()> callback = t_end_callbacks.back()[i];
      callback();
    }
    t_end_callbacks.pop_back();
    ran_ = true;
  }

 private:
  bool ran_ = false;
};

// A gradient reaching `node`: converted to the dtype and device the node produced, then summed.
void add_gradient(Node* node, Tensor gradient) {
  if (gradient.dtype() != node->output_dtype) gradient = gradient.to(node->output_dtype);
  if (gradient.device() != node->output_device) gradient = gradient.to(node->output_device);
  STRATA_ASSERT(gradient.shape() == node->output_shape, "gradient for ", node->name, " has shape ",
                shape_str(gradient.shape()), " but its output has ",
                shape_str(node->output_shape));
  Tensor& slot = node->pending_grad;
  slot = slot.defined() ? add(slot, gradient) : std::move(gradient);
}

bool is_accumulator(const Node& node) { return node.next.empty() && !node.backward; }

// `gradient` (computed by the backward of a once-differentiable node, in a pass that creates a
// graph) given a node that throws when a gradient reaches it: it stands for the derivative
// through `node`'s inputs that the backward's kernels could not record.
Tensor with_delayed_error(const Node& node, const Tensor& grad_output, Tensor gradient) {
  if (!gradient.defined()) return gradient;
  auto error = std::make_shared<Node>();
  error->name = node.name + "_backward";
  error->tape_position = ++g_tape_length;
  error->next = node.next;
  error->next.push_back(edge_to(grad_output));
  for (const auto& next : error->next) error->needs_input_grad.push_back(next != nullptr);
  error->backward = [name = node.name](const Tensor&,
                                       const std::vector<bool>&) -> std::vector<Tensor> {
    throw Error("double backward: the backward of '" + name +
                "' runs kernels that are not themselves differentiable, so a second derivative "
                "through it is not supported; differentiate a graph without '" +
                name + "'");
  };
  error->output_shape = gradient.shape();
  error->output_dtype = gradient.dtype();
  error->output_device = gradient.device();
  Tensor out = gradient.detach();
  attach(out, std::move(error));
  return out;
}

struct PassOptions {
  bool retain_graph = false;
  bool create_graph = false;
  // grad(): the node whose incoming gradient is each input's; set, nothing is accumulated into
  // leaves and only the nodes with a path to one of them run.
  std::vector<std::shared_ptr<Node>> capture;
};

// Marks, from `root`, the nodes with a path to a captured node (node->relevant), depth first
// without recursion; each node's children are decided before it.
void mark_relevant(Node* root, uint64_t pass) {
  if (root->visited_relevant == pass) return;
  root->visited_relevant = pass;
  root->relevant = !root->captures.empty();
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  while (!stack.empty()) {
    Node* node = stack.back().first;
    const size_t i = stack.back().second++;
    if (i < node->next.size()) {
      Node* child = node->next[i].get();
      if (child == nullptr) continue;
      if (child->visited_relevant != pass) {
        child->visited_relevant = pass;
        child->relevant = !child->captures.empty();
        stack.emplace_back(child, 0);
      } else if (child->relevant) {
        node->relevant = true;
      }
    } else {
      stack.pop_back();
      if (node->relevant && !stack.empty()) stack.back().first->relevant = true;
    }
  }
}

std::vector<Tensor> run_pass(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
                             const PassOptions& options) {
  STRATA_ASSERT(roots.size() == gradients.size());
  // Grad mode for the pass: on when it creates a graph, off otherwise.
  std::optional<NoGradGuard> no_grad;
  std::optional<EnableGradGuard> with_grad;
  if (options.create_graph) {
    with_grad.emplace();
  } else {
    no_grad.emplace();
  }
  amp::AutocastOffGuard no_autocast;  // backward follows the dtypes the forward saved
  EndCallbacks end_callbacks;
  static std::atomic<uint64_t> pass_counter{0};
  const uint64_t pass = ++pass_counter;
  const bool capturing = !options.capture.empty();

  std::vector<std::shared_ptr<Node>> root_nodes;
  std::vector<Tensor> root_grads;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& root = roots[i];
    detail::check_defined(root, "backward", "the tensor");
    STRATA_CHECK(root.requires_grad(), "backward: the tensor ", detail::describe(root),
                 " does not require grad and has no grad_fn (did any input set "
                 "requires_grad, and was grad mode on?)");
    Tensor gradient = gradients[i];
    if (!gradient.defined()) {
      STRATA_CHECK(root.numel() == 1, "backward: grad can be implicitly created only for a "
                   "one-element output; this one is ", detail::describe(root),
                   ": pass a gradient of its shape");
      gradient = ones_like(root);
    }
    STRATA_CHECK(gradient.shape() == root.shape(), "backward: gradient ",
                 detail::describe(gradient), " does not match the output ",
                 detail::describe(root));
    root_nodes.push_back(edge_to(root));
    root_grads.push_back(std::move(gradient));
  }

  // Count the incoming edges of every node reachable from the roots. The nodes stay alive
  // through the roots' references while this pass runs.
  std::vector<Node*> stack;
  const auto visit = [&](Node* node) {
    node->visited_in = pass;
    node->pending_edges = 0;
    node->pending_grad = Tensor();
    node->captures.clear();
    stack.push_back(node);
  };
  for (const auto& node : root_nodes) {
    if (node->visited_in != pass) visit(node.get());
  }
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& next : node->next) {
      if (!next) continue;
      if (next->visited_in != pass) visit(next.get());
      ++next->pending_edges;
    }
  }
  // With inputs to capture, only the nodes with a path to one of them run: a node's parents
  // all have one when it has, so the edge counts of the relevant nodes are complete.
  for (size_t i = 0; i < options.capture.size(); ++i) {
    Node* node = options.capture[i].get();
    if (node->visited_in == pass) node->captures.push_back(i);
  }
  const auto relevant = [&](const Node* node) { return !capturing || node->relevant; };
  if (capturing) {
    for (const auto& node : root_nodes) mark_relevant(node.get(), pass);
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    add_gradient(root_nodes[i].get(), std::move(root_grads[i]));
  }

  std::vector<Tensor> captured(options.capture.size());
  std::vector<Node*> ready;
  for (const auto& node : root_nodes) {
    if (node->pending_edges == 0 && relevant(node.get())) {
      node->pending_edges = -1;  // queued: a root listed twice runs once
      ready.push_back(node.get());
    }
  }
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    Tensor gradient = std::move(node->pending_grad);
    node->pending_grad = Tensor();
    if (gradient.defined()) gradient = apply_grad_hooks(*node, std::move(gradient));
    if (gradient.defined()) {
      if (const std::shared_ptr<TensorImpl> kept = node->retained.lock()) {
        Tensor retained(kept);
        accumulate(retained.mutable_grad(), gradient, options.create_graph);
      }
      for (size_t i : node->captures) captured[i] = gradient;
    }
    if (is_accumulator(*node)) {
      if (!capturing && gradient.defined()) {
        accumulate_into_leaf(*node, std::move(gradient), options.create_graph);
      }
      continue;
    }
    bool feeds_relevant = false;
    for (const auto& next : node->next) feeds_relevant |= next && relevant(next.get());
    if (!feeds_relevant) continue;  // a captured node nothing else needs past
    STRATA_CHECK(node->backward != nullptr, "backward: trying to go through the graph of ",
                 node->name, " a second time, but its saved tensors were freed after the first "
                 "backward; pass retain_graph=true to the first backward() to keep them");
    std::vector<Tensor> input_grads;
    if (gradient.defined()) {
      RunningNode running(node);
      input_grads = node->backward(gradient, node->needs_input_grad);
    }
    if (!options.retain_graph) node->backward = nullptr;
    if (options.create_graph && node->once_differentiable) {
      for (Tensor& grad : input_grads) grad = with_delayed_error(*node, gradient, std::move(grad));
    }
    if (AnomalyMode::is_enabled()) check_backward(*node, gradient, input_grads);
    STRATA_ASSERT(input_grads.empty() || input_grads.size() == node->next.size(), node->name,
                  " backward returned ", input_grads.size(), " gradients for ",
                  node->next.size(), " inputs");
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (next == nullptr || !relevant(next)) continue;
      if (!input_grads.empty() && input_grads[i].defined()) {
        add_gradient(next, std::move(input_grads[i]));
      }
      if (--next->pending_edges == 0) ready.push_back(next);
    }
  }
  g_tape_length = 0;  // the next forward pass starts a new tape
  end_callbacks.run();
  return captured;
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
                  bool retain_graph, bool create_graph) {
  run_pass(roots, gradients, PassOptions{retain_graph, create_graph, {}});
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
  STRATA_CHECK(!outputs.empty(), "autograd::grad: expected at least one output");
  STRATA_CHECK(!inputs.empty(), "autograd::grad: expected at least one input");
  STRATA_CHECK(grad_outputs.empty() || grad_outputs.size() == outputs.size(),
               "autograd::grad: got ", grad_outputs.size(), " grad_outputs for ", outputs.size(),
               " outputs (pass one per output, or none)");
  PassOptions options{retain_graph.value_or(create_graph), create_graph, {}};
  for (size_t i = 0; i < inputs.size(); ++i) {
    detail::check_defined(inputs[i], "autograd::grad", "input");
    STRATA_CHECK(inputs[i].requires_grad(), "autograd::grad: input ", i, " ",
                 detail::describe(inputs[i]),
                 " does not require grad, so no gradient is taken with respect to it");
    options.capture.push_back(edge_to(inputs[i]));
  }
  std::vector<Tensor> gradients = grad_outputs;
  gradients.resize(outputs.size());
  std::vector<Tensor> captured = run_pass(outputs, gradients, options);
  for (size_t i = 0; i < inputs.size(); ++i) {
    STRATA_CHECK(captured[i].defined() || allow_unused, "autograd::grad: input ", i, " ",
                 detail::describe(inputs[i]),
                 " was not used to compute the outputs; pass allow_unused=true to get an "
                 "undefined gradient for it");
  }
  return captured;
}

void mark_once_differentiable(const Tensor& output) {
  if (output.grad_fn()) output.grad_fn()->once_differentiable = true;
}

Tensor saved_output(const Tensor& output) {
  if (!GradMode::is_enabled() || t_running.empty()) return output;
  Node* node = t_running.back();
  STRATA_ASSERT(output.shape() == node->output_shape, "saved_output of ", node->name, ": ",
                shape_str(output.shape()), " vs ", shape_str(node->output_shape));
  Tensor attached = output.detach();
  attach(attached, node->shared_from_this());
  return attached;
}

Tensor linear_in_grad(const char* name, const Tensor& grad_output, Tensor grad_input,
                      std::function<Tensor(const Tensor&)> transpose) {
  if (!GradMode::is_enabled() || !grad_output.requires_grad()) return grad_input;
  record(name, {grad_output}, grad_input,
         [transpose = std::move(transpose)](const Tensor& g, const std::vector<bool>&) {
           return std::vector<Tensor>{transpose(g)};
         });
  return grad_input;
}

int64_t register_hook(const Tensor& t, GradHook hook) {
  detail::check_defined(t, "register_hook", "the tensor");
  STRATA_CHECK(t.requires_grad(), "register_hook: the tensor ", detail::describe(t),
               " does not require grad, so no gradient reaches it");
  static std::atomic<int64_t> next_id{1};
  const int64_t id = next_id++;
  if (t.grad_fn()) {
    t.grad_fn()->tensor_hooks.emplace_back(id, std::move(hook));
  } else {
    t.impl_ptr()->autograd->grad_hooks.emplace_back(id, std::move(hook));
  }
  return id;
}

void remove_hook(const Tensor& t, int64_t id) {
  if (!t.defined()) return;
  const auto matches = [id](const auto& entry) { return entry.first == id; };
  if (t.grad_fn()) std::erase_if(t.grad_fn()->tensor_hooks, matches);
  if (t.impl_ptr()->autograd) std::erase_if(t.impl_ptr()->autograd->grad_hooks, matches);
}

int64_t add_post_accumulate_hook(const Tensor& t, PostAccumulateHook hook) {
  detail::check_defined(t, "register_post_accumulate_grad_hook", "the tensor");
  STRATA_CHECK(t.requires_grad() && t.grad_fn() == nullptr,
               "register_post_accumulate_grad_hook: only a leaf that requires grad accumulates "
               "a gradient, got ",
               detail::describe(t),
               t.grad_fn() ? " (the result of " + t.grad_fn()->name + ")" : std::string());
  static std::atomic<int64_t> next_id{1};
  const int64_t id = next_id++;
  t.impl_ptr()->autograd->post_accumulate_hooks.emplace_back(id, std::move(hook));
  return id;
}

void remove_post_accumulate_hook(const Tensor& t, int64_t id) {
  if (!t.defined() || !t.impl_ptr()->autograd) return;
  auto& hooks = t.impl_ptr()->autograd->post_accumulate_hooks;
  std::erase_if(hooks, [id](const auto& entry) { return entry.first == id; });
}

void queue_backward_end_callback(std::function<void()> callback) {
  STRATA_CHECK(!t_end_callbacks.empty(),
               "queue_backward_end_callback: no backward pass is "
               "running on this thread (call it from a hook or a backward function)");
  t_end_callbacks.back().push_back(std::move(callback));
}

}  // namespace autograd
}  // namespace strata

namespace strata {

int64_t detail::register_grad_hook(const Tensor& t, std::function<Tensor(const Tensor&)> hook) {
  return autograd::register_hook(t, std::move(hook));
}

void Tensor::remove_hook(int64_t id) const { autograd::remove_hook(*this, id); }

void Tensor::retain_grad() const {
  detail::check_defined(*this, "retain_grad", "the tensor");
  STRATA_CHECK(requires_grad(), "retain_grad: the tensor ", detail::describe(*this),
               " does not require grad, so it has no gradient to keep");
  if (grad_fn()) grad_fn()->retained = impl_ptr();
}

bool Tensor::retains_grad() const {
  return defined() && grad_fn() && grad_fn()->retained.lock() == impl_ptr();
}

}  // namespace strata
