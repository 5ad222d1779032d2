// The fast conv kernels (conv.hpp dispatch, conv_gemm.hpp driver, AVX2 / AVX-512 micro-kernels) against
// the scalar reference kernels, evaluated in double.
//
// Tolerance: every output must satisfy max|got - ref| <= 1e-4 * max(1, max|ref|), the max taken over the
// whole output tensor (absolute error scaled by the output's magnitude). All data come from a fixed seed.
// ISAs the CPU lacks are skipped with a WARN (the AVX-512 tests need an AVX-512 machine); the generic driver
// is additionally run with the AVX-512 tile shapes through portable emulated micro-kernels, everywhere.
#include <catch2/catch.hpp>

#include "max_error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "isa_guard.hpp"
#include "peak_memory.hpp"
#include "sumi/kernels/conv.hpp"
#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"
#include "thread_count_guard.hpp"

namespace {

using sumi::kernels::Conv2dGeometry;
using sumi::kernels::Isa;
namespace sk = sumi::kernels;

constexpr double kRelTol = 1e-4;
constexpr uint32_t kSeed = 20240521;

struct Case {
  std::string label;
  Conv2dGeometry g;
  bool bias = true;
};

// Inputs of all three ops and the reference results (in double) for one geometry; y_no_bias is the forward
// without bias, as the transposed convolution's backward computes it.
struct Problem {
  Case c;
  std::vector<float> x, w, b, gy;
  std::vector<double> y, y_no_bias, gx, gw, gb;
};

std::vector<float> random_values(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& e : v) e = d(rng);
  return v;
}

std::vector<double> to_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

Problem make_problem(const Case& c, std::mt19937& rng) {
  Problem p;
  p.c = c;
  const Conv2dGeometry& g = c.g;
  p.x = random_values(g.input_numel(), rng);
  p.w = random_values(g.weight_numel(), rng);
  p.b = random_values(g.out_channels, rng);
  p.gy = random_values(g.output_numel(), rng);
  const auto x = to_double(p.x), w = to_double(p.w), b = to_double(p.b), gy = to_double(p.gy);
  p.y.resize(size_t(g.output_numel()));
  p.gx.resize(size_t(g.input_numel()));
  p.gw.resize(size_t(g.weight_numel()));
  p.gb.resize(size_t(g.out_channels));
  sk::conv2d_forward_reference(g, x.data(), w.data(), c.bias ? b.data() : nullptr, p.y.data());
  p.y_no_bias.resize(size_t(g.output_numel()));
  sk::conv2d_forward_reference(g, x.data(), w.data(), static_cast<const double*>(nullptr),
                               p.y_no_bias.data());
  sk::conv2d_backward_input_reference(g, gy.data(), w.data(), p.gx.data());
  sk::conv2d_backward_weight_reference(g, x.data(), gy.data(), p.gw.data(), c.bias ? p.gb.data() : nullptr);
  return p;
}

// max|got - ref| / max(1, max|ref|)
double scaled_error(const std::vector<float>& got, const std::vector<double>& ref) {
  double err = 0, mag = 1;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = sumi::test::nan_max(err, std::fabs(double(got[i]) - ref[i]));  // NaN: an element never written
    mag = std::max(mag, std::fabs(ref[i]));
  }
  return err / mag;
}

// Outputs start as NaN so that an element a kernel forgets to write fails the comparison.
std::vector<float> poisoned(int64_t n) {
  return std::vector<float>(size_t(n), std::nanf(""));
}

struct Errors {
  double fwd = 0, bwd_in = 0, bwd_w = 0, bwd_b = 0;
  double both_fwd = 0, both_bwd_w = 0;  // transpose_backward: the forward and weight gradient in one call
};

// Runs the three ops through `ops` (an object with forward / backward_input / backward_weight /
// transpose_backward, the last as the transposed convolution's backward calls it: x is its output gradient,
// gy its input).
template <class Ops>
Errors run_ops(const Problem& p, Ops&& ops) {
  const Conv2dGeometry& g = p.c.g;
  Errors e;
  auto y = poisoned(g.output_numel());
  ops.forward(g, p.x.data(), p.w.data(), p.c.bias ? p.b.data() : nullptr, y.data());
  e.fwd = scaled_error(y, p.y);
  auto gx = poisoned(g.input_numel());
  ops.backward_input(g, p.gy.data(), p.w.data(), gx.data());
  e.bwd_in = scaled_error(gx, p.gx);
  auto gw = poisoned(g.weight_numel()), gb = poisoned(g.out_channels);
  ops.backward_weight(g, p.x.data(), p.gy.data(), gw.data(), p.c.bias ? gb.data() : nullptr);
  e.bwd_w = scaled_error(gw, p.gw);
  e.bwd_b = p.c.bias ? scaled_error(gb, p.gb) : 0.0;
  auto y_both = poisoned(g.output_numel()), gw_both = poisoned(g.weight_numel());
  ops.transpose_backward(g, p.x.data(), p.gy.data(), p.w.data(), y_both.data(), gw_both.data());
  e.both_fwd = scaled_error(y_both, p.y_no_bias);
  e.both_bwd_w = scaled_error(gw_both, p.gw);
  return e;
}

