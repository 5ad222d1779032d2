#pragma once
// The parts of a TrueType font that rendering reads, checked before stb_truetype reads them.
//
// stb_truetype trusts every offset and count in the file: a truncated or corrupt font makes it read outside
// the file, and a composite glyph that contains itself makes it recurse until the stack overflows.
// TrueTypeTables checks, once, the table directory, the tables rendering uses (head, maxp, hhea, hmtx, loca,
// glyf) and every glyph's outline, and maps code points to glyphs itself (cmap formats 4 and 12, every
// segment checked), so that stb_truetype's glyph functions only see data inside the file. Fonts with CFF
// outlines (OpenType .otf) are refused: stb_truetype reads those without any bound.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/util/printable.hpp"

namespace sumi::data::detail {

class TrueTypeTables {
 public:
  // Composite glyphs nest at most this deep, and expand to at most this many outline points.
  static constexpr int kMaxComponentDepth = 16;
  static constexpr int64_t kMaxGlyphPoints = int64_t(1) << 20;

  TrueTypeTables() = default;  // no font: every code point maps to glyph 0

  // `font` is the offset of the font's table directory in `file`. Throws std::runtime_error saying what is
  // wrong, without the file's name (the caller adds it).
  TrueTypeTables(std::span<const unsigned char> file, std::size_t font) : file_(file) {
    if (font > file.size() || file.size() - font < 12) fail("the table directory is cut off (truncated?)");
    const uint32_t tables = u16(font + 4);
    if (file.size() - font - 12 < 16 * std::size_t(tables))
      fail("its table directory lists " + std::to_string(tables) + " tables but the file ends inside it " +
           "(truncated?)");
    for (uint32_t t = 0; t < tables; ++t) {
      const std::size_t record = font + 12 + 16 * std::size_t(t);
      const Table table{u32(record + 8), u32(record + 12)};
      if (table.offset > file.size() || file.size() - table.offset < table.length)
        fail("its table '" + util::printable({reinterpret_cast<const char*>(&file[record]), 4}) +
             "' points past the end of the file (truncated?)");
    }
    directory_ = font;
    directory_tables_ = tables;
    check_tables();
    check_cmap();
    check_glyphs();
    glyph_ends_ = {};  // only the code point map is needed from here on
    glyphs_ = {};
  }

  int glyph_count() const { return int(glyph_count_); }
  int units_per_em() const { return int(units_per_em_); }

  // The glyph the font maps `codepoint` to; 0 (the missing glyph) when it maps none.
  int glyph_index(char32_t codepoint) const {
    const uint32_t c = uint32_t(codepoint);
    uint32_t glyph = 0;
    if (cmap_format_ == 12) {
      const auto group = std::upper_bound(groups_.begin(), groups_.end(), c,
                                          [](uint32_t v, const Group& g) { return v < g.first; });
      if (group != groups_.begin() && c <= std::prev(group)->last)
        glyph = std::prev(group)->glyph + (c - std::prev(group)->first);
    } else if (c <= 0xFFFF) {
      const auto segment = std::lower_bound(segments_.begin(), segments_.end(), c,
                                            [](const Segment& s, uint32_t v) { return s.last < v; });
      if (segment != segments_.end() && c >= segment->first) {
        if (segment->range_offset_at == 0) {
          glyph = (c + segment->delta) & 0xFFFF;
        } else {
          glyph = u16(segment->range_offset_at + segment->range_offset + 2 * (c - segment->first));
          if (glyph != 0) glyph = (glyph + segment->delta) & 0xFFFF;
        }
      }
    }
    return glyph < glyph_count_ ? int(glyph) : 0;
  }

 private:
  struct Table {
    uint32_t offset = 0, length = 0;
  };
  struct Segment {  // cmap format 4
    uint32_t first, last, delta, range_offset;
    std::size_t range_offset_at;  // where the segment's idRangeOffset is; 0 when it is 0
  };
  struct Group {  // cmap format 12
    uint32_t first, last, glyph;
  };

  [[noreturn]] static void fail(const std::string& why) { throw std::runtime_error(why); }
  // "glyph <g><what>", built only when a glyph is refused (a font is checked glyph by glyph on every load).
  [[noreturn]] static void fail_glyph(uint32_t g, const std::string& what) {
    fail("glyph " + std::to_string(g) + what);
  }

