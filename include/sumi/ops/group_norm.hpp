#pragma once
// Group normalisation with autograd, as torch.nn.functional.group_norm: the C channels of an [N, C, *] input
// are split into num_groups groups of C / num_groups consecutive channels, and each (sample, group) is
// normalised by its own mean and (biased) variance over its channels and all their positions, then scaled
// and shifted per channel by weight and bias [C]. With num_groups = C this is instance normalisation.
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

template <class T>
void gn_check(const Shape& x, int64_t num_groups, const Variable<T>& weight, const Variable<T>& bias, T eps) {
  if (x.size() < 2)
    throw std::invalid_argument("group_norm: expected an input of shape [N, C, *], got shape " +
                                shape_str(x));
  if (num_groups <= 0)
    throw std::invalid_argument("group_norm: num_groups must be positive, got " + std::to_string(num_groups) +
                                " (input of shape " + shape_str(x) + ")");
  if (x[1] % num_groups != 0)
    throw std::invalid_argument("group_norm: num_groups " + std::to_string(num_groups) +
                                " does not divide the " + std::to_string(x[1]) +
                                " channels of input of shape " + shape_str(x));
  // As PyTorch, in any mode: a single value in each group over the whole batch would normalise to 0.
  int64_t values = x[0] * (x[1] / num_groups);
  for (std::size_t d = 2; d < x.size(); ++d) values *= x[d];
  if (values == 1)
    throw std::invalid_argument(
        "group_norm: expected more than 1 value per group over the batch (N * C / "
        "num_groups * spatial size), got 1 from input of shape " +
        shape_str(x) + " with " + std::to_string(num_groups) + " groups");
  for (const auto& [what, v] : {std::pair{"weight", &weight}, std::pair{"bias", &bias}})
    if (v->defined() && v->shape() != Shape{x[1]})
      throw std::invalid_argument("group_norm: " + std::string(what) + " of shape " + shape_str(v->shape()) +
                                  " does not match the " + std::to_string(x[1]) +
                                  " channels of input of shape " + shape_str(x) + " (expected [" +
                                  std::to_string(x[1]) + "])");
  if (!(eps >= T(0)))
    throw std::invalid_argument("group_norm: eps " + util::format_round_trip(eps) +
                                " must be >= 0 (input of shape " + shape_str(x) + ")");
}

}  // namespace detail

