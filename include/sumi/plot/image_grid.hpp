#pragma once
// PNG image grids in the manner of torchvision's make_grid/save_image: a batch of float NCHW images laid out
// `nrow` per row with padding, mapped to 8 bits, optionally enlarged (28x28 digits are tiny on screen), and
// written atomically. Plus a comparison figure: each row of originals directly above its reconstructions.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sumi/plot/detail/bitmap_text.hpp"
#include "sumi/plot/detail/stb_image_write.hpp"
#include "sumi/util/atomic_file.hpp"

namespace sumi::plot {

// A batch of float images in contiguous NCHW order (the tensor layout), borrowed, not owned.
struct ImageBatchView {
  const float* data = nullptr;
  int64_t n = 0, c = 0, h = 0, w = 0;

  int64_t image_size() const { return c * h * w; }
  const float* image(int64_t index) const { return data + index * image_size(); }
};

// An 8-bit picture, rows top to bottom, channels interleaved (grey: 1, RGB: 3), as PNG encoders take it.
struct Image8 {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;

  uint8_t at(int x, int y, int channel = 0) const {
    return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                  std::size_t(channel)];
  }
};

// How float pixel values map to [0, 1] before becoming 0..255.
enum class Normalize {
  none,     // values are already in [0, 1]; outside values are clamped
  min_max,  // the smallest value in the whole batch becomes 0 and the largest 1
  range,    // GridOptions::value_range maps to [0, 1] (e.g. {-1, 1} for tanh outputs), then clamp
};

struct GridOptions {
  int nrow = 8;            // images per row
  int padding = 2;         // pixels between images and around the border (before upscaling)
  float pad_value = 0.0f;  // padding intensity in [0, 1]: 0 black, 1 white
  Normalize normalize = Normalize::none;
  std::pair<float, float> value_range{0.0f, 1.0f};  // for Normalize::range
  int upscale = 1;           // nearest-neighbour enlargement of the whole grid by this integer factor
  bool gray_to_rgb = false;  // write single-channel batches as RGB instead of greyscale
};

namespace detail {

inline void validate_batch(const ImageBatchView& batch, const char* what) {
  if (batch.n < 1 || (batch.c != 1 && batch.c != 3) || batch.h < 1 || batch.w < 1 || !batch.data)
    throw std::invalid_argument(
        std::string(what) + ": need at least one image with 1 or 3 channels and positive size, got n=" +
        std::to_string(batch.n) + " c=" + std::to_string(batch.c) + " h=" + std::to_string(batch.h) +
        " w=" + std::to_string(batch.w) + (batch.data ? "" : " (null data)"));
}

inline void validate_options(const GridOptions& options, const char* what) {
  if (options.nrow < 1 || options.padding < 0 || options.upscale < 1)
    throw std::invalid_argument(std::string(what) + ": nrow and upscale must be >= 1 and padding >= 0");
  if (options.normalize == Normalize::range && !(options.value_range.second > options.value_range.first))
    throw std::invalid_argument(std::string(what) + ": value_range must have low < high");
}

// The [lo, hi] that maps to [0, 1] for these batches (min-max is taken over all of them together, so
// originals and reconstructions share one scale).
inline std::pair<float, float> value_limits(const std::vector<ImageBatchView>& batches,
                                            const GridOptions& options) {
  if (options.normalize == Normalize::range) return options.value_range;
  if (options.normalize == Normalize::none) return {0.0f, 1.0f};
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (const auto& batch : batches)
    for (int64_t i = 0; i < batch.n * batch.image_size(); ++i)
      if (std::isfinite(batch.data[i])) lo = std::min(lo, batch.data[i]), hi = std::max(hi, batch.data[i]);
  if (!(lo <= hi)) return {0.0f, 1.0f};
  return {lo, hi};
}

// Rounds like torchvision (x * 255 + 0.5, clamped); NaN becomes 0.
inline uint8_t to_byte(float unit) {
  const float scaled = unit * 255.0f + 0.5f;
  if (!(scaled > 0.0f)) return 0;
  return scaled >= 255.0f ? uint8_t{255} : static_cast<uint8_t>(scaled);
}

// Lays out `slots` (image pointers in CHW order; null leaves a slot empty) `columns` per row.
inline Image8 render_slots(const std::vector<const float*>& slots, int64_t columns, int64_t c, int64_t h,
                           int64_t w, const GridOptions& options, std::pair<float, float> limits) {
  const int64_t rows = (int64_t(slots.size()) + columns - 1) / columns;
  const int64_t pad = options.padding;
  const int64_t width = columns * (w + pad) + pad, height = rows * (h + pad) + pad;
  const int channels = (c == 1 && !options.gray_to_rgb) ? 1 : 3;
  if (width * height * channels * options.upscale * options.upscale > (int64_t(1) << 30))
    throw std::invalid_argument("image grid: " + std::to_string(width) + "x" + std::to_string(height) +
                                " pixels (before upscaling) is too large for a PNG figure");
  Image8 image{int(width), int(height), channels, {}};
  image.pixels.assign(std::size_t(width * height * channels), to_byte(options.pad_value));
  const float lo = limits.first;
  const float scale = 1.0f / std::max(limits.second - limits.first, 1e-12f);
  for (std::size_t slot = 0; slot < slots.size(); ++slot) {
    if (!slots[slot]) continue;
    const int64_t x0 = int64_t(slot) % columns * (w + pad) + pad,
                  y0 = int64_t(slot) / columns * (h + pad) + pad;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int ch = 0; ch < channels; ++ch) {
          const int64_t source_channel = c == 1 ? 0 : ch;
          const float value = slots[slot][(source_channel * h + y) * w + x];
          image.pixels[std::size_t(((y0 + y) * width + x0 + x) * channels + ch)] =
              to_byte((value - lo) * scale);
        }
  }
  return image;
}