  // Big-endian reads; every caller has checked the range, this is the last line of defence.
  uint32_t u8(std::size_t at) const {
    if (at >= file_.size()) fail("a read past the end of the file");
    return file_[at];
  }
  uint32_t u16(std::size_t at) const { return u8(at) << 8 | u8(at + 1); }
  uint32_t u32(std::size_t at) const { return u16(at) << 16 | u16(at + 2); }
  int32_t s16(std::size_t at) const { return int16_t(uint16_t(u16(at))); }

  // The first table with this tag (the one stb_truetype uses), or length 0 and offset 0 when there is none.
  Table find(const char* tag) const {
    for (uint32_t t = 0; t < directory_tables_; ++t) {
      const std::size_t record = directory_ + 12 + 16 * std::size_t(t);
      if (std::equal(tag, tag + 4, file_.begin() + std::ptrdiff_t(record)))
        return {u32(record + 8), u32(record + 12)};
    }
    return {};
  }
  Table require(const char* tag, uint32_t min_length) const {
    const Table t = find(tag);
    if (t.offset == 0) fail(std::string("it has no '") + tag + "' table");
    if (t.length < min_length)
      fail(std::string("its '") + tag + "' table has " + std::to_string(t.length) +
           " bytes, fewer than the " + std::to_string(min_length) + " it must have");
    return t;
  }

  void check_tables() {
    if (find("glyf").offset == 0)
      fail(find("CFF ").offset != 0 ? "its outlines are CFF (OpenType), which are not supported; use a font "
                                      "with TrueType outlines"
                                    : "it has no 'glyf' table (no TrueType outlines)");
    const Table head = require("head", 54), maxp = require("maxp", 6), hhea = require("hhea", 36);
    units_per_em_ = u16(head.offset + 18);
    if (units_per_em_ < 16 || units_per_em_ > 16384)
      fail("its unitsPerEm is " + std::to_string(units_per_em_) + ", not in [16, 16384]");
    const uint32_t loca_format = u16(head.offset + 50);
    if (loca_format > 1) fail("its indexToLocFormat is " + std::to_string(loca_format) + ", not 0 or 1");
    glyph_count_ = u16(maxp.offset + 4);
    if (glyph_count_ == 0) fail("its 'maxp' table says it has no glyphs");
    const uint32_t long_metrics = u16(hhea.offset + 34);
    if (long_metrics == 0 || long_metrics > glyph_count_)
      fail("its numberOfHMetrics is " + std::to_string(long_metrics) + ", not in [1, " +
           std::to_string(glyph_count_) + "]");
    require("hmtx", 4 * long_metrics + 2 * (glyph_count_ - long_metrics));

    const uint32_t entry = loca_format == 0 ? 2 : 4;
    const Table loca = require("loca", entry * (glyph_count_ + 1));
    glyf_ = find("glyf");
    glyph_ends_.resize(glyph_count_ + 1);
    for (uint32_t g = 0; g <= glyph_count_; ++g) {
      const std::size_t at = loca.offset + std::size_t(entry) * g;
      glyph_ends_[g] = loca_format == 0 ? 2 * u16(at) : u32(at);
      if (glyph_ends_[g] > glyf_.length)
        fail("its 'loca' table puts glyph " + std::to_string(std::min(g, glyph_count_ - 1)) +
             " past the end of the 'glyf' table");
      if (g > 0 && glyph_ends_[g] < glyph_ends_[g - 1])
        fail("its 'loca' table gives glyph " + std::to_string(g - 1) + " a negative length");
    }
  }

