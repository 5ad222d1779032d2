// data::ImageFolder, the resize/crop transforms and the font-rendered kanji folder.
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "peak_memory.hpp"
#include "sumi/data/data_loader.hpp"
#include "sumi/data/glyph_folder.hpp"
#include "sumi/data/image_folder.hpp"
#include "sumi/data/transforms.hpp"
#include "sumi/plot/image_grid.hpp"
#include "sumi/util/folder_lock.hpp"

namespace fs = std::filesystem;
using namespace sumi;

namespace {

// A w x h image with pixel (x, y, c) = f(x, y, c), written as PNG.
template <class F>
void write_png(const fs::path& path, int w, int h, int channels, F f) {
  plot::Image8 image{w, h, channels, {}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) image.pixels.push_back(uint8_t(f(x, y, c)));
  fs::create_directories(path.parent_path());
  plot::save_png(path, image);
}

// root/alpha/{a0,a1}.png (grey 8x8), root/beta/b0.png (RGB 16x8), root/beta/sub/b1.png (grey 8x8), a corrupt
// root/beta/broken.png and a text file root/beta/notes.txt.
fs::path make_tree() {
  const fs::path root = fs::temp_directory_path() / "sumi_image_folder_test";
  fs::remove_all(root);
  write_png(root / "alpha" / "a0.png", 8, 8, 1, [](int, int, int) { return 0; });
  write_png(root / "alpha" / "a1.png", 8, 8, 1, [](int, int, int) { return 255; });
  write_png(root / "beta" / "b0.png", 16, 8, 3,
            [](int x, int, int c) { return c == 0 ? (x < 4 || x >= 12 ? 0 : 255) : 0; });
  write_png(root / "beta" / "sub" / "b1.png", 8, 8, 1, [](int x, int, int) { return x * 32; });
  std::ofstream(root / "beta" / "broken.png") << "not a png at all";
  std::ofstream(root / "beta" / "notes.txt") << "ignored";
  return root;
}

}  // namespace

TEST_CASE("ImageFolder loads class subfolders, skips the corrupt file and maps bytes to [-1, 1]", "[data]") {
  const fs::path root = make_tree();
  const data::ImageFolder rgb(root, {.channels = 3, .image_size = 8});
  REQUIRE(rgb.size() == 4);
  REQUIRE(rgb.classes() == std::vector<std::string>{"alpha", "beta"});
  REQUIRE(rgb.labels() == std::vector<int64_t>{0, 0, 1, 1});
  REQUIRE(rgb.skipped_files().size() == 1);
  REQUIRE(rgb.skipped_files()[0].find("broken.png") != std::string::npos);
  REQUIRE(rgb.stored_channels() == 3);  // one colour image makes the whole set RGB
  REQUIRE(rgb.sample_shape() == Shape{3, 8, 8});

  Tensor<float> images;
  std::vector<int64_t> labels;
  const std::vector<int64_t> idx{0, 1, 2, 3};
  rgb.get_batch(idx, images, labels);
  REQUIRE(images.shape() == Shape{4, 3, 8, 8});
  REQUIRE(labels == std::vector<int64_t>{0, 0, 1, 1});
  for (int64_t i = 0; i < images.numel(); ++i)
    REQUIRE((images.data()[i] >= -1.0f && images.data()[i] <= 1.0f));
  REQUIRE(images.data()[0] == -1.0f);            // black
  REQUIRE(images.data()[3 * 64] == 1.0f);        // white, image 1 channel 0
  REQUIRE(images.data()[3 * 64 + 128] == 1.0f);  // grey replicated into blue
  // b0 (16x8, red in the middle 8 columns): shorter side 8 stays, the centre 8x8 crop is all red.
  const float* b0 = images.data() + 2 * 3 * 64;
  REQUIRE(b0[0] == 1.0f);
  REQUIRE(b0[63] == 1.0f);
  REQUIRE(b0[64] == -1.0f);                                       // green
  REQUIRE(images.data()[3 * 192 + 1] == Approx(32 / 127.5 - 1));  // b1's gradient, column 1

  // Grayscale: luma of the colour image, one stored plane, and a DataLoader over it.
  const data::ImageFolder gray(root, {.channels = 1, .image_size = 4, .resize = data::ResizeMode::area});
  REQUIRE(gray.stored_channels() == 1);
  gray.get_batch(idx, images, labels);
  REQUIRE(images.shape() == Shape{4, 1, 4, 4});
  REQUIRE(images.data()[2 * 16] == Approx((255 * 299 + 500) / 1000 / 127.5 - 1));
  REQUIRE(images.data()[3 * 16 + 1] == Approx((2 * 32 + 3 * 32) / 2 / 127.5 - 1).margin(0.01));  // area mean
  data::DataLoader loader(gray, {.batch_size = 3, .shuffle = true, .seed = 1});
  int64_t seen = 0;
  for (const data::Batch& b : loader) seen += b.size();
  REQUIRE(seen == 4);
  fs::remove_all(root);
}