struct DispatchOps {
  void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) const {
    sk::conv2d_forward(g, x, w, b, y);
  }
  void backward_input(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) const {
    sk::conv2d_backward_input(g, gy, w, gx);
  }
  void backward_weight(const Conv2dGeometry& g, const float* x, const float* gy, float* gw, float* gb) const {
    sk::conv2d_backward_weight(g, x, gy, gw, gb);
  }
  void transpose_backward(const Conv2dGeometry& g, const float* x, const float* gy, const float* w, float* y,
                          float* gw) const {
    sk::conv_transpose2d_backward(g, x, gy, w, y, gw);
  }
};

void check_errors(const Problem& p, const Errors& e, const char* what) {
  INFO(what << " " << p.c.label << ": " << p.c.g.to_string() << (p.c.bias ? " bias" : ""));
  CHECK(e.fwd <= kRelTol);
  CHECK(e.bwd_in <= kRelTol);
  CHECK(e.bwd_w <= kRelTol);
  CHECK(e.bwd_b <= kRelTol);
  CHECK(e.both_fwd <= kRelTol);
  CHECK(e.both_bwd_w <= kRelTol);
}

Conv2dGeometry geometry(int64_t n, int64_t cin, int64_t h, int64_t w, int64_t cout, int64_t kh, int64_t kw,
                        int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw) {
  Conv2dGeometry g;
  g.batch = n, g.in_channels = cin, g.in_h = h, g.in_w = w, g.out_channels = cout;
  g.kernel_h = kh, g.kernel_w = kw, g.stride_h = sh, g.stride_w = sw, g.pad_h = ph, g.pad_w = pw;
  g.dilation_h = dh, g.dilation_w = dw;
  return g;
}

// The conv geometry that a transposed conv (in_channels -> out_channels, input size `in`) computes with.
Conv2dGeometry transposed(int64_t n, int64_t cin, int64_t cout, int64_t k, int64_t s, int64_t p, int64_t op,
                          int64_t in) {
  const int64_t out = (in - 1) * s - 2 * p + k + op;
  return geometry(n, cout, out, out, cin, k, k, s, s, p, p, 1, 1);
}

// Randomized sweep: batch 1..5, channels 1..70, kernel 1..5, stride 1..3, padding 0..2, dilation 1..2, odd
// and even sizes, sizes with a remainder after the last stride (the geometry of transposed convs with
// output_padding), plus hand-picked shapes for each algorithm of the driver.
const std::vector<Problem>& sweep() {
  static const std::vector<Problem> problems = [] {
    std::mt19937 rng(kSeed);
    std::vector<Case> cases = {
        {"stride > kernel (phases without taps)", geometry(2, 3, 9, 8, 5, 1, 1, 2, 3, 0, 0, 1, 1)},
        {"kernel covers the input (dense)", geometry(3, 40, 4, 4, 37, 4, 4, 1, 1, 0, 0, 1, 1)},
        {"kernel covers the input, 13 images (dense)", geometry(13, 7, 3, 5, 9, 3, 5, 2, 1, 0, 0, 1, 1)},
        {"G1-like 1x1 -> 4x4 (dense)", transposed(4, 70, 20, 4, 1, 0, 0, 1)},
        {"linear 10 -> 64 (dense, every column in the padded tail)",
         geometry(37, 10, 1, 1, 64, 1, 1, 1, 1, 0, 0, 1, 1)},
        {"linear 70 -> 33 (dense, full column tiles and a tail)",
         geometry(23, 70, 1, 1, 33, 1, 1, 1, 1, 0, 0, 1, 1)},
        {"small padded output grad (col2im input grad)", geometry(3, 40, 3, 3, 37, 4, 4, 1, 1, 1, 1, 1, 1)},
        {"few channels, 7x7 -> 3x3, 9 images (lanes, col2im input grad)",
         geometry(9, 16, 7, 7, 32, 3, 3, 2, 2, 0, 0, 1, 1)},
        {"few channels, 17 images (lanes)", geometry(17, 5, 12, 11, 6, 3, 3, 2, 2, 1, 1, 1, 1)},
        {"7x7 -> 3x3, 70 images (lanes, weight grad over several blocks of images at once)",
         geometry(70, 16, 7, 7, 32, 3, 3, 2, 2, 0, 0, 1, 1)},
        {"stride > kernel, 9 images (lanes, phases without taps)",
         geometry(9, 4, 10, 10, 6, 2, 2, 3, 3, 0, 0, 1, 1)},
        {"stride > kernel, 1x1, 9 images (lanes)", geometry(9, 3, 9, 8, 5, 1, 1, 2, 3, 0, 0, 1, 1)},
        {"one input channel, 9 images (lanes, taps as the dot kernel's rows)",
         geometry(9, 1, 28, 28, 8, 3, 3, 2, 2, 1, 1, 1, 1)},
        {"convT k3 s2 p1 op1", transposed(3, 9, 7, 3, 2, 1, 1, 5)},
        {"convT k4 s2 p1 op1", transposed(2, 17, 6, 4, 2, 1, 1, 6)},
        {"convT k5 s3 p2 op2", transposed(2, 5, 11, 5, 3, 2, 2, 4)},
        {"one output channel (direct, 1 row)", geometry(3, 20, 32, 30, 1, 4, 4, 2, 2, 1, 1, 1, 1)},
        {"one input channel, dot weight grad", geometry(4, 1, 21, 20, 64, 3, 3, 1, 1, 1, 1, 1, 1)},
        {"three input channels", geometry(2, 3, 33, 32, 64, 4, 4, 2, 2, 1, 1, 1, 1)},
        {"wide channels", geometry(2, 70, 9, 10, 69, 3, 3, 2, 2, 1, 1, 1, 1)},
        {"no padding, stride 1 (taps from x)", geometry(2, 19, 11, 9, 21, 3, 2, 1, 1, 0, 0, 1, 1)},
        {"dilated", geometry(2, 6, 17, 15, 10, 3, 3, 1, 2, 2, 1, 2, 2)},
        {"1x1 conv", geometry(5, 33, 7, 6, 18, 1, 1, 1, 1, 0, 0, 1, 1)},
        {"wide images, small channels", geometry(2, 2, 40, 41, 3, 5, 5, 1, 1, 2, 2, 1, 1)},
    };
    while (cases.size() < 140) {
      std::uniform_int_distribution<int64_t> batch(1, 5), ch(1, 70), k(1, 5), s(1, 3), pad(0, 2), dil(1, 2),
          extra(0, 11);
      const bool wide = cases.size() % 4 == 0;  // every fourth case: many channels
      const int64_t cin = wide ? 40 + ch(rng) % 31 : ch(rng) % 24 + 1,
                    cout = wide ? 40 + ch(rng) % 31 : ch(rng);
      const int64_t kh = k(rng), kw = k(rng), dh = dil(rng), dw = dil(rng), ph = pad(rng), pw = pad(rng);
      const int64_t h = std::max<int64_t>(1, dh * (kh - 1) + 1 - 2 * ph) + extra(rng);
      const int64_t w = std::max<int64_t>(1, dw * (kw - 1) + 1 - 2 * pw) + extra(rng);
      const Conv2dGeometry g = geometry(batch(rng), cin, h, w, cout, kh, kw, s(rng), s(rng), ph, pw, dh, dw);
      if (g.out_h() < 1 || g.out_w() < 1) continue;
      const double macs = g.flops() / 2;
      if (macs > 3e6 || macs < 1) continue;  // keeps the double reference fast
      cases.push_back({"random #" + std::to_string(cases.size()), g, cases.size() % 3 != 0});
    }
    std::vector<Problem> out;
    for (const Case& c : cases) out.push_back(make_problem(c, rng));
    return out;
  }();
  return problems;
}

