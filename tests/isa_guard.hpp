#pragma once
// Restores the ISA in force when a test that forces others ends, also when a check throws, so later tests in
// the binary run with the ISA they started with.
#include "sumi/kernels/cpu_features.hpp"

namespace sumi::test {

struct IsaGuard {
  sumi::kernels::Isa saved = sumi::kernels::active_isa();
  IsaGuard() = default;
  IsaGuard(const IsaGuard&) = delete;
  IsaGuard& operator=(const IsaGuard&) = delete;
  ~IsaGuard() { sumi::kernels::set_isa(saved); }
};

}  // namespace sumi::test