TEST_CASE("ImageFolder strict mode fails on the corrupt file naming it; bad roots are named",
          "[data][errors]") {
  const fs::path root = make_tree();
  REQUIRE_THROWS_WITH(data::ImageFolder(root, {.image_size = 8, .strict = true}),
                      Catch::Contains("broken.png"));
  REQUIRE_THROWS_WITH(data::ImageFolder(root / "missing"), Catch::Contains("missing"));
  REQUIRE_THROWS_WITH(data::ImageFolder(root, {.channels = 2}), Catch::Contains("channels"));
  // A picture no resize can make (its longer side would pass INT_MAX) is skipped, named with the reason.
  write_png(root / "beta" / "thread.png", 1, 9'000'000, 1, [](int, int, int) { return 0; });
  const data::ImageFolder with_thread(root, {.channels = 1, .image_size = 256});
  REQUIRE(with_thread.skipped_files().size() == 2);
  REQUIRE_THAT(
      with_thread.skipped_files()[1],
      Catch::StartsWith((root / "beta" / "thread.png").string() + ": ") && Catch::Contains("1x9000000"));
  fs::remove(root / "beta" / "thread.png");
  fs::remove_all(root / "alpha");
  fs::remove_all(root / "beta" / "b0.png");
  fs::remove_all(root / "beta" / "sub");
  REQUIRE_THROWS_WITH(data::ImageFolder(root), Catch::Contains("could be decoded"));
  fs::remove_all(root);
}

TEST_CASE("ImageFolder finds and orders files as torchvision does and converts colour as PIL", "[data]") {
  const fs::path root = fs::temp_directory_path() / "sumi_image_folder_order";
  fs::remove_all(root);
  const auto grey = [](int, int, int) { return 7; };
  // torchvision: sorted(os.walk(class folder, followlinks=True)), then each folder's files sorted by name.
  write_png(root / "cls" / "a.png", 2, 2, 1, grey);
  write_png(root / "cls" / "b" / "x.png", 2, 2, 1, grey);
  write_png(root / "cls" / "c.png", 2, 2, 1, grey);
  write_png(root / "elsewhere" / "linked.png", 2, 2, 1, grey);
  fs::create_directory_symlink(root / "elsewhere", root / "cls" / "linked_dir");
  // Pillow's convert("L") in 16-bit fixed point; (299 R + 587 G + 114 B) / 1000 gives 29, 22 and 15.
  const std::array<std::array<int, 3>, 3> colours = {{{0, 0, 250}, {0, 4, 168}, {0, 8, 86}}};
  write_png(root / "rgb" / "colours.png", 3, 3, 3, [&](int x, int, int c) { return colours[x][c]; });
  const data::ImageFolder folder(root, {.channels = 1, .image_size = 3, .resize = data::ResizeMode::area});
  REQUIRE(folder.classes() == std::vector<std::string>{"cls", "elsewhere", "rgb"});
  std::vector<std::string> names;
  for (const auto& path : folder.paths()) names.push_back(path.lexically_relative(root).string());
  CHECK(names == std::vector<std::string>{"cls/a.png", "cls/c.png", "cls/b/x.png",
                                          "cls/linked_dir/linked.png", "elsewhere/linked.png",
                                          "rgb/colours.png"});
  const uint8_t* luma = folder.image_bytes(5);
  CHECK(std::vector<int>{luma[0], luma[1], luma[2]} == std::vector<int>{28, 21, 14});
  // A class folder without images is refused, as torchvision refuses it, naming it.
  fs::create_directories(root / "empty_class");
  REQUIRE_THROWS_WITH(data::ImageFolder(root, {.channels = 1, .image_size = 3}),
                      Catch::Contains("in the class folder 'empty_class' of '" + root.string() + "'"));
  fs::remove_all(root);
}

