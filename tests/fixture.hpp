#pragma once
// Loads the PyTorch golden fixtures in tests/fixtures (see tests/fixtures/README.md) and compares results
// against them, including tensors stored as strided subsamples.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "sumi/io/safetensors.hpp"

namespace sumi::test {

// fill(shape, seed, scale, offset)[i] = float32(offset + scale * sin(0.618034 * i + 1.3 * seed)), as the
// fixture script generates its inputs.
template <class T>
Tensor<T> fill(const Shape& shape, int64_t seed, double scale, double offset = 0.0) {
  Tensor<T> t = Tensor<T>::empty(shape);
  const double phase = 1.3 * double(seed);
  for (int64_t i = 0; i < t.numel(); ++i) {
    volatile double arg = 0.618034 * double(i);  // volatile: no FMA contraction, as in the script
    t.data()[i] = T(float(offset + scale * std::sin(arg + phase)));
  }
  return t;
}

class Fixture {
 public:
  explicit Fixture(const std::string& name)
      : file_(io::read_safetensors(std::string(SUMI_FIXTURE_DIR) + "/" + name + ".safetensors")) {}

  const io::SafetensorsFile& file() const { return file_; }
  bool contains(const std::string& name) const { return file_.contains(name); }
  std::string meta(const std::string& key) const {
    auto it = file_.metadata.find(key);
    if (it == file_.metadata.end()) FAIL("fixture metadata '" << key << "' missing");
    return it->second;
  }
  nlohmann::json meta_json(const std::string& key) const { return nlohmann::json::parse(meta(key)); }

  // The full shape of a stored tensor, also when it is stored subsampled.
  Shape shape(const std::string& name) const {
    auto it = file_.metadata.find(name + ".shape");
    return it != file_.metadata.end() ? nlohmann::json::parse(it->second).get<Shape>()
                                      : file_.record(name).shape;
  }

  // An input tensor in full: regenerated from its fill recipe when it has one, else read from the file.
  template <class T>
  Tensor<T> input(const std::string& name) const {
    auto it = file_.metadata.find(name + ".fill");
    if (it == file_.metadata.end()) return file_.tensor<T>(name);
    long long seed = 0;
    double scale = 0, offset = 0;
    if (std::sscanf(it->second.c_str(), "seed=%lld,scale=%lf,offset=%lf", &seed, &scale, &offset) != 3)
      FAIL("bad fill recipe for " << name << ": " << it->second);
    Tensor<T> t = fill<T>(shape(name), seed, scale, offset);
    if (!file_.metadata.count(name + ".stride")) REQUIRE_CLOSE_TO_STORED(t, name);
    return t;
  }

  // Largest |computed - expected| relative to (|expected| + max|expected|) over the stored elements; every
  // element must be within rtol.
  template <class T>
  void require_close(const std::string& name, const Tensor<T>& computed, double rtol = 1e-4) const {
    const Tensor<double> expected = file_.tensor<double>(name);
    const Tensor<T> c = computed.contiguous();
    int64_t stride = 1;
    if (auto it = file_.metadata.find(name + ".stride"); it != file_.metadata.end())
      stride = std::stoll(it->second);
    INFO("fixture tensor " << name);
    REQUIRE(shape_numel(shape(name)) == c.numel());
    REQUIRE(expected.numel() == (c.numel() + stride - 1) / stride);
    double scale = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) scale = std::max(scale, std::abs(expected.data()[i]));
    double worst = 0;
    int64_t worst_at = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) {
      const double e = expected.data()[i], a = double(c.data()[i * stride]);
      const double err = std::abs(a - e) / (std::abs(e) + scale + 1e-30);
      if (!(err <= worst)) {  // also catches NaN
        worst = std::isnan(err) ? INFINITY : err;
        worst_at = i * stride;
      }
    }
    INFO("worst relative error " << worst << " at flat index " << worst_at);
    REQUIRE(worst <= rtol);
  }

  // Every element within rtol of its own expected value, plus atol, plus largest_fraction of the largest
  // expected magnitude. Unlike require_close, whose scale is the largest element, this holds the small
  // values beside large ones (a gradient next to a clamped one, values near 0 beside ±1000) to their size.
  template <class T>
  void require_each_close(const std::string& name, const Tensor<T>& computed, double rtol, double atol = 0,
                          double largest_fraction = 0) const {
    const Tensor<double> expected = file_.tensor<double>(name);
    REQUIRE(computed.shape() == expected.shape());
    const Tensor<T> c = computed.contiguous();
    double largest = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) largest = std::max(largest, std::abs(expected.data()[i]));
    for (int64_t i = 0; i < c.numel(); ++i) {
      const double e = expected.data()[i], a = double(c.data()[i]);
      INFO(name << " flat index " << i << ": computed " << a << ", expected " << e);
      REQUIRE(std::abs(a - e) <= rtol * std::abs(e) + atol + largest_fraction * largest);
    }
  }

 private:
  template <class T>
  void REQUIRE_CLOSE_TO_STORED(const Tensor<T>& t, const std::string& name) const {
    require_close(name, t, 1e-6);  // the regenerated input must be the stored one
  }
  io::SafetensorsFile file_;
};

}  // namespace sumi::test