// y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c], with mean and biased variance per sample and group
// of C / num_groups channels, over those channels and all positions after dimension 1. x is [N, C, *] with
// C divisible by num_groups and N * C / num_groups * spatial size above 1 (as PyTorch, in any mode); weight
// and bias [C] may each be an undefined Variable (no scale / no shift). Statistics and outputs are computed
// in double and rounded to T. eps must be >= 0 (not NaN); as PyTorch, eps = 0 on a constant group gives NaN.
template <class T>
Variable<T> group_norm(const Variable<T>& x, int64_t num_groups, const Variable<T>& weight,
                       const Variable<T>& bias, std::type_identity_t<T> eps = T(1e-5)) {
  x.require_defined("group_norm");
  const Shape& xs = x.shape();
  detail::gn_check(xs, num_groups, weight, bias, eps);
  const bool has_w = weight.defined(), has_b = bias.defined();
  const int64_t N = xs[0], C = xs[1], G = num_groups, D = C / G;  // D channels per group
  int64_t HW = 1;
  for (std::size_t d = 2; d < xs.size(); ++d) HW *= xs[d];
  const int64_t K = D * HW;  // values per (sample, group): one contiguous row
  const int64_t M = N * G;   // rows

  const Tensor<T> xv = x.value().contiguous();
  const Tensor<T> wv = has_w ? weight.value().contiguous() : Tensor<T>();
  const Tensor<T> bv = has_b ? bias.value().contiguous() : Tensor<T>();
  const T* px = xv.data();
  const T* pw = wv.data();
  const T* pb = bv.data();
  Tensor<T> y = Tensor<T>::empty(xs);
  T* py = y.data();
  std::vector<double> mean(std::size_t(K > 0 ? M : 0)), rstd(mean.size());
  if (K > 0)
    kernels::parallel_for(M, xv.numel(), [&](int64_t r) {
      const kernels::Moments m = kernels::moments(px + r * K, K);
      const double mu = m.mean, rs = 1.0 / std::sqrt(m.var + double(eps));
      mean[std::size_t(r)] = mu;
      rstd[std::size_t(r)] = rs;
      const int64_t c0 = r % G * D;
      for (int64_t d = 0; d < D; ++d) {
        // Per channel y = (x - mu) * a (+ bias): the weight and bias only where given.
        const int64_t c = c0 + d;
        const double a = has_w ? rs * double(pw[c]) : rs;
        const T* xr = px + r * K + d * HW;
        T* yr = py + r * K + d * HW;
        if (has_b) {
          const double bc = double(pb[c]);
#pragma omp simd
          for (int64_t i = 0; i < HW; ++i) yr[i] = T((double(xr[i]) - mu) * a + bc);
        } else {
#pragma omp simd
          for (int64_t i = 0; i < HW; ++i) yr[i] = T((double(xr[i]) - mu) * a);
        }
      }
    });

  const bool need_x = x.requires_grad(), need_w = has_w && weight.requires_grad(),
             need_b = has_b && bias.requires_grad();
  return Variable<T>::from_op(
      std::move(y), "group_norm", {x, has_w ? weight : Variable<T>(), has_b ? bias : Variable<T>()},
      [xv = need_x || need_w ? xv : Tensor<T>(), wv = need_x ? wv : Tensor<T>(), has_w,
       mean = std::move(mean), rstd = std::move(rstd), N, C, G, D, HW, K, need_x, need_w,
       need_b](const Tensor<T>& grad) {
        const Tensor<T> gy = grad.contiguous();
        const T* pg = gy.data();
        const T* px = xv.data();
        const T* pw = wv.data();
        const bool need_sxc = need_x || need_w;
        // Per (sample, channel): sum(gy) and sum(gy * (x - mean)), from which every gradient follows.
        const auto NC = std::size_t(N * C);
        std::vector<double> sg(NC), sgx(need_sxc ? NC : 0);
        if (K > 0)
          kernels::parallel_for(N * C, gy.numel(), [&](int64_t nc) {
            const T* g = pg + nc * HW;
            double s1 = 0, s2 = 0;
            if (need_sxc) {
              const double mu = mean[std::size_t(nc / C * G + nc % C / D)];
              const T* xr = px + nc * HW;
#pragma omp simd reduction(+ : s1, s2)
              for (int64_t i = 0; i < HW; ++i) {
                s1 += double(g[i]);
                s2 += double(g[i]) * (double(xr[i]) - mu);
              }
              sgx[std::size_t(nc)] = s2;
            } else {
#pragma omp simd reduction(+ : s1)
              for (int64_t i = 0; i < HW; ++i) s1 += double(g[i]);
            }
            sg[std::size_t(nc)] = s1;
          });
        Tensor<T> gx, gw, gb;
        if (need_w || need_b) {
          // Per channel, the sums over the samples in order (no two channels share a sum).
          if (need_w) gw = Tensor<T>::empty({C});
          if (need_b) gb = Tensor<T>::empty({C});
          for (int64_t c = 0; c < C; ++c) {
            double sw = 0, sb = 0;
            for (int64_t n = 0; n < N; ++n) {
              const auto nc = std::size_t(n * C + c);
              if (need_w && K > 0) sw += sgx[nc] * rstd[std::size_t(n * G + c / D)];
              sb += sg[nc];
            }
            if (need_w) gw.data()[c] = T(sw);
            if (need_b) gb.data()[c] = T(sb);
          }
        }
        if (need_x) {
          gx = Tensor<T>::empty(gy.shape());
          T* out = gx.data();
          // With xhat = (x - mean) * rstd and gw = gy * weight[c] (gy without weight), over each row:
          // gx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)).
          if (K > 0)
            kernels::parallel_for(N * G, gy.numel(), [&](int64_t r) {
              const double mu = mean[std::size_t(r)], rs = rstd[std::size_t(r)];
              const int64_t c0 = r % G * D, nc0 = r / G * C + c0;
              double sum_gw = 0, sum_gw_xc = 0;
              for (int64_t d = 0; d < D; ++d) {
                const auto nc = std::size_t(nc0 + d);
                sum_gw += has_w ? double(pw[c0 + d]) * sg[nc] : sg[nc];
                sum_gw_xc += has_w ? double(pw[c0 + d]) * sgx[nc] : sgx[nc];
              }
              const double c1 = sum_gw / double(K), c2 = sum_gw_xc * rs * rs / double(K);
              for (int64_t d = 0; d < D; ++d) {
                const T* g = pg + r * K + d * HW;
                const T* xr = px + r * K + d * HW;
                T* o = out + r * K + d * HW;
                // gx = rstd * w * gy - rstd * (c1 + (x - mean) * c2), c2 folding in rstd^2 from two xhats.
                const double a = has_w ? rs * double(pw[c0 + d]) : rs;
#pragma omp simd
                for (int64_t i = 0; i < HW; ++i)
                  o[i] = T(a * double(g[i]) - rs * (c1 + (double(xr[i]) - mu) * c2));
              }
            });
        }
        return std::vector<Tensor<T>>{gx, gw, gb};
      });
}

// group_norm without weight and bias.
template <class T>
Variable<T> group_norm(const Variable<T>& x, int64_t num_groups, std::type_identity_t<T> eps = T(1e-5)) {
  return group_norm(x, num_groups, Variable<T>(), Variable<T>(), eps);
}

}  // namespace sumi