// A problem per case, all drawn from one generator seeded with `seed`.
std::vector<Problem> make_problems(uint32_t seed, const std::vector<Case>& cases) {
  std::mt19937 rng(seed);
  std::vector<Problem> out;
  for (const Case& c : cases) out.push_back(make_problem(c, rng));
  return out;
}

// The study's layers (NCHW, float; the autoencoder's linear layers as 1x1 convolutions of 1x1 images), at a
// smaller batch where the reference would be slow.
const std::vector<Problem>& study_layers() {
  static const std::vector<Problem> problems = make_problems(
      kSeed + 1, {
                     {"ae.enc.conv1", geometry(300, 1, 28, 28, 8, 3, 3, 2, 2, 1, 1, 1, 1), true},
                     {"ae.enc.conv2", geometry(300, 8, 14, 14, 16, 3, 3, 2, 2, 1, 1, 1, 1), true},
                     {"ae.enc.conv3", geometry(300, 16, 7, 7, 32, 3, 3, 2, 2, 0, 0, 1, 1), true},
                     {"ae.dec.convT1", transposed(300, 32, 16, 3, 2, 0, 0, 3), true},
                     {"ae.dec.convT2", transposed(300, 16, 8, 3, 2, 1, 1, 7), true},
                     {"ae.dec.convT3", transposed(300, 8, 1, 3, 2, 1, 1, 14), true},
                     {"dcgan64.G1", transposed(16, 100, 512, 4, 1, 0, 0, 1), false},
                     {"dcgan64.G2", transposed(2, 512, 256, 4, 2, 1, 0, 4), false},
                     {"dcgan64.G3", transposed(2, 256, 128, 4, 2, 1, 0, 8), false},
                     {"dcgan64.G4", transposed(2, 128, 64, 4, 2, 1, 0, 16), false},
                     {"dcgan64.G5.nc1", transposed(6, 64, 1, 4, 2, 1, 0, 32), false},
                     {"dcgan64.G5.nc3", transposed(3, 64, 3, 4, 2, 1, 0, 32), false},
                     {"dcgan64.D1.nc1", geometry(6, 1, 64, 64, 64, 4, 4, 2, 2, 1, 1, 1, 1), false},
                     {"dcgan64.D1.nc3", geometry(3, 3, 64, 64, 64, 4, 4, 2, 2, 1, 1, 1, 1), false},
                     {"dcgan64.D2", geometry(2, 64, 32, 32, 128, 4, 4, 2, 2, 1, 1, 1, 1), false},
                     {"dcgan64.D3", geometry(2, 128, 16, 16, 256, 4, 4, 2, 2, 1, 1, 1, 1), false},
                     {"dcgan64.D4", geometry(2, 256, 8, 8, 512, 4, 4, 2, 2, 1, 1, 1, 1), false},
                     {"dcgan64.D5", geometry(16, 512, 4, 4, 1, 4, 4, 1, 1, 0, 0, 1, 1), false},
                     {"ae.enc.linear1 288 -> 64", geometry(300, 288, 1, 1, 64, 1, 1, 1, 1, 0, 0, 1, 1), true},
                     {"ae.enc.linear2 64 -> 5", geometry(300, 64, 1, 1, 5, 1, 1, 1, 1, 0, 0, 1, 1), true},
                     {"ae.dec.linear1 5 -> 64", geometry(300, 5, 1, 1, 64, 1, 1, 1, 1, 0, 0, 1, 1), true},
                     {"ae.dec.linear2 64 -> 288", geometry(300, 64, 1, 1, 288, 1, 1, 1, 1, 0, 0, 1, 1), true},
                 });
  return problems;
}

