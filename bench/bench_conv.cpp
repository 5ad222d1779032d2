// Convolution kernel benchmarks: every (layer, op, isa, threads) of the study, named
// conv/<layer>/<op>/<isa>/<threads>, and the machine's fp32 FMA peak, named peak/fma/<isa>/<threads>.
//
// Layers (NCHW float): the autoencoder at batch 300 (its linear layers as 1x1 convolutions of 1x1 images,
// which is how kernels/linear.hpp runs them) and the 64x64 DCGAN at batch 128. For transposed layers
// (ae.dec.convT*, dcgan64.G*) fwd is the convT forward (= conv2d_backward_input of the swapped geometry),
// bwd_in the convT input grad (= conv2d_forward without bias), bwd_w the convT weight grad
// (= conv2d_backward_weight, bias grad left to the ops layer) and bwd both in one call, as the op's backward
// runs them (conv_transpose2d_backward; GFLOPS then counts the two). GFLOPS counts
// 2*N*Cout*Hout*Wout*Cin*Kh*Kw of the equivalent conv per iteration over wall-clock time. ISAs the CPU lacks
// are registered and skipped. The scalar path is the single-threaded reference; its big layers take seconds
// per call, so they run a single iteration under the default minimum time (no name suffixes are added to keep
// names exact).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include "sumi/kernels/conv.hpp"
#include "sumi/kernels/cpu_features.hpp"
#include "sumi/kernels/threading.hpp"

#if SUMI_X86_KERNELS
#include <immintrin.h>
#endif

namespace {

namespace sk = sumi::kernels;
using sk::Conv2dGeometry;
using sk::Isa;

struct Layer {
  const char* name;
  bool transposed;  // channels and size as in torch.nn.ConvTranspose2d
  int64_t in_channels, out_channels, kernel, stride, pad, output_pad, in_size, batch;
  bool bias;
};

const Layer kLayers[] = {
    {"ae.enc.conv1", false, 1, 8, 3, 2, 1, 0, 28, 300, true},
    {"ae.enc.conv2", false, 8, 16, 3, 2, 1, 0, 14, 300, true},
    {"ae.enc.conv3", false, 16, 32, 3, 2, 0, 0, 7, 300, true},
    {"ae.dec.convT1", true, 32, 16, 3, 2, 0, 0, 3, 300, true},
    {"ae.dec.convT2", true, 16, 8, 3, 2, 1, 1, 7, 300, true},
    {"ae.dec.convT3", true, 8, 1, 3, 2, 1, 1, 14, 300, true},
    {"ae.enc.linear1", false, 288, 64, 1, 1, 0, 0, 1, 300, true},
    {"ae.enc.linear2", false, 64, 5, 1, 1, 0, 0, 1, 300, true},
    {"ae.dec.linear1", false, 5, 64, 1, 1, 0, 0, 1, 300, true},
    {"ae.dec.linear2", false, 64, 288, 1, 1, 0, 0, 1, 300, true},
    {"dcgan64.G1", true, 100, 512, 4, 1, 0, 0, 1, 128, false},
    {"dcgan64.G2", true, 512, 256, 4, 2, 1, 0, 4, 128, false},
    {"dcgan64.G3", true, 256, 128, 4, 2, 1, 0, 8, 128, false},
    {"dcgan64.G4", true, 128, 64, 4, 2, 1, 0, 16, 128, false},
    {"dcgan64.G5.nc1", true, 64, 1, 4, 2, 1, 0, 32, 128, false},
    {"dcgan64.G5.nc3", true, 64, 3, 4, 2, 1, 0, 32, 128, false},
    {"dcgan64.D1.nc1", false, 1, 64, 4, 2, 1, 0, 64, 128, false},
    {"dcgan64.D1.nc3", false, 3, 64, 4, 2, 1, 0, 64, 128, false},
    {"dcgan64.D2", false, 64, 128, 4, 2, 1, 0, 32, 128, false},
    {"dcgan64.D3", false, 128, 256, 4, 2, 1, 0, 16, 128, false},
    {"dcgan64.D4", false, 256, 512, 4, 2, 1, 0, 8, 128, false},
    {"dcgan64.D5", false, 512, 1, 4, 1, 0, 0, 4, 128, false},
};

// The conv geometry the layer computes with; for a transposed layer its input is the geometry's y.
Conv2dGeometry geometry_of(const Layer& l) {
  Conv2dGeometry g;
  g.batch = l.batch;
  g.kernel_h = g.kernel_w = l.kernel;
  g.stride_h = g.stride_w = l.stride;
  g.pad_h = g.pad_w = l.pad;
  if (l.transposed) {
    const int64_t out = (l.in_size - 1) * l.stride - 2 * l.pad + l.kernel + l.output_pad;
    g.in_channels = l.out_channels, g.out_channels = l.in_channels, g.in_h = g.in_w = out;
  } else {
    g.in_channels = l.in_channels, g.out_channels = l.out_channels, g.in_h = g.in_w = l.in_size;
  }
  return g;
}

enum class Op { fwd, bwd_in, bwd_w, bwd };
const char* op_name(Op op) {
  return op == Op::fwd ? "fwd" : op == Op::bwd_in ? "bwd_in" : op == Op::bwd_w ? "bwd_w" : "bwd";
}

// Tensors of one layer, kept while consecutive benchmarks use the same layer.
struct LayerData {
  const Layer* layer = nullptr;
  std::vector<float> x, w, b, y, gx, gw, gb;
  std::vector<float> gy;  // the bwd op's input gradient of a transposed layer (the geometry's y)
};

LayerData& data_for(const Layer& l) {
  static LayerData d;
  if (d.layer == &l) return d;
  const Conv2dGeometry g = geometry_of(l);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](std::vector<float>& v, int64_t n) {
    v.resize(size_t(n));
    for (float& e : v) e = u(rng);
  };
  fill(d.x, g.input_numel());
  fill(d.w, g.weight_numel());
  fill(d.b, g.out_channels);
  fill(d.y, g.output_numel());
  fill(d.gx, g.input_numel());
  fill(d.gw, g.weight_numel());
  fill(d.gb, g.out_channels);
  fill(d.gy, g.output_numel());
  d.layer = &l;
  return d;
}

