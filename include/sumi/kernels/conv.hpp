#pragma once
// The conv kernel entry points that ops call. Each picks an implementation for the geometry and the CPU;
// all implementations compute the same result as the reference kernels.
#include "sumi/kernels/conv_geometry.hpp"
#include "sumi/kernels/conv_reference.hpp"

namespace sumi::kernels {

template <class T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  conv2d_forward_reference(g, x, w, bias, y);
}

template <class T>
void conv2d_backward_input(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  conv2d_backward_input_reference(g, gy, w, gx);
}

template <class T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* x, const T* gy, T* gw, T* gbias) {
  conv2d_backward_weight_reference(g, x, gy, gw, gbias);
}

}  // namespace sumi::kernels
