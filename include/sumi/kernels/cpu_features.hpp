#pragma once
// Which instruction set the vectorized kernels use, chosen at run time.
//
// Why at run time: the release build targets generic x86-64 (no -march=native), so the AVX2 and AVX-512
// kernels are compiled with function-level target attributes and only called when the CPU has them.
// The choice can be forced with the environment variable SUMI_ISA=scalar|avx2|avx512 (read once, on first
// use) or programmatically with set_isa(); forcing an ISA the CPU lacks is an error, never a silent fallback.
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SUMI_X86_KERNELS 1
#else
#define SUMI_X86_KERNELS 0
#endif

namespace sumi::kernels {

enum class Isa { scalar, avx2, avx512 };

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    default:
      return "scalar";
  }
}

inline Isa parse_isa(std::string_view s) {
  if (s == "scalar") return Isa::scalar;
  if (s == "avx2") return Isa::avx2;
  if (s == "avx512") return Isa::avx512;
  throw std::invalid_argument("sumi: unknown ISA '" + std::string(s) + "' (expected scalar, avx2 or avx512)");
}

// What this CPU can run. AVX2 kernels also need FMA; AVX-512 kernels use F, BW, VL and DQ.
inline bool isa_supported(Isa isa) {
#if SUMI_X86_KERNELS
  __builtin_cpu_init();
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::scalar;
#endif
}

// The fastest ISA this CPU supports.
inline Isa best_supported_isa() {
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::scalar;
}

namespace detail {
inline Isa checked_isa(Isa isa, const char* origin) {
  if (!isa_supported(isa))
    throw std::runtime_error(
        std::string("sumi: ") + origin + " requests ISA '" + isa_name(isa) +
        "', which this CPU does not support (best supported: " + isa_name(best_supported_isa()) + ")");
  return isa;
}

// The ISA in force: SUMI_ISA if set, else the best the CPU has; set_isa() replaces it.
inline Isa& isa_state();
}  // namespace detail

// The ISA that a SUMI_ISA value selects: the best supported one when unset or empty, else the named one,
// which must be known and supported by this CPU (std::invalid_argument / std::runtime_error otherwise).
inline Isa isa_from_environment(const char* sumi_isa) {
  if (!sumi_isa || !*sumi_isa) return best_supported_isa();
  Isa isa;
  try {
    isa = parse_isa(sumi_isa);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("SUMI_ISA: ") + e.what());
  }
  return detail::checked_isa(isa, "SUMI_ISA");
}

namespace detail {
inline Isa& isa_state() {
  static Isa isa = isa_from_environment(std::getenv("SUMI_ISA"));
  return isa;
}
}  // namespace detail

// The ISA the conv kernels use now. Throws on first use if SUMI_ISA names an unknown or unsupported ISA.
inline Isa active_isa() {
  return detail::isa_state();
}

// Forces the ISA for all later kernel calls in this process (tests use it to run every path).
// Throws std::runtime_error if the CPU does not support it. Not meant to be called while kernels run.
inline void set_isa(Isa isa) {
  detail::isa_state() = detail::checked_isa(isa, "set_isa");
}

}  // namespace sumi::kernels
