#pragma once
// Sequential<T>: runs its children in order, as torch.nn.Sequential. Children are named "0", "1", ... in the
// order they were added, so parameter names are PyTorch's ("encoder_cnn.0.weight"). A child that can apply a
// ReLU as it writes its output (ReluFusable: the convolutions) runs fused with a ReLU child right after it;
// subclasses of either, which may override forward(), run as they are.
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "sumi/nn/activation.hpp"
#include "sumi/nn/module.hpp"
#include "sumi/nn/relu_fusable.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class Sequential : public Module<T> {
 public:
  using ModulePtr = std::shared_ptr<Module<T>>;

  Sequential() = default;
  // Sequential<T>(std::make_shared<Linear<T>>(2, 3), std::make_shared<ReLU<T>>())
  template <class... Ms>
  requires(sizeof...(Ms) > 0 &&
           (std::is_base_of_v<Module<T>, Ms> && ...)) explicit Sequential(std::shared_ptr<Ms>... modules) {
    (push_back(std::move(modules)), ...);
  }
  explicit Sequential(const std::vector<ModulePtr>& modules) {
    for (const auto& m : modules) push_back(m);
  }

  Variable<T> forward(const Variable<T>& input) override {
    Variable<T> x = input;
    for (std::size_t i = 0; i < size(); ++i) {
      Module<T>& module = *this->child_at(i);
      if (auto* fusable = dynamic_cast<ReluFusable<T>*>(&module);
          fusable && typeid(module) == fusable->fused_class() && i + 1 < size()) {
        const Module<T>& next = *this->child_at(i + 1);
        if (typeid(next) == typeid(ReLU<T>)) {
          x = fusable->forward_relu(x);
          ++i;
          continue;
        }
      }
      x = module.forward(x);
    }
    return x;
  }

  // Appends a module as child "<size()>".
  void push_back(ModulePtr module) { this->register_module(std::to_string(size()), std::move(module)); }
  std::size_t size() const { return this->num_children(); }

  // Child i (negative i counts from the end, as in Python).
  ModulePtr operator[](int64_t i) const { return this->child_at(index(i)); }  // child i is named "i"
  // Child i as its concrete type: seq.at<Linear<T>>(2)->weight.
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    return this->template child_as<M>(std::to_string(index(i)));
  }
  // Puts `module` in place of child i, keeping the name; returns the old child.
  ModulePtr replace(int64_t i, ModulePtr module) {
    return this->replace_module(std::to_string(index(i)), std::move(module));
  }

 private:
  std::size_t index(int64_t i) const {
    const auto n = int64_t(size());
    const int64_t k = i < 0 ? i + n : i;
    if (k < 0 || k >= n)
      throw std::out_of_range("Sequential: index " + std::to_string(i) + " out of range for " +
                              std::to_string(n) + " modules");
    return std::size_t(k);
  }
};

}  // namespace sumi::nn
