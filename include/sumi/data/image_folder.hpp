#pragma once
// ImageFolder: a dataset of PNG/JPEG/BMP images in class subfolders, as torchvision's ImageFolder, e.g.
// Kuzushiji-Kanji (`kkanji2/U+4E00/<hash>.png`). Class i is the i-th subfolder of the root in sorted order;
// each class's images are found recursively, following folder links, in torchvision's order (folders by
// path, then files by name within each), so sample i is torchvision's sample i. Files with other extensions
// are ignored; a class folder without images is refused, as torchvision does.
//
// Every image is decoded once (in parallel, via stb_image), converted to 1 (grayscale) or 3 (RGB) channels,
// resized so its shorter side is image_size and centre-cropped to image_size x image_size, and kept in memory
// as bytes; get_batch maps them to floats in [-1, 1] (torchvision's ToTensor + Normalize(0.5, 0.5)).
// Grayscale images asked for as RGB are stored once and replicated into the three channels per batch, so a
// grayscale set costs a third of the memory in either mode.
//
// A file that cannot be decoded is reported by path: in strict mode the constructor throws, otherwise it is
// skipped and listed in skipped_files().
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "sumi/data/dataset.hpp"
#include "sumi/data/detail/stb_image.hpp"
#include "sumi/data/transforms.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/tensor/tensor.hpp"