TEST_CASE("resize and centre crop", "[data]") {
  data::ByteImage img{4, 2, 1, {0, 100, 200, 40, 0, 100, 200, 40}};
  const auto area = data::resize_area(img, 2, 1);
  REQUIRE(area.pixels == std::vector<uint8_t>{50, 120});
  const auto bil = data::resize_bilinear(img, 2, 1);
  REQUIRE(bil.pixels == std::vector<uint8_t>{50, 120});  // centres at 0.5 and 2.5 of the input
  const auto up = data::resize_bilinear(data::ByteImage{2, 1, 1, {0, 200}}, 4, 1);
  REQUIRE(up.pixels == std::vector<uint8_t>{0, 50, 150, 200});
  const auto crop = data::center_crop(img, 2, 2);
  REQUIRE(crop.pixels == std::vector<uint8_t>{100, 200, 100, 200});
  const auto square = data::resize_and_center_crop(img, 2);  // shorter side already 2: crop the middle
  REQUIRE(square.pixels == crop.pixels);
  REQUIRE_THROWS(data::center_crop(img, 5, 2));
  // As torchvision: an odd margin's half rounds to even (int(round(1.5)) = 2, int(round(0.5)) = 0), and the
  // longer side is truncated (64 * 100 / 67 = 95.5 gives 95).
  const data::ByteImage row{5, 1, 1, {0, 1, 2, 3, 4}};
  REQUIRE(data::center_crop(row, 2, 1).pixels == std::vector<uint8_t>{2, 3});
  REQUIRE(data::center_crop(row, 4, 1).pixels == std::vector<uint8_t>{0, 1, 2, 3});
  REQUIRE(data::center_crop(row, 3, 1).pixels == std::vector<uint8_t>{1, 2, 3});
  REQUIRE(data::shorter_side_resized(100, 67, 64) == std::pair{95, 64});
  REQUIRE(data::shorter_side_resized(67, 100, 64) == std::pair{64, 95});
  REQUIRE(data::shorter_side_resized(64, 64, 32) == std::pair{32, 32});
  REQUIRE(data::shorter_side_resized(65, 64, 32) == std::pair{32, 32});  // int(32.5)
  // Resizing only the part the crop keeps gives the pixels of resizing everything and cropping, for either
  // axis longer, odd and even margins, shrinking and enlarging.
  std::mt19937 rng(3);
  for (const auto& [w, h] : {std::pair{7, 3}, {3, 11}, {50, 9}, {9, 50}, {31, 32}, {2, 1}, {1, 40}})
    for (int channels : {1, 3})
      for (int size : {1, 2, 5, 6, 64})
        for (const data::ResizeMode mode : {data::ResizeMode::area, data::ResizeMode::bilinear}) {
          INFO(w << "x" << h << "x" << channels << " to " << size << ", mode " << int(mode));
          data::ByteImage image{w, h, channels, {}};
          for (int i = 0; i < w * h * channels; ++i) image.pixels.push_back(uint8_t(rng()));
          const auto [rw, rh] = data::shorter_side_resized(w, h, size);
          REQUIRE(data::resize_and_center_crop(image, size, mode).pixels ==
                  data::center_crop(data::resize(image, rw, rh, mode), size, size).pixels);
        }
  REQUIRE_THROWS_WITH(data::resize_area(img, 2, 1, {1, 0, 2, 1}), Catch::Contains("window 2x1 at (1, 0)"));
  // A long, thin picture costs the crop, not the whole resized picture (32 x 64,000,000 bytes here).
  const data::ByteImage thin{1, 2'000'000, 1, std::vector<uint8_t>(2'000'000, 7)};
  const double before = test::peak_memory_mib();
  REQUIRE(data::resize_and_center_crop(thin, 32).pixels == std::vector<uint8_t>(32 * 32, 7));
  CHECK(test::peak_memory_mib() - before < 64);
  // One whose longer side would pass INT_MAX is refused, naming its size.
  REQUIRE_THROWS_WITH(data::shorter_side_resized(1, 16'000'000, 256), Catch::Contains("1x16000000"));
  REQUIRE(data::byte_to_signed_unit(0) == -1.0f);
  REQUIRE(data::byte_to_signed_unit(255) == 1.0f);
}

