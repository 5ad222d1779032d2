#pragma once
// Tensor-level element-wise arithmetic with NumPy broadcasting, outside the autograd graph. Ops build their
// forward and backward passes from these.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "sumi/kernels/elementwise.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi {

namespace detail {

// Accumulator type of sums: double for float (a float accumulator loses digits over long sums).
template <class T>
using acc_t = std::conditional_t<(sizeof(T) < sizeof(double)), double, T>;

// A tensor of `shape` holding sums that `add_into(acc_t<T>* sums)` adds into zeroed accumulators (the
// tensor's own storage when acc_t<T> is T, else a temporary rounded to T at the end).
template <class T, class AddInto>
Tensor<T> accumulated_sums(const Shape& shape, AddInto&& add_into) {
  if constexpr (std::is_same_v<acc_t<T>, T>) {
    Tensor<T> out = Tensor<T>::zeros(shape);
    add_into(out.data());
    return out;
  } else {
    Tensor<T> out = Tensor<T>::empty(shape);
    std::vector<acc_t<T>> sums(std::size_t(out.numel()), acc_t<T>(0));
    add_into(sums.data());
    std::transform(sums.begin(), sums.end(), out.data(), [](acc_t<T> v) { return T(v); });
    return out;
  }
}

// Strides of `shape` (with `strides`) seen through broadcasting to `out`: 0 on broadcast dimensions.
inline Shape broadcast_strides(const Shape& shape, const Shape& strides, const Shape& out) {
  Shape result(out.size(), 0);
  const std::size_t lead = out.size() - shape.size();
  for (std::size_t i = 0; i < shape.size(); ++i) result[lead + i] = shape[i] == 1 ? 0 : strides[i];
  return result;
}

// Calls f(out_index, offset_a, offset_b) for every element of `out` in row-major order. The innermost
// dimension runs as a tight loop.
template <class F>
void for_each_broadcast(const Shape& out, const Shape& strides_a, const Shape& strides_b, F&& f) {
  const int64_t n = shape_numel(out);
  if (n == 0) return;
  if (out.empty()) {
    f(0, 0, 0);
    return;
  }
  const std::size_t rank = out.size();
  const int64_t inner = out[rank - 1], sa = strides_a[rank - 1], sb = strides_b[rank - 1];
  Shape index(rank, 0);
  int64_t off_a = 0, off_b = 0;
  for (int64_t i = 0; i < n; i += inner) {
    for (int64_t j = 0; j < inner; ++j) f(i + j, off_a + j * sa, off_b + j * sb);
    for (std::size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < out[d]) {
        off_a += strides_a[d];
        off_b += strides_b[d];
        break;
      }
      off_a -= strides_a[d] * (out[d] - 1);
      off_b -= strides_b[d] * (out[d] - 1);
      index[d] = 0;
    }
  }
}
}  // namespace detail

// A new tensor with f applied to every element. `op` names the caller in errors.
template <class T, class F>
Tensor<T> map(const Tensor<T>& a, F f, const char* op = "map") {
  if (!a.defined()) throw std::invalid_argument(std::string(op) + ": the tensor is undefined");
  const Tensor<T> c = a.contiguous();
  Tensor<T> out = Tensor<T>::empty(a.shape());
  kernels::map(c.numel(), c.data(), out.data(), f);
  return out;
}

// A new tensor with f applied element-wise to a and b broadcast together. `op` names the caller in errors.
template <class T, class F>
Tensor<T> zip(const Tensor<T>& a, const Tensor<T>& b, F f, const char* op) {
  if (!a.defined() || !b.defined())
    throw std::invalid_argument(std::string(op) + ": an operand is undefined");
  if (a.shape() == b.shape() && a.is_contiguous() && b.is_contiguous()) {
    Tensor<T> out = Tensor<T>::empty(a.shape());
    kernels::zip(a.numel(), a.data(), b.data(), out.data(), f);
    return out;
  }
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Tensor<T> out = Tensor<T>::empty(shape);
  if (b.numel() == 1 && a.is_contiguous() && a.shape() == shape) {
    const T s = b.data()[0];
    kernels::map(a.numel(), a.data(), out.data(), [f, s](T x) { return f(x, s); });
    return out;
  }
  const Shape sa = detail::broadcast_strides(a.shape(), a.strides(), shape);
  const Shape sb = detail::broadcast_strides(b.shape(), b.strides(), shape);
  const T* pa = a.data();
  const T* pb = b.data();
  T* po = out.data();
  detail::for_each_broadcast(shape, sa, sb,
                             [&](int64_t i, int64_t oa, int64_t ob) { po[i] = f(pa[oa], pb[ob]); });
  return out;
}