  // Picks a Unicode subtable (format 12 over format 4) and checks that every lookup stays inside it.
  void check_cmap() {
    const Table cmap = require("cmap", 4);
    const uint32_t records = u16(cmap.offset + 2);
    if (cmap.length < 4 + 8 * records) fail("its 'cmap' table is shorter than its list of subtables");
    std::size_t format4 = 0, format12 = 0;
    for (uint32_t r = 0; r < records; ++r) {
      const std::size_t record = cmap.offset + 4 + 8 * std::size_t(r);
      const uint32_t platform = u16(record), encoding = u16(record + 2), offset = u32(record + 4);
      const bool unicode = platform == 0 || (platform == 3 && (encoding == 1 || encoding == 10));
      if (!unicode) continue;
      if (offset > cmap.length - 2) fail("its 'cmap' table lists a subtable past its end");
      const uint32_t format = u16(cmap.offset + offset);
      if (format == 4 && format4 == 0) format4 = cmap.offset + offset;
      if (format == 12 && format12 == 0) format12 = cmap.offset + offset;
    }
    const std::size_t cmap_end = std::size_t(cmap.offset) + cmap.length;
    if (format12 != 0) {
      cmap_format_ = 12;
      if (cmap_end - format12 < 16) fail("its 'cmap' format 12 subtable is cut off");
      const uint32_t groups = u32(format12 + 12);
      if ((cmap_end - format12 - 16) / 12 < groups) fail("its 'cmap' format 12 groups run past the table");
      for (uint32_t i = 0; i < groups; ++i) {
        const std::size_t at = format12 + 16 + 12 * std::size_t(i);
        const Group g{u32(at), u32(at + 4), u32(at + 8)};
        if (g.last < g.first || (!groups_.empty() && g.first <= groups_.back().last))
          fail("its 'cmap' format 12 groups are not sorted and disjoint (group " + std::to_string(i) + ")");
        groups_.push_back(g);
      }
    } else if (format4 != 0) {
      cmap_format_ = 4;
      if (cmap_end - format4 < 14) fail("its 'cmap' format 4 subtable is cut off");
      const uint32_t count = u16(format4 + 6) / 2;
      const std::size_t ends = format4 + 14, starts = ends + 2 * count + 2, deltas = starts + 2 * count,
                        range_offsets = deltas + 2 * count;
      if (count == 0 || range_offsets + 2 * count > cmap_end)
        fail("its 'cmap' format 4 segments run past the table");
      for (uint32_t i = 0; i < count; ++i) {
        Segment s{u16(starts + 2 * i), u16(ends + 2 * i), u16(deltas + 2 * i), u16(range_offsets + 2 * i), 0};
        if (s.last < s.first || (!segments_.empty() && s.first <= segments_.back().last))
          fail("its 'cmap' format 4 segments are not sorted and disjoint (segment " + std::to_string(i) +
               ")");
        if (s.range_offset != 0) {
          s.range_offset_at = range_offsets + 2 * i;
          if (s.range_offset_at + s.range_offset + 2 * std::size_t(s.last - s.first) + 2 > cmap_end)
            fail("its 'cmap' format 4 segment " + std::to_string(i) + " reads glyphs past the table");
        }
        segments_.push_back(s);
      }
    } else {
      fail("its 'cmap' table has no Unicode subtable of format 4 or 12");
    }
  }

  // Every glyph's outline lies inside its 'loca' range, as stb_truetype reads it; composites name existing
  // glyphs, do not contain themselves, expand to a bounded number of points and place them within the 16-bit
  // coordinates stb_truetype stores them in (a float outside that range converted to short is undefined).
  void check_glyphs() {
    glyphs_.assign(glyph_count_, {});
    for (uint32_t g = 0; g < glyph_count_; ++g) check_glyph(g, 0);
  }

  struct GlyphCheck {
    int64_t points = -1;  // stb_truetype's vertex count, components included; -1: not checked yet
    double extent = 0;    // the largest |x| or |y| of those vertices
    bool visiting = false;
  };

