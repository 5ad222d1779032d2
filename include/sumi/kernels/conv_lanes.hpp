#pragma once
// Convolutions of few channels with images in vector lanes.
//
// For layers with few channels and small images (the autoencoder's 1..32 channels, 28x28 down to 3x3) the
// per-image GEMM of conv_gemm.hpp spends most of its time outside the multiply-adds: tiles do not fit the
// small per-image grids, and packing and writing out cost as much as the arithmetic. Here a block of kVec
// images (8 for AVX2, 16 for AVX-512) is interleaved so that one vector holds the same pixel of every image
// of the block: planes[plane][row][col][lane]. Vectorizing over images needs no masks and wastes nothing
// but the widened grid's extra columns, and the same micro-kernels run unchanged: a "column" of the GEMM is
// one pixel of all lanes, so B vector v of a tile is pixel v of the tile.
//
//  forward       direct micro-kernel over the interleaved, zero-padded, stride-phase split input;
//  input grad    per stride phase, direct micro-kernel over the interleaved, zero-padded output grad;
//  weight grad   dot kernel: gy rows and tap rows are contiguous over (pixel, lane), reduced together.
//
// Interleaving and de-interleaving cost about one load and one store per input / output element.
#include <algorithm>
#include <cstdint>

#include "sumi/kernels/conv_epilogue.hpp"
#include "sumi/kernels/conv_gemm.hpp"

namespace sumi::kernels::gemm {

// Whether the lanes path suits the geometry: enough images to fill the lanes, few channels (many channels
// reuse each packed tap often enough for the per-image GEMM), and interleaved planes of modest size.
// Measured (docs/benchmarks.md): all three ops of the autoencoder's 1..32-channel layers; for the DCGAN's
// 1/3 -> 64-channel layer only the forward (max_out_channels = 64), its gradients are as fast or faster
// per image.
template <class KS>
bool prefer_lanes(const Conv2dGeometry& g, int64_t max_out_channels = 32) {
  const int64_t lanes = KS::kVec;
  const PhaseSplit ps = phase_split_for(g);
  const int64_t planes_floats = g.in_channels * ps.planes_per_channel() * ps.plane_size() * lanes;
  return g.batch >= lanes && g.in_channels <= 32 && g.out_channels <= max_out_channels &&
         planes_floats <= 512 * 1024;
}

// Multiply-adds of the lanes input gradient over the real ones: the stride phases' waste times the widened
// grid's (each phase row is computed over the padded output-grad width).
inline double lanes_backward_input_waste(const Conv2dGeometry& g) {
  int64_t lo = 0, hi = g.out_w() - 1;  // columns of the output grad that the phases read
  for (int64_t r = 0; r < std::min(g.stride_w, g.in_w); ++r)
    for (int64_t k = 0; k < g.kernel_w; ++k) {
      const int64_t num = r + g.pad_w - k * g.dilation_w;
      if (floor_div_signed(num, g.stride_w) * g.stride_w != num) continue;
      lo = std::min(lo, num / g.stride_w);
      hi = std::max(hi, ceil_div(g.in_w - r, g.stride_w) - 1 + num / g.stride_w);
    }
  const double widened = double(hi - lo + 1) * double(g.stride_w) / double(g.in_w);
  return phase_gemm_waste(g) * std::max(widened, 1.0);
}

// Interleaving goes straight into padded or phase-split planes: KS::interleave transposes whole images (long
// runs for its register transposes) and stores each pixel's vector where a table puts it. The padding is at
// the same place in every block of images, so each thread zeroes its planes once per call.

// Where each pixel of x [C][h][w] goes in the phase-split planes [C * sh * sw][hs][ws] (see PhaseSplit), in
// pixels; pixels that no tap reads go to `discard`.
inline void phase_split_pixels(const PhaseSplit& s, int64_t channels, int64_t h, int64_t w, int64_t discard,
                               int64_t* pixel) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t ih = 0; ih < h; ++ih)
      for (int64_t iw = 0; iw < w; ++iw) {
        const int64_t r = ih + s.pad_h, q = iw + s.pad_w, u = r / s.sh, v = q / s.sw;
        *pixel++ = u < s.hs && v < s.ws
                       ? ((c * s.sh + r % s.sh) * s.sw + q % s.sw) * s.plane_size() + u * s.ws + v
                       : discard;
      }
}

