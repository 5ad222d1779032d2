#pragma once
// Variable<T>: a tensor that records the ops applied to it, for reverse-mode differentiation.
#include <algorithm>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sumi/autograd/grad_mode.hpp"
#include "sumi/autograd/node.hpp"
#include "sumi/tensor/arithmetic.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi {

template <std::floating_point T>
class Variable {
 public:
  using value_type = T;

  Variable() : state_(std::make_shared<VariableState<T>>()) {}
  // A leaf holding `value`.
  explicit Variable(Tensor<T> value, bool requires_grad = false) : Variable() {
    state_->value = std::move(value);
    state_->requires_grad = requires_grad;
  }

  const Tensor<T>& value() const { return state_->value; }
  // Mutable access, for in-place updates of parameters outside the graph (optimisers, initialisers). Whoever
  // changes the value through it calls mark_modified(), so that a graph recorded from the old value refuses
  // to back-propagate instead of giving gradients of neither value.
  Tensor<T>& value() { return state_->value; }
  // Counts the in-place updates of the value; the ops that used it record it.
  uint64_t version() const { return state_->version(); }
  void mark_modified() { state_->bump_version(); }
  const Tensor<T>& grad() const { return state_->grad; }
  Tensor<T>& grad() { return state_->grad; }
  const Shape& shape() const { return state_->value.shape(); }
  int64_t size(int64_t d) const { return state_->value.size(d); }
  int64_t dim() const { return state_->value.dim(); }
  int64_t numel() const { return state_->value.numel(); }
  T item() const { return state_->value.item(); }
  bool defined() const { return state_->value.defined(); }
  // Throws std::invalid_argument naming `op` when the value is undefined: ops call it before reading data
  // (an undefined tensor has shape [] and no storage, so it would pass for an empty scalar).
  void require_defined(const char* op) const {
    if (!defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
  }

  bool requires_grad() const { return state_->requires_grad; }
  bool is_leaf() const { return state_->grad_fn == nullptr; }
  // Only leaves can change whether they require a gradient (as in PyTorch).
  Variable& set_requires_grad(bool enabled) {
    if (!is_leaf()) throw std::logic_error("set_requires_grad: only leaf variables can change requires_grad");
    state_->requires_grad = enabled;
    return *this;
  }
  const std::shared_ptr<Node<T>>& grad_fn() const { return state_->grad_fn; }

  // A leaf sharing this variable's value, cut from the graph. It shares the version counter too, as in
  // PyTorch: an update marked on either (an optimiser step on a parameter) refuses the graphs that used the
  // other's old value.
  Variable detach() const {
    Variable detached(state_->value, false);
    detached.state_->shared_version = state_->version_counter();
    return detached;
  }
  void zero_grad() { state_->grad = Tensor<T>(); }

  // Back-propagates from this scalar (gradient 1) or from a given gradient of the same shape.
  void backward() const {
    if (!requires_grad()) throw std::logic_error("backward: the variable does not require a gradient");
    if (numel() != 1)
      throw std::invalid_argument("backward: output of shape " + shape_str(shape()) +
                                  " is not a scalar; pass a gradient of that shape");
    backward(Tensor<T>::ones(shape()));
  }
  void backward(const Tensor<T>& grad_output) const;

  // Records `value` as the output of op `op_name` over `inputs` when any input requires a gradient and grad
  // mode is on; otherwise returns a plain leaf. Ops call this.
  static Variable from_op(Tensor<T> value, std::string op_name, std::span<const Variable> inputs,
                          typename Node<T>::BackwardFn backward) {
    Variable out(std::move(value));
    if (!grad_mode_enabled()) return out;
    const bool any =
        std::any_of(inputs.begin(), inputs.end(), [](const Variable& v) { return v.requires_grad(); });
    if (!any) return out;
    auto node = std::make_shared<Node<T>>();
    node->op_name = std::move(op_name);
    for (const Variable& v : inputs) {
      node->inputs.push_back(v.state_);
      node->input_versions.push_back(v.state_->version());
    }
    node->backward = std::move(backward);
    out.state_->requires_grad = true;
    out.state_->grad_fn = std::move(node);
    return out;
  }
  static Variable from_op(Tensor<T> value, std::string op_name, std::initializer_list<Variable> inputs,
                          typename Node<T>::BackwardFn backward) {
    return from_op(std::move(value), std::move(op_name),
                   std::span<const Variable>(inputs.begin(), inputs.size()), std::move(backward));
  }
  // from_op for an op whose output `value` may share the storage of `base`'s value (a view): when it does,
  // the two share a version counter, so an in-place update marked on either refuses the graphs that used
  // the other (also without grad mode, as a view made under no_grad is still a view).
  static Variable from_view_op(Tensor<T> value, std::string op_name, const Variable& base,
                               typename Node<T>::BackwardFn backward) {
    const bool shares = value.shares_storage_with(base.value());
    Variable out = from_op(std::move(value), std::move(op_name), {base}, std::move(backward));
    if (shares) {
      out.state_->shared_version = base.state_->version_counter();
      if (out.state_->grad_fn) out.state_->grad_fn->output_version = out.state_->version();
    }
    return out;
  }

  // Identity of the underlying state (two handles to the same variable compare equal).
  const VariableState<T>* id() const { return state_.get(); }

 private:
  std::shared_ptr<VariableState<T>> state_;
};

template <std::floating_point T>
void Variable<T>::backward(const Tensor<T>& grad_output) const {
  if (!requires_grad()) throw std::logic_error("backward: the variable does not require a gradient");
  if (!grad_output.defined()) throw std::invalid_argument("backward: the given gradient is undefined");
  if (grad_output.shape() != shape())
    throw std::invalid_argument("backward: gradient of shape " + shape_str(grad_output.shape()) +
                                " for an output of shape " + shape_str(shape()));
  using State = VariableState<T>;
  if (!state_->grad_fn) {  // a leaf: its gradient is the given one
    accumulate_into(state_->grad, grad_output);
    return;
  }
  // Topological order of the non-leaf variables reachable from this one (iterative DFS, post-order).
  // `order` owns the states so that releasing a node does not free a state still to be visited.
  std::vector<std::shared_ptr<State>> order;
  std::unordered_map<State*, bool> visited;
  std::vector<std::pair<std::shared_ptr<State>, std::size_t>> stack{{state_, 0}};
  visited[state_.get()] = true;
  while (!stack.empty()) {
    auto& [s, next] = stack.back();
    Node<T>& node = *s->grad_fn;
    if (node.released)
      throw std::logic_error("backward: the graph through '" + node.op_name +
                             "' was already freed by an earlier backward pass");
    if (next == 0 && s->version() != node.output_version)
      throw std::logic_error("backward: the output of '" + node.op_name + "' (shape " +
                             shape_str(s->value.shape()) +
                             ") was modified in place after the forward pass, which the gradients cannot "
                             "account for; run the forward pass again");
    if (next < node.inputs.size()) {
      // Every input must still hold the value its op saw; checked here, before any gradient is written, so
      // that a refusal leaves the gradients and the graph as they were.
      if (node.inputs[next]->version() != node.input_versions[next])
        throw std::logic_error("backward: input " + std::to_string(next) + " of '" + node.op_name +
                               "' (shape " + shape_str(node.inputs[next]->value.shape()) +
                               ") was modified in place after the forward pass (an optimiser step between "
                               "forward and backward?); run the forward pass again");
      const std::shared_ptr<State>& in = node.inputs[next++];
      if (in->grad_fn && in->requires_grad && !visited[in.get()]) {
        visited[in.get()] = true;
        stack.push_back({in, 0});
      }
      continue;
    }
    order.push_back(std::move(s));
    stack.pop_back();
  }
  // Gradients of non-leaf variables, freed as soon as consumed. A gradient may alias a tensor that another
  // backward function returned; `owned` says whether it may be accumulated into in place.
  struct PendingGrad {
    Tensor<T> grad;
    bool owned = false;
  };
  std::unordered_map<State*, PendingGrad> pending;
  pending[state_.get()] = {grad_output, false};
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    State* s = it->get();
    auto found = pending.find(s);
    if (found == pending.end()) continue;  // no gradient flowed here
    Tensor<T> grad = std::move(found->second.grad);
    pending.erase(found);
    Node<T>& node = *s->grad_fn;
    std::vector<Tensor<T>> input_grads = node.backward(std::move(grad));
    for (std::size_t i = 0; i < node.inputs.size() && i < input_grads.size(); ++i) {
      State* in = node.inputs[i].get();
      Tensor<T>& g = input_grads[i];
      if (!in->requires_grad || !g.defined()) continue;
      if (g.shape() != in->value.shape())
        throw std::logic_error("backward of '" + node.op_name + "': gradient shape " + shape_str(g.shape()) +
                               " differs from input shape " + shape_str(in->value.shape()));
      if (!in->grad_fn) {
        accumulate_into(in->grad, g);
        continue;
      }
      auto [entry, inserted] = pending.try_emplace(in, PendingGrad{g, false});
      if (inserted) continue;
      if (!entry->second.owned) {
        entry->second.grad = entry->second.grad.clone();
        entry->second.owned = true;
      }
      add_inplace(entry->second.grad, g);
    }
    node.release();
  }
}

}  // namespace sumi
