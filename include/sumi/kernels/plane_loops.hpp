#pragma once
// Loops shared by the kernels that work on NCHW planes one at a time (pooling, resampling): the planes in
// parallel, and the sum over and the spread onto a rectangle of one plane.
#include <cstdint>

#include "sumi/kernels/threading.hpp"

namespace sumi::kernels::detail {

// body(plane) for every one of `planes` planes, in parallel when they hold enough elements (plane_work
// each, input and output together).
template <class Body>
void for_each_plane(int64_t planes, int64_t plane_work, const Body& body) {
  parallel_for(planes, planes * plane_work, body);
}

// The sum of rows [h0, h1) and columns [w0, w1) of a plane with `width` columns, row by row.
template <class T>
T rectangle_sum(const T* plane, int64_t width, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  T sum = T(0);
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sum += plane[h * width + w];
  return sum;
}

// Adds v to rows [h0, h1) and columns [w0, w1) of a plane with `width` columns.
template <class T>
void rectangle_add(T* plane, int64_t width, int64_t h0, int64_t h1, int64_t w0, int64_t w1, T v) {
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) plane[h * width + w] += v;
}

}  // namespace sumi::kernels::detail
