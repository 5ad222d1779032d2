#pragma once
// Convolution as implicit GEMM: the ISA-independent half of the fast conv kernels.
//
// Every op becomes C[M x cols] = A[M x K] * B[K x cols] where one operand is gathered on the fly from the
// activations ("implicit": no full im2col matrix is ever built) and a register-tiled micro-kernel (supplied
// per ISA, see conv_avx2.hpp / conv_avx512.hpp) does the multiply-adds:
//
//  forward       M = Cout, K = Cin*Kh*Kw, cols = output pixels; A = weights, B = input taps.
//  input grad    stride-phase split: the input pixels with the same (ih mod stride_h, iw mod stride_w)
//                form a stride-1 correlation of the output grad with a sub-kernel, so each phase is a GEMM
//                (M = Cin, K = Cout * taps of the phase) and writes its pixels once: no col2im scatter.
//                When most phase taps fall outside the output grad (e.g. a 1x1 output and a 4x4 kernel),
//                the col2im form wastes less: M = Cin*Kh*Kw, K = Cout, scatter-added into the input grad.
//  weight grad   M = Cin*Kh*Kw (input taps), cols = Cout (output grad, transposed), reduced over the
//                output pixels; or, with few taps or channels, dot products of gy rows with tap rows.
//                Each thread reduces its images into its own buffer; buffers are summed once at the end.
//
// Other shapes have their own drivers on the same micro-kernels: images in vector lanes for few channels
// (conv_lanes.hpp), matrix products for kernels covering the whole input (conv_dense.hpp); the choice per
// shape is made in conv_algorithms.hpp.
//
// The gathered operand is read from "planes": a zero-padded and, for strided forward convs, stride-phase
// split copy of each image, so that the taps of consecutive output pixels are consecutive in memory and
// gathering them is a plain copy (or, in "direct" mode, no copy at all: the micro-kernel loads the vectors
// straight from the planes over an output grid widened to the plane width, whose extra columns are dropped).
//
// The micro-kernel contract (MicroKernel below) is all an ISA has to provide; blocking, packing, threading
// and the epilogues live here.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>

#include <omp.h>

#include "sumi/kernels/conv_geometry.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/kernels/workspace.hpp"

namespace sumi::kernels::gemm {

// C[MR][NR] = (accumulate ? C : bias-or-0) + sum over k < kc of A(r, k) * B(k, 0..NR-1), with
//   A(r, k) = a[k*MR + r]          for packed A (AMode::packed; lda unused)
//           = a[r*lda + k]         for row-major A (AMode::rows)
//   B row k = b + k*NR             (packed, aligned to the vector size) when boff is null,
//           = b + boff[k]          (direct, unaligned) otherwise;
//   C row r = c + r*ldc (NR floats, any alignment); only rows r < `rows` are read and written;
//   bias: null, or bias[r] starts row r when not accumulating.
using MicroKernel = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, const int64_t* boff,
                             float* c, int64_t ldc, int rows, bool accumulate, const float* bias);

// The extent of the dot kernel's products: `count` runs of `len` floats; run s of a row of A (of B) starts
// s * a_step (s * b_step) floats after its first. One run is a plain dot product of len floats; one run per
// output row skips the columns that a widened grid has past the output's width (see conv_lanes.hpp).
struct DotRuns {
  int64_t len = 0, count = 1, a_step = 0, b_step = 0;
};

// C[r][j] (+)= sum over s < runs.count, t < runs.len of A_r[s * a_step + t] * B_j[s * b_step + t] for
// r < rows <= kDotRows, j < cols <= kDotCols, where A_r = a + r*lda, or a + aoff[r] when aoff is not null,
// and B_j = b + j*ldb, or b + boff[j].
using DotKernel = void (*)(const DotRuns& runs, const float* a, int64_t lda, const int64_t* aoff,
                           const float* b, int64_t ldb, const int64_t* boff, float* c, int64_t ldc, int rows,
                           int cols, bool accumulate);

enum class AMode { packed, rows };

// A register tile: mr rows of A times nv vectors of B. eff: relative throughput of the shape (1 = best).
struct TileShape {
  int mr = 0, nv = 0;
  double eff = 1;
};

// What an ISA supplies (see conv_avx2.hpp):
//   static constexpr int kVec;                        floats per vector register
//   static constexpr TileShape kShapes[];             register tiles it implements
//   template <int MR, int NV, AMode AM, bool DIRECT_B>
//   static constexpr MicroKernel kMicroKernel;        the kernel of each of those tiles
//   static constexpr int kDotRows, kDotCols;  static constexpr DotKernel kDot;

namespace detail {
template <class KS, int MR, int NV>
MicroKernel micro_kernel_of(AMode am, bool direct_b) {
  if (am == AMode::packed)
    return direct_b ? KS::template kMicroKernel<MR, NV, AMode::packed, true>
                    : KS::template kMicroKernel<MR, NV, AMode::packed, false>;
  return direct_b ? KS::template kMicroKernel<MR, NV, AMode::rows, true>
                  : KS::template kMicroKernel<MR, NV, AMode::rows, false>;
}
template <class KS, std::size_t... I>
MicroKernel micro_kernel_among(TileShape s, AMode am, bool direct_b, std::index_sequence<I...>) {
  MicroKernel found = nullptr;
  (void)((s.mr == KS::kShapes[I].mr && s.nv == KS::kShapes[I].nv &&
          (found = micro_kernel_of<KS, KS::kShapes[I].mr, KS::kShapes[I].nv>(am, direct_b))) ||
         ...);
  return found;
}
}  // namespace detail

