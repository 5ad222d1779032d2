// data::Font on a minimal TrueType font built in the test, whole and with each of its fields corrupted:
// every corruption is refused with a message naming what is wrong, and no font file, however damaged, makes
// loading or rendering read outside it (under the asan preset).
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "sumi/data/glyph_renderer.hpp"
#include "truetype_builder.hpp"

using namespace sumi;
using test::put16;
using test::put32;

namespace {

int ink(const std::vector<uint8_t>& image) {
  return int(std::count_if(image.begin(), image.end(), [](uint8_t v) { return v > 128; }));
}

// Loads the bytes and renders every character the font maps, as the kanji renderer would.
void load_and_render(const std::vector<unsigned char>& bytes) {
  const data::Font font(bytes, "damaged");
  for (const char32_t c : {U'A', U'B', char32_t(0x4E00), char32_t(0x4E01), char32_t(0x4E02)})
    if (font.has_glyph(c)) (void)font.render(c, 16);
}

}  // namespace

TEST_CASE("a minimal TrueType font maps, draws and composes its glyphs with either cmap format",
          "[data][fonts]") {
  for (const int format : {4, 12}) {
    INFO("cmap format " << format);
    const auto font = test::minimal_truetype_font(format, 300, -200);
    const data::Font f(font.bytes, "minimal");
    CHECK(f.name() == "minimal");
    CHECK(f.path().empty());
    CHECK(f.glyph_index(U'A') == 1);
    CHECK(f.glyph_index(0x4E00) == 1);
    CHECK(f.glyph_index(0x4E01) == 2);
    CHECK(f.glyph_index(U'B') == 0);
    CHECK(f.glyph_index(0x4E02) == 0);
    CHECK(f.glyph_index(0x1F600) == 0);
    CHECK(f.has_glyph(U'A'));
    CHECK_FALSE(f.has_glyph(U'B'));

    // The square is 0.8 em wide and the em fills 0.86 of the image: about 0.69^2 of the pixels are ink.
    const std::vector<uint8_t> square = f.render(U'A', 64);
    CHECK(ink(square) == Approx(0.688 * 0.688 * 64 * 64).epsilon(0.08));
    CHECK(square[32 * 64 + 32] == 255);
    CHECK(square[0] == 0);
    // The composite is the square moved; the renderer centres the ink, so only the antialiasing of its
    // edges may differ, and not at all when the move is zero.
    CHECK(ink(f.render(0x4E01, 64)) == Approx(ink(square)).epsilon(0.03));
    CHECK(data::Font(test::minimal_truetype_font(format).bytes, "unmoved").render(0x4E01, 64) == square);
  }
}

TEST_CASE("a glyph drawn outside the box in its header is drawn whole", "[data][fonts]") {
  auto font = test::minimal_truetype_font();
  const std::vector<uint8_t> square = data::Font(font.bytes, "good").render(U'A', 32);
  for (int i = 0; i < 4; ++i) put16(font.bytes, font.glyph1 + 2 + 2 * std::size_t(i), 0);  // empty box
  CHECK(data::Font(font.bytes, "boxless").render(U'A', 32) == square);
}