// Where each pixel of g [C][ho][wo] goes in the zero-padded planes [C][hp][wp], data at (pt, pl).
inline void padded_pixels(int64_t channels, int64_t ho, int64_t wo, int64_t hp, int64_t wp, int64_t pt,
                          int64_t pl, int64_t* pixel) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t u = 0; u < ho; ++u)
      for (int64_t v = 0; v < wo; ++v) *pixel++ = (c * hp + pt + u) * wp + pl + v;
}

// Portable versions of KS::interleave / KS::deinterleave (see conv_avx2.hpp), for kernel sets without them.
template <int kLanes>
struct ScalarLaneMoves {
  static void interleave(const float* src, int64_t img_stride, int64_t count, int64_t n, const int64_t* pixel,
                         float* dst) {
    for (int64_t v = 0; v < n; ++v)
      for (int64_t l = 0; l < kLanes; ++l)
        dst[(pixel ? pixel[v] : v) * kLanes + l] = l < count ? src[l * img_stride + v] : 0.0f;
  }
  static void deinterleave(const float* src, int64_t count, int64_t n, float* dst, int64_t img_stride,
                           const int64_t* pixel, float add = 0.0f, bool relu = false) {
    for (int64_t l = 0; l < count; ++l)
      for (int64_t v = 0; v < n; ++v) {
        float x = src[(pixel ? pixel[v] : v) * kLanes + l];
        if (add != 0.0f || relu) x = conv_epilogue_value(x, add, relu);
        dst[l * img_stride + v] = x;
      }
  }
};

// What a lanes forward needs per call: the tap offsets, where each input pixel goes in the phase-split
// planes and each output pixel comes from on the widened grid, the blocking and the packed weights. The
// tables sit in the calling thread's table workspace.
template <class KS>
struct LanesForwardPlan {
  static constexpr int64_t L = KS::kVec;
  int64_t per_img, M, K, x_img, y_img, wo, ws, wide_q, tap_max, src_floats, ldr;
  bool row_tiles;  // whole register tiles per output row, none on the widened grid's extra columns
  Blocking bl;
  MicroKernel uk;
  const float* ap;
  int64_t *tap_off, *x_pixel, *y_pixel;

  LanesForwardPlan(const Conv2dGeometry& g, const float* w) {
    const int64_t ho = g.out_h();
    wo = g.out_w();
    per_img = ho * wo, M = g.out_channels, K = g.in_channels * g.kernel_h * g.kernel_w;
    x_img = g.in_channels * g.in_h * g.in_w, y_img = M * per_img;
    const PhaseSplit ps = phase_split_for(g);
    const int64_t img_pixels = g.in_channels * ps.planes_per_channel() * ps.plane_size();
    ws = ps.ws, wide_q = ho * ws;  // pixels of the widened grid
    bl = make_blocking<KS>(M, K, wide_q * L);
    uk = micro_kernel_for<KS>(bl.tile, AMode::packed, true);
    // A 3x3 output on planes 4 wide: 3 tiles of 3 pixels instead of 4 over the widened grid.
    row_tiles = ws > wo && wo % bl.tile.nv == 0;
    tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(K + x_img + per_img);
    x_pixel = tap_off + K, y_pixel = x_pixel + x_img;
    forward_tap_offsets(g, ps, tap_off);
    padded_pixels(1, ho, wo, ho, ps.ws, 0, 0, y_pixel);  // output pixel (i, j): (i, j) of the widened grid
    tap_max = *std::max_element(tap_off, tap_off + K);
    for (int64_t k = 0; k < K; ++k) tap_off[k] *= L;  // in floats
    // planes (+ slack read by the widened grid's last tiles); then one pixel for the discarded pixels
    src_floats = std::max(img_pixels * L, round_up(wide_q * L, bl.nr) + (tap_max + 1) * L);
    ldr = round_up(wide_q * L, bl.nr);  // results over the whole widened grid [m][pixel][lane]
    phase_split_pixels(ps, g.in_channels, g.in_h, g.in_w, src_floats / L, x_pixel);
    const int64_t npanels = bl.m_pad / bl.tile.mr;
    float* packed = thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * K);
    // Few channels: the weights are small, the caller packs them (no barrier in the region).
    pack_a_panels(M, K, bl.tile.mr, 0, npanels, packed, [&](int64_t m, int64_t k) { return w[m * K + k]; });
    ap = packed;
  }

  // The block of `count` images whose planes are in src, into y_block (image stride y_img); res holds
  // bl.m_pad * ldr floats.
  void compute_block(const float* src, float* res, const float* bias, int64_t count, float* y_block,
                     bool relu) const {
    if (row_tiles)
      for (int64_t q0 = 0; q0 < wide_q * L; q0 += ws * L)
        gemm_direct_block<KS>(bl, uk, M, K, ap, src, tap_off, q0, wo * L, res + q0, ldr, bias);
    else
      for (int64_t q0 = 0; q0 < wide_q * L; q0 += bl.nc)
        gemm_direct_block<KS>(bl, uk, M, K, ap, src, tap_off, q0, std::min(bl.nc, wide_q * L - q0), res + q0,
                              ldr, bias);
    for (int64_t m = 0; m < M; ++m)
      KS::deinterleave(res + m * ldr, count, per_img, y_block + m * per_img, y_img, y_pixel, 0.0f, relu);
  }
};

