#pragma once
// Rendering single characters from TrueType/OpenType fonts (via stb_truetype) to small grayscale images,
// white strokes on black as in Kuzushiji-Kanji, with a random small affine jitter (rotation, shear, scale,
// shift) and stroke-width variation (grayscale dilation or erosion), so that one font gives several
// different-looking samples of a character.
//
//   data::Font font("/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf");
//   if (font.has_glyph(0x6F22)) {
//     Generator gen(1);
//     std::vector<uint8_t> pixels = font.render(0x6F22, 64, data::GlyphJitter::random(gen));
//   }
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/data/detail/stb_truetype.hpp"
#include "sumi/data/detail/truetype_tables.hpp"
#include "sumi/tensor/random.hpp"
#include "sumi/util/read_file.hpp"

namespace sumi::data {

namespace detail {
// Throws std::invalid_argument "<where>: <what> <field> = <value> <requirement>" unless `ok`.
inline void require_setting(bool ok, const char* where, const char* what, const char* field, double value,
                            const char* requirement) {
  if (!ok)
    throw std::invalid_argument(std::string(where) + ": " + what + " " + field + " = " +
                                std::to_string(value) + " " + requirement);
}
}  // namespace detail

// One rendering's distortion. The identity is the default.
struct GlyphJitter {
  double rotation_degrees = 0;      // clockwise on screen
  double shear = 0;                 // horizontal shear: x += shear * y
  double scale = 1;                 // relative to the nominal glyph size
  double aspect = 1;                // width scale relative to height scale
  double shift_x = 0, shift_y = 0;  // in output pixels
  int stroke = 0;                   // > 0: dilate by this many half-pixels (bolder); < 0: erode (thinner)

  // Strokes beyond this many half-pixels leave no glyph (eroded away, or dilated into a blob).
  static constexpr int kMaxStroke = 16;

  // Throws std::invalid_argument naming the field that no rendering could use (a blank, endless or
  // undefined result otherwise).
  void check(const char* where) const {
    const auto require = [&](bool ok, const char* field, double value, const char* requirement) {
      detail::require_setting(ok, where, "jitter", field, value, requirement);
    };
    require(std::isfinite(rotation_degrees), "rotation_degrees", rotation_degrees, "must be finite");
    require(std::abs(shear) <= 4, "shear", shear, "must be within [-4, 4]");
    require(scale > 0 && scale <= 4, "scale", scale, "must be in (0, 4]");
    require(aspect > 0 && aspect <= 4, "aspect", aspect, "must be in (0, 4]");
    require(std::isfinite(shift_x), "shift_x", shift_x, "must be finite");
    require(std::isfinite(shift_y), "shift_y", shift_y, "must be finite");
    require(std::abs(stroke) <= kMaxStroke, "stroke", stroke, "must be within [-16, 16]");
  }

  struct Ranges {
    double rotation_degrees = 5, shear = 0.12, scale = 0.07, aspect = 0.06, shift = 2.5;
    int max_dilate = 2, max_erode = 1;
    // The jitters drawn from these ranges pass GlyphJitter::check.
    void check(const char* where) const {
      const auto require = [&](bool ok, const char* field, double value, const char* requirement) {
        detail::require_setting(ok, where, "jitter range", field, value, requirement);
      };
      require(rotation_degrees >= 0 && std::isfinite(rotation_degrees), "rotation_degrees", rotation_degrees,
              "must be finite and >= 0");
      require(shear >= 0 && shear <= 4, "shear", shear, "must be in [0, 4]");
      require(scale >= 0 && scale < 1, "scale", scale, "must be in [0, 1)");
      require(aspect >= 0 && aspect < 1, "aspect", aspect, "must be in [0, 1)");
      require(shift >= 0 && std::isfinite(shift), "shift", shift, "must be finite and >= 0");
      require(max_dilate >= 0 && max_dilate <= kMaxStroke, "max_dilate", max_dilate, "must be in [0, 16]");
      require(max_erode >= 0 && max_erode <= kMaxStroke, "max_erode", max_erode, "must be in [0, 16]");
    }
  };
  // A random jitter, uniform within the ranges (stroke: erode 20%, unchanged 40%, dilate 40%).
  static GlyphJitter random(Generator& gen, const Ranges& r) {
    GlyphJitter j;
    j.rotation_degrees = gen.uniform(-r.rotation_degrees, r.rotation_degrees);
    j.shear = gen.uniform(-r.shear, r.shear);
    j.scale = 1 + gen.uniform(-r.scale, r.scale);
    j.aspect = 1 + gen.uniform(-r.aspect, r.aspect);
    j.shift_x = gen.uniform(-r.shift, r.shift);
    j.shift_y = gen.uniform(-r.shift, r.shift);
    const double u = gen.uniform();
    if (u < 0.2)
      j.stroke = -r.max_erode;
    else if (u >= 0.6 && r.max_dilate > 0)
      j.stroke = 1 + int(gen.below(uint64_t(r.max_dilate)));
    return j;
  }
  static GlyphJitter random(Generator& gen) { return random(gen, Ranges{}); }
};

// A font file loaded into memory. Reading glyphs is const and safe from several threads at once.
class Font {
 public:
  explicit Font(const std::filesystem::path& path) : path_(path), name_(path.stem().string()) {
    const std::string bytes = util::read_file_text(path, "font file");
    std::string what = "'";
    what.append(path.string()).append("'");  // appended: GCC 12 warns falsely on "'" + s + "'"
    load(std::vector<unsigned char>(bytes.begin(), bytes.end()), what);
  }
  // A font file already in memory; `name` stands for the file in messages and output file names.
  Font(std::vector<unsigned char> bytes, std::string name) : name_(std::move(name)) {
    load(std::move(bytes), "font '" + name_ + "'");
  }