TEST_CASE("corrupt TrueType fonts are refused, naming what is wrong", "[data][fonts][errors]") {
  const auto refused = [](const std::vector<unsigned char>& bytes) {
    try {
      data::Font(bytes, "bad");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  const auto good = test::minimal_truetype_font();
  const std::size_t head = good.table.at("head"), hhea = good.table.at("hhea"), loca = good.table.at("loca"),
                    cmap = good.table.at("cmap");
  const auto with = [&](auto change) {
    auto bytes = good.bytes;
    change(bytes);
    return refused(bytes);
  };
  CHECK(refused(good.bytes) == "loaded");
  CHECK_THAT(with([&](auto& b) { put16(b, head + 18, 0); }),
             Catch::Contains("font 'bad'") && Catch::Contains("unitsPerEm is 0"));
  CHECK_THAT(with([&](auto& b) { put16(b, hhea + 34, 5); }), Catch::Contains("numberOfHMetrics is 5"));
  CHECK_THAT(with([&](auto& b) { put32(b, loca + 12, 4000); }), Catch::Contains("'loca'"));
  CHECK_THAT(with([&](auto& b) { put32(b, loca + 4, 40); }), Catch::Contains("glyph 1 a negative length"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph1 + 10, 300); }),
             Catch::Contains("glyph 1's outline runs past its end"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph1 + 12, 200); }),  // instructions
             Catch::Contains("glyph 1's outline runs past its end"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph1 + 10, 0), b[good.glyph1 + 14] = 0; }),
             Catch::Contains("glyph 1's last contour is a single point off the curve"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph2 + 12, 2); }),
             Catch::Contains("glyph 2 contains itself"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph2 + 12, 7); }),
             Catch::Contains("component glyph 7, but the font has 3 glyphs"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph2 + 10, 0x0001); }), Catch::Contains("matching points"));
  CHECK_THAT(with([&](auto& b) { put16(b, good.glyph2 + 10, 0x0023); }),  // MORE_COMPONENTS, and no more
             Catch::Contains("glyph 2's outline runs past its end"));
  CHECK_THAT(with([&](auto& b) { put16(b, cmap + 12 + 14 + 3 * 6 + 2 + 2, 400); }),  // idRangeOffset
             Catch::Contains("format 4 segment 1 reads glyphs past the table"));
  CHECK_THAT(with([&](auto& b) { put16(b, cmap + 12 + 14, 0x4E05); }),  // endCode overlaps the next segment
             Catch::Contains("not sorted"));
  CHECK_THAT(with([&](auto& b) { put16(b, cmap + 4, 1); }),  // Macintosh platform: nothing Unicode
             Catch::Contains("no Unicode subtable"));
  CHECK_THAT(with([&](auto& b) { std::copy_n("CFF ", 4, b.begin() + 12 + 16); }), Catch::Contains("CFF"));
  CHECK_THAT(with([&](auto& b) { std::copy_n("glyX", 4, b.begin() + 12 + 16); }),
             Catch::Contains("no 'glyf' table"));

  auto groups = test::minimal_truetype_font(12);
  put32(groups.bytes, groups.table.at("cmap") + 12 + 12, 1000000);
  CHECK_THAT(refused(groups.bytes), Catch::Contains("format 12 groups run past the table"));
  // A component moved beyond the 16 bits stb_truetype stores coordinates in.
  CHECK_THAT(refused(test::minimal_truetype_font(4, 32000).bytes),
             Catch::Contains("16-bit coordinate range"));

  // Through the file constructor, the message names the file.
  const auto path = std::filesystem::temp_directory_path() / "sumi_bad_unitsPerEm.ttf";
  auto bytes = good.bytes;
  put16(bytes, head + 18, 0);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  CHECK_THROWS_WITH(data::Font(path), Catch::Contains(path.string()) && Catch::Contains("unitsPerEm"));
  std::filesystem::remove(path);
  CHECK_THROWS_WITH(data::Font(path), Catch::Contains("cannot open font file '" + path.string() + "'"));
  const auto folder = std::filesystem::temp_directory_path();
  CHECK_THROWS_WITH(data::Font(folder), Catch::Contains("is a folder, not a font file"));
}

TEST_CASE("every truncation and every flipped byte of a font is refused or read within the file",
          "[data][fonts][errors]") {
  const auto good = test::minimal_truetype_font();
  // The tables end with maxp's 6 bytes (then padding): any shorter file cuts a table.
  const std::size_t tables_end = good.table.at("maxp") + 6;
  for (std::size_t size = 0; size < good.bytes.size(); ++size) {
    INFO("first " << size << " bytes");
    const std::vector<unsigned char> cut(good.bytes.begin(), good.bytes.begin() + std::ptrdiff_t(size));
    if (size < tables_end)
      CHECK_THROWS_AS(data::Font(cut, "cut"), std::runtime_error);
    else
      CHECK_NOTHROW(load_and_render(cut));
  }
  // Flipped bytes may still make a readable font; either way nothing is read outside the file and only the
  // documented exceptions come out.
  int refused = 0;
  for (std::size_t at = 0; at < good.bytes.size(); ++at)
    for (const unsigned char mask : {0x01, 0x80, 0xFF}) {
      auto bytes = good.bytes;
      bytes[at] ^= mask;
      try {
        load_and_render(bytes);
      } catch (const std::runtime_error&) {
        ++refused;
      } catch (const std::invalid_argument&) {
        ++refused;
      }
    }
  CHECK(refused > 0);
}

TEST_CASE("the font fuzzer's seeds are the minimal fonts", "[data][fonts]") {
  for (const int format : {4, 12}) {
    const auto path = std::filesystem::path(SUMI_SOURCE_DIR) / "fuzz" / "corpus" / "font" /
                      ("minimal_cmap" + std::to_string(format) + ".ttf");
    std::ifstream in(path, std::ios::binary);
    const std::vector<unsigned char> seed{std::istreambuf_iterator<char>(in),
                                          std::istreambuf_iterator<char>()};
    INFO(path.string());
    CHECK(seed == test::minimal_truetype_font(format, 300, -200).bytes);
  }
}