// KS's micro-kernel for tile `s`, which must be one of KS::kShapes (choose_tile picks only those); the
// template instances come from kShapes itself, so a listed shape always has its kernel.
template <class KS>
MicroKernel micro_kernel_for(TileShape s, AMode am, bool direct_b) {
  const MicroKernel k =
      detail::micro_kernel_among<KS>(s, am, direct_b, std::make_index_sequence<std::size(KS::kShapes)>{});
  if (!k)
    throw std::logic_error("conv kernels: no " + std::to_string(s.mr) + "x" + std::to_string(s.nv) +
                           " register tile in this kernel set");
  return k;
}

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
inline int64_t round_up(int64_t a, int64_t b) {
  return ceil_div(a, b) * b;
}
// floor and ceil of a / b for b > 0 and any sign of a
inline int64_t floor_div_signed(int64_t a, int64_t b) {
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
inline int64_t ceil_div_signed(int64_t a, int64_t b) {
  return -floor_div_signed(-a, b);
}

// Cheapest register tile for M rows and (roughly) cols columns: padding waste over efficiency.
template <class KS>
TileShape choose_tile(int64_t m, int64_t cols) {
  TileShape best{};
  double best_cost = 0;
  for (const TileShape& s : KS::kShapes) {
    const int64_t nr = int64_t(s.nv) * KS::kVec;
    const double cost = double(round_up(m, s.mr)) * double(round_up(std::max<int64_t>(cols, 1), nr)) / s.eff;
    if (best.mr == 0 || cost < best_cost) best = s, best_cost = cost;
  }
  return best;
}

// The gathered operand: per image, a stack of planes of width `row_stride`; output pixel (i, j) of tap k
// reads base[n * img_stride + i * row_stride + j + tap_off[k]].
struct Planes {
  const float* base = nullptr;
  int64_t img_stride = 0;
  int64_t row_stride = 0;
  const int64_t* tap_off = nullptr;
};

// Calls f(local_col, n, i, j, len) for the runs of consecutive j (one output row of one image) that make up
// columns [c0, c0 + nc) of a batch of rows x cols grids; runs are also cut at multiples of `split` (if > 0)
// counted from c0.
template <class F>
inline void for_each_run(int64_t c0, int64_t nc, int64_t rows, int64_t cols, int64_t split, F&& f) {
  const int64_t per_img = rows * cols;
  int64_t n = c0 / per_img, rem = c0 % per_img;
  int64_t i = rem / cols, j = rem % cols;
  for (int64_t lc = 0; lc < nc;) {
    int64_t len = std::min(cols - j, nc - lc);
    if (split > 0) len = std::min(len, split - lc % split);
    f(lc, n, i, j, len);
    lc += len;
    j += len;
    if (j == cols) {
      j = 0;
      if (++i == rows) i = 0, ++n;
    }
  }
}

// Copies n floats. Many short rows are copied per image; constant-size pieces (the last one overlapping)
// compile to a few vector moves where a memcpy call per row would cost more than the copy.
inline void copy_floats(const float* src, int64_t n, float* dst) {
  if (n >= 8) {
    for (int64_t t = 0; t + 8 < n; t += 8) std::memcpy(dst + t, src + t, 32);
    std::memcpy(dst + n - 8, src + n - 8, 32);
  } else if (n >= 4) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + n - 4, src + n - 4, 16);
  } else {
    for (int64_t t = 0; t < n; ++t) dst[t] = src[t];
  }
}

// Copies kc rows of `len` floats, row k from src + off[k], to dst + k * dst_stride.
inline void copy_tap_rows(const float* src, const int64_t* off, int64_t kc, int64_t len, float* dst,
                          int64_t dst_stride) {
  switch (len) {  // constant sizes become a few vector moves
    case 16:
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * dst_stride, src + off[k], 64);
      break;
    case 8:
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * dst_stride, src + off[k], 32);
      break;
    case 4:
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * dst_stride, src + off[k], 16);
      break;
    case 1:
      for (int64_t k = 0; k < kc; ++k) dst[k * dst_stride] = src[off[k]];
      break;
    default:
      if (len >= 8) {  // 8-float pieces, the last one overlapping
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + off[k];
          float* d = dst + k * dst_stride;
          for (int64_t t = 0; t + 8 < len; t += 8) std::memcpy(d + t, s + t, 32);
          std::memcpy(d + len - 8, s + len - 8, 32);
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          const float* s = src + off[k];
          float* d = dst + k * dst_stride;
          for (int64_t t = 0; t < len; ++t) d[t] = s[t];
        }
      }
  }
}

// Packs taps [k0, k0 + kc) of columns [c0, c0 + nc) as [tile][kc][nr] (lanes past nc zeroed).
inline void pack_b_taps(const Planes& p, int64_t rows, int64_t cols, int64_t k0, int64_t kc, int64_t c0,
                        int64_t nc, int64_t nr, float* bp) {
  if (nc % nr) {
    const int64_t lane0 = nc % nr;
    float* t = bp + (nc / nr) * kc * nr;
    for (int64_t k = 0; k < kc; ++k) std::fill(t + k * nr + lane0, t + (k + 1) * nr, 0.0f);
  }
  for_each_run(c0, nc, rows, cols, nr, [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
    const float* s = p.base + n * p.img_stride + i * p.row_stride + j;
    copy_tap_rows(s, p.tap_off + k0, kc, len, bp + (lc / nr) * kc * nr + lc % nr, nr);
  });
}

// Packs rows [m0, m0 + mr * npanels) of A(m, k), k < K, as [panel][K][mr], rows past m_total zeroed.
template <class Get>
inline void pack_a_panels(int64_t m_total, int64_t K, int mr, int64_t panel0, int64_t panel1, float* ap,
                          Get&& get) {
  for (int64_t p = panel0; p < panel1; ++p) {
    float* d = ap + p * K * mr;
    for (int r = 0; r < mr; ++r) {
      const int64_t m = p * mr + r;
      if (m < m_total)
        for (int64_t k = 0; k < K; ++k) d[k * mr + r] = get(m, k);
      else
        for (int64_t k = 0; k < K; ++k) d[k * mr + r] = 0.0f;
    }
  }
}

// Packs the weights of one stride phase as A[ci][(co, a, b)] = w[co][ci][tap_h[a]][tap_w[b]], in panels
// [panel][K][mr] (rows past cin zero), for panels [panel0, panel1). Division-free, reads mr neighbouring ci.
inline void pack_phase_weights(const float* w, int64_t cin, int64_t cout, int64_t kh, int64_t kw,
                               const int64_t* tap_h, int64_t na, const int64_t* tap_w, int64_t nb, int mr,
                               int64_t panel0, int64_t panel1, float* ap) {
  const int64_t K = cout * na * nb;
  for (int64_t p = panel0; p < panel1; ++p) {
    float* d = ap + p * K * mr;
    const int64_t rows = std::min<int64_t>(mr, cin - p * mr);
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t a = 0; a < na; ++a)
        for (int64_t b = 0; b < nb; ++b, d += mr) {
          const float* src = w + ((co * cin + p * mr) * kh + tap_h[a]) * kw + tap_w[b];
          for (int64_t r = 0; r < rows; ++r) d[r] = src[r * kh * kw];
          for (int64_t r = rows; r < mr; ++r) d[r] = 0.0f;
        }
  }
}

// Where a GEMM's rows and columns go: out[n][m][i * row_mul + row_add][j * col_mul + col_add] (+ bias[m]).
struct StoreMap {
  float* out = nullptr;
  int64_t img_stride = 0, ch_stride = 0, row_stride = 0;
  int64_t row_mul = 1, row_add = 0, col_mul = 1, col_add = 0;
  const float* bias = nullptr;
};

inline void store_run(const StoreMap& s, int64_t m_count, const float* c, int64_t ldc, int64_t lc, int64_t n,
                      int64_t i, int64_t j, int64_t len) {
  float* base =
      s.out + n * s.img_stride + (i * s.row_mul + s.row_add) * s.row_stride + j * s.col_mul + s.col_add;
  for (int64_t m = 0; m < m_count; ++m) {
    const float* src = c + m * ldc + lc;
    float* dst = base + m * s.ch_stride;
    const float b = s.bias ? s.bias[m] : 0.0f;
    if (s.col_mul == 1)
      for (int64_t t = 0; t < len; ++t) dst[t] = src[t] + b;
    else
      for (int64_t t = 0; t < len; ++t) dst[t * s.col_mul] = src[t] + b;
  }
}

constexpr int64_t kMaxTilesPerBlock = 64;  // column tiles per block

// Blocking of one column GEMM (sizes in floats / elements).
struct Blocking {
  TileShape tile;
  int64_t nr = 0;     // columns per register tile
  int64_t m_pad = 0;  // M rounded up to mr
  int64_t kc = 0;     // reduction block
  int64_t mc = 0;     // rows per A block (multiple of mr)
  int64_t nc = 0;     // columns per block (multiple of nr)
};

