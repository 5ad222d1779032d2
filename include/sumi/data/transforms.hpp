#pragma once
// Image transforms on 8-bit pictures, as torchvision's Resize(size) + CenterCrop(size) + Normalize(0.5, 0.5)
// pipeline for GAN training: resize (area averaging or bilinear), centre crop, and mapping bytes to [-1, 1].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace sumi::data {

// An 8-bit picture, rows top to bottom, channels interleaved (HWC), as image decoders return it.
struct ByteImage {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;

  uint8_t at(int x, int y, int c = 0) const {
    return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                  std::size_t(c)];
  }
};

enum class ResizeMode {
  area,      // each output pixel is the coverage-weighted mean of the input pixels under it (OpenCV's
             // INTER_AREA); alias-free for shrinking. Enlarging falls back to bilinear.
  bilinear,  // bilinear interpolation with pixel centres at +0.5 (align_corners=False), no antialiasing
};

namespace detail {
inline void check_target(const ByteImage& image, int width, int height, const char* op) {
  if (width < 1 || height < 1 || image.width < 1 || image.height < 1 || image.channels < 1 ||
      image.pixels.size() !=
          std::size_t(image.width) * std::size_t(image.height) * std::size_t(image.channels))
    throw std::invalid_argument(std::string(op) + ": bad image " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + "x" + std::to_string(image.channels) +
                                " or target " + std::to_string(width) + "x" + std::to_string(height));
}
inline uint8_t round_byte(double v) {
  return uint8_t(std::clamp(std::floor(v + 0.5), 0.0, 255.0));
}

// For output indices [first, first + count) along one axis resized from `in` to `out` samples, the input
// indices each covers and their weights (summing to 1).
struct AreaTaps {
  std::vector<int> begin;
  std::vector<std::vector<double>> weights;
};
inline AreaTaps area_taps(int in, int out, int first_out, int count) {
  AreaTaps taps;
  const double scale = double(in) / double(out);
  for (int o = first_out; o < first_out + count; ++o) {
    const double lo = o * scale, hi = (o + 1) * scale;
    const int first = int(std::floor(lo)), last = std::min(in - 1, int(std::ceil(hi)) - 1);
    std::vector<double> w;
    for (int i = first; i <= last; ++i)
      w.push_back((std::min(hi, i + 1.0) - std::max(lo, double(i))) / scale);
    taps.begin.push_back(first);
    taps.weights.push_back(std::move(w));
  }
  return taps;
}
}  // namespace detail

// A window of a resize: the pixels of the width x height resized image whose columns are [x0, x0 + w) and
// rows [y0, y0 + h), each computed as the whole resize computes it. Resizing then cropping costs the whole
// resized image, which a long, thin picture (1 x 16,000,000 pixels, 31 KB as a PNG) makes gigabytes; the
// window costs only its own pixels.
struct ResizeWindow {
  int x0 = 0, y0 = 0, width = 0, height = 0;
};

namespace detail {
inline void check_window(int width, int height, const ResizeWindow& w, const char* op) {
  if (w.width < 1 || w.height < 1 || w.x0 < 0 || w.y0 < 0 || w.x0 > width - w.width ||
      w.y0 > height - w.height)
    throw std::invalid_argument(std::string(op) + ": window " + std::to_string(w.width) + "x" +
                                std::to_string(w.height) + " at (" + std::to_string(w.x0) + ", " +
                                std::to_string(w.y0) + ") is not inside the " + std::to_string(width) + "x" +
                                std::to_string(height) + " result");
}
}  // namespace detail

inline ByteImage resize_bilinear(const ByteImage& image, int width, int height, ResizeWindow window) {
  detail::check_target(image, width, height, "resize_bilinear");
  detail::check_window(width, height, window, "resize_bilinear");
  ByteImage out{window.width, window.height, image.channels, {}};
  out.pixels.resize(std::size_t(window.width) * std::size_t(window.height) * std::size_t(image.channels));
  const double sx = double(image.width) / width, sy = double(image.height) / height;
  for (int y = window.y0; y < window.y0 + window.height; ++y) {
    const double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, double(image.height - 1));
    const int y0 = int(fy), y1 = std::min(y0 + 1, image.height - 1);
    const double ty = fy - y0;
    for (int x = window.x0; x < window.x0 + window.width; ++x) {
      const double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, double(image.width - 1));
      const int x0 = int(fx), x1 = std::min(x0 + 1, image.width - 1);
      const double tx = fx - x0;
      for (int c = 0; c < image.channels; ++c) {
        const double v = (1 - ty) * ((1 - tx) * image.at(x0, y0, c) + tx * image.at(x1, y0, c)) +
                         ty * ((1 - tx) * image.at(x0, y1, c) + tx * image.at(x1, y1, c));
        out.pixels[(std::size_t(y - window.y0) * std::size_t(window.width) + std::size_t(x - window.x0)) *
                       std::size_t(image.channels) +
                   std::size_t(c)] = detail::round_byte(v);
      }
    }
  }
  return out;
}