// Nearest-neighbour enlargement by an integer factor.
inline Image8 upscale(const Image8& image, int factor) {
  if (factor == 1) return image;
  Image8 big{image.width * factor, image.height * factor, image.channels, {}};
  big.pixels.resize(std::size_t(big.width) * std::size_t(big.height) * std::size_t(big.channels));
  for (int y = 0; y < big.height; ++y)
    for (int x = 0; x < big.width; ++x)
      for (int c = 0; c < image.channels; ++c)
        big.pixels[(std::size_t(y) * std::size_t(big.width) + std::size_t(x)) * std::size_t(big.channels) +
                   std::size_t(c)] = image.at(x / factor, y / factor, c);
  return big;
}

}  // namespace detail

// Lays the batch out like torchvision.utils.make_grid: min(nrow, n) columns, padding around every image
// (so the border is padding wide too), unused slots of the last row left as padding; a batch of one image
// is that image alone, without padding.
inline Image8 make_image_grid(const ImageBatchView& batch, GridOptions options = {}) {
  detail::validate_batch(batch, "make_image_grid");
  detail::validate_options(options, "make_image_grid");
  if (batch.n == 1) options.padding = 0;
  std::vector<const float*> slots;
  for (int64_t i = 0; i < batch.n; ++i) slots.push_back(batch.image(i));
  const int64_t columns = std::min<int64_t>(options.nrow, batch.n);
  const Image8 grid = detail::render_slots(slots, columns, batch.c, batch.h, batch.w, options,
                                           detail::value_limits({batch}, options));
  return detail::upscale(grid, options.upscale);
}

// PNG bytes of `image` (lossless, deterministic).
inline std::string encode_png(const Image8& image) {
  if (image.width < 1 || image.height < 1 || image.channels < 1 || image.channels > 4 ||
      image.pixels.size() !=
          std::size_t(image.width) * std::size_t(image.height) * std::size_t(image.channels))
    throw std::invalid_argument("encode_png: pixel buffer does not match " + std::to_string(image.width) +
                                "x" + std::to_string(image.height) + "x" + std::to_string(image.channels));
  std::string bytes;
  const auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), std::size_t(size));
  };
  if (!stbi_write_png_to_func(append, &bytes, image.width, image.height, image.channels, image.pixels.data(),
                              image.width * image.channels))
    throw std::runtime_error("encode_png: stb_image_write failed");
  return bytes;
}

