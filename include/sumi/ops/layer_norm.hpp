#pragma once
// Layer normalisation with autograd, as torch.nn.functional.layer_norm: every row of the trailing
// normalized_shape dimensions is normalised by its own mean and (biased) variance, then scaled and shifted
// element-wise by weight and bias of shape normalized_shape.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/moments.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/number_text.hpp"

namespace sumi {

namespace detail {

// {mean, 1 / sqrt(var + eps)} of x[0..n), in double whatever T is.
template <class T>
std::pair<double, double> ln_row_moments(const T* x, int64_t n, double eps) {
  const kernels::Moments m = kernels::moments(x, n);
  // As PyTorch: eps = 0 on a constant row gives an infinite factor, and so NaN outputs and gradients.
  return {m.mean, 1.0 / std::sqrt(m.var + eps)};
}

// y = (x - mu) * rs * w + b over one row; the weight and bias only where the caller has them, so a layer
// without affine does no multiplications by ones and additions of zeros.
template <bool kWeight, bool kBias, class T>
void ln_normalise_row(const T* x, T* y, int64_t n, double mu, double rs, const T* w, const T* b) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    double v = (double(x[i]) - mu) * rs;
    if constexpr (kWeight) v *= double(w[i]);
    if constexpr (kBias) v += double(b[i]);
    y[i] = T(v);
  }
}

// The input gradient of one row, with xhat = (x - mean) * rstd and gw = gy * weight (gy without weight):
// gx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
template <bool kWeight, class T>
void ln_input_grad_row(const T* g, const T* x, T* out, int64_t n, double mu, double rs, const T* w) {
  const auto gw = [&](int64_t i) {
    if constexpr (kWeight)
      return double(g[i]) * double(w[i]);
    else
      return double(g[i]);
  };
  double sum_gw = 0, sum_gw_xhat = 0;
#pragma omp simd reduction(+ : sum_gw, sum_gw_xhat)
  for (int64_t i = 0; i < n; ++i) {
    const double gwi = gw(i);
    sum_gw += gwi;
    sum_gw_xhat += gwi * ((double(x[i]) - mu) * rs);
  }
  const double c1 = sum_gw / double(n), c2 = sum_gw_xhat / double(n);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = T(rs * (gw(i) - c1 - (double(x[i]) - mu) * rs * c2));
}

template <class T>
void ln_check(const Shape& x, const Shape& normalized, const Variable<T>& weight, const Variable<T>& bias,
              T eps) {
  if (normalized.empty())
    throw std::invalid_argument("layer_norm: normalized_shape must have at least one dimension, got " +
                                shape_str(normalized) + " for input of shape " + shape_str(x));
  if (normalized.size() > x.size() ||
      !std::equal(normalized.begin(), normalized.end(), x.end() - std::ptrdiff_t(normalized.size())))
    throw std::invalid_argument("layer_norm: normalized_shape " + shape_str(normalized) +
                                " does not match the last dimensions of input of shape " + shape_str(x) +
                                " (expected an input of shape [*" +
                                shape_str(normalized).replace(0, 1, ", ") + ")");
  for (const auto& [what, v] : {std::pair{"weight", &weight}, std::pair{"bias", &bias}})
    if (v->defined() && v->shape() != normalized)
      throw std::invalid_argument("layer_norm: " + std::string(what) + " of shape " + shape_str(v->shape()) +
                                  " does not match normalized_shape " + shape_str(normalized) +
                                  " (input of shape " + shape_str(x) + ")");
  if (!(eps >= T(0)))
    throw std::invalid_argument("layer_norm: eps " + util::format_round_trip(eps) +
                                " must be >= 0 (input of shape " + shape_str(x) + ")");
}

// Columns per block of the weight and bias gradients: each block sums its columns over all rows.
inline constexpr int64_t kLnColumns = 256;

}  // namespace detail