// Reduction depth at which a B micro-panel (kc x nr) stays in L1.
inline int64_t l1_panel_depth(int64_t nr) {
  return std::max<int64_t>(64, 6144 / nr);
}

// Block sizes: the B micro-panel (kc x nr) stays in L1, the A block (mc x kc) in L2.
template <class KS>
Blocking make_blocking(int64_t M, int64_t K, int64_t cols_hint) {
  Blocking b;
  b.tile = choose_tile<KS>(M, cols_hint);
  b.nr = int64_t(b.tile.nv) * KS::kVec;
  b.m_pad = round_up(M, b.tile.mr);
  const int64_t kc_max = l1_panel_depth(b.nr);
  b.kc = ceil_div(K, ceil_div(K, kc_max));
  const int64_t a_block_floats = 96 * 1024;  // 384 KB
  b.mc = std::max<int64_t>(b.tile.mr, a_block_floats / std::max<int64_t>(b.kc, 1) / b.tile.mr * b.tile.mr);
  b.mc = std::min(b.mc, b.m_pad);
  b.nc = round_up(
      std::clamp<int64_t>(64 * 1024 / b.m_pad, b.nr, std::min<int64_t>(512, kMaxTilesPerBlock * b.nr)), b.nr);
  return b;
}

// Where a register tile's rows go: c + r * ldc.
struct TileDest {
  float* c = nullptr;
  int64_t ldc = 0;
};

// Columns [c0, c0 + nc) of a packed-B column GEMM over all K; tile jr's result goes to dest[jr].
// bias (may be null): per-row start values, rows m < M.
template <class KS>
void gemm_packed_block(const Blocking& bl, MicroKernel uk, int64_t M, int64_t K, const float* ap,
                       const Planes& src, int64_t rows, int64_t cols, int64_t c0, int64_t nc, float* bp,
                       const TileDest* dest, const float* bias) {
  const int64_t mr = bl.tile.mr, nr = bl.nr, ntiles = ceil_div(nc, nr);
  for (int64_t pc = 0; pc < K; pc += bl.kc) {
    const int64_t kc = std::min(bl.kc, K - pc);
    pack_b_taps(src, rows, cols, pc, kc, c0, nc, nr, bp);
    for (int64_t ic = 0; ic < bl.m_pad; ic += bl.mc) {
      const int64_t mc = std::min(bl.mc, bl.m_pad - ic);
      for (int64_t jr = 0; jr < ntiles; ++jr)
        for (int64_t ir = ic; ir < ic + mc; ir += mr)
          uk(kc, ap + (ir / mr) * K * mr + pc * mr, 0, bp + jr * kc * nr, nullptr,
             dest[jr].c + ir * dest[jr].ldc, dest[jr].ldc, int(std::min(mr, M - ir)), pc > 0,
             pc == 0 && bias ? bias + ir : nullptr);
    }
  }
}

// Same with B read straight from the planes of one image over a grid widened to the plane width:
// columns q in [q0, q0 + nq) are pixels (q / row_stride, q % row_stride). Result in cst [m_pad][ldc].
template <class KS>
void gemm_direct_block(const Blocking& bl, MicroKernel uk, int64_t M, int64_t K, const float* ap,
                       const float* img, const int64_t* tap_off, int64_t q0, int64_t nq, float* cst,
                       int64_t ldc, const float* bias) {
  const int64_t mr = bl.tile.mr, nr = bl.nr, ntiles = ceil_div(nq, nr);
  for (int64_t jr = 0; jr < ntiles; ++jr)
    for (int64_t ir = 0; ir < bl.m_pad; ir += mr)
      uk(K, ap + (ir / mr) * K * mr, 0, img + q0 + jr * nr, tap_off, cst + ir * ldc + jr * nr, ldc,
         int(std::min(mr, M - ir)), false, bias ? bias + ir : nullptr);
}

// The runs of valid pixels among widened-grid columns [q0, q0 + nq) (grid rows x row_stride, valid j < cols).
template <class F>
inline void for_each_direct_run(int64_t q0, int64_t nq, int64_t rows, int64_t cols, int64_t row_stride,
                                F&& f) {
  for (int64_t i = q0 / row_stride; i < rows && i * row_stride < q0 + nq; ++i) {
    const int64_t a = std::max(q0, i * row_stride), e = std::min(q0 + nq, i * row_stride + cols);
    if (e > a) f(a - q0, i, a - i * row_stride, e - a);
  }
}

// ---- Source planes ---------------------------------------------------------------------------------------

// Zero-padded, stride-phase split copy of one image x[C][H][W]: plane (c, ph, pw) holds rows u < hs, columns
// v < ws of x[c][u * sh + ph - pad_h][v * sw + pw - pad_w] (zero outside x). For stride 1 this is just
// padding; for stride s, tap (kh, kw) of output pixel (i, j) is at plane ((kh*dh) % sh, (kw*dw) % sw), row
// i + (kh*dh) / sh, column j + (kw*dw) / sw, so consecutive j read consecutive floats.
struct PhaseSplit {
  int64_t sh = 1, sw = 1, pad_h = 0, pad_w = 0, hs = 0, ws = 0;
  int64_t planes_per_channel() const { return sh * sw; }
  int64_t plane_size() const { return hs * ws; }
};

inline PhaseSplit phase_split_for(const Conv2dGeometry& g) {
  PhaseSplit s;
  s.sh = g.stride_h, s.sw = g.stride_w, s.pad_h = g.pad_h, s.pad_w = g.pad_w;
  const int64_t need_h = (g.out_h() - 1) * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1;
  const int64_t need_w = (g.out_w() - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1;
  s.hs = ceil_div(need_h, g.stride_h);
  s.ws = ceil_div(need_w, g.stride_w);
  return s;
}

// Writes one image into its phase-split planes. Only the cells that hold pixels of x are written: the
// padding is at the same place for every image, so the caller zeroes the buffer once and it stays zero.
inline void copy_phase_split(const PhaseSplit& s, const float* x, int64_t channels, int64_t h, int64_t w,
                             float* dst) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t ph = 0; ph < s.sh; ++ph)
      for (int64_t pw = 0; pw < s.sw; ++pw) {
        float* plane = dst + ((c * s.sh + ph) * s.sw + pw) * s.plane_size();
        // columns v with 0 <= v * sw + pw - pad_w < w
        const int64_t v0 = std::clamp<int64_t>(ceil_div_signed(s.pad_w - pw, s.sw), 0, s.ws);
        const int64_t v1 = std::clamp<int64_t>(ceil_div_signed(w + s.pad_w - pw, s.sw), v0, s.ws);
        for (int64_t u = 0; u < s.hs; ++u) {
          const int64_t ih = u * s.sh + ph - s.pad_h;
          if (ih < 0 || ih >= h) continue;
          float* d = plane + u * s.ws;
          const float* row = x + (c * h + ih) * w + pw - s.pad_w;
          switch (s.sw) {  // constant strides let the compiler vectorize the gather
            case 1:
              copy_floats(row + v0, v1 - v0, d + v0);
              break;
            case 2:
              for (int64_t v = v0; v < v1; ++v) d[v] = row[2 * v];
              break;
            default:
              for (int64_t v = v0; v < v1; ++v) d[v] = row[v * s.sw];
          }
        }
      }
}