// Shapes that take the Winograd F(4x4, 2x2) paths (conv_winograd.hpp): 4x4 stride-2 kernels with enough
// channels, every padding, non-square sizes, channel counts that leave partial register tiles, several
// chunks of images per thread, an input gradient whose transformed weights go one phase at a time, a forward
// whose transformed weights go in blocks of channels, and weight gradients whose reduction over tiles is
// split into blocks and chunks.
const std::vector<Problem>& winograd_layers() {
  static const std::vector<Problem> problems = make_problems(
      kSeed + 2,
      {
          {"both ops, pad 1, 16x8 input", geometry(3, 33, 16, 8, 70, 4, 4, 2, 2, 1, 1, 1, 1), true},
          {"forward, pad 1, 8x12 output", geometry(2, 17, 16, 24, 35, 4, 4, 2, 2, 1, 1, 1, 1), true},
          {"forward, pad 0", geometry(2, 16, 18, 10, 40, 4, 4, 2, 2, 0, 0, 1, 1), true},
          {"forward, pad 2", geometry(2, 20, 14, 6, 33, 4, 4, 2, 2, 2, 2, 1, 1), false},
          {"input grad, pad 0", geometry(2, 32, 16, 16, 64, 4, 4, 2, 2, 0, 0, 1, 1), false},
          {"input grad, pad 2", geometry(2, 40, 8, 16, 65, 4, 4, 2, 2, 2, 2, 1, 1), false},
          {"many images (two chunks on one thread)", geometry(60, 64, 8, 8, 200, 4, 4, 2, 2, 1, 1, 1, 1),
           true},
          {"input grad one phase at a time", geometry(1, 200, 8, 8, 256, 4, 4, 2, 2, 1, 1, 1, 1), false},
          {"forward in two blocks of input channels, the second smaller",
           geometry(8, 161, 8, 8, 290, 4, 4, 2, 2, 1, 1, 1, 1), true},
          {"forward whose size cap asks for 5 blocks: 4 blocks of 4 channels, none empty",
           geometry(1, 16, 8, 8, 10486, 4, 4, 2, 2, 1, 1, 1, 1), false},
          {"weight grad, pad 0, reduction split in L1 blocks",
           geometry(17, 16, 34, 34, 40, 4, 4, 2, 2, 0, 0, 1, 1), true},
          {"weight grad, pad 2, dU over its budget: two channel blocks",
           geometry(2, 72, 14, 14, 300, 4, 4, 2, 2, 2, 2, 1, 1), false},
          {"weight grad, the batch's transformed output gradient over budget: chunks of images",
           geometry(11, 16, 64, 64, 256, 4, 4, 2, 2, 1, 1, 1, 1), false},
      });
  return problems;
}

// Restores the process-wide ISA and thread count when a test ends.
struct SettingsGuard {
  sumi::test::IsaGuard isa;
  sumi::test::ThreadCountGuard threads;
};

bool skip_unsupported(Isa isa) {
  if (sk::isa_supported(isa)) return false;
  WARN("skipped: this CPU does not support " << sk::isa_name(isa) << " (run on an " << sk::isa_name(isa)
                                             << " machine to test this path)");
  return true;
}

void check_isa(Isa isa, const std::vector<Problem>& problems) {
  if (skip_unsupported(isa)) return;
  SettingsGuard guard;
  sk::set_isa(isa);
  for (const Problem& p : problems) {
    const Errors e = run_ops(p, DispatchOps{});
    CHECK(sk::last_conv_isa() == isa);
    check_errors(p, e, sk::isa_name(isa));
  }
}

// ---- Portable stand-ins for the AVX-512 micro-kernels, so the driver's 16-lane tiling runs everywhere ----

namespace emulated {
namespace gemm = sk::gemm;

template <int MR, int NR, gemm::AMode AM, bool DIRECT_B>
void micro_kernel(int64_t kc, const float* a, int64_t lda, const float* b, const int64_t* boff, float* c,
                  int64_t ldc, int rows, bool accumulate, const float* bias) {
  float acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j)
      acc[r][j] = r < rows ? (accumulate ? c[r * ldc + j] : (bias ? bias[r] : 0.0f)) : 0.0f;
  for (int64_t k = 0; k < kc; ++k) {
    const float* bk = DIRECT_B ? b + boff[k] : b + k * NR;
    for (int r = 0; r < MR; ++r) {
      const float av = AM == gemm::AMode::packed ? a[k * MR + r] : a[std::min(r, rows - 1) * lda + k];
      for (int j = 0; j < NR; ++j) acc[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < NR; ++j) c[r * ldc + j] = acc[r][j];
}

void dot_kernel(const gemm::DotRuns& runs, const float* a, int64_t lda, const int64_t* aoff, const float* b,
                int64_t ldb, const int64_t* boff, float* c, int64_t ldc, int rows, int cols,
                bool accumulate) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      const float* ar = a + (aoff ? aoff[r] : r * lda);
      const float* bj = b + (boff ? boff[j] : j * ldb);
      float s = 0;
      for (int64_t run = 0; run < runs.count; ++run)
        for (int64_t t = 0; t < runs.len; ++t) s += ar[run * runs.a_step + t] * bj[run * runs.b_step + t];
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + s : s;
    }
}