template <class KS>
void conv2d_forward_lanes(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                          float* y, bool relu = false) {
  constexpr int64_t L = KS::kVec;
  const LanesForwardPlan<KS> plan(g, w);
  const int64_t blocks = ceil_div(g.batch, L);
  const int nt = threads_for(blocks);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t b0, b1;
    split_range(blocks, tn, t, b0, b1);
    float* res = thread_workspace(WorkspaceSlot::accumulators).get<float>(plan.bl.m_pad * plan.ldr);
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(plan.src_floats + L);
    std::fill(src, src + plan.src_floats, 0.0f);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * L, count = std::min(L, g.batch - n0);
      KS::interleave(x + n0 * plan.x_img, plan.x_img, count, plan.x_img, plan.x_pixel, src);
      plan.compute_block(src, res, bias, count, y + n0 * plan.y_img, relu);
    }
  }
}

// bias (may be null) and relu: the transposed convolution's bias and activation, applied as gx is written.
template <class KS>
void conv2d_backward_input_lanes(const Conv2dGeometry& g, const float* gy, const float* w, float* gx,
                                 const float* bias = nullptr, bool relu = false) {
  constexpr int64_t L = KS::kVec;
  const int64_t ho = g.out_h(), wo = g.out_w();
  const int64_t cin = g.in_channels, cout = g.out_channels, kh = g.kernel_h, kw = g.kernel_w;
  const int64_t in_plane = g.in_h * g.in_w, in_img = cin * in_plane, out_img = cout * ho * wo;

  int64_t* table =
      thread_workspace(WorkspaceSlot::tables)
          .get<int64_t>(DimPhases::table_size(g.stride_h, kh) + DimPhases::table_size(g.stride_w, kw) +
                        cout * kh * kw + 2 * g.stride_h * g.stride_w + 1 + out_img + in_plane);
  const DimPhases dh = make_dim_phases(g.in_h, ho, kh, g.stride_h, g.pad_h, g.dilation_h, table);
  const DimPhases dw = make_dim_phases(g.in_w, wo, kw, g.stride_w, g.pad_w, g.dilation_w,
                                       table + DimPhases::table_size(g.stride_h, kh));
  int64_t* tap_off = table + DimPhases::table_size(g.stride_h, kh) + DimPhases::table_size(g.stride_w, kw);
  int64_t* phase_k0 = tap_off + cout * kh * kw;
  const int64_t nph = g.stride_h * g.stride_w;
  int64_t *gy_pixel = phase_k0 + nph + 1, *res_off = gy_pixel + out_img, *gx_pixel = res_off + nph;
  const int64_t hp = dh.padded, wp = dw.padded, pt = dh.pad_lo, pl = dw.pad_lo;
  padded_pixels(cout, ho, wo, hp, wp, pt, pl, gy_pixel);
  int64_t k_total = 0, kmax = 1;
  for (int64_t ph = 0; ph < nph; ++ph) {
    const int64_t rh = ph / g.stride_w, rw = ph % g.stride_w;
    phase_k0[ph] = k_total;
    int64_t* o = tap_off + k_total;
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t a = 0; a < dh.ntaps[rh]; ++a)
        for (int64_t b = 0; b < dw.ntaps[rw]; ++b)
          *o++ = (co * hp * wp + (dh.off[rh * kh + a] + pt) * wp + dw.off[rw * kw + b] + pl) * L;
    const int64_t k = cout * dh.ntaps[rh] * dw.ntaps[rw];
    k_total += k;
    kmax = std::max(kmax, k);
  }
  phase_k0[nph] = k_total;
  const int64_t tap_max = k_total > 0 ? *std::max_element(tap_off, tap_off + k_total) / L : 0;

  const int64_t M = cin, img_pixels = cout * hp * wp;
  const int64_t wide_q = dh.count[0] * wp;  // phase 0 has the most rows
  const Blocking bl = make_blocking<KS>(M, kmax, wide_q * L);
  const MicroKernel uk = micro_kernel_for<KS>(bl.tile, AMode::packed, true);
  const int64_t npanels = bl.m_pad / bl.tile.mr;
  float* ap =
      thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * std::max<int64_t>(k_total, 1));
  const int64_t blocks = ceil_div(g.batch, L);
  const int64_t src_floats = std::max(img_pixels * L, round_up(wide_q * L, bl.nr) + (tap_max + 1) * L);
  // Per row of results: each phase's grid [i][j < wp][lane] (pixel (i * sh + rh, j * sw + rw) of gx), then
  // a zero pixel for the phases that no tap reaches.
  int64_t ldr = 0;
  for (int64_t ph = 0; ph < nph; ++ph) {
    res_off[ph] = ldr;
    const int64_t rh = ph / g.stride_w, rw = ph % g.stride_w;
    if (phase_k0[ph + 1] > phase_k0[ph] && dw.count[rw] > 0) ldr += round_up(dh.count[rh] * wp * L, bl.nr);
  }
  const int64_t zero_pixel = ldr / L;
  ldr += L;
  for (int64_t ih = 0; ih < g.in_h; ++ih)
    for (int64_t iw = 0; iw < g.in_w; ++iw) {
      const int64_t ph = ih % g.stride_h * g.stride_w + iw % g.stride_w;
      gx_pixel[ih * g.in_w + iw] = phase_k0[ph + 1] > phase_k0[ph]
                                       ? res_off[ph] / L + ih / g.stride_h * wp + iw / g.stride_w
                                       : zero_pixel;
    }
  const int nt = threads_for(blocks);

  for (int64_t ph = 0; ph < nph; ++ph) {  // few channels: small weights, packed by the caller
    const int64_t rh = ph / g.stride_w, rw = ph % g.stride_w, na = dh.ntaps[rh], nb = dw.ntaps[rw];
    if (na * nb > 0)
      pack_phase_weights(w, cin, cout, kh, kw, dh.tap + rh * kh, na, dw.tap + rw * kw, nb, bl.tile.mr, 0,
                         npanels, ap + bl.m_pad * phase_k0[ph]);
  }

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t b0, b1;
    split_range(blocks, tn, t, b0, b1);
    float* res = thread_workspace(WorkspaceSlot::accumulators).get<float>(bl.m_pad * ldr);
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(src_floats);
    std::fill(src, src + src_floats, 0.0f);
    for (int64_t m = 0; m < M; ++m) std::fill_n(res + m * ldr + zero_pixel * L, L, 0.0f);
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t n0 = blk * L, count = std::min(L, g.batch - n0);
      KS::interleave(gy + n0 * out_img, out_img, count, out_img, gy_pixel, src);
      for (int64_t ph = 0; ph < nph; ++ph) {
        const int64_t K = phase_k0[ph + 1] - phase_k0[ph], q_end = dh.count[ph / g.stride_w] * wp * L;
        if (K == 0 || dw.count[ph % g.stride_w] == 0) continue;
        for (int64_t q0 = 0; q0 < q_end; q0 += bl.nc)
          gemm_direct_block<KS>(bl, uk, M, K, ap + bl.m_pad * phase_k0[ph], src, tap_off + phase_k0[ph], q0,
                                std::min(bl.nc, q_end - q0), res + res_off[ph] + q0, ldr, nullptr);
      }
      for (int64_t ci = 0; ci < cin; ++ci)
        KS::deinterleave(res + ci * ldr, count, in_plane, gx + n0 * in_img + ci * in_plane, in_img, gx_pixel,
                         bias ? bias[ci] : 0.0f, relu);
    }
  }
}

