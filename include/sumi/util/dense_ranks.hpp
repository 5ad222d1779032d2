#pragma once
// Dense ranks: the distinct values of a list in ascending order, and each element's position among them,
// which maps sparse labels (3, 100, 7) to the class ids 0, 2, 1.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace sumi::util {

template <class V>
struct DenseRanks {
  std::vector<V> distinct;     // ascending, each value once
  std::vector<int64_t> ranks;  // ranks[i]: the position of values[i] in `distinct`
};

template <class V>
DenseRanks<V> dense_ranks(const std::vector<V>& values) {
  DenseRanks<V> r{values, {}};
  std::sort(r.distinct.begin(), r.distinct.end());
  r.distinct.erase(std::unique(r.distinct.begin(), r.distinct.end()), r.distinct.end());
  r.ranks.reserve(values.size());
  for (const V& v : values)
    r.ranks.push_back(std::lower_bound(r.distinct.begin(), r.distinct.end(), v) - r.distinct.begin());
  return r;
}

}  // namespace sumi::util
