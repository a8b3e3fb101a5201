// The tape: recording nodes, and the engine that replays them. The engine counts, for every
// node reachable from the roots, how many edges point at it; a node runs once all of its
// incoming gradients have arrived (reverse topological order), and a leaf's accumulating node
// adds what reaches it into the leaf's .grad().
#include "strata/autograd.h"

#include <atomic>
#include <cmath>
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
  auto& meta = output.impl()->autograd;
  if (!meta) meta = std::make_unique<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
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

void accumulate_into_leaf(const Node& node, Tensor gradient) {
  const std::shared_ptr<TensorImpl> impl = node.leaf.lock();
  if (!impl) return;  // the leaf is gone: nobody can read its gradient
  Tensor leaf(impl);
  Tensor& grad = leaf.mutable_grad();
  if (!grad.defined()) {
    // Keep the incoming tensor only if nothing else can see or alias it.
    const bool exclusive = gradient.impl_ptr().use_count() == 1 &&
                           gradient.storage().use_count() == 1 && gradient.is_contiguous() &&
                           gradient.offset() == 0;
    grad = exclusive ? gradient : gradient.clone();
  } else {
    grad.add_(gradient);
  }
  if (impl->autograd && !impl->autograd->post_accumulate_hooks.empty()) {
    // A copy: a hook may remove itself.
    const auto hooks = impl->autograd->post_accumulate_hooks;
    for (const auto& [id, hook] : hooks) hook(leaf);
  }
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

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& gradients,
                  bool retain_graph) {
  STRATA_ASSERT(roots.size() == gradients.size());
  NoGradGuard no_grad;
  amp::AutocastOffGuard no_autocast;  // backward follows the dtypes the forward saved
  EndCallbacks end_callbacks;
  static std::atomic<uint64_t> pass_counter{0};
  const uint64_t pass = ++pass_counter;

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
  for (const auto& node : root_nodes) {
    if (node->visited_in == pass) continue;
    node->visited_in = pass;
    node->pending_edges = 0;
    node->pending_grad = Tensor();
    stack.push_back(node.get());
  }
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& next : node->next) {
      if (!next) continue;
      if (next->visited_in != pass) {
        next->visited_in = pass;
        next->pending_edges = 0;
        next->pending_grad = Tensor();
        stack.push_back(next.get());
      }
      ++next->pending_edges;
    }
  }
  for (size_t i = 0; i < roots.size(); ++i) {
    add_gradient(root_nodes[i].get(), std::move(root_grads[i]));
  }

  std::vector<Node*> ready;
  for (const auto& node : root_nodes) {
    if (node->pending_edges == 0) {
      node->pending_edges = -1;  // queued: a root listed twice runs once
      ready.push_back(node.get());
    }
  }
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    Tensor gradient = std::move(node->pending_grad);
    node->pending_grad = Tensor();
    if (is_accumulator(*node)) {
      if (gradient.defined()) accumulate_into_leaf(*node, std::move(gradient));
      continue;
    }
    STRATA_CHECK(node->backward != nullptr, "backward: trying to go through the graph of ",
                 node->name, " a second time, but its saved tensors were freed after the first "
                 "backward; pass retain_graph=true to the first backward() to keep them");
    std::vector<Tensor> input_grads;
    if (gradient.defined()) input_grads = node->backward(gradient, node->needs_input_grad);
    if (!retain_graph) node->backward = nullptr;
    if (AnomalyMode::is_enabled()) check_backward(*node, gradient, input_grads);
    STRATA_ASSERT(input_grads.empty() || input_grads.size() == node->next.size(), node->name,
                  " backward returned ", input_grads.size(), " gradients for ",
                  node->next.size(), " inputs");
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (next == nullptr) continue;
      if (!input_grads.empty() && input_grads[i].defined()) {
        add_gradient(next, std::move(input_grads[i]));
      }
      if (--next->pending_edges == 0) ready.push_back(next);
    }
  }
  g_tape_length = 0;  // the next forward pass starts a new tape
  end_callbacks.run();
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