// Input gradient by col2im in lanes, for layers whose stride phases would waste too much (the
// autoencoder's 7x7 -> 3x3 layer): per block of images, C [(ci, ki, kj)][pixel][lane] = W^T gy by the direct
// micro-kernel over the interleaved gy (an exact GEMM: no phases, no widened grid), then each row of C is
// added into the interleaved gx at its kernel offset, one vector (a pixel of every lane) at a time.
template <class KS>
void conv2d_backward_input_lanes_col2im(const Conv2dGeometry& g, const float* gy, const float* w, float* gx,
                                        const float* bias = nullptr, bool relu = false) {
  constexpr int64_t L = KS::kVec;
  const int64_t ho = g.out_h(), wo = g.out_w(), per_img = ho * wo;
  const int64_t cin = g.in_channels, cout = g.out_channels, khw = g.kernel_h * g.kernel_w;
  const int64_t M = cin * khw, K = cout, in_plane = g.in_h * g.in_w, in_img = cin * in_plane;
  const int64_t out_img = cout * per_img;
  const Blocking bl = make_blocking<KS>(M, K, per_img * L);
  const MicroKernel uk = micro_kernel_for<KS>(bl.tile, AMode::packed, true);
  const int64_t npanels = bl.m_pad / bl.tile.mr;
  // tables: rows of B (gy channels) in the interleaved gy; per row m of C its kernel position
  int64_t* tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(K + 2 * M);
  int64_t *m_dh = tap_off + K, *m_dw = m_dh + M;
  for (int64_t co = 0; co < cout; ++co) tap_off[co] = co * per_img * L;
  for (int64_t m = 0; m < M; ++m)
    m_dh[m] = m % khw / g.kernel_w * g.dilation_h - g.pad_h,
    m_dw[m] = m % g.kernel_w * g.dilation_w - g.pad_w;
  float* ap = thread_workspace(WorkspaceSlot::packed_weights).get<float>(bl.m_pad * K);
  pack_a_panels(M, K, bl.tile.mr, 0, npanels, ap, [&](int64_t m, int64_t co) { return w[co * M + m]; });
  const int64_t blocks = ceil_div(g.batch, L);
  const int64_t src_floats = out_img * L + round_up(per_img * L, bl.nr);  // + slack read by the last tile
  const int nt = threads_for(blocks);

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t b0, b1;
    split_range(blocks, omp_get_num_threads(), omp_get_thread_num(), b0, b1);
    float* cst = thread_workspace(WorkspaceSlot::accumulators).get<float>(bl.m_pad * bl.nc + in_img * L);
    float* out = cst + bl.m_pad * bl.nc;  // interleaved input grad [ci][ih][iw][lane]
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(src_floats);
    std::fill(src + out_img * L, src + src_floats, 0.0f);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * L, count = std::min(L, g.batch - n0);
      KS::interleave(gy + n0 * out_img, out_img, count, out_img, nullptr, src);
      std::fill(out, out + in_img * L, 0.0f);
      for (int64_t q0 = 0; q0 < per_img * L; q0 += bl.nc) {
        const int64_t nq = std::min(bl.nc, per_img * L - q0);
        gemm_direct_block<KS>(bl, uk, M, K, ap, src, tap_off, q0, nq, cst, bl.nc, nullptr);
        const int64_t p0 = q0 / L, p1 = (q0 + nq) / L;
        for (int64_t m = 0; m < M; ++m) {
          float* plane = out + m / khw * in_plane * L;
          const float* c = cst + m * bl.nc - q0;
          int64_t oh = p0 / wo, ow = p0 % wo;  // pixel p of gy
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t ih = oh * g.stride_h + m_dh[m], iw = ow * g.stride_w + m_dw[m];
            if (ih >= 0 && ih < g.in_h && iw >= 0 && iw < g.in_w) {
              float* __restrict d = plane + (ih * g.in_w + iw) * L;
              const float* __restrict cp = c + p * L;
#pragma omp simd
              for (int64_t l = 0; l < L; ++l) d[l] += cp[l];
            }
            if (++ow == wo) ow = 0, ++oh;
          }
        }
      }
      for (int64_t ci = 0; ci < cin; ++ci)
        KS::deinterleave(out + ci * in_plane * L, count, in_plane, gx + n0 * in_img + ci * in_plane, in_img,
                         nullptr, bias ? bias[ci] : 0.0f, relu);
    }
  }
}

