#pragma once
// Matrix products with autograd, matmul and linear, both on the linear kernels (kernels/linear.hpp).
#include <algorithm>
#include <limits>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/linear.hpp"
#include "sumi/ops/shape_ops.hpp"
#include "sumi/tensor/arithmetic.hpp"

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

namespace detail {

// a [n, k] @ b [k, m] -> [n, m], on the linear kernels.
template <class T>
Variable<T> matrix_product(const Variable<T>& a, const Variable<T>& b) {
  const Tensor<T> av = a.value().contiguous(), bv = b.value().contiguous();
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  Tensor<T> out = product_output<T>(n, m, "matmul", a.shape(), b.shape());
  kernels::matmul_forward(n, k, m, av.data(), bv.data(), out.data());
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable<T>::from_op(out, "matmul", {a, b}, [av, bv, n, k, m, ga, gb](const Tensor<T>& g) {
    const Tensor<T> gc = g.contiguous();
    Tensor<T> grad_a, grad_b;
    if (ga) {
      grad_a = Tensor<T>::empty(av.shape());
      kernels::matmul_backward_a(n, k, m, gc.data(), bv.data(), grad_a.data());
    }
    if (gb) {
      grad_b = Tensor<T>::empty(bv.shape());
      kernels::matmul_backward_b(n, k, m, av.data(), gc.data(), grad_b.data());
    }
    return std::vector<Tensor<T>>{grad_a, grad_b};
  });
}

// Which operand matrix each product of a batched matmul reads: matrix i itself, or, where the operand is
// broadcast, the one its broadcast strides name (its matrices repeated, not copied).
struct MatrixSources {
  bool broadcast = false;
  std::vector<int64_t> index;  // for each product, where broadcast

  int64_t operator[](int64_t i) const { return broadcast ? index[std::size_t(i)] : i; }
};

// The sources for an operand whose batch dimensions are `own` (its matrices stored one after another), read
// by the products of the broadcast `batch`.
inline MatrixSources matrix_sources(const Shape& own, const Shape& batch) {
  if (own == batch) return {};
  MatrixSources sources{.broadcast = true, .index = {}};
  const Shape strides = broadcast_strides(own, contiguous_strides(own), batch);
  sources.index.reserve(std::size_t(shape_numel(batch)));
  for_each_broadcast(batch, strides, strides,
                     [&](int64_t, int64_t offset, int64_t) { sources.index.push_back(offset); });
  return sources;
}

// Below this many multiply-adds a product of a batched matmul is too small to split across threads itself.
inline constexpr double kSmallMatrixProduct = 1 << 20;

// body(i) for the `count` products of a batched matmul, of `macs` multiply-adds each: across threads, each
// product on one, where they are small or at least two per thread; else one after another, each product's
// kernel then splitting across the threads (a few large products divide more evenly that way).
template <class Body>
void for_each_product(int64_t count, double macs, const Body& body) {
  if (macs < kSmallMatrixProduct || count >= 2 * int64_t(get_num_threads())) {
    const double work = std::min(double(count) * macs, double(std::numeric_limits<int64_t>::max() / 2));
    return kernels::parallel_for(count, int64_t(work), body);
  }
  for (int64_t i = 0; i < count; ++i) body(i);
}

// At most this many elements of a broadcast operand's per-product gradients are held at once (16 MB of
// float): PyTorch's expanded gradient would hold them all, [64, 4096, 4096] for a [1, 4096, 4096] operand.
inline constexpr int64_t kBroadcastGradientChunk = int64_t(1) << 22;

// The gradient of an operand of `shape` (rows x cols matrices) that the `count` products of a batched matmul
// read as `sources` says, from product(i, out), which writes the [rows, cols] gradient product i gives:
// written in place where each matrix was read once; else a chunk of products at a time is written (in
// parallel) and added to the matrices they read in product order, in acc_t<T> as sum_to_shape sums broadcast
// gradients (a matrix that many products read would lose digits in a float sum).
template <class T, class Product>
Tensor<T> summed_matrix_gradients(const Shape& shape, int64_t count, int64_t rows, int64_t cols,
                                  const MatrixSources& sources, double macs, Product product) {
  const int64_t size = rows * cols;
  if (!sources.broadcast) {
    Tensor<T> grad = Tensor<T>::empty(shape);
    T* gp = grad.data();
    for_each_product(count, macs, [&](int64_t i) { product(i, gp + i * size); });
    return grad;
  }
  const int64_t chunk = std::clamp<int64_t>(kBroadcastGradientChunk / std::max<int64_t>(size, 1), 1,
                                            std::max<int64_t>(count, 1));
  Tensor<T> terms = Tensor<T>::empty({chunk * size});
  T* tp = terms.data();
  return accumulated_sums<T>(shape, [&](acc_t<T>* sums) {
    for (int64_t first = 0; first < count; first += chunk) {
      const int64_t n = std::min(chunk, count - first);
      for_each_product(n, macs, [&](int64_t j) { product(first + j, tp + j * size); });
      for (int64_t j = 0; j < n; ++j) {
        acc_t<T>* total = sums + sources[first + j] * size;
        const T* term = tp + j * size;
        for (int64_t e = 0; e < size; ++e) total[e] += term[e];
      }
    }
  });
}

// a [..., n, k] @ b [..., k, m] -> [..., n, m], the batch dimensions (all but the last two) broadcast
// together: one product per matrix of the broadcast batch, reading each operand's own matrices (none copied).
template <class T>
Variable<T> batched_matrix_product(const Variable<T>& a, const Variable<T>& b, const Shape& shape_a,
                                   const Shape& shape_b) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  const Shape batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes(batch_a, batch_b, "matmul");
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("matmul: the batch dimensions of shapes " + shape_str(shape_a) + " and " +
                                shape_str(shape_b) + " cannot be broadcast together");
  }
  const int64_t n = sa[sa.size() - 2], k = sa.back(), m = sb.back();
  Shape out_shape = batch;
  out_shape.push_back(n);
  out_shape.push_back(m);
  try {
    shape_numel(out_shape);
  } catch (const std::length_error&) {
    throw std::length_error("matmul: the broadcast product of shapes " + shape_str(shape_a) + " and " +
                            shape_str(shape_b) + " has more elements than int64_t can count");
  }
  const Tensor<T> av = a.value().contiguous(), bv = b.value().contiguous();
  const MatrixSources from_a = matrix_sources(batch_a, batch), from_b = matrix_sources(batch_b, batch);
  const int64_t count = shape_numel(batch);
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const T* ap = av.data();
  const T* bp = bv.data();
  T* op = out.data();
  const double macs = double(n) * double(k) * double(m);  // per product
  for_each_product(count, macs, [&](int64_t i) {
    kernels::matmul_forward(n, k, m, ap + from_a[i] * n * k, bp + from_b[i] * k * m, op + i * n * m);
  });
  const bool ga = a.requires_grad(), gb = b.requires_grad();
  return Variable<T>::from_op(
      out, "matmul", {a, b}, [av, bv, from_a, from_b, count, n, k, m, macs, ga, gb](const Tensor<T>& g) {
        const Tensor<T> gc = g.contiguous();
        const T* ap = av.data();
        const T* bp = bv.data();
        const T* gp = gc.data();
        Tensor<T> grad_a, grad_b;
        if (ga)
          grad_a = summed_matrix_gradients<T>(av.shape(), count, n, k, from_a, macs, [&](int64_t i, T* out) {
            kernels::matmul_backward_a(n, k, m, gp + i * n * m, bp + from_b[i] * k * m, out);
          });
        if (gb)
          grad_b = summed_matrix_gradients<T>(bv.shape(), count, k, m, from_b, macs, [&](int64_t i, T* out) {
            kernels::matmul_backward_b(n, k, m, ap + from_a[i] * n * k, gp + i * n * m, out);
          });
        return std::vector<Tensor<T>>{grad_a, grad_b};
      });
}

}  // namespace detail