// A contiguous copy of t broadcast to `shape`.
template <class T>
Tensor<T> expand_to(const Tensor<T>& t, const Shape& shape) {
  if (!t.defined()) throw std::invalid_argument("expand: the tensor is undefined");
  if (broadcast_shapes(t.shape(), shape, "expand") != shape)
    throw std::invalid_argument("expand: shape " + shape_str(t.shape()) + " cannot be broadcast to " +
                                shape_str(shape));
  Tensor<T> out = Tensor<T>::empty(shape);
  const Shape st = detail::broadcast_strides(t.shape(), t.strides(), shape);
  const T* pt = t.data();
  T* po = out.data();
  detail::for_each_broadcast(shape, st, Shape(shape.size(), 0),
                             [&](int64_t i, int64_t ot, int64_t) { po[i] = pt[ot]; });
  return out;
}

// Sums t over the dimensions that broadcasting expanded, giving a tensor of `shape` (the inverse of
// broadcasting, used by backward passes).
template <class T>
Tensor<T> sum_to_shape(const Tensor<T>& t, const Shape& shape) {
  if (!t.defined()) throw std::invalid_argument("sum_to_shape: the tensor is undefined");
  if (t.shape() == shape) return t;
  if (broadcast_shapes(shape, t.shape(), "sum_to_shape") != t.shape())
    throw std::invalid_argument("sum_to_shape: " + shape_str(t.shape()) + " is not a broadcast of " +
                                shape_str(shape));
  // Accumulated in acc_t<T>: many broadcast copies added one after another into a float lose digits.
  const Shape so = detail::broadcast_strides(shape, contiguous_strides(shape), t.shape());
  const T* pt = t.data();
  return detail::accumulated_sums<T>(shape, [&](detail::acc_t<T>* sums) {
    detail::for_each_broadcast(t.shape(), t.strides(), so,
                               [&](int64_t, int64_t ot, int64_t oo) { sums[oo] += pt[ot]; });
  });
}

namespace detail {
inline void require_in_place_target(bool contiguous, const Shape& shape, const char* op) {
  if (!contiguous)
    throw std::invalid_argument(std::string(op) + ": the destination of shape " + shape_str(shape) +
                                " is not contiguous");
}
}  // namespace detail

// dst += src (same shape, dst contiguous; src may overlap dst).
template <class T>
void add_inplace(Tensor<T>& dst, const Tensor<T>& src) {
  if (!dst.defined() || !src.defined()) throw std::invalid_argument("add_inplace: an operand is undefined");
  if (dst.shape() != src.shape())
    throw std::invalid_argument("add_inplace: shapes " + shape_str(dst.shape()) + " and " +
                                shape_str(src.shape()) + " differ");
  detail::require_in_place_target(dst.is_contiguous(), dst.shape(), "add_inplace");
  // A source sharing dst's storage may overlap it (a shifted view): read from a copy, or the sum would read
  // elements it has already updated.
  const Tensor<T> s = src.shares_storage_with(dst) ? src.clone() : src.contiguous();
  kernels::add_inplace(dst.numel(), dst.data(), s.data());
}

// dst += src, where an undefined dst becomes a copy of src (gradient accumulation into leaves).
template <class T>
void accumulate_into(Tensor<T>& dst, const Tensor<T>& src) {
  if (!dst.defined())
    dst = src.clone();
  else
    add_inplace(dst, src);
}

// dst *= s
template <class T>
void scale_inplace(Tensor<T>& dst, T s) {
  detail::require_in_place_target(dst.is_contiguous(), dst.shape(), "scale_inplace");
  kernels::map(dst.numel(), dst.data(), dst.data(), [s](T x) { return x * s; });
}

}  // namespace sumi