namespace sumi::data {

struct ImageFolderOptions {
  int channels = 3;                      // 1: grayscale (luma of colour images), 3: RGB (grey replicated)
  int image_size = 64;                   // output width and height
  ResizeMode resize = ResizeMode::area;  // how images of another size are scaled before the centre crop
  bool strict = false;                   // throw on the first file that cannot be decoded (else skip it)
  int threads = 0;                       // decoding threads (0: OpenMP's default)
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg", ".bmp"};  // lower case
};

class ImageFolder {
 public:
  explicit ImageFolder(const std::filesystem::path& root, ImageFolderOptions options = {})
      : root_(root), options_(std::move(options)) {
    namespace fs = std::filesystem;
    if (options_.channels != 1 && options_.channels != 3)
      throw std::invalid_argument("ImageFolder: channels must be 1 or 3, got " +
                                  std::to_string(options_.channels));
    if (options_.image_size < 1 || options_.image_size > 4096)
      throw std::invalid_argument("ImageFolder: image_size must be in [1, 4096], got " +
                                  std::to_string(options_.image_size));
    if (!fs::is_directory(root))
      throw std::runtime_error("ImageFolder: '" + root.string() + "' is not a folder");
    std::vector<fs::path> class_dirs;
    for (const auto& entry : fs::directory_iterator(root))
      if (entry.is_directory()) class_dirs.push_back(entry.path());
    std::sort(class_dirs.begin(), class_dirs.end());
    std::vector<fs::path> files;
    std::vector<int64_t> file_labels;
    std::vector<std::string> empty_classes;
    for (std::size_t c = 0; c < class_dirs.size(); ++c) {
      std::vector<fs::path> found;
      for (const auto& entry :
           fs::recursive_directory_iterator(class_dirs[c], fs::directory_options::follow_directory_symlink))
        if (entry.is_regular_file() && has_image_extension(entry.path())) found.push_back(entry.path());
      // sorted(os.walk(...)) then sorted(file names): by folder path as text, then by file name
      std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
        return std::pair(a.parent_path().native(), a.filename().native()) <
               std::pair(b.parent_path().native(), b.filename().native());
      });
      classes_.push_back(class_dirs[c].filename().string());
      if (found.empty()) empty_classes.push_back(classes_.back());
      for (auto& f : found) {
        files.push_back(std::move(f));
        file_labels.push_back(int64_t(c));
      }
    }
    if (files.empty())
      throw std::runtime_error("ImageFolder: no images (" + extension_list() + ") in class subfolders of '" +
                               root.string() + "'");
    if (!empty_classes.empty()) {
      std::string names;
      for (const auto& name : empty_classes) names += (names.empty() ? "'" : ", '") + name + "'";
      throw std::runtime_error("ImageFolder: no images (" + extension_list() + ") in the class folder" +
                               (empty_classes.size() > 1 ? "s " : " ") + names + " of '" + root.string() +
                               "' (every subfolder is a class; remove empty ones)");
    }
    load(files, file_labels);
  }

  int64_t size() const { return int64_t(labels_.size()); }
  const std::filesystem::path& root() const { return root_; }
  const ImageFolderOptions& options() const { return options_; }
  // Class names (the subfolder names), in label order.
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<int64_t>& labels() const { return labels_; }
  const std::vector<std::filesystem::path>& paths() const { return paths_; }
  // "path: reason" for every file that could not be decoded and was skipped.
  const std::vector<std::string>& skipped_files() const { return skipped_; }
  // [channels, image_size, image_size]
  Shape sample_shape() const { return {options_.channels, options_.image_size, options_.image_size}; }
  // Channels kept in memory per image: 1 when every image is grayscale, else options().channels.
  int stored_channels() const { return stored_channels_; }
  // Bytes of image i, stored_channels() planes of image_size x image_size.
  const uint8_t* image_bytes(int64_t i) const {
    return bytes_.data() + std::size_t(i) * plane_bytes() * std::size_t(stored_channels_);
  }

  void get_batch(std::span<const int64_t> indices, Tensor<float>& images,
                 std::vector<int64_t>& labels) const {
    const int64_t n = int64_t(indices.size()), c = options_.channels;
    prepare_batch_tensor(images, {n, c, options_.image_size, options_.image_size});
    labels.resize(indices.size());
    std::array<float, 256> lut{};
    for (int b = 0; b < 256; ++b) lut[std::size_t(b)] = byte_to_signed_unit(uint8_t(b));
    const std::size_t plane = plane_bytes();
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = indices[std::size_t(k)];
      if (i < 0 || i >= size())
        throw std::out_of_range("ImageFolder::get_batch: index " + std::to_string(i) + " out of range for " +
                                std::to_string(size()) + " images");
      labels[std::size_t(k)] = labels_[std::size_t(i)];
      const uint8_t* src = image_bytes(i);
      float* dst = images.data() + std::size_t(k) * std::size_t(c) * plane;
      for (int64_t ch = 0; ch < c; ++ch) {
        const uint8_t* s = src + (stored_channels_ == 1 ? 0 : std::size_t(ch) * plane);
        for (std::size_t p = 0; p < plane; ++p) dst[std::size_t(ch) * plane + p] = lut[s[p]];
      }
    }
  }

 private:
  std::size_t plane_bytes() const {
    return std::size_t(options_.image_size) * std::size_t(options_.image_size);
  }

  bool has_image_extension(const std::filesystem::path& p) const {
    std::string ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char ch) { return char(std::tolower(ch)); });
    return std::find(options_.extensions.begin(), options_.extensions.end(), ext) !=
           options_.extensions.end();
  }
  std::string extension_list() const {
    std::string s;
    for (const auto& e : options_.extensions) s += (s.empty() ? "" : " ") + e;
    return s;
  }

  // Decodes one file to the target size, `gray` telling whether it had no colour.
  ByteImage decode(const std::filesystem::path& path, bool& gray) const {
    int w = 0, h = 0, comp = 0;
    const std::unique_ptr<unsigned char, void (*)(void*)> decoded(stbi_load(path.c_str(), &w, &h, &comp, 0),
                                                                  stbi_image_free);
    const unsigned char* raw = decoded.get();
    if (!raw) {
      const char* reason = stbi_failure_reason();
      throw std::runtime_error(std::string("cannot decode image (") + (reason ? reason : "unknown error") +
                               ")");
    }
    gray = comp <= 2;
    const int out_c = (gray || options_.channels == 1) ? 1 : 3;
    ByteImage image{w, h, out_c, {}};
    image.pixels.resize(std::size_t(w) * std::size_t(h) * std::size_t(out_c));
    for (std::size_t p = 0; p < std::size_t(w) * std::size_t(h); ++p) {
      const unsigned char* px = raw + p * std::size_t(comp);
      if (gray) {
        image.pixels[p] = px[0];  // alpha, if any, is dropped
      } else if (out_c == 1) {    // ITU-R 601-2 luma in PIL's fixed point (convert("L")), to the bit
        image.pixels[p] = uint8_t((px[0] * 19595 + px[1] * 38470 + px[2] * 7471 + 0x8000) >> 16);
      } else {
        for (int ch = 0; ch < 3; ++ch) image.pixels[p * 3 + std::size_t(ch)] = px[ch];
      }
    }
    return resize_and_center_crop(image, options_.image_size, options_.resize);
  }

  void load(const std::vector<std::filesystem::path>& files, const std::vector<int64_t>& file_labels) {
    const int64_t n = int64_t(files.size());
    const std::size_t plane = plane_bytes();
    // Grey planes for every file in one buffer (the common case needs nothing else); colour images keep
    // their three planes aside until the end.
    std::vector<uint8_t> gray_planes(std::size_t(n) * plane);
    std::vector<std::vector<uint8_t>> colour(static_cast<std::size_t>(n));
    std::vector<std::string> errors(static_cast<std::size_t>(n));
    const int threads = options_.threads > 0 ? options_.threads : get_num_threads();
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
      try {
        bool gray = true;
        const ByteImage img = decode(files[std::size_t(i)], gray);
        if (img.channels == 1) {
          std::memcpy(gray_planes.data() + std::size_t(i) * plane, img.pixels.data(), plane);
        } else {
          auto& planes = colour[std::size_t(i)];
          planes.resize(3 * plane);
          for (std::size_t p = 0; p < plane; ++p)
            for (std::size_t ch = 0; ch < 3; ++ch) planes[ch * plane + p] = img.pixels[p * 3 + ch];
        }
      } catch (const std::exception& e) {  // also a failed allocation for a huge image
        errors[std::size_t(i)] = files[std::size_t(i)].string() + ": " + e.what();
      }
    }
    for (int64_t i = 0; i < n; ++i)
      if (!errors[std::size_t(i)].empty()) {
        if (options_.strict) throw std::runtime_error("ImageFolder (strict): " + errors[std::size_t(i)]);
        skipped_.push_back(errors[std::size_t(i)]);
      }
    bool any_colour = false;
    for (const auto& c : colour) any_colour = any_colour || !c.empty();
    stored_channels_ = any_colour ? 3 : 1;
    const std::size_t stride = plane * std::size_t(stored_channels_);
    if (any_colour) bytes_.resize(std::size_t(n) * stride);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!errors[std::size_t(i)].empty()) continue;
      uint8_t* dst = (any_colour ? bytes_.data() : gray_planes.data()) + std::size_t(kept) * stride;
      if (!any_colour) {
        if (kept != i) std::memmove(dst, gray_planes.data() + std::size_t(i) * plane, plane);
      } else if (!colour[std::size_t(i)].empty()) {
        std::memcpy(dst, colour[std::size_t(i)].data(), stride);
        std::vector<uint8_t>().swap(colour[std::size_t(i)]);
      } else {
        for (int ch = 0; ch < 3; ++ch)
          std::memcpy(dst + std::size_t(ch) * plane, gray_planes.data() + std::size_t(i) * plane, plane);
      }
      paths_.push_back(files[std::size_t(i)]);
      labels_.push_back(file_labels[std::size_t(i)]);
      ++kept;
    }
    if (!any_colour) {
      gray_planes.resize(std::size_t(kept) * plane);
      gray_planes.shrink_to_fit();
      bytes_ = std::move(gray_planes);
    } else {
      bytes_.resize(std::size_t(kept) * stride);
    }
    if (kept == 0)
      throw std::runtime_error("ImageFolder: none of the " + std::to_string(n) + " images in '" +
                               root_.string() + "' could be decoded; first error: " + skipped_.front());
  }

  std::filesystem::path root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::vector<int64_t> labels_;
  std::vector<std::filesystem::path> paths_;
  std::vector<std::string> skipped_;
  std::vector<uint8_t> bytes_;
  int stored_channels_ = 1;
};

}  // namespace sumi::data