TEST_CASE("kanji glyphs render white on black in KKanji's layout, skipping characters a font lacks",
          "[data][fonts]") {
  const auto fonts = data::find_kanji_fonts();
  if (fonts.empty()) {
    WARN("no kanji font installed (scripts/install-deps.sh installs fonts-ipafont-gothic); skipping");
    return;
  }
  const data::Font font(fonts.front());
  REQUIRE(font.has_glyph(0x6F22));                             // 漢
  REQUIRE(!font.has_glyph(0x0E01));                            // Thai: not in a Japanese font
  const std::vector<uint8_t> plain = font.render(0x4E2D, 32);  // 中
  REQUIRE(plain.size() == 32u * 32u);
  int ink = 0;
  for (uint8_t v : plain) ink += v > 128;
  REQUIRE(ink > 30);
  REQUIRE(plain[0] == 0);              // black background
  REQUIRE(plain[16 * 32 + 16] > 128);  // 中's vertical stroke runs through the centre
  data::GlyphJitter bold;
  bold.stroke = 2;
  int bold_ink = 0;
  for (uint8_t v : font.render(0x4E2D, 32, bold)) bold_ink += v > 128;
  REQUIRE(bold_ink > ink);
  REQUIRE_THROWS_WITH(font.render(0x0E01, 32), Catch::Contains("U+0E01"));

  const fs::path parent =
      fs::temp_directory_path() / ("sumi_glyph_folder_test." + std::to_string(::getpid()));
  fs::remove_all(parent);
  fs::create_directories(parent);
  const fs::path out = parent / "kanji";
  // What killed renderings left is removed: marked folders of the name form whose lock nobody holds. A
  // rendering in progress (its folder locked), an unmarked folder and other names stay.
  const std::string partial = "kanji.partial.";
  for (const std::string suffix : {"999999999", "12", "13", "14", "live", "", "7x"}) {
    fs::create_directories(parent / (partial + suffix) / "U+4E00");
    if (suffix != "14") std::ofstream(parent / (partial + suffix) / data::kPartialGlyphFolderMarker).close();
  }
  fs::remove_all(parent / (partial + "13"));
  const util::FolderLock live = util::FolderLock::create(parent / (partial + "13"));
  std::ofstream(parent / (partial + "13") / data::kPartialGlyphFolderMarker).close();
  const auto stats =
      data::render_glyph_folder(out, {fonts.front()}, {.size = 16, .per_char = 2, .max_chars = 5});
  REQUIRE(stats.removed_partial_folders == std::vector<std::string>{partial + "12", partial + "999999999"});
  for (const std::string suffix : {"13", "14", "live", "", "7x"})
    REQUIRE(fs::is_directory(parent / (partial + suffix)));
  REQUIRE_FALSE(fs::exists(parent / (partial + "12")));
  REQUIRE_FALSE(fs::exists(out / data::kPartialGlyphFolderMarker));  // a finished folder is not partial
  {
    // A live rendering's folder under this process's own pid (one in another container, say) is not taken
    // over: the rendering fails, naming it, and the folder stays. "kanji2/." is the folder "kanji2".
    const fs::path own = parent / ("kanji2.partial." + std::to_string(::getpid()));
    const util::FolderLock other = util::FolderLock::create(own);
    std::ofstream(own / data::kPartialGlyphFolderMarker).close();
    REQUIRE_THROWS_WITH(
        data::render_glyph_folder(parent / "kanji2/.", {fonts.front()}, {.size = 16, .max_chars = 1}),
        Catch::Contains(own.string()) &&
            Catch::Contains("another rendering of '" + (parent / "kanji2").string()));
    REQUIRE(fs::is_directory(own));
  }
  // Once its lock is let go, the same folder is an abandoned rendering's, and the next rendering removes it.
  const auto second =
      data::render_glyph_folder(parent / "kanji2/.", {fonts.front()}, {.size = 16, .max_chars = 1});
  REQUIRE(second.removed_partial_folders ==
          std::vector<std::string>{"kanji2.partial." + std::to_string(::getpid())});
  REQUIRE(fs::exists(parent / "kanji2" / "render.json"));
  // A progress callback that throws fails the rendering as its own errors do, leaving no partial folder.
  int calls = 0;
  REQUIRE_THROWS_WITH(
      data::render_glyph_folder(parent / "kanji3", {fonts.front()}, {.size = 16, .max_chars = 3},
                                [&] {
                                  if (++calls == 2) throw std::runtime_error("display closed");
                                }),
      Catch::Contains("on_character: display closed"));
  for (const auto& entry : fs::directory_iterator(parent))
    REQUIRE(entry.path().filename().string().rfind("kanji3", 0) == std::string::npos);
  REQUIRE_THROWS_WITH(data::glyph_folder_path(".."), Catch::Contains("names no folder"));
  REQUIRE(stats.characters == 5);
  REQUIRE(stats.images == 10);
  REQUIRE(fs::exists(out / "render.json"));
  const std::string first = "U+" + data::Font::hex(data::kFirstKanji);
  REQUIRE(fs::exists(out / first / (font.name() + "_1.png")));
  REQUIRE_THROWS_WITH(data::render_glyph_folder(out, {fonts.front()}), Catch::Contains("already exists"));
  const data::ImageFolder set(out, {.channels = 1, .image_size = 16});
  REQUIRE(set.size() == 10);
  REQUIRE(set.classes().front() == first);
  fs::remove_all(parent);
}