// Tap offsets of the forward conv over phase-split planes, k = (ci, kh, kw).
inline void forward_tap_offsets(const Conv2dGeometry& g, const PhaseSplit& s, int64_t* off) {
  int64_t k = 0;
  for (int64_t ci = 0; ci < g.in_channels; ++ci)
    for (int64_t kh = 0; kh < g.kernel_h; ++kh)
      for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const int64_t rh = kh * g.dilation_h, rw = kw * g.dilation_w;
        const int64_t plane = (ci * s.sh + rh % s.sh) * s.sw + rw % s.sw;
        off[k++] = plane * s.plane_size() + (rh / s.sh) * s.ws + rw / s.sw;
      }
}

// Tap offsets of the forward conv over x itself (stride 1, no padding), k = (ci, kh, kw).
inline void unpadded_tap_offsets(const Conv2dGeometry& g, int64_t* off) {
  int64_t k = 0;
  for (int64_t ci = 0; ci < g.in_channels; ++ci)
    for (int64_t kh = 0; kh < g.kernel_h; ++kh)
      for (int64_t kw = 0; kw < g.kernel_w; ++kw)
        off[k++] = (ci * g.in_h + kh * g.dilation_h) * g.in_w + kw * g.dilation_w;
}

// ---- Threading helpers -----------------------------------------------------------------------------------

inline void split_range(int64_t total, int parts, int part, int64_t& begin, int64_t& end) {
  const int64_t base = total / parts, extra = total % parts;
  begin = part * base + std::min<int64_t>(part, extra);
  end = begin + base + (part < extra ? 1 : 0);
}

// Small packed weights are packed by the calling thread before the parallel region, large ones by all
// threads followed by a barrier; likewise small per-thread partial sums are added up after the region.
// Each synchronization saved matters on a busy machine, where a waiting thread can lose its time slice.
constexpr int64_t kSerialFloats = 128 * 1024;

inline int threads_for(int64_t work_items) {
  return int(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), work_items)));
}

// ---- Forward ---------------------------------------------------------------------------------------------

// Direct mode reads B straight from the planes: worth it when few row panels share each packed tap (packing
// would cost about as much as the multiply-adds) and the widened grid wastes little.
inline bool prefer_direct(const Blocking& direct, int64_t K, int64_t wide_cols, int64_t exact_cols) {
  const int64_t panels = direct.m_pad / direct.tile.mr;
  const int64_t b_tile_bytes = K * direct.nr * 4;
  const bool cheap_waste = wide_cols <= 2 * exact_cols + 64;
  return cheap_waste &&
         ((panels <= 2 && b_tile_bytes <= 256 * 1024) || (panels <= 4 && b_tile_bytes <= 32 * 1024));
}

template <class KS>
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t ho = g.out_h(), wo = g.out_w(), per_img = ho * wo;
  const int64_t M = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t x_img = g.in_channels * g.in_h * g.in_w;
  const PhaseSplit ps = phase_split_for(g);
  const int64_t img_floats = g.in_channels * ps.planes_per_channel() * ps.plane_size();
  const int64_t wide_q = ho * ps.ws;  // widened grid of direct mode

  const Blocking packed = make_blocking<KS>(M, K, g.batch * per_img);
  const Blocking direct = make_blocking<KS>(M, K, wide_q);
  const bool use_direct = prefer_direct(direct, K, wide_q, per_img);
  const Blocking& bl = use_direct ? direct : packed;
  const MicroKernel uk = micro_kernel_for<KS>(bl.tile, AMode::packed, use_direct);
  // Without stride or padding the taps can be gathered from x itself.
  const bool copy_source = use_direct || g.stride_h != 1 || g.stride_w != 1 || g.pad_h != 0 || g.pad_w != 0;

  // Tap offsets and packed weights: the caller's buffers, read by all threads.
  int64_t* tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(K);
  if (copy_source)
    forward_tap_offsets(g, ps, tap_off);
  else
    unpadded_tap_offsets(g, tap_off);
  const int64_t npanels = bl.m_pad / bl.tile.mr;
  float* ap = thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * K);
  const int64_t tap_max = *std::max_element(tap_off, tap_off + K);

  // Images per chunk: enough columns for a block, the chunk's planes at most ~1 MB.
  const int64_t chunk =
      use_direct || !copy_source
          ? 1
          : std::clamp<int64_t>(ceil_div(bl.nc, per_img), 1,
                                std::max<int64_t>(1, (256 * 1024) / std::max<int64_t>(img_floats, 1)));
  const StoreMap sm{y, M * per_img, per_img, wo, 1, 0, 1, 0, nullptr};
  const int nt = threads_for(g.batch);
  const auto pack = [&](int64_t p0, int64_t p1) {
    pack_a_panels(M, K, bl.tile.mr, p0, p1, ap, [&](int64_t m, int64_t k) { return w[m * K + k]; });
  };
  const bool pack_first = bl.m_pad * K <= kSerialFloats;
  if (pack_first) pack(0, npanels);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    if (!pack_first) {
      int64_t p0, p1;
      split_range(npanels, tn, t, p0, p1);
      pack(p0, p1);
#pragma omp barrier
    }
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    float* cst = thread_workspace(WorkspaceSlot::accumulators).get<float>(bl.m_pad * bl.nc);
    if (use_direct) {
      const int64_t slack = std::max<int64_t>(0, round_up(wide_q, bl.nr) + tap_max + 1 - img_floats);
      float* src = thread_workspace(WorkspaceSlot::source).get<float>(img_floats + slack);
      std::fill(src, src + img_floats + slack, 0.0f);  // the padding and slack, for all images
      for (int64_t n = n0; n < n1; ++n) {
        copy_phase_split(ps, x + n * x_img, g.in_channels, g.in_h, g.in_w, src);
        for (int64_t q0 = 0; q0 < wide_q; q0 += bl.nc) {
          const int64_t nq = std::min(bl.nc, wide_q - q0);
          gemm_direct_block<KS>(bl, uk, M, K, ap, src, tap_off, q0, nq, cst, bl.nc, bias);
          for_each_direct_run(q0, nq, ho, wo, ps.ws, [&](int64_t lc, int64_t i, int64_t j, int64_t len) {
            store_run(sm, M, cst, bl.nc, lc, n, i, j, len);
          });
        }
      }
    } else {
      float* bp = thread_workspace(WorkspaceSlot::packed_panel).get<float>(bl.kc * bl.nc);
      float* src =
          copy_source ? thread_workspace(WorkspaceSlot::source).get<float>(chunk * img_floats) : nullptr;
      if (copy_source) std::fill(src, src + chunk * img_floats, 0.0f);  // the padding, for all images
      TileDest dest[kMaxTilesPerBlock];
      bool staged[kMaxTilesPerBlock];
      for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
        const int64_t cn = copy_source ? std::min(chunk, n1 - c0) : n1 - n0;
        Planes p;
        p.tap_off = tap_off;
        if (copy_source) {
          for (int64_t n = 0; n < cn; ++n)
            copy_phase_split(ps, x + (c0 + n) * x_img, g.in_channels, g.in_h, g.in_w, src + n * img_floats);
          p.base = src, p.img_stride = img_floats, p.row_stride = ps.ws;
        } else {
          p.base = x + c0 * x_img, p.img_stride = x_img, p.row_stride = g.in_w;
        }
        const int64_t cols = cn * per_img;
        for (int64_t j0 = 0; j0 < cols; j0 += bl.nc) {
          const int64_t nc = std::min(bl.nc, cols - j0), ntiles = ceil_div(nc, bl.nr);
          // A full tile inside one image is a contiguous piece of each of y's channel rows: store it there.
          bool any_staged = false;
          for (int64_t jr = 0; jr < ntiles; ++jr) {
            const int64_t first = j0 + jr * bl.nr, n = first / per_img, q = first % per_img;
            staged[jr] = jr * bl.nr + bl.nr > nc || q + bl.nr > per_img;
            any_staged |= staged[jr];
            dest[jr] = staged[jr] ? TileDest{cst + jr * bl.nr, bl.nc}
                                  : TileDest{y + (c0 + n) * M * per_img + q, per_img};
          }
          gemm_packed_block<KS>(bl, uk, M, K, ap, p, ho, wo, j0, nc, bp, dest, bias);
          if (any_staged)
            for_each_run(j0, nc, ho, wo, bl.nr,
                         [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
                           if (staged[lc / bl.nr]) store_run(sm, M, cst, bl.nc, lc, c0 + n, i, j, len);
                         });
        }
        if (!copy_source) break;
      }
    }
  }
}

