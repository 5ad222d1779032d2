#pragma once
// Shape ops with autograd: reshape, flatten, unflatten (views of a contiguous input, no copy), concat, and
// the strided views transpose, permute, narrow, squeeze and unsqueeze.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi {

namespace detail {

// `view`, a view of x's value holding its elements in row-major order under another shape, as the result of
// `op`: the gradient is reshaped back to x's shape.
template <class T>
Variable<T> reshaped_view(const Variable<T>& x, Tensor<T> view, const char* op) {
  return Variable<T>::from_view_op(std::move(view), op, x, [in_shape = x.shape()](const Tensor<T>& g) {
    return std::vector<Tensor<T>>{g.reshape(in_shape)};
  });
}

// A reshape to an already validated `shape`: a view of a contiguous input, a copy otherwise.
template <class T>
Variable<T> reshape_to(const Variable<T>& x, const Shape& shape, const char* op) {
  x.require_defined(op);
  return reshaped_view(x, x.value().reshape(shape), op);
}

// Copies the [outer, rows_i * inner] blocks of the parts into / out of the [outer, total * inner] whole.
template <class T>
void copy_blocks(int64_t outer, int64_t whole_row, int64_t part_row, int64_t part_begin, const T* src, T* dst,
                 bool to_whole) {
  kernels::parallel_for(outer, outer * part_row, [&](int64_t o) {
    if (to_whole)
      std::copy_n(src + o * part_row, part_row, dst + o * whole_row + part_begin);
    else
      std::copy_n(src + o * whole_row + part_begin, part_row, dst + o * part_row);
  });
}

template <class T>
Variable<T> concat_node(const std::vector<Variable<T>>& inputs, int64_t dim) {
  const Shape& first = inputs[0].shape();
  const auto ud = std::size_t(dim);
  Shape out_shape = first;
  out_shape[ud] = 0;
  for (const Variable<T>& v : inputs) out_shape[ud] += v.shape()[ud];
  const int64_t outer = shape_numel(Shape(first.begin(), first.begin() + dim));
  const int64_t inner = shape_numel(Shape(first.begin() + dim + 1, first.end()));
  const int64_t whole_row = out_shape[ud] * inner;

  Tensor<T> out = Tensor<T>::empty(out_shape);
  std::vector<int64_t> begins;
  std::vector<Shape> shapes;
  std::vector<bool> needs_grad;
  int64_t begin = 0;
  for (const Variable<T>& v : inputs) {
    const Tensor<T> c = v.value().contiguous();
    const int64_t part_row = v.shape()[ud] * inner;
    copy_blocks(outer, whole_row, part_row, begin, c.data(), out.data(), true);
    begins.push_back(begin);
    shapes.push_back(v.shape());
    needs_grad.push_back(v.requires_grad());
    begin += part_row;
  }
  return Variable<T>::from_op(std::move(out), "concat", std::span<const Variable<T>>(inputs),
                              [begins, shapes, needs_grad, outer, inner, whole_row, ud](const Tensor<T>& g) {
                                const Tensor<T> gc = g.contiguous();
                                std::vector<Tensor<T>> grads(shapes.size());
                                for (std::size_t i = 0; i < shapes.size(); ++i) {
                                  if (!needs_grad[i]) continue;
                                  grads[i] = Tensor<T>::empty(shapes[i]);
                                  copy_blocks(outer, whole_row, shapes[i][ud] * inner, begins[i], gc.data(),
                                              grads[i].data(), false);
                                }
                                return grads;
                              });
}

}  // namespace detail

// x with a new shape holding the same elements; one size may be -1 (inferred). A view (no copy) when x is
// contiguous.
template <class T>
Variable<T> reshape(const Variable<T>& x, const Shape& shape) {
  x.require_defined("reshape");
  return detail::reshape_to(x, infer_shape(shape, x.numel(), x.shape(), "reshape"), "reshape");
}

// Merges dimensions start_dim..end_dim (inclusive, negative values count from the end) into one, as
// torch.flatten (note the default start_dim = 1, as nn.Flatten: the batch dimension is kept). A rank-0
// input becomes shape [1].
template <class T>
Variable<T> flatten(const Variable<T>& x, int64_t start_dim = 1, int64_t end_dim = -1) {
  x.require_defined("flatten");
  // A scalar accepts dimensions 0 and -1, as in PyTorch.
  const int64_t start = normalize_dim(start_dim, x.shape(), "flatten");
  const int64_t end = normalize_dim(end_dim, x.shape(), "flatten");
  if (start > end)
    throw std::invalid_argument("flatten: start_dim " + std::to_string(start_dim) + " comes after end_dim " +
                                std::to_string(end_dim) + " for shape " + shape_str(x.shape()));
  if (x.dim() == 0) return detail::reshape_to(x, Shape{1}, "flatten");
  const Shape& s = x.shape();
  Shape shape(s.begin(), s.begin() + start);
  shape.push_back(shape_numel(Shape(s.begin() + start, s.begin() + end + 1)));
  shape.insert(shape.end(), s.begin() + end + 1, s.end());
  return detail::reshape_to(x, shape, "flatten");
}