TEST_CASE("fonts that are empty, truncated or not fonts, and jitters no rendering can use, are refused",
          "[data][fonts][errors]") {
  const fs::path dir = fs::temp_directory_path() / "sumi_bad_fonts";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << bytes;
    return dir / name;
  };
  REQUIRE_THROWS_WITH(data::Font(write("empty.ttf", "")),
                      Catch::Contains("empty.ttf") && Catch::Contains("0 bytes"));
  REQUIRE_THROWS_WITH(data::Font(write("text.ttf", "not a font at all, just text\n")),
                      Catch::Contains("text.ttf") && Catch::Contains("not a TrueType"));
  // A TrueType header announcing 20 tables, but the file ends after the first record.
  std::string header("\x00\x01\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00", 12);
  REQUIRE_THROWS_WITH(data::Font(write("cut.ttf", header + std::string(16, '\0'))),
                      Catch::Contains("cut.ttf") && Catch::Contains("truncated"));
  // One table whose data would lie far past the end of the file.
  std::string one_table("\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
  one_table += std::string("cmap\0\0\0\0\x7f\x00\x00\x00\x00\x00\x01\x00", 16);
  REQUIRE_THROWS_WITH(data::Font(write("far.ttf", one_table)), Catch::Contains("truncated"));

  const auto fonts = data::find_kanji_fonts();
  if (!fonts.empty()) {
    const data::Font font(fonts.front());
    data::GlyphJitter flat;
    flat.aspect = 0;
    REQUIRE_THROWS_WITH(font.render(0x4E2D, 32, flat), Catch::Contains("aspect"));
    data::GlyphJitter lost;
    lost.shift_x = std::numeric_limits<double>::infinity();
    REQUIRE_THROWS_WITH(font.render(0x4E2D, 32, lost), Catch::Contains("shift_x"));
    REQUIRE_THROWS_WITH(font.render(0x4E2D, 32, {}, 86), Catch::Contains("em_fill"));
    data::GlyphFolderOptions options;
    options.jitter.scale = 1.5;  // could draw a negative scale
    REQUIRE_THROWS_WITH(data::render_glyph_folder(dir / "out", {fonts.front()}, options),
                        Catch::Contains("jitter range scale"));
    options.jitter = {};
    options.jitter.max_dilate = 1000000;
    REQUIRE_THROWS_WITH(data::render_glyph_folder(dir / "out", {fonts.front()}, options),
                        Catch::Contains("max_dilate"));
  }
  fs::remove_all(dir);
}