// ---- Input gradient -------------------------------------------------------------------------------------

// The stride phases of one spatial dimension of the input gradient: input index r + s * t (t < count[r])
// receives taps kh = tap[r][a] from output-grad index t + off[r][a], a < ntaps[r].
struct DimPhases {
  int64_t s = 1, kernel = 1;
  int64_t* tap = nullptr;    // [s][kernel]
  int64_t* off = nullptr;    // [s][kernel]
  int64_t* ntaps = nullptr;  // [s]
  int64_t* count = nullptr;  // [s]
  int64_t pad_lo = 0;        // zero rows the output grad needs before it (for negative offsets)
  int64_t padded = 0;        // padded output-grad extent
  static int64_t table_size(int64_t s, int64_t kernel) { return 2 * s * kernel + 2 * s; }
};

inline DimPhases make_dim_phases(int64_t in, int64_t out, int64_t kernel, int64_t s, int64_t pad, int64_t dil,
                                 int64_t* table) {
  DimPhases d;
  d.s = s, d.kernel = kernel;
  d.tap = table, d.off = table + s * kernel, d.ntaps = table + 2 * s * kernel, d.count = d.ntaps + s;
  int64_t lo = 0, hi = out - 1;  // range of output-grad indices read
  for (int64_t r = 0; r < s; ++r) {
    d.count[r] = r < in ? ceil_div(in - r, s) : 0;
    int64_t n = 0;
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t num = r + pad - k * dil;  // = s * (output index - t)
      if (floor_div_signed(num, s) * s != num) continue;
      d.tap[r * kernel + n] = k;
      d.off[r * kernel + n] = num / s;
      ++n;
      if (d.count[r] > 0) {
        lo = std::min(lo, num / s);
        hi = std::max(hi, d.count[r] - 1 + num / s);
      }
    }
    d.ntaps[r] = n;
  }
  d.pad_lo = -lo;
  d.padded = hi - lo + 1;
  return d;
}

// Copies the ho x wo channel planes of src into the interior of padded planes hp x wp (top / left padding
// pt / pl). The padding itself is left alone: the caller zeroes the buffer once, and no image writes there.
inline void copy_into_padded(const float* src, int64_t channels, int64_t ho, int64_t wo, int64_t hp,
                             int64_t wp, int64_t pt, int64_t pl, float* dst) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t u = 0; u < ho; ++u)
      copy_floats(src + (c * ho + u) * wo, wo, dst + (c * hp + pt + u) * wp + pl);
}

// Multiply-adds of the stride-phase GEMMs over the real ones (kernel taps that land inside the output grad).
// Phase GEMMs multiply every tap of a phase, also those that fall outside the output grad; when that is
// much more than the real work (tiny output grad, big kernel) the col2im form can be cheaper (prefer_col2im).
inline double phase_gemm_waste(const Conv2dGeometry& g) {
  const auto dim_sum = [](int64_t in, int64_t kernel, int64_t s, int64_t pad, int64_t dil) {
    double sum = 0;  // sum over phases of (taps of the phase) x (pixels of the phase)
    for (int64_t r = 0; r < std::min(s, in); ++r) {
      int64_t taps = 0;
      for (int64_t k = 0; k < kernel; ++k) {
        const int64_t num = r + pad - k * dil;
        taps += floor_div_signed(num, s) * s == num;
      }
      sum += double(taps) * double(ceil_div(in - r, s));
    }
    return sum;
  };
  const double phase = dim_sum(g.in_h, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h) *
                       dim_sum(g.in_w, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);
  const double real = double(g.out_h() * g.out_w()) * double(g.kernel_h * g.kernel_w);
  return phase / std::max(real, 1.0);
}

// col2im costs its GEMM (the real multiply-adds) plus a scatter-add of every GEMM result, one per
// Cout multiply-adds, at several times the cost of a multiply-add; the phase GEMMs cost the wasted ones.
inline bool prefer_col2im(const Conv2dGeometry& g) {
  return phase_gemm_waste(g) > 2.0 && phase_gemm_waste(g) > 1.0 + 24.0 / double(g.out_channels);
}

template <class KS>
void conv2d_backward_input_col2im(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);

