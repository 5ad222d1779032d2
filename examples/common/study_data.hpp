#pragma once
// The study's FashionMNIST splits: 50,000 training and 10,000 validation images drawn (seeded) from the
// 60,000 training images, and the 10,000 test images.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>

#include "sumi/data/dataset.hpp"
#include "sumi/data/fashion_mnist.hpp"
#include "sumi/util/cli.hpp"

namespace sumi::examples {

struct StudyData {
  StudyData(data::MnistDataset train_images, data::MnistDataset test_images)
      : train_full(std::move(train_images)), test(std::move(test_images)) {}
  data::MnistDataset train_full, test;
  std::unique_ptr<data::Subset<data::MnistDataset>> train, validation;
};

// The fewest training images --limit may keep: a sixth of them is held out for validation, which must not
// be empty (a validation loss over no images would read 0, the best possible).
inline constexpr int64_t kMinLimit = 6;

// Binds --limit (0: every training image) to `limit`.
inline void bind_limit_flag(util::ArgParser& cli, int64_t& limit) {
  cli.bind("--limit", limit, "use only the first N training images (0: all)")
      .check([](int64_t v) { return v == 0 || v >= kMinLimit; },
             "must be 0 (all images) or at least " + std::to_string(kMinLimit) +
                 ", so that a sixth is left for validation");
}

// `limit` > 0 keeps only the first `limit` training images (split 5:1) and limit/6 test images, for quick
// runs and tests.
inline std::unique_ptr<StudyData> load_study_data(const std::filesystem::path& dir, uint64_t seed,
                                                  int64_t limit = 0) {
  auto d = std::make_unique<StudyData>(data::load_fashion_mnist(dir, data::Split::train),
                                       data::load_fashion_mnist(dir, data::Split::test));
  int64_t n = d->train_full.size();
  if (limit > 0) n = std::min(n, limit);
  const int64_t n_val = limit > 0 ? n / 6 : std::min<int64_t>(10000, n / 6);
  if (n_val == 0)
    throw std::runtime_error(dir.string() + ": " + std::to_string(n) +
                             " training images leave none for validation (a sixth is held out)");
  auto parts = data::random_split(n, {n - n_val, n_val}, seed);
  d->train = std::make_unique<data::Subset<data::MnistDataset>>(d->train_full, std::move(parts[0]));
  d->validation = std::make_unique<data::Subset<data::MnistDataset>>(d->train_full, std::move(parts[1]));
  return d;
}

// The test images a run with `limit` (as for load_study_data) uses: all of them, or the first limit/6.
inline data::Subset<data::MnistDataset> test_subset(const StudyData& d, int64_t limit) {
  const int64_t count = limit > 0 ? std::clamp<int64_t>(limit / 6, 1, d.test.size()) : d.test.size();
  std::vector<int64_t> idx(static_cast<std::size_t>(count));
  std::iota(idx.begin(), idx.end(), int64_t{0});
  return {d.test, std::move(idx)};
}

// The log line with the sizes of the splits a run uses.
inline void print_split_sizes(const StudyData& d, int64_t test_images) {
  std::printf("data: %lld train, %lld validation, %lld test images\n", (long long)d.train->size(),
              (long long)d.validation->size(), (long long)test_images);
}

}  // namespace sumi::examples
