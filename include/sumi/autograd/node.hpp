#pragma once
// A node of the autograd graph: the op that produced a variable, its inputs, and its backward function.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sumi/tensor/tensor.hpp"

namespace sumi {

template <std::floating_point T>
struct Node;

// The state behind a Variable handle. Several handles (and graph nodes) may share it.
template <std::floating_point T>
struct VariableState {
  Tensor<T> value;
  Tensor<T> grad;  // undefined until a backward pass reaches this leaf
  bool requires_grad = false;
  std::shared_ptr<Node<T>> grad_fn;  // null for leaves
  // Counts in-place updates of `value` (Variable::mark_modified). A view (transpose, narrow, a reshape
  // without copy) shares its base's counter, as in PyTorch: a write through either is a write to both.
  // Allocated only when a view is made; until then the count lives in `own_version`.
  uint64_t own_version = 0;
  std::shared_ptr<uint64_t> shared_version;

  uint64_t version() const { return shared_version ? *shared_version : own_version; }
  void bump_version() { ++(shared_version ? *shared_version : own_version); }
  // The counter to share with a view of this value, created on first use.
  const std::shared_ptr<uint64_t>& version_counter() {
    if (!shared_version) shared_version = std::make_shared<uint64_t>(own_version);
    return shared_version;
  }
};

template <std::floating_point T>
struct Node {
  // Maps the gradient of the node's output to one gradient per input, in input order. An undefined tensor
  // means "no gradient for this input" (it does not require one). The gradient comes by value: a function
  // holding its only reference (Tensor::is_sole_reference) may overwrite it instead of allocating.
  using BackwardFn = std::function<std::vector<Tensor<T>>(Tensor<T> grad_output)>;

  std::string op_name;
  std::vector<std::shared_ptr<VariableState<T>>> inputs;
  std::vector<uint64_t> input_versions;  // each input's version when the op ran
  // The output's version when the op ran. sumi records no in-place op, so a later change marked on the output
  // (or on a view sharing its counter) is one its backward cannot account for: the backward of exp, relu,
  // softmax and others reads the output, and every consumer's gradient assumed the old value.
  uint64_t output_version = 0;
  BackwardFn backward;
  bool released = false;  // set once a backward pass has freed the saved tensors

  Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  // Frees the graph behind this node without recursing once per op, which overflowed the stack on long
  // chains that were never back-propagated (a running sum of losses kept for logging, say): the nodes this
  // one alone keeps alive are taken onto a local stack and emptied there, one at a time.
  ~Node() {
    std::vector<std::shared_ptr<Node>> orphans;
    take_sole_inputs(orphans);
    while (!orphans.empty()) {
      const std::shared_ptr<Node> node = std::move(orphans.back());
      orphans.pop_back();
      node->take_sole_inputs(orphans);
    }
  }

  void release() {
    backward = nullptr;
    inputs.clear();
    released = true;
  }

 private:
  // Empties this node, moving onto `orphans` the producers of inputs that nothing else refers to. Each input
  // handle is let go before the next is looked at, so an input taken twice (h * h) counts once.
  void take_sole_inputs(std::vector<std::shared_ptr<Node>>& orphans) {
    backward = nullptr;  // the handles it captured let go first, so the counts below are the graph's own
    std::vector<std::shared_ptr<VariableState<T>>> held = std::move(inputs);
    inputs.clear();
    for (auto& slot : held) {
      const std::shared_ptr<VariableState<T>> state = std::move(slot);
      if (state.use_count() == 1 && state->grad_fn.use_count() == 1)
        orphans.push_back(std::move(state->grad_fn));
    }
  }
};

}  // namespace sumi
