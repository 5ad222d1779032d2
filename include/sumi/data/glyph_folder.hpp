#pragma once
// A Kuzushiji-Kanji-like image folder rendered from fonts: `<out>/U+XXXX/<font name>_<n>.png`, size x size
// grayscale PNGs, white strokes on black, one class folder per character. The characters are every CJK
// unified ideograph (U+4E00..U+9FFF) that at least one of the fonts draws (or the `max_chars` drawn by the
// most fonts); each font renders `per_char` jittered samples of each character it has, and none of the ones
// it lacks (no tofu boxes). The folder is built under a temporary name and renamed into place when complete,
// with a render.json describing it, so an interrupted run never leaves a half set that looks finished.
#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sumi/data/data_loader.hpp"
#include "sumi/data/glyph_renderer.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/plot/image_grid.hpp"
#include "sumi/util/folder_lock.hpp"
#include "sumi/util/json_file.hpp"

namespace sumi::data {

inline constexpr char32_t kFirstKanji = 0x4E00, kLastKanji = 0x9FFF;

// Font files of Debian's Japanese brush, handwriting, mincho and gothic font packages, by file name, in the
// order they are used: fonts-aoyagi-kouzan-t, fonts-aoyagi-soseki, fonts-kouzan-mouhitsu, fonts-kiloji,
// fonts-seto, fonts-yozvox-yozfont-new-kana, fonts-klee, fonts-ipafont-mincho, fonts-ipafont-gothic.
inline const std::vector<std::string>& known_kanji_font_files() {
  static const std::vector<std::string> files = {"AoyagiKouzanT.ttf",
                                                 "aoyagi-soseki.ttf",
                                                 "kouzan-mouhitsu.ttf",
                                                 "kouzan-mouhitsu-gyosho.ttf",
                                                 "KouzanBrushFontSousyo.ttf",
                                                 "kiloji.ttf",
                                                 "setofont.ttf",
                                                 "YOzRN_.ttf",
                                                 "KleeOne-Regular.ttf",
                                                 "KleeOne-SemiBold.ttf",
                                                 "ipam.ttf",
                                                 "ipag.ttf"};
  return files;
}

// The known font files installed under `root`, in known_kanji_font_files() order (one path per name).
inline std::vector<std::filesystem::path> find_kanji_fonts(
    const std::filesystem::path& root = "/usr/share/fonts") {
  std::map<std::string, std::filesystem::path> found;
  std::error_code ec;
  if (std::filesystem::is_directory(root, ec))
    for (auto it = std::filesystem::recursive_directory_iterator(
             root, std::filesystem::directory_options::skip_permission_denied, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file(ec)) found.try_emplace(it->path().filename().string(), it->path());
    }
  std::vector<std::filesystem::path> fonts;
  for (const auto& name : known_kanji_font_files())
    if (auto f = found.find(name); f != found.end()) fonts.push_back(f->second);
  return fonts;
}

// Which fonts draw which kanji: for each character drawn by at least one font, the indices of those fonts.
// A glyph that many code points share is a font's placeholder box, not a character, and does not count.
inline std::map<char32_t, std::vector<int>> kanji_coverage(const std::vector<Font>& fonts) {
  std::map<char32_t, std::vector<int>> coverage;
  for (std::size_t f = 0; f < fonts.size(); ++f) {
    std::map<int, int> uses;
    std::vector<std::pair<char32_t, int>> mapped;
    for (char32_t cp = kFirstKanji; cp <= kLastKanji; ++cp) {
      const int glyph = fonts[f].glyph_index(cp);
      if (glyph == 0 || !fonts[f].has_glyph(cp)) continue;
      ++uses[glyph];
      mapped.emplace_back(cp, glyph);
    }
    for (const auto& [cp, glyph] : mapped)
      if (uses[glyph] <= 2) coverage[cp].push_back(int(f));
  }
  return coverage;
}

struct GlyphFolderOptions {
  int size = 64;          // image width and height
  int per_char = 1;       // jittered samples per (character, font)
  int64_t max_chars = 0;  // > 0: only this many characters, those drawn by the most fonts
  uint64_t seed = 0;
  GlyphJitter::Ranges jitter{};
};

struct GlyphFolderStats {
  int64_t characters = 0, images = 0;
  std::vector<std::string> fonts;
  std::vector<std::string> removed_partial_folders;  // left by renderings of `out` killed mid-way
};

// `out` as a folder name: "kanji/" and "kanji/." are "kanji". A path that names no folder of its own ("/",
// "..") is refused.
inline std::filesystem::path glyph_folder_path(std::filesystem::path out) {
  out = out.lexically_normal();
  while (!out.has_filename() && out.has_relative_path()) out = out.parent_path();
  if (!out.has_filename() || out.filename() == "." || out.filename() == "..")
    throw std::invalid_argument("render_glyph_folder: '" + out.string() + "' names no folder to render into");
  return out;
}

// A rendering fills "<out>.partial.<pid>", marked by a file of this name while it is partial, and renames it
// to `out` when it is complete.
inline constexpr const char* kPartialGlyphFolderMarker = ".sumi-partial";

// The start of a partial folder's name, for `folder` as glyph_folder_path gives it.
inline std::string partial_glyph_folder_prefix(const std::filesystem::path& folder) {
  return folder.filename().string() + ".partial.";
}

// Removes the partial folders of `out` whose rendering was killed: named "<out>.partial.<digits>", holding
// the marker file, and locked by no process (a rendering in progress holds a lock on its folder). A folder
// without the marker is not a rendering's and stays. Returns their names, sorted.
inline std::vector<std::string> remove_abandoned_partial_glyph_folders(const std::filesystem::path& out) {
  const std::filesystem::path folder = glyph_folder_path(out);
  const std::string prefix = partial_glyph_folder_prefix(folder);
  const std::filesystem::path parent = folder.has_parent_path() ? folder.parent_path() : ".";
  std::vector<std::string> removed;
  std::error_code error;
  for (std::filesystem::directory_iterator it(parent, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    const std::string_view pid = std::string_view(name).substr(std::min(name.size(), prefix.size()));
    std::error_code ignored;
    if (name.starts_with(prefix) && !pid.empty() &&
        std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        std::filesystem::is_regular_file(
            std::filesystem::symlink_status(it->path() / kPartialGlyphFolderMarker, ignored)) &&
        util::remove_abandoned_folder(it->path()))
      removed.push_back(name);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

// Renders the folder at `out`, which must not exist yet, building it as "<out>.partial.<pid>" next to it;
// the partial folders of earlier renderings of `out` that were killed are removed first (see
// remove_abandoned_partial_glyph_folders). `on_character` (if set) is called after each character, from one
// thread at a time, for progress reporting.
inline GlyphFolderStats render_glyph_folder(std::filesystem::path out,
                                            const std::vector<std::filesystem::path>& font_paths,
                                            const GlyphFolderOptions& options = {},
                                            const std::function<void()>& on_character = {}) {
  namespace fs = std::filesystem;
  if (font_paths.empty())
    throw std::invalid_argument(
        "render_glyph_folder: no fonts (install e.g. fonts-ipafont-gothic or pass font files)");
  if (options.size < 8 || options.per_char < 1 || options.max_chars < 0)
    throw std::invalid_argument("render_glyph_folder: need size >= 8, per_char >= 1 and max_chars >= 0");
  options.jitter.check("render_glyph_folder");
  out = glyph_folder_path(out);
  if (fs::exists(out))
    throw std::runtime_error("render_glyph_folder: '" + out.string() +
                             "' already exists; remove it or choose another folder");
  std::vector<Font> fonts;
  std::set<std::string> names;
  for (const auto& p : font_paths) {
    fonts.emplace_back(p);
    if (!names.insert(fonts.back().name()).second)
      throw std::invalid_argument("render_glyph_folder: two fonts named '" + fonts.back().name() + "'");
  }
  std::map<char32_t, std::vector<int>> coverage = kanji_coverage(fonts);
  std::vector<std::pair<char32_t, std::vector<int>>> chars(coverage.begin(), coverage.end());
  if (options.max_chars > 0 && int64_t(chars.size()) > options.max_chars) {
    std::stable_sort(chars.begin(), chars.end(),
                     [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
    chars.resize(std::size_t(options.max_chars));
    std::sort(chars.begin(), chars.end());
  }
  if (chars.empty()) throw std::runtime_error("render_glyph_folder: the fonts draw no kanji");

  std::vector<std::string> abandoned = remove_abandoned_partial_glyph_folders(out);
  const fs::path temp = out.parent_path() / (partial_glyph_folder_prefix(out) + std::to_string(::getpid()));
  if (temp.has_parent_path()) fs::create_directories(temp.parent_path());
  // A folder of this name that the sweep left is a live rendering's (a process with this pid in another
  // container, say), or not a rendering's at all: not taken over.
  if (fs::exists(fs::symlink_status(temp)))
    throw std::runtime_error("render_glyph_folder: '" + temp.string() + "' exists: another rendering of '" +
                             out.string() +
                             "' in progress (a process of the same id in another container?), or a folder "
                             "that is not a rendering's");
  // Held until the folder is renamed to `out`, so that no other rendering's sweep removes it meanwhile.
  const util::FolderLock lock = util::FolderLock::create(temp);
  // From here on a failure removes the partial folder (while its lock is held).
  const auto fail = [&temp](const std::string& what) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw std::runtime_error("render_glyph_folder: " + what);
  };
  if (!std::ofstream(temp / kPartialGlyphFolderMarker))
    fail("cannot create '" + (temp / kPartialGlyphFolderMarker).string() + "'");
  std::atomic<int64_t> images{0};
  std::string error;
#pragma omp parallel for schedule(dynamic, 4) num_threads(sumi::get_num_threads())
  for (int64_t i = 0; i < int64_t(chars.size()); ++i) {
    const auto& [cp, font_ids] = chars[std::size_t(i)];
    try {
      const fs::path dir = temp / ("U+" + Font::hex(cp));
      fs::create_directories(dir);
      for (int f : font_ids)
        for (int n = 0; n < options.per_char; ++n) {
          // A generator per image: the same seed gives the same set whatever the thread count.
          Generator gen(detail::splitmix64(
              options.seed ^ detail::splitmix64((uint64_t(cp) << 20) ^ (uint64_t(f) << 12) ^ uint64_t(n))));
          plot::Image8 image{
              options.size, options.size, 1,
              fonts[std::size_t(f)].render(cp, options.size, GlyphJitter::random(gen, options.jitter))};
          const fs::path file = dir / (fonts[std::size_t(f)].name() + "_" + std::to_string(n) + ".png");
          std::ofstream png(file, std::ios::binary);
          const std::string bytes = plot::encode_png(image);
          png.write(bytes.data(), std::streamsize(bytes.size()));
          png.close();  // a small file sits in the stream's buffer until here: a full disk shows only now
          if (!png) throw std::runtime_error("cannot write '" + file.string() + "'");
          ++images;
        }
    } catch (const std::exception& e) {
#pragma omp critical(sumi_glyph_folder_error)
      if (error.empty()) error = e.what();
    }
    if (on_character) {
      // An exception may leave neither the critical section nor the parallel region (it would end the
      // process): the callback's is reported as the rendering's own are.
      std::string callback_error;
#pragma omp critical(sumi_glyph_folder_progress)
      try {
        on_character();
      } catch (const std::exception& e) {
        callback_error = std::string("on_character: ") + e.what();
      }
      if (!callback_error.empty()) {
#pragma omp critical(sumi_glyph_folder_error)
        if (error.empty()) error = callback_error;
      }
    }
  }
  if (!error.empty()) fail(error);
  GlyphFolderStats stats;
  stats.characters = int64_t(chars.size());
  stats.images = images.load();
  for (const auto& f : fonts) stats.fonts.push_back(f.name());
  stats.removed_partial_folders = std::move(abandoned);
  nlohmann::json fonts_json = nlohmann::json::array();
  for (const auto& f : fonts) fonts_json.push_back({{"name", f.name()}, {"path", f.path().string()}});
  try {
    util::write_json_atomically(temp / "render.json", {{"characters", stats.characters},
                                                       {"images", stats.images},
                                                       {"size", options.size},
                                                       {"per_char", options.per_char},
                                                       {"max_chars", options.max_chars},
                                                       {"seed", options.seed},
                                                       {"fonts", fonts_json}});
    fs::remove(temp / kPartialGlyphFolderMarker);
    fs::rename(temp, out);
  } catch (const std::exception& e) {
    fail(e.what());  // a full disk, or another rendering that renamed its folder to `out` first
  }
  return stats;
}

}  // namespace sumi::data