// y = (x - mean) / sqrt(var + eps) * weight + bias, with mean and biased variance over the last
// normalized_shape.size() dimensions of x, which must equal normalized_shape. weight and bias, of shape
// normalized_shape, may each be an undefined Variable (no scale / no shift). Statistics and outputs are
// computed in double and rounded to T. eps must be >= 0 (not NaN).
template <class T>
Variable<T> layer_norm(const Variable<T>& x, const Shape& normalized_shape, const Variable<T>& weight,
                       const Variable<T>& bias, std::type_identity_t<T> eps = T(1e-5)) {
  x.require_defined("layer_norm");
  const Shape& xs = x.shape();
  detail::ln_check(xs, normalized_shape, weight, bias, eps);
  const bool has_w = weight.defined(), has_b = bias.defined();
  const int64_t N = shape_numel(normalized_shape);  // values per row
  int64_t M = 1;                                    // rows, counted so also when N is 0
  for (std::size_t d = 0; d < xs.size() - normalized_shape.size(); ++d) M *= xs[d];

  const Tensor<T> xv = x.value().contiguous();
  const Tensor<T> wv = has_w ? weight.value().contiguous() : Tensor<T>();
  const Tensor<T> bv = has_b ? bias.value().contiguous() : Tensor<T>();
  const T* px = xv.data();
  const T* pw = has_w ? wv.data() : nullptr;
  const T* pb = has_b ? bv.data() : nullptr;
  const auto normalise =
      has_w
          ? (has_b ? &detail::ln_normalise_row<true, true, T> : &detail::ln_normalise_row<true, false, T>)
          : (has_b ? &detail::ln_normalise_row<false, true, T> : &detail::ln_normalise_row<false, false, T>);
  Tensor<T> y = Tensor<T>::empty(xs);
  T* py = y.data();
  std::vector<double> mean(std::size_t(N > 0 ? M : 0)), rstd(mean.size());
  if (N > 0)
    kernels::parallel_for(M, xv.numel(), [&](int64_t r) {
      const auto [mu, rs] = detail::ln_row_moments(px + r * N, N, double(eps));
      mean[std::size_t(r)] = mu;
      rstd[std::size_t(r)] = rs;
      normalise(px + r * N, py + r * N, N, mu, rs, pw, pb);
    });

  const bool need_x = x.requires_grad(), need_w = has_w && weight.requires_grad(),
             need_b = has_b && bias.requires_grad();
  return Variable<T>::from_op(
      std::move(y), "layer_norm", {x, has_w ? weight : Variable<T>(), has_b ? bias : Variable<T>()},
      [xv = need_x || need_w ? xv : Tensor<T>(), wv = need_x ? wv : Tensor<T>(), has_w,
       mean = std::move(mean), rstd = std::move(rstd), normalized_shape, M, N, need_x, need_w,
       need_b](const Tensor<T>& grad) {
        const Tensor<T> gy = grad.contiguous();
        const T* pg = gy.data();
        const T* px = xv.data();
        Tensor<T> gx, gw, gb;
        if (need_x) {
          gx = Tensor<T>::empty(gy.shape());
          T* out = gx.data();
          const T* pw = has_w ? wv.data() : nullptr;
          const auto input_grad =
              has_w ? &detail::ln_input_grad_row<true, T> : &detail::ln_input_grad_row<false, T>;
          if (N > 0)
            kernels::parallel_for(M, gy.numel(), [&](int64_t r) {
              input_grad(pg + r * N, px + r * N, out + r * N, N, mean[std::size_t(r)], rstd[std::size_t(r)],
                         pw);
            });
        }
        if (need_w || need_b) {
          if (need_w) gw = Tensor<T>::empty(normalized_shape);
          if (need_b) gb = Tensor<T>::empty(normalized_shape);
          // Blocks of columns in parallel, each summing its columns over every row: no two threads write
          // the same sum, and the rows are read in order.
          const int64_t blocks = (N + detail::kLnColumns - 1) / detail::kLnColumns;
          kernels::parallel_for(blocks, gy.numel(), [&](int64_t block) {
            const int64_t j0 = block * detail::kLnColumns, n = std::min(N - j0, detail::kLnColumns);
            double sum_g_xhat[detail::kLnColumns] = {}, sum_g[detail::kLnColumns] = {};
            for (int64_t r = 0; r < M; ++r) {
              const T* g = pg + r * N + j0;
              if (need_w) {
                const double mu = mean[std::size_t(r)], rs = rstd[std::size_t(r)];
                const T* xr = px + r * N + j0;
#pragma omp simd
                for (int64_t j = 0; j < n; ++j) sum_g_xhat[j] += double(g[j]) * ((double(xr[j]) - mu) * rs);
              }
              if (need_b) {
#pragma omp simd
                for (int64_t j = 0; j < n; ++j) sum_g[j] += double(g[j]);
              }
            }
            for (int64_t j = 0; j < n; ++j) {
              if (need_w) gw.data()[j0 + j] = T(sum_g_xhat[j]);
              if (need_b) gb.data()[j0 + j] = T(sum_g[j]);
            }
          });
        }
        return std::vector<Tensor<T>>{gx, gw, gb};
      });
}

// layer_norm without weight and bias.
template <class T>
Variable<T> layer_norm(const Variable<T>& x, const Shape& normalized_shape,
                       std::type_identity_t<T> eps = T(1e-5)) {
  return layer_norm(x, normalized_shape, Variable<T>(), Variable<T>(), eps);
}

}  // namespace sumi