template <class KS>
void conv2d_backward_input(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t ho = g.out_h(), wo = g.out_w();
  const int64_t cin = g.in_channels, cout = g.out_channels, kh = g.kernel_h, kw = g.kernel_w;
  const int64_t in_img = cin * g.in_h * g.in_w;

  int64_t* table =
      thread_workspace(WorkspaceSlot::tables)
          .get<int64_t>(DimPhases::table_size(g.stride_h, kh) + DimPhases::table_size(g.stride_w, kw) +
                        cout * kh * kw + 4 * g.stride_h * g.stride_w + 4);
  const DimPhases dh = make_dim_phases(g.in_h, ho, kh, g.stride_h, g.pad_h, g.dilation_h, table);
  const DimPhases dw = make_dim_phases(g.in_w, wo, kw, g.stride_w, g.pad_w, g.dilation_w,
                                       table + DimPhases::table_size(g.stride_h, kh));
  int64_t* tap_off = table + DimPhases::table_size(g.stride_h, kh) + DimPhases::table_size(g.stride_w, kw);
  int64_t* phase_k0 = tap_off + cout * kh * kw;  // per phase: first tap in tap_off / K offset in A

  if (prefer_col2im(g)) return conv2d_backward_input_col2im<KS>(g, gy, w, gx);
  const int64_t nph = g.stride_h * g.stride_w;
  int64_t kmax = 0, k_total = 0;
  for (int64_t rh = 0; rh < g.stride_h; ++rh)
    for (int64_t rw = 0; rw < g.stride_w; ++rw) {
      const int64_t k = cout * dh.ntaps[rh] * dw.ntaps[rw];
      phase_k0[rh * g.stride_w + rw] = k_total;
      k_total += k;
      kmax = std::max(kmax, k);
    }
  phase_k0[nph] = k_total;

  // Padded output grad: one copy per image serves all phases.
  const int64_t hp = dh.padded, wp = dw.padded, pt = dh.pad_lo, pl = dw.pad_lo;
  const int64_t img_floats = cout * hp * wp;
  for (int64_t rh = 0; rh < g.stride_h; ++rh)
    for (int64_t rw = 0; rw < g.stride_w; ++rw) {
      int64_t* o = tap_off + phase_k0[rh * g.stride_w + rw];
      for (int64_t co = 0; co < cout; ++co)
        for (int64_t a = 0; a < dh.ntaps[rh]; ++a)
          for (int64_t b = 0; b < dw.ntaps[rw]; ++b)
            *o++ = co * hp * wp + (dh.off[rh * kh + a] + pt) * wp + dw.off[rw * kw + b] + pl;
    }
  const int64_t tap_max = k_total > 0 ? *std::max_element(tap_off, tap_off + k_total) : 0;

  const int64_t M = cin;
  const int64_t th_max = dh.count[0], tw_max = dw.count[0];  // phase 0 has the most pixels
  const int64_t wide_q = th_max * wp;
  const Blocking packed = make_blocking<KS>(M, std::max<int64_t>(kmax, 1), g.batch * th_max * tw_max);
  const Blocking direct = make_blocking<KS>(M, std::max<int64_t>(kmax, 1), wide_q);
  const bool use_direct = prefer_direct(direct, kmax, wide_q, th_max * tw_max);
  const Blocking& bl = use_direct ? direct : packed;
  const MicroKernel uk = micro_kernel_for<KS>(bl.tile, AMode::packed, use_direct);
  const int64_t npanels = bl.m_pad / bl.tile.mr;
  float* ap =
      thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * std::max<int64_t>(k_total, 1));
  const int64_t per_img = th_max * tw_max;
  const int64_t chunk =
      use_direct ? 1
                 : std::clamp<int64_t>(ceil_div(bl.nc, std::max<int64_t>(per_img, 1)), 1,
                                       std::max<int64_t>(1, (256 * 1024) / std::max<int64_t>(img_floats, 1)));
  const int nt = threads_for(g.batch);

  const auto pack = [&](int64_t p0, int64_t p1) {  // A of phase (rh, rw): [ci][(co, a, b)]
    for (int64_t ph = 0; ph < nph; ++ph) {
      const int64_t rh = ph / g.stride_w, rw = ph % g.stride_w, na = dh.ntaps[rh], nb = dw.ntaps[rw];
      if (na * nb > 0)
        pack_phase_weights(w, cin, cout, kh, kw, dh.tap + rh * kh, na, dw.tap + rw * kw, nb, bl.tile.mr, p0,
                           p1, ap + bl.m_pad * phase_k0[ph]);
    }
  };
  const bool pack_first = bl.m_pad * k_total <= kSerialFloats;
  if (pack_first) pack(0, npanels);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    if (!pack_first) {
      int64_t p0, p1;
      split_range(npanels, tn, t, p0, p1);
      pack(p0, p1);
#pragma omp barrier
    }
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    float* cst = thread_workspace(WorkspaceSlot::accumulators).get<float>(bl.m_pad * bl.nc);
    float* bp =
        use_direct ? nullptr : thread_workspace(WorkspaceSlot::packed_panel).get<float>(bl.kc * bl.nc);
    TileDest dest[kMaxTilesPerBlock];  // phase pixels are strided in gx: always staged
    for (int64_t jr = 0; jr < bl.nc / bl.nr; ++jr) dest[jr] = TileDest{cst + jr * bl.nr, bl.nc};
    const int64_t slack =
        use_direct ? std::max<int64_t>(0, round_up(wide_q, bl.nr) + tap_max + 1 - img_floats) : 0;
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(chunk * img_floats + slack);
    std::fill(src, src + chunk * img_floats + slack, 0.0f);  // the padding and slack, for all images
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
      const int64_t cn = std::min(chunk, n1 - c0);
      for (int64_t n = 0; n < cn; ++n)
        copy_into_padded(gy + (c0 + n) * cout * ho * wo, cout, ho, wo, hp, wp, pt, pl, src + n * img_floats);
      for (int64_t ph = 0; ph < nph; ++ph) {
        const int64_t rh = ph / g.stride_w, rw = ph % g.stride_w;
        const int64_t rows = dh.count[rh], cols = dw.count[rw];
        if (rows == 0 || cols == 0) continue;
        const int64_t K = phase_k0[ph + 1] - phase_k0[ph];
        const StoreMap sm{gx, in_img, g.in_h * g.in_w, g.in_w, g.stride_h, rh, g.stride_w, rw, nullptr};
        if (K == 0) {  // no tap reaches these pixels
          for (int64_t n = 0; n < cn; ++n)
            for (int64_t ci = 0; ci < cin; ++ci)
              for (int64_t i = 0; i < rows; ++i)
                for (int64_t j = 0; j < cols; ++j)
                  gx[(c0 + n) * in_img + ci * g.in_h * g.in_w + (rh + i * g.stride_h) * g.in_w + rw +
                     j * g.stride_w] = 0;
          continue;
        }
        const float* a = ap + bl.m_pad * phase_k0[ph];
        const int64_t* off = tap_off + phase_k0[ph];
        if (use_direct) {
          const int64_t q_end = rows * wp;
          for (int64_t q0 = 0; q0 < q_end; q0 += bl.nc) {
            const int64_t nq = std::min(bl.nc, q_end - q0);
            gemm_direct_block<KS>(bl, uk, M, K, a, src, off, q0, nq, cst, bl.nc, nullptr);
            for_each_direct_run(q0, nq, rows, cols, wp, [&](int64_t lc, int64_t i, int64_t j, int64_t len) {
              store_run(sm, M, cst, bl.nc, lc, c0, i, j, len);
            });
          }
        } else {
          Planes p;
          p.base = src, p.img_stride = img_floats, p.row_stride = wp, p.tap_off = off;
          Blocking blp = bl;
          blp.kc = ceil_div(K, ceil_div(K, bl.kc));
          const int64_t total = cn * rows * cols;
          for (int64_t j0 = 0; j0 < total; j0 += bl.nc) {
            const int64_t nc = std::min(bl.nc, total - j0);
            gemm_packed_block<KS>(blp, uk, M, K, a, p, rows, cols, j0, nc, bp, dest, nullptr);
            for_each_run(j0, nc, rows, cols, 0,
                         [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
                           store_run(sm, M, cst, bl.nc, lc, c0 + n, i, j, len);
                         });
          }
        }
      }
    }
  }
}