// Splits dimension `dim` into `sizes` (one of which may be -1), as torch.unflatten.
template <class T>
Variable<T> unflatten(const Variable<T>& x, int64_t dim, const Shape& sizes) {
  x.require_defined("unflatten");
  const int64_t d = normalize_existing_dim(dim, x.shape(), "unflatten");
  const Shape& s = x.shape();
  if (sizes.empty())
    throw std::invalid_argument("unflatten: sizes must not be empty (dimension " + std::to_string(dim) +
                                " of shape " + shape_str(s) + ")");
  Shape dim_shape;
  try {
    dim_shape = infer_shape(sizes, s[std::size_t(d)], {s[std::size_t(d)]}, "unflatten");
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string(e.what()) + " (dimension " + std::to_string(dim) + " of shape " +
                                shape_str(s) + ")");
  }
  Shape shape(s.begin(), s.begin() + d);
  shape.insert(shape.end(), dim_shape.begin(), dim_shape.end());
  shape.insert(shape.end(), s.begin() + d + 1, s.end());
  return detail::reshape_to(x, shape, "unflatten");
}

// Joins the inputs along `dim` (negative counts from the end). All inputs need the same rank and the same
// sizes in every other dimension.
template <class T>
Variable<T> concat(const std::vector<Variable<T>>& inputs, int64_t dim) {
  if (inputs.empty()) throw std::invalid_argument("concat: no inputs");
  for (const Variable<T>& input : inputs) input.require_defined("concat");
  const Shape& first = inputs[0].shape();
  const int64_t d = normalize_existing_dim(dim, first, "concat");
  for (std::size_t i = 1; i < inputs.size(); ++i) {
    const Shape& s = inputs[i].shape();
    bool ok = s.size() == first.size();
    for (std::size_t k = 0; ok && k < s.size(); ++k) ok = int64_t(k) == d || s[k] == first[k];
    if (!ok)
      throw std::invalid_argument("concat: input " + std::to_string(i) + " of shape " + shape_str(s) +
                                  " does not match input 0 of shape " + shape_str(first) +
                                  " in the dimensions other than " + std::to_string(dim));
  }
  Shape out_shape = first;
  out_shape[std::size_t(d)] = 0;
  for (const Variable<T>& v : inputs)
    if (__builtin_add_overflow(out_shape[std::size_t(d)], v.shape()[std::size_t(d)],
                               &out_shape[std::size_t(d)]))
      throw std::length_error("concat: the sizes along dimension " + std::to_string(dim) + " of the " +
                              std::to_string(inputs.size()) + " inputs (input 0 of shape " +
                              shape_str(first) + ") add up to more than int64_t can count");
  try {
    shape_numel(out_shape);  // bounds every product concat_node forms
  } catch (const std::length_error& e) {
    throw std::length_error(std::string("concat: the result's ") + e.what());
  }
  return detail::concat_node(inputs, d);
}

// Dimensions d0 and d1 swapped, as torch.transpose: the result is a strided view of x's value (sharing its
// version counter). A 0-d input accepts dimensions 0 and -1 and is returned as it is.
template <class T>
Variable<T> transpose(const Variable<T>& x, int64_t d0, int64_t d1) {
  x.require_defined("transpose");
  for (int64_t d : {d0, d1}) normalize_dim(d, x.shape(), "transpose");
  return Variable<T>::from_view_op(x.value().transpose(d0, d1), "transpose", x, [d0, d1](Tensor<T> g) {
    return std::vector<Tensor<T>>{g.transpose(d0, d1).contiguous()};
  });
}

// The dimensions reordered, as torch.permute: dimension i of the result is dimension dims[i] of x. The
// result is a strided view of x's value (sharing its version counter).
template <class T>
Variable<T> permute(const Variable<T>& x, const std::vector<int64_t>& dims) {
  x.require_defined("permute");
  const std::vector<int64_t> order = x.value().permutation(dims, "permute");
  const std::vector<int64_t> inverse = inverse_permutation(order);
  return Variable<T>::from_view_op(x.value().permute(order), "permute", x, [inverse](Tensor<T> g) {
    return std::vector<Tensor<T>>{g.permute(inverse).contiguous()};
  });
}

// Elements [start, start + length) of dimension `dim` (a negative start counts from the end), as
// torch.narrow: a strided view of x's value (sharing its version counter). The gradient is zero outside the
// range.
template <class T>
Variable<T> narrow(const Variable<T>& x, int64_t dim, int64_t start, int64_t length) {
  x.require_defined("narrow");
  const NarrowRange r = narrow_range(x.shape(), dim, start, length, "narrow");
  return Variable<T>::from_view_op(x.value().narrow(r.dim, r.start, length), "narrow", x,
                                   [shape = x.shape(), r, length](Tensor<T> g) {
                                     Tensor<T> gx = Tensor<T>::zeros(shape);
                                     gx.narrow(r.dim, r.start, length).copy_(g);
                                     return std::vector<Tensor<T>>{gx};
                                   });
}

// x with a new dimension of size 1 at `dim` (in [-rank - 1, rank]; negative counts from the end of the
// result's dimensions), as torch.unsqueeze: a view of x's value (sharing its version counter).
template <class T>
Variable<T> unsqueeze(const Variable<T>& x, int64_t dim) {
  x.require_defined("unsqueeze");
  return detail::reshaped_view(x, x.value().unsqueeze(dim), "unsqueeze");
}

// x without its size-1 dimensions, as torch.squeeze: a view of x's value (sharing its version counter).
template <class T>
Variable<T> squeeze(const Variable<T>& x) {
  x.require_defined("squeeze");
  return detail::reshaped_view(x, x.value().squeeze(), "squeeze");
}

// x without dimension `dim` if its size is 1, otherwise x's elements in x's shape, as torch.squeeze(x, dim):
// a view of x's value (sharing its version counter).
template <class T>
Variable<T> squeeze(const Variable<T>& x, int64_t dim) {
  x.require_defined("squeeze");
  return detail::reshaped_view(x, x.value().squeeze(dim), "squeeze");
}

}  // namespace sumi