// The matrix product, as torch.matmul: a [n, k] @ b [k, m] -> [n, m]; a 1-d operand is a vector (a row on
// the left, a column on the right, its dimension removed from the result, so two vectors give their dot
// product as a 0-d tensor); operands of more dimensions are batches of matrices whose batch dimensions (all
// but the last two) broadcast together: [B, n, k] @ [k, m] -> [B, n, m].
template <class T>
Variable<T> matmul(const Variable<T>& a, const Variable<T>& b) {
  a.require_defined("matmul");
  b.require_defined("matmul");
  if (a.dim() == 0 || b.dim() == 0)
    throw std::invalid_argument("matmul: operands must have at least one dimension, got shapes " +
                                shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t k_a = a.shape().back(), k_b = b.dim() == 1 ? b.size(0) : b.size(-2);
  if (k_a != k_b)
    throw std::invalid_argument("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                                " are not aligned (" + std::to_string(k_a) + " against " +
                                std::to_string(k_b) + ")");
  if (a.dim() == 2 && b.dim() == 2) return detail::matrix_product(a, b);
  if (a.dim() > 2 && b.dim() == 2) {  // batches of a against one matrix: one GEMM of all their rows
    Shape rows = a.shape();
    rows.pop_back();
    const Variable<T> product = detail::matrix_product(reshape(a, {shape_numel(rows), k_a}), b);
    rows.push_back(b.size(1));
    return reshape(product, rows);
  }
  const Variable<T> am = a.dim() == 1 ? unsqueeze(a, 0) : a, bm = b.dim() == 1 ? unsqueeze(b, 1) : b;
  Variable<T> out = am.dim() == 2 && bm.dim() == 2
                        ? detail::matrix_product(am, bm)
                        : detail::batched_matrix_product(am, bm, a.shape(), b.shape());
  if (b.dim() == 1) out = squeeze(out, -1);
  if (a.dim() == 1) out = squeeze(out, -1 - int64_t(b.dim() != 1));
  return out;
}

// x [n, in] @ weight [out, in]^T + bias [out] -> [n, out], as torch.nn.functional.linear. bias may be
// an undefined Variable (no bias). x may also be [in] (giving [out]) or [..., in] (giving [..., out]): its
// leading dimensions are flattened into one for the product and restored after it.
template <class T>
Variable<T> linear(const Variable<T>& x, const Variable<T>& weight, const Variable<T>& bias = Variable<T>()) {
  x.require_defined("linear");
  detail::require_rank(weight.shape(), 2, "linear", "weight");
  if (x.dim() == 0 || x.shape().back() != weight.size(1))
    throw std::invalid_argument("linear: input of shape " + shape_str(x.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()) +
                                " (in_features " + std::to_string(weight.size(1)) + ")");
  const bool has_bias = bias.defined();
  if (has_bias && bias.shape() != Shape{weight.size(0)})
    throw std::invalid_argument("linear: bias of shape " + shape_str(bias.shape()) +
                                " does not match weight of shape " + shape_str(weight.shape()));
  if (x.dim() != 2) {
    Shape leading(x.shape().begin(), x.shape().end() - 1);
    const Variable<T> rows = reshape(x, {shape_numel(leading), weight.size(1)});
    leading.push_back(weight.size(0));
    return reshape(linear(rows, weight, bias), leading);
  }
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