  // The file it was read from; empty for a font given as bytes.
  const std::filesystem::path& path() const { return path_; }
  // The file name without extension ("KleeOne-Regular"), used in output file names.
  const std::string& name() const { return name_; }

  // The font's glyph index for a code point, 0 when it has none.
  int glyph_index(char32_t codepoint) const { return tables_.glyph_index(codepoint); }
  // Whether the font draws something for this code point (a mapped, non-empty glyph).
  bool has_glyph(char32_t codepoint) const {
    const int glyph = glyph_index(codepoint);
    return glyph != 0 && !stbtt_IsGlyphEmpty(&info_, glyph);
  }

  // size x size grayscale pixels (row-major, 0 background, 255 ink) of the code point, its em square filling
  // `em_fill` of the image and its ink box centred, distorted by `jitter`. Rendered at twice the resolution
  // and averaged down, which antialiases the affine resampling and gives the stroke variation half-pixel
  // steps. Throws if the font lacks the glyph.
  std::vector<uint8_t> render(char32_t codepoint, int size, const GlyphJitter& jitter = {},
                              double em_fill = 0.86) const {
    if (size < 4 || size > 1024) throw std::invalid_argument("Font::render: size " + std::to_string(size));
    if (!(em_fill > 0 && em_fill <= 2))
      throw std::invalid_argument("Font::render: em_fill " + std::to_string(em_fill) +
                                  " must be in (0, 2] (a fraction of the image)");
    jitter.check("Font::render");
    if (!has_glyph(codepoint))
      throw std::invalid_argument("Font::render: " + name_ + " has no glyph for U+" + hex(codepoint));
    constexpr int ss = 2;  // supersampling factor
    const int canvas = size * ss;
    const float scale = stbtt_ScaleForMappingEmToPixels(&info_, float(em_fill * jitter.scale * canvas));
    std::vector<uint8_t> big(std::size_t(canvas) * std::size_t(canvas), 0);
    int gw = 0, gh = 0;
    const std::vector<unsigned char> bitmap = rasterize(glyph_index(codepoint), scale, gw, gh);
    if (gw > 0 && gh > 0) warp(bitmap.data(), gw, gh, jitter, canvas, ss, big);
    if (jitter.stroke != 0) big = morph(big, canvas, jitter.stroke);
    std::vector<uint8_t> out(std::size_t(size) * std::size_t(size));
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        int sum = 0;
        for (int dy = 0; dy < ss; ++dy)
          for (int dx = 0; dx < ss; ++dx) sum += big[std::size_t((y * ss + dy) * canvas + x * ss + dx)];
        out[std::size_t(y * size + x)] = uint8_t((sum + ss * ss / 2) / (ss * ss));
      }
    return out;
  }

