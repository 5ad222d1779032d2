#pragma once
// A minimal TrueType font built byte by byte, so that tests can corrupt any field of it. Three glyphs,
// 1000 units per em: 0 is empty, 1 is the square (100, 0)-(900, 800), 2 is a composite of glyph 1 moved by
// (dx, dy). 'A' (U+0041) and U+4E00 map to glyph 1, U+4E01 to glyph 2.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sumi::test {

struct TrueTypeFont {
  std::vector<unsigned char> bytes;
  std::map<std::string, std::size_t> table;  // tag -> offset of the table in bytes
  std::size_t glyph1 = 0, glyph2 = 0;        // offsets of glyphs 1 and 2
};

inline void put16(std::vector<unsigned char>& b, std::size_t at, uint32_t v) {
  b[at] = uint8_t(v >> 8), b[at + 1] = uint8_t(v);
}
inline void put32(std::vector<unsigned char>& b, std::size_t at, uint32_t v) {
  put16(b, at, v >> 16), put16(b, at + 2, v & 0xFFFF);
}

// cmap_format: 4 or 12. The composite glyph places its component at (dx, dy).
inline TrueTypeFont minimal_truetype_font(int cmap_format = 4, int16_t dx = 0, int16_t dy = 0) {
  using Bytes = std::vector<unsigned char>;
  const auto append16 = [](Bytes& b, uint32_t v) { b.push_back(uint8_t(v >> 8)), b.push_back(uint8_t(v)); };
  const auto append32 = [&](Bytes& b, uint32_t v) { append16(b, v >> 16), append16(b, v & 0xFFFF); };

  Bytes head(54, 0);
  put32(head, 0, 0x00010000);
  put32(head, 12, 0x5F0F3CF5);  // magic number
  put16(head, 18, 1000);        // unitsPerEm
  put16(head, 40, 900), put16(head, 42, 800);
  put16(head, 50, 1);  // indexToLocFormat: 32-bit offsets
  Bytes maxp(6, 0);
  put32(maxp, 0, 0x00005000);
  put16(maxp, 4, 3);  // numGlyphs
  Bytes hhea(36, 0);
  put32(hhea, 0, 0x00010000);
  put16(hhea, 4, 800), put16(hhea, 6, uint16_t(-200));
  put16(hhea, 34, 3);  // numberOfHMetrics
  Bytes hmtx;
  for (int g = 0; g < 3; ++g) append16(hmtx, 1000), append16(hmtx, 0);

  Bytes glyf;
  const std::size_t square = glyf.size();
  append16(glyf, 1);                                                       // one contour
  for (uint32_t v : {100u, 0u, 900u, 800u}) append16(glyf, v);             // box
  append16(glyf, 3), append16(glyf, 0);                                    // last point 3, no instructions
  for (int i = 0; i < 4; ++i) glyf.push_back(0x01);                        // on curve, 16-bit deltas
  for (int v : {100, 800, 0, -800}) append16(glyf, uint16_t(int16_t(v)));  // x
  for (int v : {0, 0, 800, 0}) append16(glyf, uint16_t(int16_t(v)));       // y
  const std::size_t composite = glyf.size();
  append16(glyf, uint16_t(-1));
  for (uint32_t v : {100u, 0u, 900u, 800u}) append16(glyf, v);
  append16(glyf, 0x0003), append16(glyf, 1);  // ARG_1_AND_2_ARE_WORDS | ARGS_ARE_XY_VALUES, glyph 1
  append16(glyf, uint16_t(dx)), append16(glyf, uint16_t(dy));
  Bytes loca;
  for (std::size_t v : {std::size_t(0), square, composite, glyf.size()}) append32(loca, uint32_t(v));

  Bytes cmap;
  append16(cmap, 0), append16(cmap, 1);                                               // version, one subtable
  append16(cmap, 3), append16(cmap, cmap_format == 12 ? 10 : 1), append32(cmap, 12);  // Windows Unicode
  if (cmap_format == 12) {
    append16(cmap, 12), append16(cmap, 0), append32(cmap, 16 + 2 * 12), append32(cmap, 0), append32(cmap, 2);
    for (uint32_t v : {0x41u, 0x41u, 1u, 0x4E00u, 0x4E01u, 1u}) append32(cmap, v);
  } else {
    // Segments: 'A' by delta, U+4E00..U+4E01 through glyphIdArray, and the final 0xFFFF.
    const std::size_t start = cmap.size();
    append16(cmap, 4), append16(cmap, 0), append16(cmap, 0);  // format, length (below), language
    append16(cmap, 6), append16(cmap, 4), append16(cmap, 1), append16(cmap, 2);
    for (uint32_t v : {0x41u, 0x4E01u, 0xFFFFu}) append16(cmap, v);  // endCode
    append16(cmap, 0);
    for (uint32_t v : {0x41u, 0x4E00u, 0xFFFFu}) append16(cmap, v);              // startCode
    for (uint32_t v : {uint32_t(1 - 0x41) & 0xFFFF, 0u, 1u}) append16(cmap, v);  // idDelta
    for (uint32_t v : {0u, 4u, 0u}) append16(cmap, v);                           // idRangeOffset
    append16(cmap, 1), append16(cmap, 2);                                        // glyphIdArray
    put16(cmap, start + 2, uint32_t(cmap.size() - start));
  }

  const std::map<std::string, Bytes*> tables = {{"cmap", &cmap}, {"glyf", &glyf}, {"head", &head},
                                                {"hhea", &hhea}, {"hmtx", &hmtx}, {"loca", &loca},
                                                {"maxp", &maxp}};
  TrueTypeFont font;
  Bytes& b = font.bytes;
  append32(b, 0x00010000), append16(b, uint32_t(tables.size()));
  append16(b, 0), append16(b, 0), append16(b, 0);  // search hints, unused
  std::size_t offset = 12 + 16 * tables.size();
  for (const auto& [tag, data] : tables) {
    b.insert(b.end(), tag.begin(), tag.end());
    append32(b, 0), append32(b, uint32_t(offset)), append32(b, uint32_t(data->size()));
    font.table[tag] = offset;
    offset += (data->size() + 3) / 4 * 4;
  }
  for (const auto& [tag, data] : tables) {
    b.insert(b.end(), data->begin(), data->end());
    b.resize((b.size() + 3) / 4 * 4, 0);
  }
  font.glyph1 = font.table["glyf"] + square;
  font.glyph2 = font.table["glyf"] + composite;
  return font;
}

}  // namespace sumi::test