struct Avx512Shapes : gemm::ScalarLaneMoves<16> {
  static constexpr int kVec = 16;
  static constexpr gemm::TileShape kShapes[] = {{6, 4, 1.0}, {8, 3, 1.0}, {4, 6, 1.0}, {12, 2, 0.9},
                                                {4, 4, 0.9}, {2, 8, 0.8}, {1, 8, 0.45}};
  static constexpr int kDotRows = 4, kDotCols = 4;
  static constexpr gemm::DotKernel kDot = &dot_kernel;

  template <int MR, int NV, gemm::AMode AM, bool DIRECT_B>
  static constexpr gemm::MicroKernel kMicroKernel = &micro_kernel<MR, NV * kVec, AM, DIRECT_B>;
};

struct Ops {
  void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* b, float* y) const {
    gemm::conv2d_forward_auto<Avx512Shapes>(g, x, w, b, y);
  }
  void backward_input(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) const {
    gemm::conv2d_backward_input_auto<Avx512Shapes>(g, gy, w, gx);
  }
  void backward_weight(const Conv2dGeometry& g, const float* x, const float* gy, float* gw, float* gb) const {
    gemm::conv2d_backward_weight_auto<Avx512Shapes>(g, x, gy, gw, gb);
  }
  void transpose_backward(const Conv2dGeometry& g, const float* x, const float* gy, const float* w, float* y,
                          float* gw) const {
    gemm::conv_transpose2d_backward_auto<Avx512Shapes>(g, x, gy, w, y, gw);
  }
};
}  // namespace emulated

// Every register tile of an ISA's kernel set against a double-precision GEMM: both A layouts, packed and
// direct (unaligned, per-k offset) B, full and partial row tiles, fresh / bias / accumulated C. The tile
// shapes hold different numbers of operands in registers, so each shape is its own code path.
template <class KS>
void check_micro_kernels() {
  namespace gemm = sk::gemm;
  std::mt19937 rng(kSeed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  const auto random_vector = [&](std::size_t n) {
    std::vector<float> v(n);
    for (float& e : v) e = dist(rng);
    return v;
  };
  for (const gemm::TileShape& shape : KS::kShapes) {
    const int mr = shape.mr, nr = shape.nv * KS::kVec;
    const int64_t kc = 37, lda = kc + 3, ldc = nr + 5;
    for (const gemm::AMode am : {gemm::AMode::packed, gemm::AMode::rows})
      for (const bool direct_b : {false, true})
        for (const int rows : {mr, std::max(1, mr - 1), 1})
          for (const int start : {0, 1, 2}) {  // 0: zero, 1: bias, 2: accumulate into C
            const std::vector<float> a = random_vector(std::size_t(std::max<int64_t>(kc * mr, mr * lda)));
            const std::vector<float> bias = random_vector(std::size_t(mr));
            // Direct B rows sit at scattered, unaligned offsets; packed B is kc rows of nr, aligned.
            std::vector<int64_t> boff(static_cast<std::size_t>(kc));
            for (int64_t k = 0; k < kc; ++k) boff[std::size_t(k)] = ((k * 7) % kc) * (nr + 3) + 1;
            const std::size_t b_floats = direct_b ? std::size_t(kc * (nr + 3) + 1) : std::size_t(kc * nr);
            const std::vector<float> b_values = random_vector(b_floats);
            float* b = static_cast<float*>(std::aligned_alloc(64, (b_floats * sizeof(float) + 63) / 64 * 64));
            std::copy(b_values.begin(), b_values.end(), b);
            std::vector<float> c = random_vector(std::size_t(mr * ldc));
            const std::vector<float> c_before = c;
            std::vector<double> expected(std::size_t(rows * nr));
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < nr; ++j) {
                double sum = start == 2   ? c[std::size_t(r * ldc + j)]
                             : start == 1 ? bias[std::size_t(r)]
                                          : 0.0;
                for (int64_t k = 0; k < kc; ++k) {
                  const float av =
                      am == gemm::AMode::packed ? a[std::size_t(k * mr + r)] : a[std::size_t(r * lda + k)];
                  const float bv = direct_b ? b[boff[std::size_t(k)] + j] : b[k * nr + j];
                  sum += double(av) * double(bv);
                }
                expected[std::size_t(r * nr + j)] = sum;
              }
            gemm::micro_kernel_for<KS>(shape, am, direct_b)(
                kc, a.data(), lda, b, direct_b ? boff.data() : nullptr, c.data(), ldc, rows, start == 2,
                start == 1 ? bias.data() : nullptr);
            std::free(b);
            INFO(KS::kName << " tile " << mr << "x" << shape.nv << (direct_b ? " direct B" : " packed B")
                           << (am == gemm::AMode::packed ? " packed A" : " row A") << " rows " << rows
                           << " start " << start);
            double worst = 0;
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < nr; ++j)
                worst = sumi::test::nan_max(
                    worst, std::abs(c[std::size_t(r * ldc + j)] - expected[std::size_t(r * nr + j)]));
            CHECK(worst <= 1e-5 * double(kc));
            // Rows past `rows` and the padding between rows are left as they were.
            bool untouched = true;
            for (int r = 0; r < mr; ++r)
              for (int64_t j = 0; j < ldc; ++j)
                if (r >= rows || j >= nr)
                  untouched &= c[std::size_t(r * ldc + j)] == c_before[std::size_t(r * ldc + j)];
            CHECK(untouched);
          }
  }
}

}  // namespace