  const GlyphCheck& check_glyph(uint32_t g, int depth) {
    GlyphCheck& check = glyphs_[g];
    if (check.points >= 0) return check;
    if (check.visiting) fail("composite glyph " + std::to_string(g) + " contains itself");
    const std::size_t begin = glyf_.offset + std::size_t(glyph_ends_[g]),
                      end = glyf_.offset + std::size_t(glyph_ends_[g + 1]);
    if (begin == end) return check = {0, 0, false};
    if (end - begin < 10)
      fail_glyph(g, " has " + std::to_string(end - begin) + " bytes, fewer than a header");
    const auto need = [&](std::size_t at, std::size_t bytes) {
      if (at > end || end - at < bytes) fail_glyph(g, "'s outline runs past its end");
    };
    const int32_t contours = s16(begin);
    if (contours == 0) return check = {0, 0, false};
    if (contours > 0) {
      // Simple glyph: end points of contours, instructions, flags, then x and y coordinates.
      need(begin + 10, 2 * std::size_t(contours) + 2);
      int64_t points = 0;
      for (int32_t c = 0; c < contours; ++c) {
        const int64_t last = u16(begin + 10 + 2 * std::size_t(c));
        if (last < points) fail_glyph(g, "'s contour end points are not increasing");
        points = last + 1;
      }
      std::size_t at = begin + 10 + 2 * std::size_t(contours);
      at += 2 + u16(at);  // instructions
      std::vector<uint8_t> flags(static_cast<std::size_t>(points));
      for (int64_t i = 0; i < points;) {
        need(at, 1);
        const uint8_t flag = uint8_t(u8(at++));
        int64_t repeat = 1;
        if (flag & 8) {
          need(at, 1);
          repeat += u8(at++);
        }
        for (; repeat > 0 && i < points; --repeat) flags[std::size_t(i++)] = flag;
      }
      // stb_truetype looks at the point after a contour's first one when that is off the curve: a last
      // contour of one off-curve point would make it read past its points.
      const int64_t last_start =
          contours == 1 ? 0 : int64_t(u16(begin + 10 + 2 * std::size_t(contours - 2))) + 1;
      if (last_start == points - 1 && !(flags.back() & 1))
        fail_glyph(g, "'s last contour is a single point off the curve");
      std::size_t coordinate_bytes = 0;
      for (const uint8_t flag : flags)
        coordinate_bytes += ((flag & 2) ? 1 : (flag & 16) ? 0 : 2) + ((flag & 4) ? 1 : (flag & 32) ? 0 : 2);
      need(at, coordinate_bytes);
      double extent = 0;
      for (const auto& [short_bit, same_bit] : {std::pair{2, 16}, std::pair{4, 32}}) {  // x, then y
        int32_t v = 0;
        for (const uint8_t flag : flags) {
          if (flag & short_bit) {
            const int32_t d = int32_t(u8(at++));
            v += (flag & same_bit) ? d : -d;
          } else if (!(flag & same_bit)) {
            v += s16(at);
            at += 2;
          }
          extent = std::max(extent, std::abs(double(int16_t(v))));  // stb_truetype keeps 16 bits
        }
      }
      return check = {points + 2 * contours, extent, false};
    }
    // Composite glyph: component records until one without MORE_COMPONENTS.
    if (depth >= kMaxComponentDepth)
      fail_glyph(g, " nests composite glyphs more than " + std::to_string(kMaxComponentDepth) + " deep");
    check.visiting = true;
    int64_t points = 0;
    double extent = 0;
    std::size_t at = begin + 10;
    for (bool more = true; more;) {
      need(at, 4);
      const uint32_t flags = u16(at), component = u16(at + 2);
      at += 4;
      // stb_truetype reads the index as signed 16 bits.
      if (component >= std::min<uint32_t>(glyph_count_, 0x8000))
        fail_glyph(g, " has component glyph " + std::to_string(component) + ", but the font has " +
                          std::to_string(glyph_count_) + " glyphs");
      if (!(flags & 2)) fail_glyph(g, " places a component by matching points, which is not supported");
      const bool words = flags & 1;
      need(at, words ? 4 : 2);
      const double dx = words ? s16(at) : int8_t(u8(at)), dy = words ? s16(at + 2) : int8_t(u8(at + 1));
      at += words ? 4 : 2;
      double a = 1, b = 0, c = 0, d = 1;  // F2Dot14 transform
      const auto f2dot14 = [&](std::size_t p) { return s16(p) / 16384.0; };
      if (flags & 8) {
        need(at, 2);
        a = d = f2dot14(at);
        at += 2;
      } else if (flags & 0x40) {
        need(at, 4);
        a = f2dot14(at), d = f2dot14(at + 2);
        at += 4;
      } else if (flags & 0x80) {
        need(at, 8);
        a = f2dot14(at), b = f2dot14(at + 2), c = f2dot14(at + 4), d = f2dot14(at + 6);
        at += 8;
      }
      const GlyphCheck& part = check_glyph(component, depth + 1);
      points += part.points;
      if (points > kMaxGlyphPoints)
        fail_glyph(g, " expands to more than " + std::to_string(kMaxGlyphPoints) + " points");
      // stb_truetype maps (x, y) to (m (a x + c y + dx), n (b x + d y + dy)), m = |(a, b)|, n = |(c, d)|.
      const double m = std::hypot(a, b), n = std::hypot(c, d);
      extent = std::max({extent, m * ((std::abs(a) + std::abs(c)) * part.extent + std::abs(dx)),
                         n * ((std::abs(b) + std::abs(d)) * part.extent + std::abs(dy))});
      if (extent > 32000) fail_glyph(g, " places its components outside the 16-bit coordinate range");
      more = flags & 0x20;
    }
    return check = {points, extent, false};
  }

  std::span<const unsigned char> file_;
  std::size_t directory_ = 0;
  uint32_t directory_tables_ = 0;
  uint32_t glyph_count_ = 0, units_per_em_ = 0;
  Table glyf_;
  std::vector<uint32_t> glyph_ends_;  // offsets into 'glyf': glyph g is [ends[g], ends[g + 1])
  std::vector<GlyphCheck> glyphs_;
  int cmap_format_ = 0;
  std::vector<Segment> segments_;
  std::vector<Group> groups_;
};

}  // namespace sumi::data::detail
