#pragma once
// Element-wise input gradients computed over the output gradient's own buffer when nothing else holds it.
#include "sumi/kernels/elementwise.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi {

// Backward functions receive the output gradient by value; when theirs is contiguous and its only reference,
// an element-wise function of it may overwrite it: those lines are in the cache already, a fresh buffer's are
// not (a conv + relu mask pass took a fifth less). The buffer to write such a result into: grad itself, or a
// new one.
template <class T>
Tensor<T> gradient_output_buffer(const Tensor<T>& grad) {
  return grad.is_contiguous() && grad.is_sole_reference() ? grad : Tensor<T>::empty(grad.shape());
}

// f(grad[i], other[i]) for every element, other contiguous and of grad's shape, in gradient_output_buffer.
template <class T, class F>
Tensor<T> zip_gradient(Tensor<T> grad, const Tensor<T>& other, F f) {
  Tensor<T> out = gradient_output_buffer(grad);
  const Tensor<T> g = grad.contiguous();
  kernels::zip(g.numel(), g.data(), other.data(), out.data(), f);
  return out;
}

}  // namespace sumi