TEST_CASE("conv kernels: every AVX2 register tile computes its GEMM", "[conv][kernels][avx2]") {
  if (!sk::isa_supported(Isa::avx2)) {
    WARN("AVX2 not supported by this CPU: skipped");
    return;
  }
  check_micro_kernels<sk::avx2::Kernels>();
}

TEST_CASE("conv kernels: every AVX-512 register tile computes its GEMM", "[conv][kernels][avx512]") {
  if (!sk::isa_supported(Isa::avx512)) {
    WARN("AVX-512 not supported by this CPU: skipped");
    return;
  }
  check_micro_kernels<sk::avx512::Kernels>();
}

TEST_CASE("conv kernels: AVX2 matches the reference over a randomized sweep", "[conv][kernels][avx2]") {
  check_isa(Isa::avx2, sweep());
}

TEST_CASE("conv kernels: AVX-512 matches the reference over a randomized sweep", "[conv][kernels][avx512]") {
  check_isa(Isa::avx512, sweep());
}

TEST_CASE("conv kernels: the scalar path matches the reference over a randomized sweep", "[conv][kernels]") {
  check_isa(Isa::scalar, sweep());
}

TEST_CASE("conv kernels: AVX2 matches the reference on the study's layers", "[conv][kernels][avx2]") {
  check_isa(Isa::avx2, study_layers());
}

TEST_CASE("conv kernels: AVX-512 matches the reference on the study's layers", "[conv][kernels][avx512]") {
  check_isa(Isa::avx512, study_layers());
}

TEST_CASE("conv kernels: the driver with AVX-512 tile shapes (emulated micro-kernels) matches the reference",
          "[conv][kernels]") {
  for (const auto* problems : {&sweep(), &study_layers()})
    for (const Problem& p : *problems) check_errors(p, run_ops(p, emulated::Ops{}), "emulated avx512 tiles");
}

TEST_CASE("conv kernels: the transposed conv's two gradients share one lanes pass where it applies",
          "[conv][kernels]") {
  // With 16 lanes: the decoder's 7x7 -> 14x14 and 14x14 -> 28x28 layers (indices 4, 5) take the shared pass,
  // whose results the sweeps above check; the 3x3 -> 7x7 layer (3) interleaves several blocks at once for
  // its weight gradient and keeps the separate kernels.
  namespace gemm = sk::gemm;
  using KS = emulated::Avx512Shapes;
  for (size_t layer : {4, 5}) {
    const Conv2dGeometry& g = study_layers()[layer].c.g;
    INFO(study_layers()[layer].c.label);
    CHECK((gemm::prefer_lanes<KS>(g) && gemm::lanes_weight_group_blocks<KS>(g) == 1));
  }
  CHECK(gemm::lanes_weight_group_blocks<KS>(study_layers()[3].c.g) > 1);
}