// The dot kernel's R x J tile goes over (Cout, taps) or (taps, Cout), whichever wastes fewer products:
// 8 channels x 9 taps fill 3 x 4 tiles exactly as (taps, Cout) and only 2/3 of them as (Cout, taps).
template <class KS>
bool lanes_taps_as_rows(int64_t taps, int64_t cout) {
  constexpr int64_t R = KS::kDotRows, J = KS::kDotCols;
  return round_up(taps, R) * round_up(cout, J) < round_up(cout, R) * round_up(taps, J);
}

// One group of blocks' share of the weight gradient: part [taps][Cout] (taps_as_rows) or [Cout][taps]
// (+)= the dot products of each tap's row of the planes in src (at tap_off[k]) with each channel's gy row.
// gy is compact, [Cout][rows][row_len] from gyw; the taps' rows lie on the widened grid, `tap_row` floats
// per output row, so the dot products run output row by output row and skip the widened grid's extra
// columns (a 7x7 output on planes 8 wide would spend 1/8 of its products on them, a 3x3 one on planes 4
// wide 1/4).
template <class KS>
void lanes_weight_dots(bool taps_as_rows, int64_t taps, int64_t cout, int64_t rows, int64_t row_len,
                       int64_t tap_row, const float* src, const int64_t* tap_off, const float* gyw,
                       float* part, bool accumulate) {
  constexpr int64_t R = KS::kDotRows, J = KS::kDotCols;
  const int64_t gy_len = rows * row_len;
  DotRuns runs{.len = row_len, .count = rows, .a_step = row_len, .b_step = tap_row};
  if (taps_as_rows) {
    std::swap(runs.a_step, runs.b_step);
    for (int64_t k = 0; k < taps; k += R)
      for (int64_t co = 0; co < cout; co += J)
        KS::kDot(runs, src, 0, tap_off + k, gyw + co * gy_len, gy_len, nullptr, part + k * cout + co, cout,
                 int(std::min(R, taps - k)), int(std::min(J, cout - co)), accumulate);
  } else {
    for (int64_t co = 0; co < cout; co += R)
      for (int64_t k = 0; k < taps; k += J)
        KS::kDot(runs, gyw + co * gy_len, gy_len, nullptr, src, 0, tap_off + k, part + co * taps + k, taps,
                 int(std::min(R, cout - co)), int(std::min(J, taps - k)), accumulate);
  }
}

