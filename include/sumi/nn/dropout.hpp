#pragma once
// Dropout, as torch.nn.Dropout: in training mode zeroes each element with probability p and scales the rest
// by 1 / (1 - p); in eval mode the identity.
#include <memory>

#include "sumi/nn/module.hpp"
#include "sumi/ops/dropout.hpp"

namespace sumi::nn {

template <std::floating_point T = float>
class Dropout : public Module<T> {
 public:
  // Draws its masks from `gen`, which must outlive the module (the default generator does).
  explicit Dropout(double p = 0.5, Generator& gen = default_generator()) : p(T(p)), gen_(&gen) { check(p); }
  // Draws its masks from a generator of its own, seeded with `seed`.
  Dropout(double p, uint64_t seed) : p(T(p)), owned_(std::make_shared<Generator>(seed)), gen_(owned_.get()) {
    check(p);
  }

  Variable<T> forward(const Variable<T>& x) override { return dropout(x, p, this->is_training(), *gen_); }
  std::string extra_repr() const override { return "p=" + detail::python_float_repr(p) + ", inplace=False"; }

  Generator& generator() { return *gen_; }

  const T p;

 private:
  static void check(double p) {
    if (!(p >= 0 && p <= 1))
      throw std::invalid_argument("Dropout: probability " + std::to_string(p) + " is not in [0, 1]");
  }
  std::shared_ptr<Generator> owned_;
  Generator* gen_;
};

}  // namespace sumi::nn