// Input gradient as C[(ci, kh, kw)][output pixels] = W^T * gy, scatter-added into gx (col2im). Used when the
// output grad is small next to the kernel (e.g. 1x1 output grad of a 4x4 kernel) so phases would mostly
// multiply zeros.
template <class KS>
void conv2d_backward_input_col2im(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const int64_t ho = g.out_h(), wo = g.out_w(), per_img = ho * wo;
  const int64_t cin = g.in_channels, cout = g.out_channels, khw = g.kernel_h * g.kernel_w;
  const int64_t M = cin * khw, K = cout, in_img = cin * g.in_h * g.in_w;
  const Blocking bl = make_blocking<KS>(M, K, g.batch * per_img);
  const MicroKernel uk = micro_kernel_for<KS>(bl.tile, AMode::packed, false);
  const int64_t npanels = bl.m_pad / bl.tile.mr;
  // tables: tap offsets of gy; per row m of C its gx offset (channel + kernel position) and kernel position
  int64_t* tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(K + 3 * M);
  int64_t *m_off = tap_off + K, *m_dh = m_off + M, *m_dw = m_dh + M;
  for (int64_t co = 0; co < cout; ++co) tap_off[co] = co * per_img;
  for (int64_t m = 0; m < M; ++m) {
    const int64_t ci = m / khw, ki = m % khw / g.kernel_w, kj = m % g.kernel_w;
    m_dh[m] = ki * g.dilation_h, m_dw[m] = kj * g.dilation_w;
    m_off[m] = (ci * g.in_h + m_dh[m]) * g.in_w + m_dw[m];
  }
  float* ap = thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * K);
  const int nt = threads_for(g.batch);
  const auto pack = [&](int64_t p0, int64_t p1) {
    pack_a_panels(M, K, bl.tile.mr, p0, p1, ap, [&](int64_t m, int64_t co) { return w[co * M + m]; });
  };
  const bool pack_first = bl.m_pad * K <= kSerialFloats;
  if (pack_first) pack(0, npanels);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    if (!pack_first) {
      int64_t p0, p1;
      split_range(npanels, tn, t, p0, p1);
      pack(p0, p1);
#pragma omp barrier
    }
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    if (n1 > n0) {
      std::fill(gx + n0 * in_img, gx + n1 * in_img, 0.0f);
      float* cst = thread_workspace(WorkspaceSlot::accumulators).get<float>(bl.m_pad * bl.nc);
      float* bp = thread_workspace(WorkspaceSlot::packed_panel).get<float>(bl.kc * bl.nc);
      // per column of a block: gx offset of its kernel window's corner, the corner, whether it is inside
      int64_t* col = thread_workspace(WorkspaceSlot::source).get<int64_t>(4 * bl.nc);
      int64_t *col_ih = col + bl.nc, *col_iw = col_ih + bl.nc, *col_in = col_iw + bl.nc;
      TileDest dest[kMaxTilesPerBlock];
      for (int64_t jr = 0; jr < bl.nc / bl.nr; ++jr) dest[jr] = TileDest{cst + jr * bl.nr, bl.nc};
      const int64_t ext_h = (g.kernel_h - 1) * g.dilation_h, ext_w = (g.kernel_w - 1) * g.dilation_w;
      Planes p;
      p.base = gy + n0 * cout * per_img, p.img_stride = cout * per_img, p.row_stride = wo,
      p.tap_off = tap_off;
      const int64_t total = (n1 - n0) * per_img;
      for (int64_t j0 = 0; j0 < total; j0 += bl.nc) {
        const int64_t nc = std::min(bl.nc, total - j0);
        gemm_packed_block<KS>(bl, uk, M, K, ap, p, ho, wo, j0, nc, bp, dest, nullptr);
        bool all_inside = true;
        for_each_run(j0, nc, ho, wo, 0, [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
          for (int64_t u = 0; u < len; ++u) {
            const int64_t ih = i * g.stride_h - g.pad_h, iw = (j + u) * g.stride_w - g.pad_w;
            col_ih[lc + u] = ih, col_iw[lc + u] = iw;
            col[lc + u] = (n0 + n) * in_img + ih * g.in_w + iw;
            col_in[lc + u] = ih >= 0 && iw >= 0 && ih + ext_h < g.in_h && iw + ext_w < g.in_w;
            all_inside &= col_in[lc + u] != 0;
          }
        });
        for (int64_t m = 0; m < M; ++m) {
          const float* c = cst + m * bl.nc;
          const int64_t mo = m_off[m];
          if (all_inside) {
            for (int64_t lc = 0; lc < nc; ++lc) gx[col[lc] + mo] += c[lc];
          } else {
            for (int64_t lc = 0; lc < nc; ++lc) {
              const int64_t ih = col_ih[lc] + m_dh[m], iw = col_iw[lc] + m_dw[m];
              if (col_in[lc] || (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w)) gx[col[lc] + mo] += c[lc];
            }
          }
        }
      }
    }
  }
}

// ---- Weight gradient ------------------------------------------------------------------------------------