// gw [Cout][M] (and gbias from tap M, when taps > M) as the sum of the team's parts (null: no blocks).
// Few channels: small partial sums, added up by the caller (no barrier in the region).
inline void lanes_weight_reduce(float* const* parts, int team, bool taps_as_rows, int64_t cout, int64_t taps,
                                int64_t M, float* gw, float* gbias) {
  for (int64_t co = 0; co < cout; ++co)
    for (int64_t k = 0; k < taps; ++k) {
      const int64_t at = taps_as_rows ? k * cout + co : co * taps + k;
      float s = 0;
      for (int u = 0; u < team; ++u)
        if (parts[u]) s += parts[u][at];
      (k < M ? gw[co * M + k] : gbias[co]) = s;
    }
}

// Blocks of images that the lanes weight gradient interleaves side by side (see below): enough for dot
// products of at least 512 floats, but no more than each thread's share of the blocks.
template <class KS>
int64_t lanes_weight_group_blocks(const Conv2dGeometry& g) {
  constexpr int64_t kMinDotLength = 512;
  const int64_t wide_q = g.out_h() * phase_split_for(g).ws, blocks = ceil_div(g.batch, KS::kVec);
  const int nt = threads_for(blocks);
  return std::clamp<int64_t>(ceil_div(kMinDotLength, wide_q * KS::kVec), 1,
                             std::max<int64_t>(1, blocks / nt));
}

