#pragma once
// FashionMNIST (and MNIST / KMNIST, which use the same file names and format): 28x28 grey images in 10
// classes, loaded into memory as bytes (47 MB for the 60,000 training images, a quarter of the float size)
// and converted to float in [0, 1] per batch, exactly as torchvision's ToTensor() does (v / 255).
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sumi/data/dataset.hpp"
#include "sumi/data/idx.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::data {

inline constexpr std::array<std::string_view, 10> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

inline constexpr const char* kFashionMnistDefaultDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kFashionMnistInstallCommand = "apt-get install dataset-fashion-mnist";

enum class Split { train, test };

// The dataset's files are not where they were looked for. The message lists the paths tried.
class DatasetNotFoundError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An in-memory MNIST-format dataset: images [N, H, W] of bytes and N byte labels; batches are [B, 1, H, W]
// floats.
class MnistDataset {
 public:
  // Validates that the arrays are images [N, H, W] and labels [N]. The names identify the files in errors.
  MnistDataset(IdxArray images, IdxArray labels, const std::string& images_name = "images",
               const std::string& labels_name = "labels")
      : images_(std::move(images)), labels_(std::move(labels)) {
    if (images_.dims.size() != 3)
      throw IdxError("IDX file '" + images_name +
                     "': expected images of rank 3 [N, height, width], got dimensions " +
                     shape_str(images_.dims));
    if (labels_.dims.size() != 1)
      throw IdxError("IDX file '" + labels_name + "': expected labels of rank 1 [N], got dimensions " +
                     shape_str(labels_.dims));
    // Arrays built in code (not read by read_idx, which checks this) must hold what their dimensions say.
    for (const auto& [array, name] : {std::pair{&images_, &images_name}, {&labels_, &labels_name}})
      if (std::any_of(array->dims.begin(), array->dims.end(), [](int64_t d) { return d < 0; }) ||
          int64_t(array->data.size()) != shape_numel(array->dims))
        throw IdxError("IDX array '" + *name + "': dimensions " + shape_str(array->dims) + " but " +
                       std::to_string(array->data.size()) + " bytes");
    if (images_.dims[0] != labels_.dims[0])
      throw IdxError("count mismatch: images file '" + images_name + "' has " +
                     std::to_string(images_.dims[0]) + " images but labels file '" + labels_name + "' has " +
                     std::to_string(labels_.dims[0]) + " labels");
    for (uint8_t label : labels_.data) num_classes_ = std::max<int64_t>(num_classes_, int64_t(label) + 1);
  }

  // Reads and validates an images file and a labels file (each raw or .gz).
  static MnistDataset from_files(const std::filesystem::path& images_path,
                                 const std::filesystem::path& labels_path) {
    return MnistDataset(read_idx(images_path), read_idx(labels_path), images_path.string(),
                        labels_path.string());
  }

  int64_t size() const { return images_.dims[0]; }
  int64_t height() const { return images_.dims[1]; }
  int64_t width() const { return images_.dims[2]; }
  // Shape of one sample as batched: [1, H, W] (one channel).
  Shape sample_shape() const { return {1, height(), width()}; }
  // One more than the largest label present.
  int64_t num_classes() const { return num_classes_; }

  int64_t label(int64_t i) const {
    check_index(i, "MnistDataset::label");
    return labels_.data[std::size_t(i)];
  }
  // The raw bytes of image i, row-major H x W.
  std::span<const uint8_t> pixels(int64_t i) const {
    check_index(i, "MnistDataset::pixels");
    const auto n = std::size_t(height() * width());
    return {images_.data.data() + std::size_t(i) * n, n};
  }
  const IdxArray& images() const { return images_; }
  const IdxArray& labels() const { return labels_; }

  void get_batch(std::span<const int64_t> indices, Tensor<float>& images,
                 std::vector<int64_t>& labels) const {
    const auto b = int64_t(indices.size());
    prepare_batch_tensor(images, {b, 1, height(), width()});
    labels.resize(indices.size());
    const auto n = std::size_t(height() * width());
    float* out = images.data();
    for (std::size_t k = 0; k < indices.size(); ++k) {
      check_index(indices[k], "MnistDataset::get_batch");
      const uint8_t* src = images_.data.data() + std::size_t(indices[k]) * n;
      float* dst = out + k * n;
      if (k + 2 < indices.size() && indices[k + 2] >= 0 && indices[k + 2] < size()) {
        // the images are picked at random: fetch two ahead, which the hardware prefetcher cannot guess
        const uint8_t* ahead = images_.data.data() + std::size_t(indices[k + 2]) * n;
        for (std::size_t p = 0; p < n; p += 64) __builtin_prefetch(ahead + p);
      }
      // v / 255.0f exactly, as ToTensor; the division vectorizes (a table lookup per pixel did not).
#pragma omp simd
      for (std::size_t p = 0; p < n; ++p) dst[p] = float(src[p]) / 255.0f;
      labels[k] = labels_.data[std::size_t(indices[k])];
    }
  }

