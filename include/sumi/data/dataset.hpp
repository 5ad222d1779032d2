#pragma once
// The Dataset concept (what a DataLoader needs: a size and a way to fill a batch from a list of indices),
// Subset (a view of some of a dataset's samples) and random_split (seeded, reproducible index splits, as in
// splitting FashionMNIST's 60,000 training images into 50,000 train and 10,000 validation).
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/tensor/random.hpp"
#include "sumi/tensor/shape.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::data {

// A dataset of labelled samples. get_batch(indices, images, labels) fills `images` with shape
// [indices.size(), ...sample shape] and `labels` with indices.size() class indices. It is given the tensor
// and vector of an earlier batch, which nothing else holds, and should reuse their buffers when the shape
// repeats (see prepare_batch_tensor), so a steady-state epoch allocates nothing. It must be safe to call from
// another thread than the one that built the dataset (the DataLoader calls it on its worker thread),
// concurrently with const reads.
template <class D>
concept Dataset = requires(const D& d, std::span<const int64_t> indices, Tensor<float>& images,
                           std::vector<int64_t>& labels) {
  { d.size() } -> std::convertible_to<int64_t>;
  d.get_batch(indices, images, labels);
};

// Makes `t` a contiguous tensor of `shape`, keeping its buffer when it already has that shape (the
// DataLoader hands a dataset only buffers nothing else holds).
inline void prepare_batch_tensor(Tensor<float>& t, const Shape& shape) {
  if (!t.defined() || t.shape() != shape || !t.is_contiguous()) t = Tensor<float>::empty(shape);
}

// A uniformly random permutation of 0..n-1 (Fisher-Yates with sumi::Generator, so the same seed gives the
// same order on every platform, unlike std::shuffle whose algorithm is unspecified).
inline std::vector<int64_t> random_permutation(int64_t n, Generator& gen) {
  if (n < 0) throw std::invalid_argument("random_permutation: negative size " + std::to_string(n));
  std::vector<int64_t> perm(static_cast<std::size_t>(n));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[std::size_t(i)], perm[gen.below(uint64_t(i) + 1)]);
  return perm;
}

// Splits 0..dataset_size-1 into disjoint random index lists of the given lengths, which must add up to
// dataset_size. The same seed always gives the same split: random_split(60000, {50000, 10000}, seed).
inline std::vector<std::vector<int64_t>> random_split(int64_t dataset_size,
                                                      const std::vector<int64_t>& lengths, uint64_t seed) {
  int64_t total = 0;
  for (int64_t len : lengths) {
    if (len < 0) throw std::invalid_argument("random_split: negative length " + std::to_string(len));
    if (__builtin_add_overflow(total, len, &total))
      throw std::invalid_argument("random_split: lengths " + shape_str(lengths) +
                                  " add up to more than an int64_t holds");
  }
  if (total != dataset_size)
    throw std::invalid_argument("random_split: lengths " + shape_str(lengths) + " add up to " +
                                std::to_string(total) + ", not the dataset size " +
                                std::to_string(dataset_size));
  Generator gen(seed);
  const std::vector<int64_t> perm = random_permutation(dataset_size, gen);
  std::vector<std::vector<int64_t>> parts;
  parts.reserve(lengths.size());
  auto begin = perm.begin();
  for (int64_t len : lengths) {
    parts.emplace_back(begin, begin + len);
    begin += len;
  }
  return parts;
}

// A view of the samples of `dataset` at `indices` (in that order). The dataset is referenced, not copied, and
// must outlive the Subset.
template <Dataset D>
class Subset {
 public:
  Subset(const D& dataset, std::vector<int64_t> indices) : dataset_(&dataset), indices_(std::move(indices)) {
    const int64_t n = int64_t(dataset.size());
    for (int64_t i : indices_)
      if (i < 0 || i >= n)
        throw std::out_of_range("Subset: index " + std::to_string(i) + " out of range for a dataset of " +
                                std::to_string(n) + " samples");
  }

  int64_t size() const { return int64_t(indices_.size()); }
  const std::vector<int64_t>& indices() const { return indices_; }
  const D& dataset() const { return *dataset_; }
  // The index in the underlying dataset of this subset's sample i.
  int64_t source_index(int64_t i) const { return indices_.at(std::size_t(i)); }

  void get_batch(std::span<const int64_t> indices, Tensor<float>& images,
                 std::vector<int64_t>& labels) const {
    std::vector<int64_t> mapped(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
      const int64_t i = indices[k];
      if (i < 0 || i >= size())
        throw std::out_of_range("Subset::get_batch: index " + std::to_string(i) +
                                " out of range for a subset of " + std::to_string(size()) + " samples");
      mapped[k] = indices_[std::size_t(i)];
    }
    dataset_->get_batch(std::span<const int64_t>(mapped), images, labels);
  }

 private:
  const D* dataset_;
  std::vector<int64_t> indices_;
};

// random_split applied to a dataset: one Subset per length, viewing `dataset` (which must outlive them).
template <Dataset D>
std::vector<Subset<D>> random_split(const D& dataset, const std::vector<int64_t>& lengths, uint64_t seed) {
  std::vector<Subset<D>> subsets;
  for (auto& part : random_split(int64_t(dataset.size()), lengths, seed))
    subsets.emplace_back(dataset, std::move(part));
  return subsets;
}

}  // namespace sumi::data