// The bias gradient comes out of the same dot products: one more "tap" whose row is all ones, so each output
// channel's gy row is also summed by the dot kernel's many accumulators (a separate sum loop was a chain of
// dependent additions).
//
// Small grids (the 3x3 outputs of 7x7 -> 3x3 layers: 12 widened pixels) make short dot products, whose
// reduction and setup cost as much as their multiply-adds. Such layers interleave S blocks of images side by
// side, pixel by pixel ([pixel][block][lane], one "pixel" of S * kVec floats), so that one dot product runs
// over all S blocks: the pixel tables are scaled by S and block s is written at lane offset s * kVec.
template <class KS>
void conv2d_backward_weight_lanes(const Conv2dGeometry& g, const float* x, const float* gy, float* gw,
                                  float* gbias) {
  constexpr int64_t L = KS::kVec;
  const int64_t ho = g.out_h(), wo = g.out_w(), per_img = ho * wo;
  const int64_t cout = g.out_channels, M = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t taps = M + (gbias ? 1 : 0);  // tap M: the ones row
  const int64_t x_img = g.in_channels * g.in_h * g.in_w, out_img = cout * per_img;
  const PhaseSplit ps = phase_split_for(g);
  const int64_t img_pixels = g.in_channels * ps.planes_per_channel() * ps.plane_size();
  const int64_t wide_q = ho * ps.ws;  // pixels of the widened grid
  const int64_t blocks = ceil_div(g.batch, L);
  const int nt = threads_for(blocks);
  const int64_t S = lanes_weight_group_blocks<KS>(g);
  const int64_t LS = L * S, gy_len = per_img * LS;  // a channel's gy row: [pixel][block][lane]

  int64_t* tap_off = thread_workspace(WorkspaceSlot::tables).get<int64_t>(taps + x_img + out_img);
  int64_t *x_pixel = tap_off + taps, *gy_pixel = x_pixel + x_img;
  forward_tap_offsets(g, ps, tap_off);
  const int64_t tap_max = *std::max_element(tap_off, tap_off + M);
  for (int64_t k = 0; k < M; ++k) tap_off[k] *= LS;
  float** parts = thread_workspace(WorkspaceSlot::thread_results).get<float*>(nt);
  const int64_t src_floats = std::max(img_pixels * LS, (tap_max + wide_q) * LS);
  // per thread: x's planes, the discarded pixels' slot, gy [Cout][pixel][block][lane], then the ones row
  // (over the widened grid, as the taps' rows)
  const int64_t gy_at = src_floats + LS, ones_at = gy_at + cout * gy_len, ones_len = wide_q * LS;
  if (gbias) tap_off[M] = ones_at;
  phase_split_pixels(ps, g.in_channels, g.in_h, g.in_w, src_floats / LS, x_pixel);
  for (int64_t v = 0; v < x_img; ++v) x_pixel[v] *= S;        // in kVec-float vectors
  for (int64_t v = 0; v < out_img; ++v) gy_pixel[v] = v * S;  // gy compact
  const bool taps_as_rows = lanes_taps_as_rows<KS>(taps, cout);
  int team = 1;

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t b0, b1;  // in groups of S blocks
    split_range(ceil_div(blocks, S), tn, t, b0, b1);
    float* part = thread_workspace(WorkspaceSlot::partial_sums).get<float>(cout * taps);
    parts[t] = b1 > b0 ? part : nullptr;
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(ones_at + ones_len);
    float* gyw = src + gy_at;
    std::fill(src, src + gy_at, 0.0f);  // the planes' padding; gy is written whole
    std::fill(src + ones_at, src + ones_at + ones_len, 1.0f);
    for (int64_t b = b0; b < b1; ++b) {
      for (int64_t s = 0; s < S; ++s) {  // past the batch: count 0, zero lanes
        const int64_t n0 = std::min((b * S + s) * L, g.batch), count = std::min(L, g.batch - n0);
        KS::interleave(x + n0 * x_img, x_img, count, x_img, x_pixel, src + s * L);
        KS::interleave(gy + n0 * out_img, out_img, count, out_img, gy_pixel, gyw + s * L);
      }
      lanes_weight_dots<KS>(taps_as_rows, taps, cout, ho, wo * LS, ps.ws * LS, src, tap_off, gyw, part,
                            b > b0);
    }
    if (t == 0) team = tn;
  }
  lanes_weight_reduce(parts, team, taps_as_rows, cout, taps, M, gw, gbias);
}