  static std::string hex(char32_t codepoint) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%04X", unsigned(codepoint));
    return buf;
  }

 private:
  // Glyph bitmaps larger than this on a side are refused (a corrupt outline or an absurd scale).
  static constexpr int kMaxBitmapSide = 16384;

  void load(std::vector<unsigned char> bytes, const std::string& what) {
    bytes_ = std::make_shared<std::vector<unsigned char>>(std::move(bytes));
    const auto refuse = [&](const std::string& why) {
      std::string message = what + " is not a TrueType font that can be read";
      if (!why.empty()) message.append(": ").append(why);  // appended: GCC 12 warns falsely on a + b + c
      return std::runtime_error(message);
    };
    if (bytes_->size() < 16) throw refuse("the file has " + std::to_string(bytes_->size()) + " bytes");
    const int offset = stbtt_GetFontOffsetForIndex(bytes_->data(), 0);
    if (offset < 0) throw refuse("");
    try {
      tables_ = detail::TrueTypeTables(*bytes_, std::size_t(offset));
    } catch (const std::runtime_error& e) {
      throw refuse(e.what());
    }
    if (!stbtt_InitFont(&info_, bytes_->data(), offset)) throw refuse("");
  }

  // The glyph's antialiased coverage at `scale` (pixels per font unit), gw x gh pixels. The bitmap spans
  // the outline's own points rather than the box in the glyph's header, which a corrupt font may get wrong.
  std::vector<unsigned char> rasterize(int glyph, float scale, int& gw, int& gh) const {
    stbtt_vertex* vertices = nullptr;
    const int count = stbtt_GetGlyphShape(&info_, glyph, &vertices);
    const std::unique_ptr<stbtt_vertex, void (*)(stbtt_vertex*)> owned(
        vertices, [](stbtt_vertex* v) { STBTT_free(v, nullptr); });
    gw = gh = 0;
    if (count <= 0) return {};
    float x0 = vertices[0].x, x1 = x0, y0 = vertices[0].y, y1 = y0;
    const auto include = [&](float x, float y) {
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    };
    for (int i = 0; i < count; ++i) {  // curves lie inside the hull of their control points
      const stbtt_vertex& v = vertices[i];
      include(v.x, v.y);
      if (v.type == STBTT_vcurve || v.type == STBTT_vcubic) include(v.cx, v.cy);
      if (v.type == STBTT_vcubic) include(v.cx1, v.cy1);
    }
    const int ix0 = int(std::floor(x0 * scale)), iy0 = int(std::floor(-y1 * scale));
    const int ix1 = int(std::ceil(x1 * scale)), iy1 = int(std::ceil(-y0 * scale));
    if (ix1 - ix0 > kMaxBitmapSide || iy1 - iy0 > kMaxBitmapSide)
      throw std::runtime_error("Font::render: glyph " + std::to_string(glyph) + " of " + name_ + " spans " +
                               std::to_string(ix1 - ix0) + " x " + std::to_string(iy1 - iy0) +
                               " pixels at this size, more than " + std::to_string(kMaxBitmapSide) +
                               " on a side");
    gw = ix1 - ix0, gh = iy1 - iy0;
    std::vector<unsigned char> bitmap(std::size_t(gw) * std::size_t(gh), 0);
    if (bitmap.empty()) return bitmap;
    stbtt__bitmap target{gw, gh, gw, bitmap.data()};
    stbtt_Rasterize(&target, 0.35f, vertices, count, scale, scale, 0, 0, ix0, iy0, 1, nullptr);
    return bitmap;
  }

  // Maps every canvas pixel back through the inverse jitter into the glyph bitmap (bilinear), with the
  // bitmap's centre at the canvas centre plus the shift.
  static void warp(const unsigned char* bitmap, int gw, int gh, const GlyphJitter& j, int canvas, int ss,
                   std::vector<uint8_t>& out) {
    const double a = j.rotation_degrees * std::numbers::pi / 180.0;
    // Forward map A = R(a) * Shear * diag(aspect, 1); its inverse below.
    const double c = std::cos(a), s = std::sin(a);
    const double m00 = c * j.aspect, m01 = c * j.shear - s, m10 = s * j.aspect, m11 = s * j.shear + c;
    const double det = m00 * m11 - m01 * m10;
    const double i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det;
    const double cx = canvas / 2.0 + j.shift_x * ss, cy = canvas / 2.0 + j.shift_y * ss;
    const double gcx = gw / 2.0, gcy = gh / 2.0;
    auto at = [&](int x, int y) -> double {
      return (x < 0 || y < 0 || x >= gw || y >= gh) ? 0.0 : double(bitmap[y * gw + x]);
    };
    for (int y = 0; y < canvas; ++y)
      for (int x = 0; x < canvas; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const double u = i00 * dx + i01 * dy + gcx - 0.5, v = i10 * dx + i11 * dy + gcy - 0.5;
        const double fu = std::floor(u), fv = std::floor(v);
        const int u0 = int(fu), v0 = int(fv);
        if (u0 < -1 || v0 < -1 || u0 >= gw || v0 >= gh) continue;
        const double tu = u - fu, tv = v - fv;
        const double value = (1 - tv) * ((1 - tu) * at(u0, v0) + tu * at(u0 + 1, v0)) +
                             tv * ((1 - tu) * at(u0, v0 + 1) + tu * at(u0 + 1, v0 + 1));
        out[std::size_t(y * canvas + x)] = uint8_t(std::clamp(value + 0.5, 0.0, 255.0));
      }
  }

  // |steps| rounds of 3x3 (cross-shaped) grayscale dilation (steps > 0) or erosion (steps < 0).
  static std::vector<uint8_t> morph(std::vector<uint8_t> img, int n, int steps) {
    std::vector<uint8_t> next(img.size());
    for (int round = 0; round < std::abs(steps); ++round) {
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
          uint8_t v = img[std::size_t(y * n + x)];
          const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
          for (int k = 0; k < 4; ++k) {
            const uint8_t w = (nx[k] < 0 || ny[k] < 0 || nx[k] >= n || ny[k] >= n)
                                  ? uint8_t(0)
                                  : img[std::size_t(ny[k] * n + nx[k])];
            v = steps > 0 ? std::max(v, w) : std::min(v, w);
          }
          next[std::size_t(y * n + x)] = v;
        }
      img.swap(next);
    }
    return img;
  }

  std::filesystem::path path_;
  std::string name_;
  std::shared_ptr<std::vector<unsigned char>> bytes_;  // tables_ and info_ point into it
  detail::TrueTypeTables tables_;
  stbtt_fontinfo info_{};
};

}  // namespace sumi::data
