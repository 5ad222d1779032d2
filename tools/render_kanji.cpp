// Renders a Kuzushiji-Kanji-like training set from installed Japanese fonts: <out>/U+XXXX/<font>_<n>.png,
// grayscale, white strokes on black, with small random affine jitter and stroke-width variation. See --help.
#include <cstdio>
#include <filesystem>

#include "sumi/data/glyph_folder.hpp"
#include "sumi/util/cli.hpp"
#include "sumi/util/progress_bar.hpp"
#include "sumi/util/timer.hpp"

namespace fs = std::filesystem;
using namespace sumi;

int main(int argc, char** argv) {
  std::string out = "out/kanji";
  std::vector<std::string> font_files;
  int64_t max_chars = 0, seed = 0;
  int per_char = 1, size = 64;
  bool quiet = false;
  util::ArgParser cli(
      "Renders every kanji (U+4E00..U+9FFF) that the fonts draw to size x size grayscale PNGs in the layout "
      "of "
      "Kuzushiji-Kanji: <out>/U+XXXX/<font>_<n>.png.");
  cli.bind("--out", out, "output folder (must not exist)");
  cli.bind(
      "--fonts", font_files,
      "font files (comma-separated); empty: the known Japanese brush, handwriting, mincho and gothic fonts "
      "installed under /usr/share/fonts");
  cli.bind("--max-chars", max_chars, "only the N characters drawn by the most fonts (0: all)").min(0);
  cli.bind("--per-char", per_char, "jittered images per character and font").min(1);
  cli.bind("--seed", seed, "seed of the jitter");
  cli.bind("--size", size, "image width and height in pixels")
      .min(8)
      .check([](int v) { return v <= 512; }, "must be <= 512");
  cli.bind("--quiet", quiet, "no progress bar");
  return util::run_main(cli, argc, argv, [&] {
    std::vector<fs::path> fonts(font_files.begin(), font_files.end());
    if (fonts.empty()) fonts = data::find_kanji_fonts();
    if (fonts.empty())
      throw std::runtime_error(
          "no kanji fonts found under /usr/share/fonts; install e.g. fonts-ipafont-gothic fonts-klee "
          "fonts-aoyagi-kouzan-t, or pass --fonts");
    for (const auto& f : fonts)
      if (!fs::is_regular_file(f)) throw std::runtime_error("--fonts: no such file '" + f.string() + "'");
    std::printf("render_kanji: writing to %s from %zu fonts\n", fs::absolute(out).c_str(), fonts.size());
    util::ProgressBar bar(0, "characters", {.quiet = quiet, .unit = "char"});
    util::Timer timer;
    const data::GlyphFolderStats stats = data::render_glyph_folder(
        out, fonts, {.size = size, .per_char = per_char, .max_chars = max_chars, .seed = uint64_t(seed)},
        [&] { bar.update(); });
    bar.close();
    if (!stats.removed_partial_folders.empty())
      std::printf("removed %zu partial folder(s) a killed rendering left\n",
                  stats.removed_partial_folders.size());
    std::printf("%lld characters, %lld images in %.1f s\n", (long long)stats.characters,
                (long long)stats.images, timer.elapsed_seconds());
    return 0;
  });
}
