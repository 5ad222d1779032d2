#pragma once
// Matrix products with autograd: matmul on Eigen's GEMM, linear on the linear kernels.
#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/linear.hpp"

namespace sumi {

namespace detail {
inline void require_rank(const Shape& s, int64_t rank, const char* op, const char* what) {
  if (int64_t(s.size()) != rank)
    throw std::invalid_argument(std::string(op) + ": " + what + " must be " + std::to_string(rank) +
                                "-d, got shape " + shape_str(s));
}
// The [rows, cols] result of `op` on operands of shapes `a` and `b`, or an error naming them all when it
// would hold more elements than int64_t counts.
template <class T>
Tensor<T> product_output(int64_t rows, int64_t cols, const char* op, const Shape& a, const Shape& b) {
  int64_t count;
  if (__builtin_mul_overflow(rows, cols, &count))
    throw std::length_error(std::string(op) + ": the result of shapes " + shape_str(a) + " and " +
                            shape_str(b) + ", [" + std::to_string(rows) + ", " + std::to_string(cols) +
                            "], has more elements than int64_t can count");
  return Tensor<T>::empty({rows, cols});
}
}  // namespace detail

// a [n, k] @ b [k, m] -> [n, m]
template <class T>
Variable<T> matmul(const Variable<T>& a, const Variable<T>& b) {
  detail::require_rank(a.shape(), 2, "matmul", "first operand");
  detail::require_rank(b.shape(), 2, "matmul", "second operand");
  if (a.size(1) != b.size(0))
    throw std::invalid_argument("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                                " are not aligned");
  const Tensor<T> av = a.value().contiguous(), bv = b.value().contiguous();
  Tensor<T> out = detail::product_output<T>(a.size(0), b.size(1), "matmul", a.shape(), b.shape());
  out.matrix().noalias() = av.matrix() * bv.matrix();
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable<T>::from_op(out, "matmul", {a, b}, [av, bv, ga, gb](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> grad_a, grad_b;
    if (ga) {
      grad_a = Tensor<T>::empty(av.shape());
      grad_a.matrix().noalias() = gc.matrix() * bv.matrix().transpose();
    }
    if (gb) {
      grad_b = Tensor<T>::empty(bv.shape());
      grad_b.matrix().noalias() = av.matrix().transpose() * gc.matrix();
    }
    return std::vector<Tensor<T>>{grad_a, grad_b};
  });
}

// x [n, in] @ weight [out, in]^T + bias [out] -> [n, out], as torch.nn.functional.linear. bias may be
// an undefined Variable (no bias).
template <class T>
Variable<T> linear(const Variable<T>& x, const Variable<T>& weight, const Variable<T>& bias = Variable<T>()) {
  detail::require_rank(x.shape(), 2, "linear", "input");
  detail::require_rank(weight.shape(), 2, "linear", "weight");
  if (x.size(1) != weight.size(1))
    throw std::invalid_argument("linear: input of shape " + shape_str(x.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()) +
                                " (in_features " + std::to_string(weight.size(1)) + ")");
  const bool has_bias = bias.defined();
  if (has_bias && bias.shape() != Shape{weight.size(0)})
    throw std::invalid_argument("linear: bias of shape " + shape_str(bias.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()));
  const Tensor<T> xv = x.value().contiguous(), wv = weight.value().contiguous();
  const int64_t n = x.size(0), in = weight.size(1), outf = weight.size(0);
  Tensor<T> out = detail::product_output<T>(n, outf, "linear", x.shape(), weight.shape());
  kernels::linear_forward(n, in, outf, xv.data(), wv.data(),
                          has_bias ? bias.value().contiguous().data() : nullptr, out.data());
  const bool gx = x.requires_grad(), gw = weight.requires_grad(), gb = has_bias && bias.requires_grad();
  return Variable<T>::from_op(
      out, "linear", {x, weight, has_bias ? bias : Variable<T>()}, [xv, wv, gx, gw, gb](const Tensor<T>& g) {
        const Tensor<T> gc = g.contiguous();
        const int64_t n = xv.size(0), in = wv.size(1), outf = wv.size(0);
        Tensor<T> grad_x, grad_w, grad_b;
        if (gx) {
          grad_x = Tensor<T>::empty(xv.shape());
          kernels::linear_backward_input(n, in, outf, gc.data(), wv.data(), grad_x.data());
        }
        if (gb) grad_b = Tensor<T>::empty({outf});
        if (gw) {
          grad_w = Tensor<T>::empty(wv.shape());
          kernels::linear_backward_weight(n, in, outf, xv.data(), gc.data(), grad_w.data(),
                                          gb ? grad_b.data() : nullptr);
        } else if (gb) {
          grad_b.vector() = gc.matrix().colwise().sum().transpose();
        }
        return std::vector<Tensor<T>>{grad_x, grad_w, grad_b};
      });
}

}  // namespace sumi
