#pragma once
// Batch normalisation with autograd, as torch.nn.functional.batch_norm: x [N, C] (BatchNorm1d) or
// [N, C, H, W] (BatchNorm2d; any rank >= 2 works, the dimensions after C are pooled with N).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "sumi/autograd/variable.hpp"
#include "sumi/kernels/moments.hpp"
#include "sumi/kernels/threading.hpp"

namespace sumi {

namespace detail {

// Per-row sums for the statistics. Each row is summed in blocks: within a block, eight partial sums in T
// (so the loop vectorises and the adds pipeline); the block totals are added in double. Block sums cover
// at most 32 values per partial sum, so float rounding stays near 1e-7 relative.
inline constexpr int64_t kBnBlock = 256;

template <class T>
double bn_total(const T* acc, T tail) {
  return double(((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))) +
         double(tail);
}

// {sum(x - shift), sum((x - shift)^2)} over x = p[0..n); the squares only when kSquares.
template <bool kSquares, class T>
std::pair<double, double> bn_shifted_sums(const T* p, int64_t n, T shift) {
  double s1 = 0, s2 = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBnBlock) {
    const int64_t b1 = std::min(n, b0 + kBnBlock);
    T a1[8] = {}, a2[8] = {};
    int64_t i = b0;
    for (; i + 8 <= b1; i += 8)
      for (int k = 0; k < 8; ++k) {
        const T d = p[i + k] - shift;
        a1[k] += d;
        if constexpr (kSquares) a2[k] += d * d;
      }
    T t1 = 0, t2 = 0;
    for (; i < b1; ++i) {
      const T d = p[i] - shift;
      t1 += d;
      if constexpr (kSquares) t2 += d * d;
    }
    s1 += bn_total(a1, t1);
    if constexpr (kSquares) s2 += bn_total(a2, t2);
  }
  return {s1, s2};
}

// {sum(g), sum(g * (x - shift))} over g = pg[0..n), x = px[0..n).
template <class T>
std::pair<double, double> bn_grad_sums(const T* pg, const T* px, int64_t n, T shift) {
  double s1 = 0, s2 = 0;
  for (int64_t b0 = 0; b0 < n; b0 += kBnBlock) {
    const int64_t b1 = std::min(n, b0 + kBnBlock);
    T a1[8] = {}, a2[8] = {};
    int64_t i = b0;
    for (; i + 8 <= b1; i += 8)
      for (int k = 0; k < 8; ++k) {
        a1[k] += pg[i + k];
        a2[k] += pg[i + k] * (px[i + k] - shift);
      }
    T t1 = 0, t2 = 0;
    for (; i < b1; ++i) {
      t1 += pg[i];
      t2 += pg[i] * (px[i] - shift);
    }
    s1 += bn_total(a1, t1);
    s2 += bn_total(a2, t2);
  }
  return {s1, s2};
}

// The per-channel sums above over channel c of contiguous [N, C, HW] data, where element (n, c, i) is
// p[(n * C + c) * HW + i].
template <bool kSquares, class T>
std::pair<double, double> bn_channel_sums(const T* p, int64_t N, int64_t C, int64_t HW, int64_t c, T shift) {
  double s1 = 0, s2 = 0;
  for (int64_t n = 0; n < N; ++n) {
    const auto [a, b] = bn_shifted_sums<kSquares>(p + (n * C + c) * HW, HW, shift);
    s1 += a;
    s2 += b;
  }
  return {s1, s2};
}

inline void bn_require_channels(const Shape& x, const char* what, const Shape& s) {
  if (s != Shape{x[1]})
    throw std::invalid_argument("batch_norm: " + std::string(what) + " of shape " + shape_str(s) +
                                " does not match input of shape " + shape_str(x) + " (" +
                                std::to_string(x[1]) + " channels)");
}

// A [C] tensor (any stride) as a vector of doubles.
template <class T>
std::vector<double> bn_to_vector(const Tensor<T>& t) {
  std::vector<double> v(std::size_t(t.numel()));
  const int64_t stride = t.strides()[0];
  for (int64_t c = 0; c < t.numel(); ++c) v[std::size_t(c)] = double(t.data()[c * stride]);
  return v;
}

}  // namespace detail