TEST_CASE("conv kernels: the Winograd paths match the reference", "[conv][kernels][winograd]") {
  namespace gemm = sk::gemm;
  // Each case must really take a Winograd path (else this test would check the direct GEMM again).
  for (const Problem& p : winograd_layers()) {
    INFO(p.c.label << ": " << p.c.g.to_string());
    CHECK((gemm::winograd_forward_applies(p.c.g) || gemm::winograd_backward_input_applies(p.c.g) ||
           gemm::winograd_backward_weight_applies(p.c.g)));
  }
  CHECK(gemm::winograd_backward_input_applies(winograd_layers()[7].c.g));
  CHECK(gemm::winograd_forward_applies(winograd_layers()[8].c.g));
  CHECK(gemm::winograd_forward_applies(winograd_layers()[9].c.g));
  for (size_t i = 10; i < winograd_layers().size(); ++i)
    CHECK(gemm::winograd_backward_weight_applies(winograd_layers()[i].c.g));
  // The weight gradient's two ways through the batch: one shared transformed output gradient, and chunks.
  CHECK(gemm::winograd_gradient_chunk(winograd_layers()[10].c.g) == winograd_layers()[10].c.g.batch);
  CHECK(gemm::winograd_gradient_chunk(winograd_layers()[12].c.g) < winograd_layers()[12].c.g.batch);
  // The study's 4x4 stride-2 layers with 64..512 channels take it too.
  CHECK(gemm::winograd_forward_applies(study_layers()[15].c.g));         // D3
  CHECK(gemm::winograd_backward_input_applies(study_layers()[15].c.g));  // D3
  CHECK(gemm::winograd_backward_input_applies(study_layers()[7].c.g));   // G2
  CHECK(gemm::winograd_forward_applies(study_layers()[16].c.g));         // D4: weights in blocks
  CHECK_FALSE(gemm::winograd_forward_applies(study_layers()[13].c.g));   // D1 nc=3: 12 channels
  for (int layer : {8, 9, 14, 15})  // G3, G4, D2, D3 (G2 and D4 have too few tiles at this batch)
    CHECK(gemm::winograd_backward_weight_applies(study_layers()[size_t(layer)].c.g));
  CHECK_FALSE(gemm::winograd_backward_weight_applies(study_layers()[13].c.g));
  check_isa(Isa::avx2, winograd_layers());
  check_isa(Isa::avx512, winograd_layers());
  // The portable transforms, with the AVX-512 tile shapes.
  for (const Problem& p : winograd_layers())
    check_errors(p, run_ops(p, emulated::Ops{}), "emulated avx512 tiles");
  // One and two threads split the images differently; every image's result is computed the same way.
  SettingsGuard guard;
  if (!sk::isa_supported(Isa::avx2)) return;
  sk::set_isa(Isa::avx2);
  const Problem& p = winograd_layers()[6];
  std::vector<float> y[2], gx[2];
  for (int t = 0; t < 2; ++t) {
    sumi::set_num_threads(t + 1);
    y[t] = poisoned(p.c.g.output_numel()), gx[t] = poisoned(p.c.g.input_numel());
    sk::conv2d_forward(p.c.g, p.x.data(), p.w.data(), p.b.data(), y[t].data());
    sk::conv2d_backward_input(p.c.g, p.gy.data(), p.w.data(), gx[t].data());
  }
  CHECK(y[0] == y[1]);
  CHECK(gx[0] == gx[1]);
}

TEST_CASE("conv kernels: images-to-lanes moves match the portable ones for 8 and 16 lanes",
          "[conv][kernels][avx2]") {
#if SUMI_X86_KERNELS
  if (skip_unsupported(Isa::avx2)) return;
  std::mt19937 rng(kSeed + 2);
  const int64_t img_stride = 97;
  const auto src = random_values(16 * img_stride, rng);
  for (int64_t lanes : {8, 16})
    for (int64_t count : {int64_t(1), int64_t(5), lanes - 1, lanes})
      for (bool tabled : {false, true})
        for (int64_t n : {1, 7, 8, 9, 16, 23}) {
          INFO("lanes " << lanes << " count " << count << " pixel table " << tabled << " n " << n);
          // with the table, pixel v goes to / comes from slot 3 * (n - 1 - v) + 1 of 3n (reversed, spread)
          std::vector<int64_t> pixel(static_cast<size_t>(n));
          for (int64_t v = 0; v < n; ++v) pixel[size_t(v)] = tabled ? 3 * (n - 1 - v) + 1 : v;
          const int64_t slots = tabled ? 3 * n : n;
          const int64_t* table = tabled ? pixel.data() : nullptr;

          std::vector<float> got(size_t(slots * lanes), -1.0f), want(size_t(slots * lanes), -1.0f);
          sk::avx2::interleave_lanes(src.data(), img_stride, count, n, table, got.data(), lanes);
          for (int64_t v = 0; v < n; ++v)
            for (int64_t l = 0; l < lanes; ++l)
              want[size_t(pixel[size_t(v)] * lanes + l)] = l < count ? src[size_t(l * img_stride + v)] : 0.0f;
          CHECK(got == want);

          // back, plain and with the output epilogue (a bias added, then relu)
          const auto lanes_src = random_values(slots * lanes, rng);
          for (const auto& [add, relu] :
               {std::pair{0.0f, false}, std::pair{0.3f, false}, std::pair{-0.2f, true}}) {
            INFO("add " << add << " relu " << relu);
            std::vector<float> back(src.size(), 0.0f), expect(src.size(), 0.0f);
            sk::avx2::deinterleave_lanes(lanes_src.data(), count, n, back.data(), img_stride, table, lanes,
                                         add, relu);
            for (int64_t l = 0; l < count; ++l)
              for (int64_t v = 0; v < n; ++v) {
                const float value = lanes_src[size_t(pixel[size_t(v)] * lanes + l)] + add;
                expect[size_t(l * img_stride + v)] = relu && !(value > 0.0f) ? 0.0f : value;
              }
            CHECK(back == expect);
          }
        }
#endif
}