// Writes `image` as a PNG file atomically.
inline void save_png(const std::filesystem::path& path, const Image8& image) {
  util::write_file_atomically(path, encode_png(image));
}

inline void save_image_grid(const std::filesystem::path& path, const ImageBatchView& batch,
                            const GridOptions& options = {}) {
  save_png(path, make_image_grid(batch, options));
}

struct ComparisonOptions {
  GridOptions grid{};  // layout and normalisation, shared by both batches (min-max spans both)
  bool labels = true;  // a strip on the left naming each row
  std::string original_label = "original";
  std::string reconstruction_label = "reconstruction";
};

// Rows of `nrow` originals, each directly above the matching reconstructions, so every reconstruction sits
// under its input. Both batches must have the same shape.
inline Image8 make_comparison_grid(const ImageBatchView& originals, const ImageBatchView& reconstructions,
                                   const ComparisonOptions& options = {}) {
  detail::validate_batch(originals, "make_comparison_grid (originals)");
  detail::validate_batch(reconstructions, "make_comparison_grid (reconstructions)");
  detail::validate_options(options.grid, "make_comparison_grid");
  if (originals.n != reconstructions.n || originals.c != reconstructions.c ||
      originals.h != reconstructions.h || originals.w != reconstructions.w)
    throw std::invalid_argument("make_comparison_grid: originals and reconstructions differ in shape");
  const int64_t columns = std::min<int64_t>(options.grid.nrow, originals.n);
  std::vector<const float*> slots;
  for (int64_t start = 0; start < originals.n; start += columns)
    for (const ImageBatchView* batch : {&originals, &reconstructions})
      for (int64_t i = start; i < start + columns; ++i)
        slots.push_back(i < batch->n ? batch->image(i) : nullptr);
  const Image8 grid = detail::upscale(
      detail::render_slots(slots, columns, originals.c, originals.h, originals.w, options.grid,
                           detail::value_limits({originals, reconstructions}, options.grid)),
      options.grid.upscale);
  if (!options.labels) return grid;

  // Label strip: text scale grows with the picture; text contrasts with the padding colour.
  const int factor = options.grid.upscale;
  const int scale = std::max(1, int(originals.h) * factor / 28);
  const int margin = 4 * scale;
  const int strip = std::max(detail::text_extent(options.original_label, scale).x1,
                             detail::text_extent(options.reconstruction_label, scale).x1) +
                    2 * margin;
  Image8 figure{grid.width + strip, grid.height, grid.channels, {}};
  figure.pixels.assign(std::size_t(figure.width) * std::size_t(figure.height) * std::size_t(figure.channels),
                       detail::to_byte(options.grid.pad_value));
  for (int y = 0; y < grid.height; ++y)
    std::copy_n(grid.pixels.begin() +
                    std::ptrdiff_t(std::size_t(y) * std::size_t(grid.width) * std::size_t(grid.channels)),
                std::size_t(grid.width) * std::size_t(grid.channels),
                figure.pixels.begin() +
                    std::ptrdiff_t((std::size_t(y) * std::size_t(figure.width) + std::size_t(strip)) *
                                   std::size_t(figure.channels)));
  const uint8_t ink = options.grid.pad_value < 0.5f ? 255 : 0;
  const int64_t rows = int64_t(slots.size()) / columns;
  for (int64_t row = 0; row < rows; ++row) {
    const std::string& label = row % 2 == 0 ? options.original_label : options.reconstruction_label;
    const int text_height = detail::text_extent(label, scale).y1;
    const int band_top = int((row * (originals.h + options.grid.padding) + options.grid.padding) * factor);
    const int band_height = int(originals.h * factor);
    detail::draw_text(figure.pixels, figure.width, figure.height, figure.channels, margin,
                      band_top + (band_height - text_height) / 2, label, scale, ink);
  }
  return figure;
}

inline void save_comparison_grid(const ImageBatchView& originals, const ImageBatchView& reconstructions,
                                 const std::filesystem::path& path, const ComparisonOptions& options = {}) {
  save_png(path, make_comparison_grid(originals, reconstructions, options));
}

}  // namespace sumi::plot
