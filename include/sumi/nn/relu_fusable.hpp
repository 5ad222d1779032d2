#pragma once
// ReluFusable<T>: a module that can apply a ReLU to its output as it writes it. Sequential runs such a module
// followed by a ReLU child as one step, forward_relu(x) == relu(forward(x)) in values and gradients, so the
// output is written once instead of written, read and written again.
#include <typeinfo>

#include "sumi/autograd/variable.hpp"

namespace sumi::nn {

template <class T>
class ReluFusable {
 public:
  virtual ~ReluFusable() = default;
  virtual Variable<T> forward_relu(const Variable<T>& x) = 0;
  // The class whose forward() forward_relu matches. A subclass may override forward() (or the ReLU after it
  // may be a subclass with its own forward()), so Sequential fuses only objects of exactly these classes.
  virtual const std::type_info& fused_class() const = 0;
};

}  // namespace sumi::nn