// y = (x - mean) / sqrt(var + eps) * weight + bias per channel (dimension 1).
// training: mean and var are the batch statistics (biased variance), and defined running_mean/running_var
// are updated in place: running = (1 - momentum) * running + momentum * batch, with the unbiased batch
// variance for running_var. Running buffers may be undefined tensors in training (then not updated).
// eval: mean and var are running_mean and running_var, which must be defined.
// weight and bias [C] may be undefined Variables (no scale / no shift).
template <class T>
Variable<T> batch_norm(const Variable<T>& x, Tensor<T>& running_mean, Tensor<T>& running_var,
                       const Variable<T>& weight, const Variable<T>& bias, bool training,
                       std::type_identity_t<T> momentum = T(0.1), std::type_identity_t<T> eps = T(1e-5)) {
  const Shape& xs = x.shape();
  if (xs.size() < 2)
    throw std::invalid_argument("batch_norm: input must be [N, C] or [N, C, H, W], got shape " +
                                shape_str(xs));
  const int64_t N = xs[0], C = xs[1];
  int64_t HW = 1;
  for (std::size_t d = 2; d < xs.size(); ++d) HW *= xs[d];
  const int64_t M = N * HW;  // values per channel
  const bool has_w = weight.defined(), has_b = bias.defined();
  if (has_w) detail::bn_require_channels(xs, "weight", weight.shape());
  if (has_b) detail::bn_require_channels(xs, "bias", bias.shape());
  if (running_mean.defined() != running_var.defined())
    throw std::invalid_argument(
        "batch_norm: running_mean and running_var must both be defined or both undefined");
  const bool has_running = running_mean.defined();
  if (has_running) {
    detail::bn_require_channels(xs, "running_mean", running_mean.shape());
    detail::bn_require_channels(xs, "running_var", running_var.shape());
  }
  if (!training && !has_running)
    throw std::invalid_argument("batch_norm: eval mode needs running_mean and running_var (input of shape " +
                                shape_str(xs) + ")");
  // An empty batch is let through (an empty output; the running statistics stay), as torch's.
  if (training && M == 1)
    throw std::invalid_argument(
        "batch_norm: expected more than 1 value per channel when training, got input of shape " +
        shape_str(xs));
  if (!(eps >= T(0))) throw std::invalid_argument("batch_norm: eps " + std::to_string(eps) + " must be >= 0");

  const auto uC = std::size_t(C);
  const Tensor<T> xv = x.value().contiguous();
  const T* px = xv.data();
  const std::vector<double> w = has_w ? detail::bn_to_vector(weight.value()) : std::vector<double>(uC, 1.0);
  const std::vector<double> b = has_b ? detail::bn_to_vector(bias.value()) : std::vector<double>(uC, 0.0);

  // Per channel: the mean subtracted (in double, and rounded to T), 1/sqrt(var + eps), and weight * that.
  std::vector<double> mean_d(uC), invstd(uC);
  std::vector<T> mean(uC), scale(uC);
  Tensor<T> y = Tensor<T>::empty(xs);
  T* py = y.data();
  if (training && M > 0) {
    std::vector<double> batch_var(uC);
    kernels::parallel_for(C, xv.numel(), [&](int64_t c) {
      // Two passes as kernels::moments, but over N strided runs, and summed in T blocks for speed.
      const double mu0 = detail::bn_channel_sums<false>(px, N, C, HW, c, T(0)).first / double(M);
      const T shift = T(mu0);
      const auto [sd, sd2] = detail::bn_channel_sums<true>(px, N, C, HW, c, shift);
      const auto [mu, var] = kernels::moments_from_shifted_sums(double(shift), sd, sd2, double(M));
      // As PyTorch: a constant channel with eps = 0 is normalised to 0, not to 0 / 0.
      const double is = var == 0.0 && eps == T(0) ? 0.0 : 1.0 / std::sqrt(var + double(eps));
      const auto uc = std::size_t(c);
      batch_var[uc] = var;
      mean_d[uc] = mu;
      invstd[uc] = is;
    });
    if (has_running) {
      const int64_t sm = running_mean.strides()[0], sv = running_var.strides()[0];
      T* rm = running_mean.data();
      T* rv = running_var.data();
      const double m = double(momentum), unbias = double(M) / double(M - 1);
      for (int64_t c = 0; c < C; ++c) {
        const auto uc = std::size_t(c);
        rm[c * sm] = T((1 - m) * double(rm[c * sm]) + m * mean_d[uc]);
        rv[c * sv] = T((1 - m) * double(rv[c * sv]) + m * batch_var[uc] * unbias);
      }
    }
  } else if (!training) {
    const std::vector<double> rm = detail::bn_to_vector(running_mean), rv = detail::bn_to_vector(running_var);
    for (int64_t c = 0; c < C; ++c) {
      const auto uc = std::size_t(c);
      mean_d[uc] = rm[uc];
      invstd[uc] = 1.0 / std::sqrt(rv[uc] + double(eps));
    }
  }
  for (std::size_t c = 0; c < uC; ++c) {
    mean[c] = T(mean_d[c]);
    scale[c] = T(invstd[c] * w[c]);
  }
  kernels::parallel_for(C, xv.numel(), [&](int64_t c) {
    const auto uc = std::size_t(c);
    // y = (x - mean) * scale + bias, where x - mean rounded to T is exact for x near the mean; the shift
    // absorbs the rounding of the mean, so a mean far from zero costs no precision.
    const T mu = mean[uc], a = scale[uc], shift = T(b[uc] + (double(mu) - mean_d[uc]) * invstd[uc] * w[uc]);
    for (int64_t n = 0; n < N; ++n) {
      const T* xr = px + (n * C + c) * HW;
      T* yr = py + (n * C + c) * HW;
#pragma omp simd
      for (int64_t i = 0; i < HW; ++i) yr[i] = (xr[i] - mu) * a + shift;
    }
  });

  const bool need_x = x.requires_grad(), need_w = has_w && weight.requires_grad(),
             need_b = has_b && bias.requires_grad();
  // The backward pass reads x only for the weight gradient and for training-mode input gradients.
  const bool need_xc = need_w || (need_x && training);
  return Variable<T>::from_op(
      std::move(y), "batch_norm", {x, has_w ? weight : Variable<T>(), has_b ? bias : Variable<T>()},
      [xv = need_xc ? xv : Tensor<T>(), mean_d = std::move(mean_d), mean = std::move(mean),
       invstd = std::move(invstd), scale = std::move(scale), N, C, HW, M, training, need_x, need_w, need_b,
       need_xc](const Tensor<T>& grad) {
        const Tensor<T> gy = grad.contiguous();
        const T* pg = gy.data();
        const T* px = xv.data();
        Tensor<T> gx, gw, gb;
        if (need_x) gx = Tensor<T>::empty(gy.shape());
        if (need_w) gw = Tensor<T>::empty({C});
        if (need_b) gb = Tensor<T>::empty({C});
        // Training mode differentiates through the batch statistics too: with xhat = (x - mean) * invstd,
        // gx = weight * invstd * (gy - mean(gy) - xhat * mean(gy * xhat)).
        kernels::parallel_for(C, gy.numel(), [&](int64_t c) {
          const auto uc = std::size_t(c);
          const T mu = mean[uc];
          const double mu_d = mean_d[uc];
          double sum_g = 0, sum_gxc = 0;  // sum(gy), sum(gy * (x - mean))
          if (need_xc) {
            for (int64_t n = 0; n < N; ++n) {
              const auto [sg, sgx] =
                  detail::bn_grad_sums(pg + (n * C + c) * HW, px + (n * C + c) * HW, HW, mu);
              sum_g += sg;
              sum_gxc += sgx;
            }
            sum_gxc += (double(mu) - mu_d) * sum_g;  // the sums used the rounded mean
          } else if (need_b) {
            sum_g = detail::bn_channel_sums<false>(pg, N, C, HW, c, T(0)).first;
          }
          const double is = invstd[uc];
          if (need_w) gw.data()[c] = T(sum_gxc * is);
          if (need_b) gb.data()[c] = T(sum_g);
          if (!need_x) return;
          const T a = scale[uc];
          T* out = gx.data();
          if (!training) {  // eval: the statistics are constants
            for (int64_t n = 0; n < N; ++n) {
              const T* gr = pg + (n * C + c) * HW;
              T* o = out + (n * C + c) * HW;
#pragma omp simd
              for (int64_t i = 0; i < HW; ++i) o[i] = gr[i] * a;
            }
            return;
          }
          // x - mean = (x - mu) + (mu - mean): the second term's share moves into the constant c1.
          const double c2d = sum_gxc / double(M) * is * is;
          const T c1 = T(sum_g / double(M) + (double(mu) - mu_d) * c2d), c2 = T(c2d);
          for (int64_t n = 0; n < N; ++n) {
            const T* gr = pg + (n * C + c) * HW;
            const T* xr = px + (n * C + c) * HW;
            T* o = out + (n * C + c) * HW;
#pragma omp simd
            for (int64_t i = 0; i < HW; ++i) o[i] = (gr[i] - c1 - (xr[i] - mu) * c2) * a;
          }
        });
        return std::vector<Tensor<T>>{gx, gw, gb};
      });
}

}  // namespace sumi
