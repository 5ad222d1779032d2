#pragma once
// Small synthetic image datasets for fast training tests: a bright blob whose position depends on the label
// (10 classes), plus seeded noise, so that models can learn something in a few steps.
#include <algorithm>
#include <cmath>

#include "sumi/data/fashion_mnist.hpp"
#include "sumi/tensor/random.hpp"

namespace sumi::test {

// n synthetic 28x28 FashionMNIST-like images: blobs whose position depends on the label, with seeded noise.
inline data::MnistDataset synthetic_images(int64_t n, uint64_t seed) {
  Generator gen(seed);
  data::IdxArray images{{n, 28, 28}, std::vector<uint8_t>(std::size_t(n * 784))};
  data::IdxArray labels{{n}, std::vector<uint8_t>(std::size_t(n))};
  for (int64_t i = 0; i < n; ++i) {
    const int label = int(i % 10);
    labels.data[std::size_t(i)] = uint8_t(label);
    const double cx = 6 + 1.6 * label, cy = 14 + 4 * std::sin(label);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
        const double v = 230 * std::exp(-d2 / 18) + 25 * gen.uniform();
        images.data[std::size_t(i * 784 + y * 28 + x)] = uint8_t(std::min(255.0, v));
      }
  }
  return {std::move(images), std::move(labels)};
}

}  // namespace sumi::test