TEST_CASE("conv kernels: SUMI_ISA and set_isa select the implementation", "[conv][kernels][isa]") {
  SettingsGuard guard;
  const Problem& p = sweep().front();
  const Conv2dGeometry& g = p.c.g;
  std::vector<float> y(size_t(g.output_numel()));

  CHECK(sk::isa_from_environment(nullptr) == sk::best_supported_isa());
  CHECK(sk::isa_from_environment("") == sk::best_supported_isa());
  CHECK(sk::isa_from_environment("scalar") == Isa::scalar);
  CHECK_THROWS_AS(sk::isa_from_environment("avx3"), std::invalid_argument);
  CHECK_THROWS_WITH(sk::isa_from_environment("avx3"), Catch::Contains("SUMI_ISA: sumi: unknown ISA 'avx3'"));
  CHECK_THROWS_AS(sk::set_isa(sk::parse_isa("sse")), std::invalid_argument);

  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    INFO("isa " << sk::isa_name(isa));
    if (sk::isa_supported(isa)) {
      CHECK(sk::isa_from_environment(sk::isa_name(isa)) == isa);
      sk::set_isa(isa);
      CHECK(sk::active_isa() == isa);
      sk::conv2d_forward(g, p.x.data(), p.w.data(), p.b.data(), y.data());
      CHECK(sk::last_conv_isa() == isa);
    } else {
      // Forcing an ISA the CPU lacks is an error that names it, not a silent fallback.
      CHECK_THROWS_WITH(sk::isa_from_environment(sk::isa_name(isa)),
                        Catch::Contains(sk::isa_name(isa)) && Catch::Contains("does not support"));
      CHECK_THROWS_AS(sk::set_isa(isa), std::runtime_error);
    }
  }

  // Types other than float always take the reference kernels.
  sk::set_isa(sk::best_supported_isa());
  const auto xd = to_double(p.x), wd = to_double(p.w);
  std::vector<double> yd(size_t(g.output_numel()));
  sk::conv2d_forward<double>(g, xd.data(), wd.data(), nullptr, yd.data());
  CHECK(sk::last_conv_isa() == Isa::scalar);
}

TEST_CASE("conv kernels: padding that dwarfs the image takes the reference kernels", "[conv][kernels][isa]") {
  // A 2x2 image padded by 4096 with stride 4096: 3x3 outputs, of which only the middle one reads the image.
  // The vectorised kernels copied the 8194 x 8194 padded image (700 MB, a bad_alloc at 65536).
  sumi::test::IsaGuard guard;
  Conv2dGeometry g;
  g.in_h = g.in_w = 2;
  g.pad_h = g.pad_w = g.stride_h = g.stride_w = 4096;
  REQUIRE(g.padding_dominated());
  const std::vector<float> x{1, 2, 3, 4}, w{5};
  std::vector<float> y(std::size_t(g.output_numel()), -1), gx(4, -1), gw(1, -1);
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (!sk::isa_supported(isa)) continue;
    INFO("isa " << sk::isa_name(isa));
    sk::set_isa(isa);
    const double before = sumi::test::peak_memory_mib();
    sk::conv2d_forward(g, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
    CHECK(sk::last_conv_isa() == Isa::scalar);
    CHECK(y == std::vector<float>{0, 0, 0, 0, 5, 0, 0, 0, 0});  // the tap at (4096, 4096) is pixel (0, 0)
    sk::conv2d_backward_input(g, y.data(), w.data(), gx.data());
    CHECK(gx == std::vector<float>{25, 0, 0, 0});
    sk::conv2d_backward_weight(g, x.data(), y.data(), gw.data(), static_cast<float*>(nullptr));
    CHECK(gw == std::vector<float>{5});
    CHECK(sumi::test::peak_memory_mib() - before < 64);
  }
  // The study's layers, and ordinary padding of large images, keep the vectorised kernels.
  Conv2dGeometry study;
  study.in_h = study.in_w = 28;
  study.kernel_h = study.kernel_w = 3;
  study.pad_h = study.pad_w = 1;
  CHECK_FALSE(study.padding_dominated());
  Conv2dGeometry large = study;
  large.in_h = large.in_w = 4000;
  large.pad_h = large.pad_w = 100;
  CHECK_FALSE(large.padding_dominated());
}

TEST_CASE("conv kernels: results do not depend on the thread count", "[conv][kernels][threads]") {
  SettingsGuard guard;
  CHECK_THROWS_AS(sumi::set_num_threads(0), std::invalid_argument);
  sumi::set_num_threads(3);
  CHECK(sumi::get_num_threads() == 3);
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    if (skip_unsupported(isa)) continue;
    sk::set_isa(isa);
    for (const Problem* p : {&study_layers()[1], &study_layers()[5], &study_layers()[13], &sweep()[9]}) {
      const Conv2dGeometry& g = p->c.g;
      std::vector<float> y[2], gx[2], gw[2], gb[2];
      for (int t = 0; t < 2; ++t) {
        sumi::set_num_threads(t + 1);
        y[t] = poisoned(g.output_numel()), gx[t] = poisoned(g.input_numel());
        gw[t] = poisoned(g.weight_numel()), gb[t] = poisoned(g.out_channels);
        sk::conv2d_forward(g, p->x.data(), p->w.data(), p->b.data(), y[t].data());
        sk::conv2d_backward_input(g, p->gy.data(), p->w.data(), gx[t].data());
        sk::conv2d_backward_weight(g, p->x.data(), p->gy.data(), gw[t].data(), gb[t].data());
      }
      INFO(sk::isa_name(isa) << " " << p->c.label);
      CHECK(scaled_error(y[1], to_double(y[0])) <= kRelTol);
      CHECK(scaled_error(gx[1], to_double(gx[0])) <= kRelTol);
      CHECK(scaled_error(gw[1], to_double(gw[0])) <= kRelTol);
      CHECK(scaled_error(gb[1], to_double(gb[0])) <= kRelTol);
    }
  }
}