void run_op(const Layer& l, const Conv2dGeometry& g, Op op, LayerData& d) {
  // Geometry roles: x = conv input / convT output, y = conv output / convT input.
  const bool t = l.transposed;
  switch (op) {
    case Op::fwd:
      if (t)
        sk::conv2d_backward_input(g, d.y.data(), d.w.data(), d.gx.data());
      else
        sk::conv2d_forward(g, d.x.data(), d.w.data(), l.bias ? d.b.data() : nullptr, d.y.data());
      break;
    case Op::bwd_in:
      if (t)
        sk::conv2d_forward(g, d.gx.data(), d.w.data(), static_cast<const float*>(nullptr), d.y.data());
      else
        sk::conv2d_backward_input(g, d.y.data(), d.w.data(), d.gx.data());
      break;
    case Op::bwd_w:
      sk::conv2d_backward_weight(g, d.x.data(), d.y.data(), d.gw.data(),
                                 l.bias && !t ? d.gb.data() : nullptr);
      break;
    case Op::bwd:  // transposed layers: input and weight gradients from the output gradient (the x role)
      sk::conv_transpose2d_backward(g, d.gx.data(), d.y.data(), d.w.data(), d.gy.data(), d.gw.data());
      break;
  }
}

std::string unsupported_message(Isa isa) {
  return std::string(sk::isa_name(isa)) + " not supported by this CPU";
}

void bm_conv(benchmark::State& state, const Layer* l, Op op, Isa isa, int threads) {
  if (!sk::isa_supported(isa)) {
    state.SkipWithError(unsupported_message(isa).c_str());
    return;
  }
  sk::set_isa(isa);
  sumi::set_num_threads(threads);
  const Conv2dGeometry g = geometry_of(*l);
  LayerData& d = data_for(*l);
  if (isa != Isa::scalar) run_op(*l, g, op, d);  // warm-up: grows the workspaces, faults pages in
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    run_op(*l, g, op, d);
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  state.counters["GFLOPS"] = g.flops() * (op == Op::bwd ? 2 : 1) * double(state.iterations()) / seconds / 1e9;
}

// ---- FMA peak: independent FMA chains in registers, one team of `threads` OpenMP threads ----------------

constexpr int64_t kPeakSteps = 1 << 20;

double peak_scalar(int64_t steps) {  // generic x86-64 has no FMA: a multiply and an add, 2 FLOPs
  double s = 0;
  float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  const float m = 0.999999f, c = 1e-7f;
  for (int64_t i = 0; i < steps; ++i)
    for (float& e : a) e = e * m + c;
  for (float e : a) s += e;
  return s;
}
constexpr double kScalarFlopsPerStep = 8 * 2;

#if SUMI_X86_KERNELS
__attribute__((target("avx2,fma"))) double peak_avx2(int64_t steps) {
  __m256 a[12];
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i));
  for (int64_t s = 0; s < steps; ++s)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
  __m256 sum = a[0];
  for (int i = 1; i < 12; ++i) sum = _mm256_add_ps(sum, a[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, sum);
  return out[0];
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) double peak_avx512(int64_t steps) {
  __m512 a[24];
  const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 24; ++i) a[i] = _mm512_set1_ps(float(i));
  for (int64_t s = 0; s < steps; ++s)
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) a[i] = _mm512_fmadd_ps(a[i], m, c);
  __m512 sum = a[0];
  for (int i = 1; i < 24; ++i) sum = _mm512_add_ps(sum, a[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, sum);
  return out[0];
}
#endif

void bm_peak(benchmark::State& state, Isa isa, int threads) {
  if (!sk::isa_supported(isa)) {
    state.SkipWithError(unsupported_message(isa).c_str());
    return;
  }
  double (*fn)(int64_t) = &peak_scalar;
  double flops_per_step = kScalarFlopsPerStep;
#if SUMI_X86_KERNELS
  if (isa == Isa::avx2) fn = &peak_avx2, flops_per_step = 12 * 8 * 2;
  if (isa == Isa::avx512) fn = &peak_avx512, flops_per_step = 24 * 16 * 2;
#endif
  double sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    sink += fn(kPeakSteps);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  benchmark::DoNotOptimize(sink);
  state.counters["GFLOPS"] =
      flops_per_step * double(kPeakSteps) * threads * double(state.iterations()) / seconds / 1e9;
}

const bool registered = [] {
  const Isa isas[] = {Isa::scalar, Isa::avx2, Isa::avx512};
  for (Isa isa : isas)
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(
          ("peak/fma/" + std::string(sk::isa_name(isa)) + "/" + std::to_string(threads)).c_str(), bm_peak,
          isa, threads);
  for (const Layer& l : kLayers)
    for (Op op : {Op::fwd, Op::bwd_in, Op::bwd_w, Op::bwd})
      for (Isa isa : isas) {
        if (op == Op::bwd && !l.transposed) continue;
        for (int threads : {1, 2})
          benchmark::RegisterBenchmark(("conv/" + std::string(l.name) + "/" + op_name(op) + "/" +
                                        sk::isa_name(isa) + "/" + std::to_string(threads))
                                           .c_str(),
                                       bm_conv, &l, op, isa, threads);
      }
  return true;
}();

}  // namespace