// Both gradients of a transposed convolution whose conv geometry is g: gx = conv2d(gout, w) (its input
// gradient) and gw = the conv2d weight gradient for x = gout, gy = xin (its input). Both read gout in the
// same phase-split planes, so each block of images is interleaved once, and used by both while in the
// cache. For geometries whose weight gradient runs over one block at a time (lanes_weight_group_blocks
// == 1).
template <class KS>
void conv_transpose2d_backward_lanes(const Conv2dGeometry& g, const float* gout, const float* xin,
                                     const float* w, float* gx, float* gw) {
  constexpr int64_t L = KS::kVec;
  const int64_t cout = g.out_channels, M = g.in_channels * g.kernel_h * g.kernel_w;
  const int64_t ho = g.out_h(), wo = g.out_w(), out_img = cout * ho * wo;
  const LanesForwardPlan<KS> plan(g, w);
  const bool taps_as_rows = lanes_taps_as_rows<KS>(M, cout);
  const int64_t blocks = ceil_div(g.batch, L);
  const int nt = threads_for(blocks);
  float** parts = thread_workspace(WorkspaceSlot::thread_results).get<float*>(nt);
  // per thread: gout's planes, the discarded pixels' slot, xin [Cout][pixel][lane]
  const int64_t xin_at = plan.src_floats + L;
  int team = 1;

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), tn = omp_get_num_threads();
    int64_t b0, b1;
    split_range(blocks, tn, t, b0, b1);
    float* part = thread_workspace(WorkspaceSlot::partial_sums).get<float>(cout * M);
    parts[t] = b1 > b0 ? part : nullptr;
    float* res = thread_workspace(WorkspaceSlot::accumulators).get<float>(plan.bl.m_pad * plan.ldr);
    float* src = thread_workspace(WorkspaceSlot::source).get<float>(xin_at + out_img * L);
    std::fill(src, src + xin_at, 0.0f);  // the planes' padding; xin is written whole
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t n0 = b * L, count = std::min(L, g.batch - n0);
      KS::interleave(gout + n0 * plan.x_img, plan.x_img, count, plan.x_img, plan.x_pixel, src);
      plan.compute_block(src, res, nullptr, count, gx + n0 * plan.y_img, false);
      KS::interleave(xin + n0 * out_img, out_img, count, out_img, nullptr, src + xin_at);
      lanes_weight_dots<KS>(taps_as_rows, M, cout, ho, wo * L, plan.ws * L, src, plan.tap_off, src + xin_at,
                            part, b > b0);
    }
    if (t == 0) team = tn;
  }
  lanes_weight_reduce(parts, team, taps_as_rows, cout, M, M, gw, nullptr);
}

}  // namespace sumi::kernels::gemm
