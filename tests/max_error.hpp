#pragma once
// Worst-error accumulation for tests. std::max(worst, NaN) returns worst, so a NaN error (an element never
// written, a 0/0) would pass a `worst <= tolerance` check; nan_max keeps a NaN once it appears.
#include <cmath>

namespace sumi::test {

inline double nan_max(double worst, double error) {
  return error > worst || std::isnan(error) ? error : worst;
}

}  // namespace sumi::test