 private:
  void check_index(int64_t i, const char* op) const {
    if (i < 0 || i >= size())
      throw std::out_of_range(std::string(op) + ": index " + std::to_string(i) + " out of range for " +
                              std::to_string(size()) + " samples");
  }

  IdxArray images_;
  IdxArray labels_;
  int64_t num_classes_ = 0;
};

// The directory to load from: `dir` if given, else $SUMI_DATA if set, else /usr/share/datasets/fashion-mnist.
inline std::filesystem::path resolve_fashion_mnist_dir(const std::filesystem::path& dir = {}) {
  if (!dir.empty()) return dir;
  if (const char* env = std::getenv("SUMI_DATA"); env && *env) return env;
  return kFashionMnistDefaultDir;
}

// File name stems of a split: {images, labels}, without the optional ".gz".
inline std::array<std::string, 2> fashion_mnist_file_stems(Split split) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  return {prefix + "-images-idx3-ubyte", prefix + "-labels-idx1-ubyte"};
}

// Loads a split of FashionMNIST (or MNIST/KMNIST: same file names) from the resolved directory, preferring
// `<stem>.gz` over the uncompressed `<stem>`. A missing file throws DatasetNotFoundError listing the paths
// tried and how to install the dataset; a corrupt file, a file without images, or labels outside 0..9,
// throws IdxError.
inline MnistDataset load_fashion_mnist(const std::filesystem::path& dir = {}, Split split = Split::train) {
  namespace fs = std::filesystem;
  const fs::path root = resolve_fashion_mnist_dir(dir);
  const char* source =
      !dir.empty() ? "given directory" : (root == kFashionMnistDefaultDir ? "default" : "$SUMI_DATA");
  std::array<fs::path, 2> found;
  std::string missing;
  const auto stems = fashion_mnist_file_stems(split);
  for (std::size_t f = 0; f < 2; ++f) {
    const fs::path gz = root / (stems[f] + ".gz"), raw = root / stems[f];
    std::error_code ec;
    if (fs::is_regular_file(gz, ec))
      found[f] = gz;
    else if (fs::is_regular_file(raw, ec))
      found[f] = raw;
    else
      missing += "\n  " + gz.string() + " (or " + raw.string() + ")";
  }
  if (!missing.empty())
    throw DatasetNotFoundError(
        std::string("FashionMNIST ") + (split == Split::train ? "train" : "test") + " split not found in '" +
        root.string() + "' (" + source + "); looked for:" + missing + "\nInstall it with `" +
        kFashionMnistInstallCommand +
        "`, or pass the directory / set SUMI_DATA to a directory holding these files.");

  MnistDataset dataset = MnistDataset::from_files(found[0], found[1]);
  // Models for FashionMNIST assume its 28x28 images; another MNIST-format set would fail deep in a layer.
  if (dataset.height() != 28 || dataset.width() != 28)
    throw IdxError("IDX file '" + found[0].string() + "': FashionMNIST images are 28x28, this file's are " +
                   std::to_string(dataset.height()) + "x" + std::to_string(dataset.width()));
  // A split without images would train on nothing or report the accuracy of no test images.
  if (dataset.size() == 0) throw IdxError("IDX file '" + found[0].string() + "': holds no images");
  for (int64_t i = 0; i < dataset.size(); ++i)
    if (dataset.label(i) >= int64_t(fashion_mnist_classes.size()))
      throw IdxError("IDX file '" + found[1].string() + "': label " + std::to_string(dataset.label(i)) +
                     " of sample " + std::to_string(i) + " is outside the 10 classes 0..9");
  return dataset;
}

inline MnistDataset load_fashion_mnist(Split split) {
  return load_fashion_mnist({}, split);
}

}  // namespace sumi::data
