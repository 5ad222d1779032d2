#pragma once
// A node of the autograd graph: the op that produced a variable, its inputs, and its backward function.
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
};

template <std::floating_point T>
struct Node {
  // Maps the gradient of the node's output to one gradient per input, in input order. An undefined tensor
  // means "no gradient for this input" (it does not require one). The gradient comes by value: a function
  // holding its only reference (Tensor::is_sole_reference) may overwrite it instead of allocating.
  using BackwardFn = std::function<std::vector<Tensor<T>>(Tensor<T> grad_output)>;

  std::string op_name;
  std::vector<std::shared_ptr<VariableState<T>>> inputs;
  BackwardFn backward;
  bool released = false;  // set once a backward pass has freed the saved tensors

  void release() {
    backward = nullptr;
    inputs.clear();
    released = true;
  }
};

}  // namespace sumi