inline ByteImage resize_area(const ByteImage& image, int width, int height, ResizeWindow window) {
  detail::check_target(image, width, height, "resize_area");
  detail::check_window(width, height, window, "resize_area");
  if (width > image.width || height > image.height) return resize_bilinear(image, width, height, window);
  const detail::AreaTaps tx = detail::area_taps(image.width, width, window.x0, window.width),
                         ty = detail::area_taps(image.height, height, window.y0, window.height);
  ByteImage out{window.width, window.height, image.channels, {}};
  out.pixels.resize(std::size_t(window.width) * std::size_t(window.height) * std::size_t(image.channels));
  for (int y = 0; y < window.height; ++y)
    for (int x = 0; x < window.width; ++x)
      for (int c = 0; c < image.channels; ++c) {
        double sum = 0;
        for (std::size_t j = 0; j < ty.weights[std::size_t(y)].size(); ++j)
          for (std::size_t i = 0; i < tx.weights[std::size_t(x)].size(); ++i)
            sum += ty.weights[std::size_t(y)][j] * tx.weights[std::size_t(x)][i] *
                   image.at(tx.begin[std::size_t(x)] + int(i), ty.begin[std::size_t(y)] + int(j), c);
        out.pixels[(std::size_t(y) * std::size_t(window.width) + std::size_t(x)) *
                       std::size_t(image.channels) +
                   std::size_t(c)] = detail::round_byte(sum);
      }
  return out;
}

inline ByteImage resize_bilinear(const ByteImage& image, int width, int height) {
  return resize_bilinear(image, width, height, {0, 0, width, height});
}
inline ByteImage resize_area(const ByteImage& image, int width, int height) {
  return resize_area(image, width, height, {0, 0, width, height});
}

inline ByteImage resize(const ByteImage& image, int width, int height, ResizeMode mode, ResizeWindow window) {
  if (image.width == width && image.height == height && window.width == width && window.height == height)
    return image;
  return mode == ResizeMode::area ? resize_area(image, width, height, window)
                                  : resize_bilinear(image, width, height, window);
}
inline ByteImage resize(const ByteImage& image, int width, int height, ResizeMode mode) {
  return resize(image, width, height, mode, {0, 0, width, height});
}

namespace detail {
// Where torchvision's CenterCrop starts cutting `length` out of `full`: int(round(margin / 2.0)), Python
// rounding the half to the even side.
inline int center_crop_offset(int full, int length) {
  const int margin = full - length, half = margin / 2;
  return margin % 2 == 1 && half % 2 == 1 ? half + 1 : half;
}
}  // namespace detail

// The central width x height part (torchvision's CenterCrop; the image must be at least that large).
inline ByteImage center_crop(const ByteImage& image, int width, int height) {
  detail::check_target(image, width, height, "center_crop");
  if (width > image.width || height > image.height)
    throw std::invalid_argument("center_crop: " + std::to_string(width) + "x" + std::to_string(height) +
                                " is larger than the image, " + std::to_string(image.width) + "x" +
                                std::to_string(image.height));
  if (width == image.width && height == image.height) return image;
  const int x0 = detail::center_crop_offset(image.width, width),
            y0 = detail::center_crop_offset(image.height, height);
  ByteImage out{width, height, image.channels, {}};
  const std::size_t row = std::size_t(width) * std::size_t(image.channels);
  for (int y = 0; y < height; ++y) {
    const uint8_t* src = &image.pixels[(std::size_t(y0 + y) * std::size_t(image.width) + std::size_t(x0)) *
                                       std::size_t(image.channels)];
    out.pixels.insert(out.pixels.end(), src, src + row);
  }
  return out;
}

// The {width, height} of a width x height image resized so its shorter side is `size`, keeping the aspect
// ratio: the longer side is truncated, as torchvision's Resize(size) computes int(size * long / short).
// A longer side past INT_MAX is refused, naming the sizes.
inline std::pair<int, int> shorter_side_resized(int width, int height, int size) {
  const auto longer = [&](int long_side, int short_side) {
    const double resized = std::floor(double(int64_t(size) * long_side) / short_side);
    if (resized > double(std::numeric_limits<int>::max()))
      throw std::invalid_argument("a " + std::to_string(width) + "x" + std::to_string(height) +
                                  " image resized to " + std::to_string(size) +
                                  " on its shorter side would be longer than an int counts");
    return int(resized);
  };
  if (width > height) return {longer(width, height), size};
  if (height > width) return {size, longer(height, width)};
  return {size, size};
}

// Resize so the shorter side is `size`, then crop the central size x size square: torchvision's
// Resize(size) followed by CenterCrop(size).
inline ByteImage resize_and_center_crop(const ByteImage& image, int size,
                                        ResizeMode mode = ResizeMode::area) {
  detail::check_target(image, size, size, "resize_and_center_crop");
  const auto [w, h] = shorter_side_resized(image.width, image.height, size);
  // Only the pixels the crop keeps are computed.
  return resize(image, w, h, mode,
                {detail::center_crop_offset(w, size), detail::center_crop_offset(h, size), size, size});
}

// Byte b -> b / 127.5 - 1, i.e. [0, 255] -> [-1, 1] (ToTensor then Normalize(0.5, 0.5)).
inline float byte_to_signed_unit(uint8_t b) {
  return float(b) / 127.5f - 1.0f;
}

}  // namespace sumi::data
