// libFuzzer target for data::Font: any bytes must either be refused with std::runtime_error or load as a
// font whose mapped characters render, without reading outside the bytes (run it under AddressSanitizer).
// Build and run: see docs/architecture.md, "Fuzzing".
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "sumi/data/glyph_renderer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  try {
    const sumi::data::Font font(std::vector<unsigned char>(data, data + size), "fuzz");
    // The characters of the seed font, and a few the mutations may map.
    for (const char32_t c :
         {U'A', U'B', char32_t(0x4E00), char32_t(0x4E01), char32_t(0x4E02), char32_t(0x30)})
      if (font.has_glyph(c)) (void)font.render(c, 16);
  } catch (const std::runtime_error&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