// gw[co][(ci, kh, kw)] = sum over images and output pixels of gy[co][pixel] * tap[(ci, kh, kw)][pixel].
// Two forms, both reading taps as rows gathered from the phase-split planes:
//  GEMM  M = Cin*Kh*Kw tap rows (row-major blocks), N = Cout (gy transposed to [pixel][Cout], vectorized),
//        reduced over output pixels of several images at once. Transposing gy costs 1/(Cin*Kh*Kw) of the
//        multiply-adds, so this is the form for the wide layers.
//  dot   for few taps or few output channels: dot products of gy rows with tap rows, vectorized along the
//        pixels of one image, so neither operand is transposed.
// Each thread accumulates its images into its own buffer; the buffers are summed once at the end.
template <class KS>
void conv2d_backward_weight(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                            float* gbias) {
  const int64_t ho = g.out_h(), wo = g.out_w(), per_img = ho * wo;
  const int64_t cout = g.out_channels, M = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t x_img = g.in_channels * g.in_h * g.in_w;
  const PhaseSplit ps = phase_split_for(g);
  const int64_t img_floats = g.in_channels * ps.planes_per_channel() * ps.plane_size();
  const bool use_dot = per_img >= 64 && (M < 64 || cout < 16);

  const TileShape tile = choose_tile<KS>(M, cout);
  const int64_t mr = tile.mr, nr = int64_t(tile.nv) * KS::kVec;
  const int64_t m_pad = round_up(M, mr), n_pad = round_up(cout, nr), npan = n_pad / nr;
  const MicroKernel uk = micro_kernel_for<KS>(tile, AMode::rows, false);
  // Reduction block: the gy^T micro-panel (rc x nr) stays in L1; the tap rows block (kb x rc) in L2.
  const int64_t rc_max = use_dot ? per_img : std::clamp<int64_t>(6144 / nr, 64, 512);
  const int64_t kb =
      use_dot ? std::max<int64_t>(KS::kDotCols, std::min(round_up(M, KS::kDotCols),
                                                         (48 * 1024 / per_img) / KS::kDotCols * KS::kDotCols))
              : std::max<int64_t>(mr, std::min(m_pad, (48 * 1024 / rc_max) / mr * mr));
  // Without stride or padding (and not for dot, which reads one image's planes) the taps come from x itself.
  const bool copy_source = use_dot || g.stride_h != 1 || g.stride_w != 1 || g.pad_h != 0 || g.pad_w != 0;
  // Images per chunk: enough pixels for a reduction block; copied planes at most ~1 MB.
  const int64_t chunk =
      use_dot ? 1
      : copy_source
          ? std::clamp<int64_t>(ceil_div(rc_max, per_img), 1,
                                std::max<int64_t>(1, (256 * 1024) / std::max<int64_t>(img_floats, 1)))
          : ceil_div(rc_max, per_img);
  int64_t* tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(M);
  if (copy_source)
    forward_tap_offsets(g, ps, tap_off);
  else
    unpadded_tap_offsets(g, tap_off);
  const int64_t src_img = copy_source ? img_floats : x_img, src_row = copy_source ? ps.ws : g.in_w;
  const int nt = threads_for(g.batch);
  float** parts = thread_workspace(WorkspaceSlot::thread_results).get<float*>(nt);
  // per thread: the weight grad ([M][Cout] for GEMM, [Cout][M] for dot), then the bias grad
  const int64_t wsum_floats = use_dot ? cout * M : m_pad * n_pad;
  const int64_t part_floats = wsum_floats + n_pad;
  // Sums the threads' buffers into gw[co][k] for k in [k0, k1) (and gbias).
  const auto reduce = [&](int64_t k0, int64_t k1, int team_size, bool with_bias) {
    if (use_dot) {
      for (int64_t co = 0; co < cout; ++co)
        for (int64_t k = k0; k < k1; ++k) {
          float s = 0;
          for (int u = 0; u < team_size; ++u)
            if (parts[u]) s += parts[u][co * M + k];
          gw[co * M + k] = s;
        }
    } else {
      for (int64_t kbk = k0; kbk < k1; kbk += 16) {
        const int64_t ke = std::min(k1, kbk + 16);
        for (int64_t co = 0; co < cout; ++co)
          for (int64_t k = kbk; k < ke; ++k) {
            float s = 0;
            for (int u = 0; u < team_size; ++u)
              if (parts[u]) s += parts[u][k * n_pad + co];
            gw[co * M + k] = s;
          }
      }
    }
    if (gbias && with_bias)
      for (int64_t co = 0; co < cout; ++co) {
        float s = 0;
        for (int u = 0; u < team_size; ++u)
          if (parts[u]) s += parts[u][wsum_floats + co];
        gbias[co] = s;
      }
  };
  const bool reduce_after = wsum_floats * nt <= kSerialFloats;
  int team = 1;

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t n0, n1;
    split_range(g.batch, tn, t, n0, n1);
    float* part = thread_workspace(WorkspaceSlot::partial_sums).get<float>(part_floats);
    parts[t] = n1 > n0 ? part : nullptr;
    float* src_buf =
        copy_source ? thread_workspace(WorkspaceSlot::source).get<float>(chunk * img_floats) : nullptr;
    if (copy_source) std::fill(src_buf, src_buf + chunk * img_floats, 0.0f);  // the padding, for all images
    float* bt = thread_workspace(WorkspaceSlot::packed_panel).get<float>(n_pad * rc_max + kb * rc_max);
    float* at = bt + n_pad * rc_max;  // tap rows block [kb][rc]
    float* gb = part + wsum_floats;
    std::fill(gb, gb + n_pad, 0.0f);
    bool first = true;
    for (int64_t c0 = n0; c0 < n1; c0 += chunk) {
      const int64_t cn = std::min(chunk, n1 - c0);
      const float* src = copy_source ? src_buf : x + c0 * x_img;
      for (int64_t n = 0; n < cn; ++n) {
        if (copy_source)
          copy_phase_split(ps, x + (c0 + n) * x_img, g.in_channels, g.in_h, g.in_w, src_buf + n * img_floats);
        const float* gyn = gy + (c0 + n) * cout * per_img;
        for (int64_t co = 0; co < cout; ++co) {
          float s = 0;
          for (int64_t q = 0; q < per_img; ++q) s += gyn[co * per_img + q];
          gb[co] += s;
        }
      }
      if (use_dot) {  // chunk == 1: one image, reduction over its pixels
        const float* gyn = gy + c0 * cout * per_img;
        for (int64_t k0 = 0; k0 < M; k0 += kb) {
          const int64_t kn = std::min(kb, M - k0);
          for_each_run(0, per_img, ho, wo, 0, [&](int64_t lc, int64_t, int64_t i, int64_t j, int64_t len) {
            copy_tap_rows(src + i * ps.ws + j, tap_off + k0, kn, len, at + lc, per_img);
          });
          for (int64_t co = 0; co < cout; co += KS::kDotRows)
            for (int64_t k = 0; k < kn; k += KS::kDotCols)
              KS::kDot({.len = per_img}, gyn + co * per_img, per_img, nullptr, at + k * per_img, per_img,
                       nullptr, part + co * M + k0 + k, M, int(std::min<int64_t>(KS::kDotRows, cout - co)),
                       int(std::min<int64_t>(KS::kDotCols, kn - k)), !first);
        }
        first = false;
        continue;
      }
      const int64_t total = cn * per_img;
      for (int64_t j0 = 0; j0 < total; j0 += rc_max) {
        const int64_t rc = std::min(rc_max, total - j0);
        // gy^T block: [panel][rc][nr]
        if (cout % nr)
          for (int64_t lc = 0; lc < rc; ++lc)
            std::fill(bt + (npan - 1) * rc * nr + lc * nr + cout % nr,
                      bt + (npan - 1) * rc * nr + (lc + 1) * nr, 0.0f);
        for_each_run(j0, rc, ho, wo, 0, [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
          const float* s = gy + (c0 + n) * cout * per_img + i * wo + j;
          for (int64_t co = 0; co < cout; ++co) {
            float* d = bt + (co / nr) * rc * nr + lc * nr + co % nr;
            const float* sc = s + co * per_img;
            for (int64_t u = 0; u < len; ++u) d[u * nr] = sc[u];
          }
        });
        for (int64_t k0 = 0; k0 < m_pad; k0 += kb) {
          const int64_t kn = std::min(kb, m_pad - k0), kv = std::clamp<int64_t>(M - k0, 0, kn);
          // tap rows block: [kn][rc], rows past M zero
          for_each_run(j0, rc, ho, wo, 0, [&](int64_t lc, int64_t n, int64_t i, int64_t j, int64_t len) {
            copy_tap_rows(src + n * src_img + i * src_row + j, tap_off + k0, kv, len, at + lc, rc);
          });
          for (int64_t r = kv; r < kn; ++r) std::fill(at + r * rc, at + (r + 1) * rc, 0.0f);
          for (int64_t p = 0; p < npan; ++p)
            for (int64_t ir = 0; ir < kn; ir += mr)
              uk(rc, at + ir * rc, rc, bt + p * rc * nr, nullptr, part + (k0 + ir) * n_pad + p * nr, n_pad,
                 int(mr), !first, nullptr);
        }
        first = false;
      }
    }
    if (!reduce_after) {
#pragma omp barrier
      int64_t k0, k1;
      split_range(M, tn, t, k0, k1);
      reduce(k0, k1, tn, t == 0);
    }
    if (t == 0) team = tn;
  }
  if (reduce_after) reduce(0, M, team, true);
}

}  // namespace sumi::kernels::gemm
