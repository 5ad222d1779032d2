// Tests for sumi/plot: the SVG charts are parsed back as XML (expat) and checked element by element; the PNG
// grids are decoded back (stb_image) and checked pixel by pixel.
#include <expat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "sumi/data/detail/stb_image.hpp"
#include "sumi/plot/image_grid.hpp"
#include "sumi/plot/svg_chart.hpp"

namespace fs = std::filesystem;
using namespace sumi::plot;

namespace {

const std::string kMinus = "\xe2\x88\x92";  // U+2212, as tick labels print negatives

// A minimal DOM built with expat: enough to query elements, attributes and text.
struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attributes;
  std::string text;  // character data directly inside this element
  std::vector<std::unique_ptr<XmlNode>> children;

  std::string attribute(const std::string& key) const {
    const auto it = attributes.find(key);
    return it == attributes.end() ? "" : it->second;
  }
  // Own text followed by the children's text (enough for "10" + <tspan>"−2"</tspan>).
  std::string all_text() const {
    std::string out = text;
    for (const auto& child : children) out += child->all_text();
    return out;
  }
  void collect(const std::function<bool(const XmlNode&)>& match, std::vector<const XmlNode*>& out) const {
    if (match(*this)) out.push_back(this);
    for (const auto& child : children) child->collect(match, out);
  }
  std::vector<const XmlNode*> find_all(const std::string& element) const {
    std::vector<const XmlNode*> out;
    collect([&](const XmlNode& node) { return node.name == element; }, out);
    return out;
  }
  std::vector<const XmlNode*> with_class(const std::string& css_class) const {
    std::vector<const XmlNode*> out;
    collect([&](const XmlNode& node) { return node.attribute("class") == css_class; }, out);
    return out;
  }
  const XmlNode* child(const std::string& element) const {
    for (const auto& c : children)
      if (c->name == element) return c.get();
    return nullptr;
  }
};

struct XmlBuilder {
  std::unique_ptr<XmlNode> root;
  std::vector<XmlNode*> stack;
};

std::unique_ptr<XmlNode> parse_xml(const std::string& text) {
  XmlBuilder builder;
  XML_Parser parser = XML_ParserCreate("UTF-8");
  XML_SetUserData(parser, &builder);
  XML_SetElementHandler(
      parser,
      [](void* data, const XML_Char* name, const XML_Char** attributes) {
        auto& b = *static_cast<XmlBuilder*>(data);
        auto node = std::make_unique<XmlNode>();
        node->name = name;
        for (int i = 0; attributes[i]; i += 2) node->attributes[attributes[i]] = attributes[i + 1];
        XmlNode* raw = node.get();
        if (b.stack.empty())
          b.root = std::move(node);
        else
          b.stack.back()->children.push_back(std::move(node));
        b.stack.push_back(raw);
      },
      [](void* data, const XML_Char*) { static_cast<XmlBuilder*>(data)->stack.pop_back(); });
  XML_SetCharacterDataHandler(parser, [](void* data, const XML_Char* s, int length) {
    auto& b = *static_cast<XmlBuilder*>(data);
    if (!b.stack.empty()) b.stack.back()->text.append(s, std::size_t(length));
  });
  const bool ok = XML_Parse(parser, text.data(), int(text.size()), 1) == XML_STATUS_OK;
  const std::string error = ok ? ""
                               : std::string(XML_ErrorString(XML_GetErrorCode(parser))) + " at line " +
                                     std::to_string(XML_GetCurrentLineNumber(parser));
  XML_ParserFree(parser);
  INFO("XML error: " << error);
  REQUIRE(ok);
  return std::move(builder.root);
}

std::vector<std::string> texts_of(const std::vector<const XmlNode*>& nodes) {
  std::vector<std::string> out;
  for (const auto* node : nodes) out.push_back(node->all_text());
  return out;
}

std::vector<std::string> tick_labels(const XmlNode& svg, const std::string& axis) {
  const auto groups = svg.with_class(axis + "-tick-labels");
  REQUIRE(groups.size() == 1);
  return texts_of(groups[0]->find_all("text"));
}

std::vector<std::pair<double, double>> polyline_points(const XmlNode& polyline) {
  std::vector<std::pair<double, double>> points;
  std::istringstream in(polyline.attribute("points"));
  for (std::string pair; in >> pair;) {
    const auto comma = pair.find(',');
    points.emplace_back(std::stod(pair.substr(0, comma)), std::stod(pair.substr(comma + 1)));
  }
  return points;
}

bool contains(const std::vector<std::string>& values, const std::string& value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

void check_svg_root(const XmlNode& svg) {
  CHECK(svg.name == "svg");
  CHECK(svg.attribute("xmlns") == "http://www.w3.org/2000/svg");
  CHECK(svg.attribute("version") == "1.1");
  CHECK_FALSE(svg.attribute("viewBox").empty());
}

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("sumi_test_plot_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

struct DecodedImage {
  int width = 0, height = 0, channels = 0;
  std::vector<unsigned char> pixels;
  int at(int x, int y, int c = 0) const {
    return pixels[(std::size_t(y) * std::size_t(width) + std::size_t(x)) * std::size_t(channels) +
                  std::size_t(c)];
  }
};

DecodedImage decode_png(const fs::path& path) {
  DecodedImage image;
  unsigned char* data = stbi_load(path.c_str(), &image.width, &image.height, &image.channels, 0);
  INFO("stb_image: " << (data ? "ok" : stbi_failure_reason()));
  REQUIRE(data != nullptr);
  image.pixels.assign(
      data, data + std::size_t(image.width) * std::size_t(image.height) * std::size_t(image.channels));
  stbi_image_free(data);
  return image;
}

}  // namespace

TEST_CASE("line chart SVG holds one group per series, polylines per unbroken run and a legend",
          "[plot][svg]") {
  LineChart chart;
  chart.title = "Loss <MSE> & \"friends\"";
  chart.x_label = "epoch";
  chart.y_label = "loss";
  chart.log_y = true;
  std::vector<int> epochs;
  std::vector<double> train, validation;
  for (int e = 1; e <= 20; ++e) {
    epochs.push_back(e);
    train.push_back(0.1 * std::pow(0.01, (e - 1) / 19.0));  // 0.1 down to 0.001, log-linear
    validation.push_back(e == 8 ? std::numeric_limits<double>::quiet_NaN() : 0.2 * std::pow(0.5, e / 4.0));
  }
  chart.add_series("train", epochs, train);
  chart.add_series("validation", epochs, validation, {.dashed = true});
  chart.add_series("", std::vector<float>{1.f, 2.f},
                   std::vector<float>{0.5f, -1.f});  // -1 is skipped on log y
  const std::string svg_text = chart.to_svg();
  CHECK(svg_text == chart.to_svg());  // deterministic
  const auto svg = parse_xml(svg_text);
  check_svg_root(*svg);

  const auto series = svg->with_class("series");
  REQUIRE(series.size() == 3);
  CHECK(series[0]->child("title")->all_text() == "train");
  CHECK(series[1]->child("title")->all_text() == "validation");
  const auto train_lines = series[0]->find_all("polyline");
  REQUIRE(train_lines.size() == 1);
  CHECK(polyline_points(*train_lines[0]).size() == 20);
  CHECK(train_lines[0]->attribute("stroke") == "#1f77b4");
  const auto validation_lines = series[1]->find_all("polyline");
  REQUIRE(validation_lines.size() == 2);  // the NaN at epoch 8 breaks the line
  CHECK(polyline_points(*validation_lines[0]).size() == 7);
  CHECK(polyline_points(*validation_lines[1]).size() == 12);
  CHECK(validation_lines[0]->attribute("stroke") == "#ff7f0e");
  CHECK_FALSE(validation_lines[0]->attribute("stroke-dasharray").empty());
  CHECK(series[2]->find_all("polyline").empty());  // one drawable point: a dot instead
  CHECK(series[2]->find_all("circle").size() == 1);

  // The legend lists the named series only, in order.
  const auto legend = svg->with_class("legend");
  REQUIRE(legend.size() == 1);
  const auto entries = legend[0]->with_class("legend-entry");
  REQUIRE(entries.size() == 2);
  CHECK(texts_of(legend[0]->find_all("text")) == std::vector<std::string>{"train", "validation"});
  CHECK(entries[1]->child("line")->attribute("stroke") == "#ff7f0e");

  // Log axis: decade labels as 10 with a superscript exponent.
  const auto y_labels = tick_labels(*svg, "y");
  CHECK(contains(y_labels, "10" + kMinus + "3"));
  CHECK(contains(y_labels, "10" + kMinus + "2"));
  CHECK(contains(y_labels, "10" + kMinus + "1"));
  CHECK(contains(tick_labels(*svg, "x"), "10"));
  CHECK(contains(tick_labels(*svg, "x"), "20"));

  // The text round-trips through escaping.
  CHECK(texts_of(svg->with_class("title")) == std::vector<std::string>{"Loss <MSE> & \"friends\""});
  CHECK(texts_of(svg->with_class("x-label")) == std::vector<std::string>{"epoch"});
  CHECK(texts_of(svg->with_class("y-label")) == std::vector<std::string>{"loss"});

  // Geometry: the first train point (y = 0.1) sits exactly at the 10^-1 tick label's height and the last
  // (y = 0.001) at 10^-3's; labels are drawn 0.36 em below the tick for vertical centring.
  std::map<std::string, double> label_y;
  for (const auto* text : svg->with_class("y-tick-labels")[0]->find_all("text"))
    label_y[text->all_text()] = std::stod(text->attribute("y")) - 0.36 * 12;
  const auto train_points = polyline_points(*train_lines[0]);
  CHECK(train_points.front().second == Approx(label_y["10" + kMinus + "1"]).margin(0.02));
  CHECK(train_points.back().second == Approx(label_y["10" + kMinus + "3"]).margin(0.02));
  CHECK(train_points.front().first < train_points.back().first);
}

TEST_CASE("log-y tick labels: decimal style and narrow ranges", "[plot][svg]") {
  LineChart decimal;
  decimal.log_y = true;
  decimal.log_labels = LogTickLabels::decimal;
  decimal.add_series("loss", std::vector<double>{0, 1, 2}, std::vector<double>{0.5, 0.02, 0.0015});
  const auto y_decimal = tick_labels(*parse_xml(decimal.to_svg()), "y");
  CHECK(contains(y_decimal, "0.1"));
  CHECK(contains(y_decimal, "0.01"));
  CHECK_FALSE(contains(y_decimal, "10" + kMinus + "2"));

  // Less than a decade: the minor ticks get labels so the axis is readable.
  LineChart narrow;
  narrow.log_y = true;
  narrow.add_series("loss", std::vector<double>{0, 1, 2}, std::vector<double>{0.08, 0.05, 0.031});
  const auto y_narrow = tick_labels(*parse_xml(narrow.to_svg()), "y");
  CHECK(contains(y_narrow, "0.04"));
  CHECK(contains(y_narrow, "0.05"));
  CHECK(contains(y_narrow, "0.07"));

  // Narrower than the gap between two minor ticks (a short run's loss): linear labels inside the range.
  LineChart short_run;
  short_run.log_y = true;
  short_run.add_series("loss", std::vector<double>{1, 2}, std::vector<double>{0.1529, 0.1419});
  const auto y_short = tick_labels(*parse_xml(short_run.to_svg()), "y");
  REQUIRE(y_short.size() >= 2);
  for (const std::string& label : y_short) {
    INFO(label);
    CHECK(std::stod(label) >= 0.13);
    CHECK(std::stod(label) <= 0.16);
  }
  // A constant series (a loss that no longer changes): at least two labels, around the value.
  for (const double value : {0.02, 5.0, 3e-7, 1.0}) {
    INFO(value);
    LineChart constant;
    constant.log_y = true;
    constant.add_series("loss", std::vector<double>{1, 2, 3}, std::vector<double>(3, value));
    const auto y_constant = tick_labels(*parse_xml(constant.to_svg()), "y");
    REQUIRE(y_constant.size() >= 2);
  }
  // At magnitudes written in scientific form, labels carry the step's digits, not i * step's rounding noise.
  const auto tiny = detail::linear_ticks(1.42e-9, 1.53e-9, 5);
  REQUIRE(tiny.size() >= 3);
  for (const auto& tick : tiny) {
    INFO(tick.label);
    CHECK(tick.label.size() <= 9);  // 1.475e-09
    CHECK(std::stod(tick.label) == Approx(tick.value).epsilon(1e-12));
  }
}

TEST_CASE("linear ticks use nice steps and typographic minus signs", "[plot][svg]") {
  const auto ticks = detail::linear_ticks(-1.05, 1.05, 5);
  std::vector<std::string> labels;
  for (const auto& tick : ticks) labels.push_back(tick.label);
  CHECK(labels == std::vector<std::string>{kMinus + "1.0", kMinus + "0.5", "0.0", "0.5", "1.0"});
  const auto big = detail::linear_ticks(0, 1000, 4);
  CHECK(big.front().label == "0");
  CHECK(big.back().label == "1000");
  CHECK(big.size() == 5);
  CHECK(detail::nice_step(7.3, 3) == 2.5);
  CHECK(detail::nice_step(0.9, 9) == Approx(0.1));
}

TEST_CASE("scatter chart groups circles per class with a legend of class names", "[plot][svg]") {
  ScatterChart chart;
  chart.title = "latent space";
  chart.class_names = {"cat", "dog", "<bird>"};
  std::vector<double> xs, ys;
  std::vector<int> labels;
  const int per_class[3] = {5, 7, 11};
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < per_class[c]; ++i) {
      xs.push_back(c * 10 + i);
      ys.push_back(-c + 0.1 * i);
      labels.push_back(c);
    }
  xs.push_back(std::numeric_limits<double>::quiet_NaN());  // skipped
  ys.push_back(0);
  labels.push_back(1);
  chart.add_points(xs, ys, labels);
  const auto svg = parse_xml(chart.to_svg());
  check_svg_root(*svg);
  const auto groups = svg->with_class("points");
  REQUIRE(groups.size() == 3);
  for (int c = 0; c < 3; ++c) {
    CHECK(groups[std::size_t(c)]->find_all("circle").size() == std::size_t(per_class[c]));
    CHECK(groups[std::size_t(c)]->attribute("fill") == std::string(tab10_color(std::size_t(c))));
    CHECK(groups[std::size_t(c)]->attribute("fill-opacity") == "0.7");
  }
  CHECK(groups[2]->child("title")->all_text() == "<bird>");
  CHECK(groups[0]->find_all("circle")[0]->attribute("r") == "1.5");
  const auto legend = svg->with_class("legend");
  REQUIRE(legend.size() == 1);
  CHECK(texts_of(legend[0]->find_all("text")) == std::vector<std::string>{"cat", "dog", "<bird>"});
  CHECK(legend[0]->find_all("circle").size() == 3);
  // Legend outside on the right: to the right of the axes box.
  const double axes_right = std::stod(svg->with_class("axes")[0]->attribute("x")) +
                            std::stod(svg->with_class("axes")[0]->attribute("width"));
  CHECK(std::stod(legend[0]->child("rect")->attribute("x")) > axes_right);

  CHECK_THROWS_AS(chart.add_points(std::vector<double>{1}, std::vector<double>{1}, std::vector<int>{-1}),
                  std::invalid_argument);
  CHECK_THROWS_AS(chart.add_points(std::vector<double>{1, 2}, std::vector<double>{1}, std::vector<int>{0}),
                  std::invalid_argument);
}

TEST_CASE("scatter chart of sparse class numbers draws and lists only the classes there are", "[plot][svg]") {
  ScatterChart chart;
  chart.add_points(std::vector<double>{0, 1, 2, 3}, std::vector<double>{0, 1, 0, 1},
                   std::vector<int>{100, 200, 100, 200});
  const auto svg = parse_xml(chart.to_svg());
  const auto groups = svg->with_class("points");
  REQUIRE(groups.size() == 2);  // not 201 groups, most of them empty
  CHECK(groups[0]->child("title")->all_text() == "100");
  CHECK(groups[1]->child("title")->all_text() == "200");
  CHECK(groups[0]->attribute("fill") != groups[1]->attribute("fill"));  // 100 and 200 told apart
  CHECK(texts_of(svg->with_class("legend")[0]->find_all("text")) == std::vector<std::string>{"100", "200"});
  // Named classes are listed even without points.
  chart.class_names = {"zero"};
  CHECK(texts_of(parse_xml(chart.to_svg())->with_class("legend")[0]->find_all("text")) ==
        std::vector<std::string>{"zero", "100", "200"});
  // Classes 0-9 keep their own colours whatever else is shown: class 2 looks the same without class 1.
  ScatterChart subset;
  subset.add_points(std::vector<double>{0, 1}, std::vector<double>{0, 1}, std::vector<int>{0, 2});
  CHECK(parse_xml(subset.to_svg())->with_class("points")[1]->attribute("fill") ==
        std::string(tab10_color(2)));
}

TEST_CASE("scatter chart of 70,000 points stays compact", "[plot][svg]") {
  ScatterChart chart;
  std::vector<float> xs, ys;
  std::vector<int> labels;
  for (int i = 0; i < 70000; ++i) {
    xs.push_back(float(std::sin(i * 0.37) * (i % 101)));
    ys.push_back(float(std::cos(i * 0.11) * (i % 37)));
    labels.push_back(i % 10);
  }
  chart.add_points(xs, ys, labels);
  const std::string text = chart.to_svg();
  CHECK(text.size() < 4'000'000);
  const auto svg = parse_xml(text);
  const auto groups = svg->with_class("points");
  REQUIRE(groups.size() == 10);
  std::size_t circles = 0;
  for (const auto* group : groups) {
    CHECK(group->find_all("circle").size() == 7000);
    circles += group->find_all("circle").size();
  }
  CHECK(circles == 70000);
  // Class names default to the class numbers.
  CHECK(texts_of(svg->with_class("legend")[0]->find_all("text")) ==
        std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"});
}

TEST_CASE("confusion matrix SVG has one coloured cell per pair with its count", "[plot][svg]") {
  const std::vector<std::vector<int>> matrix = {{50, 2, 0}, {3, 40, 7}, {0, 1, 60}};
  const auto svg = parse_xml(confusion_matrix_svg(matrix, {"cats & dogs", "b", "c"}));
  check_svg_root(*svg);
  const auto cells = svg->with_class("cell");
  REQUIRE(cells.size() == 9);
  CHECK(texts_of(svg->with_class("cell-value")) ==
        std::vector<std::string>{"50", "2", "0", "3", "40", "7", "0", "1", "60"});
  CHECK(cells[8]->attribute("fill") == "#08306b");  // the largest count: darkest blue
  CHECK(cells[2]->attribute("fill") == "#f7fbff");  // zero: lightest
  CHECK(tick_labels(*svg, "y") == std::vector<std::string>{"cats & dogs", "b", "c"});
  CHECK(tick_labels(*svg, "x") == std::vector<std::string>{"cats & dogs", "b", "c"});
  CHECK(texts_of(svg->with_class("x-label")) == std::vector<std::string>{"Predicted label"});
  CHECK(texts_of(svg->with_class("y-label")) == std::vector<std::string>{"True label"});
  CHECK(svg->with_class("colorbar").size() == 1);

  ConfusionMatrixOptions options;
  options.normalize_rows = true;
  options.title = "";
  const auto normalized =
      parse_xml(confusion_matrix_svg(std::vector<std::vector<int64_t>>{{1, 3}, {0, 0}}, {}, options));
  CHECK(texts_of(normalized->with_class("cell-value")) ==
        std::vector<std::string>{"0.25", "0.75", "0.00", "0.00"});
  CHECK(tick_labels(*normalized, "x") == std::vector<std::string>{"0", "1"});
  CHECK(normalized->with_class("title").empty());

  CHECK_THROWS_AS(confusion_matrix_svg(std::vector<std::vector<int>>{{1, 2}, {3}}), std::invalid_argument);
  CHECK_THROWS_AS(confusion_matrix_svg(matrix, {"a", "b"}), std::invalid_argument);
}

TEST_CASE("charts save atomically and render standalone files", "[plot][svg]") {
  TempDir dir;
  LineChart chart;
  chart.add_series("a", std::vector<double>{0, 1}, std::vector<double>{1, 2});
  chart.save(dir.path / "chart.svg");
  std::ifstream in(dir.path / "chart.svg");
  std::stringstream content;
  content << in.rdbuf();
  CHECK(content.str() == chart.to_svg());
  CHECK_THAT(content.str(), Catch::StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\""));
  CHECK_THROWS_WITH(chart.save(dir.path / "missing" / "chart.svg"), Catch::Contains("missing/chart.svg"));
}

TEST_CASE("image grid PNG has torchvision's layout, padding and pixel values", "[plot][png]") {
  TempDir dir;
  // Three 1-channel 3x2 (h x w) images, values k/10 + pixel index/100.
  std::vector<float> data(3 * 3 * 2);
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 6; ++i) data[std::size_t(k * 6 + i)] = 0.1f * float(k) + 0.01f * float(i);
  const ImageBatchView batch{data.data(), 3, 1, 3, 2};
  GridOptions options;
  options.nrow = 2;
  options.padding = 1;
  options.pad_value = 1.0f;
  save_image_grid(dir.path / "grid.png", batch, options);
  const auto png = decode_png(dir.path / "grid.png");
  // 2 columns, 2 rows: width 2*(2+1)+1, height 2*(3+1)+1.
  CHECK(png.width == 7);
  CHECK(png.height == 9);
  CHECK(png.channels == 1);
  const auto byte = [](float v) { return int(v * 255.0f + 0.5f); };
  for (int k = 0; k < 3; ++k) {
    const int x0 = (k % 2) * 3 + 1, y0 = (k / 2) * 4 + 1;
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 2; ++x) CHECK(png.at(x0 + x, y0 + y) == byte(data[std::size_t(k * 6 + y * 2 + x)]));
  }
  CHECK(png.at(0, 0) == 255);  // border
  CHECK(png.at(3, 1) == 255);  // between images
  CHECK(png.at(1, 4) == 255);  // between rows
  CHECK(png.at(4, 5) == 255);  // the empty fourth slot is padding
  CHECK(png.at(1, 1) == 0);    // image 0's first pixel is 0.0
  CHECK(png.at(2, 3) == 13);   // image 0's last pixel: 0.05 * 255 + 0.5 -> 13
}

TEST_CASE("image grid normalisation, RGB, grey-to-RGB and upscaling", "[plot][png]") {
  TempDir dir;
  std::vector<float> data = {-2.0f, 0.0f, 2.0f, 1.0f};  // one 1x4 image
  const ImageBatchView batch{data.data(), 1, 1, 1, 4};
  GridOptions options;
  options.padding = 0;

  options.normalize = Normalize::min_max;
  auto image = make_image_grid(batch, options);
  CHECK(image.width == 4);
  CHECK(image.height == 1);
  CHECK(std::vector<int>(image.pixels.begin(), image.pixels.end()) == std::vector<int>{0, 128, 255, 191});

  options.normalize = Normalize::range;
  options.value_range = {-1.0f, 1.0f};
  image = make_image_grid(batch, options);
  CHECK(std::vector<int>(image.pixels.begin(), image.pixels.end()) == std::vector<int>{0, 128, 255, 255});

  options.normalize = Normalize::none;  // values clamp to [0, 1]
  image = make_image_grid(batch, options);
  CHECK(std::vector<int>(image.pixels.begin(), image.pixels.end()) == std::vector<int>{0, 0, 255, 255});

  options.gray_to_rgb = true;
  options.upscale = 3;
  save_png(dir.path / "rgb.png", make_image_grid(batch, options));
  const auto rgb = decode_png(dir.path / "rgb.png");
  CHECK(rgb.width == 12);
  CHECK(rgb.height == 3);
  CHECK(rgb.channels == 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 12; ++x)
      for (int c = 0; c < 3; ++c) CHECK(rgb.at(x, y, c) == (x < 6 ? 0 : 255));

  // Three channels stay separate: two 1x1 RGB images (0.2, 0.4, 1.0) and (1, 1, 1).
  std::vector<float> colour = {0.2f, 0.4f, 1.0f, 1.0f, 1.0f, 1.0f};
  const auto pixels = make_image_grid(ImageBatchView{colour.data(), 2, 3, 1, 1}, GridOptions{.padding = 1});
  CHECK(pixels.channels == 3);
  CHECK(pixels.width == 5);
  CHECK(int(pixels.at(1, 1, 0)) == 51);
  CHECK(int(pixels.at(1, 1, 1)) == 102);
  CHECK(int(pixels.at(1, 1, 2)) == 255);
  CHECK(int(pixels.at(0, 0, 2)) == 0);  // padding defaults to black
  // One image is returned alone, without padding, as torchvision's make_grid does.
  const auto pixel = make_image_grid(ImageBatchView{colour.data(), 1, 3, 1, 1}, GridOptions{.padding = 1});
  CHECK(pixel.width == 1);
  CHECK(pixel.height == 1);
  CHECK(int(pixel.at(0, 0, 0)) == 51);

  CHECK_THROWS_AS(make_image_grid(ImageBatchView{data.data(), 1, 2, 1, 2}), std::invalid_argument);
  CHECK_THROWS_AS(make_image_grid(batch, GridOptions{.nrow = 0}), std::invalid_argument);
}

TEST_CASE("comparison grid puts each row of reconstructions under its originals", "[plot][png]") {
  TempDir dir;
  // Five 2x2 images: originals are 1.0, reconstructions 0.5.
  std::vector<float> originals(5 * 4, 1.0f), reconstructions(5 * 4, 0.5f);
  const ImageBatchView a{originals.data(), 5, 1, 2, 2}, b{reconstructions.data(), 5, 1, 2, 2};
  ComparisonOptions options;
  options.grid.nrow = 3;
  options.grid.padding = 1;
  options.labels = false;
  save_comparison_grid(a, b, dir.path / "compare.png", options);
  const auto png = decode_png(dir.path / "compare.png");
  // 3 columns; rows: originals 0-2, reconstructions 0-2, originals 3-4, reconstructions 3-4.
  CHECK(png.width == 3 * 3 + 1);
  CHECK(png.height == 4 * 3 + 1);
  const int row_value[4] = {255, 128, 255, 128};
  for (int row = 0; row < 4; ++row)
    for (int col = 0; col < 3; ++col) {
      const bool filled = row < 2 || col < 2;
      CHECK(png.at(col * 3 + 1, row * 3 + 1) == (filled ? row_value[row] : 0));
      CHECK(png.at(col * 3 + 2, row * 3 + 2) == (filled ? row_value[row] : 0));
    }
  CHECK(png.at(0, 0) == 0);

  // With labels a strip is added on the left and holds some text ink.
  options.labels = true;
  const Image8 labelled = make_comparison_grid(a, b, options);
  CHECK(labelled.height == png.height);
  const int strip = labelled.width - png.width;
  REQUIRE(strip > 0);
  int ink = 0;
  for (int y = 0; y < labelled.height; ++y)
    for (int x = 0; x < strip; ++x) ink += labelled.at(x, y) == 255 ? 1 : 0;
  CHECK(ink > 20);
  CHECK(int(labelled.at(strip + 1, 1)) == 255);  // the grid itself moved right by the strip

  CHECK_THROWS_AS(make_comparison_grid(a, ImageBatchView{reconstructions.data(), 4, 1, 2, 2}),
                  std::invalid_argument);
}

TEST_CASE("labels outside printable ASCII are drawn as '?', not read from outside the font's tables",
          "[plot][png][errors]") {
  std::vector<float> pixels(2 * 4, 1.0f);
  const ImageBatchView a{pixels.data(), 2, 1, 2, 2};
  ComparisonOptions question_marks, japanese;
  question_marks.original_label = "??????";  // the six bytes of the UTF-8 below
  japanese.original_label = "入力";
  question_marks.reconstruction_label = japanese.reconstruction_label = "out\x7f";
  const Image8 expected = make_comparison_grid(a, a, question_marks);
  const Image8 drawn = make_comparison_grid(a, a, japanese);
  CHECK(drawn.width == expected.width);
  CHECK(drawn.pixels == expected.pixels);
}

TEST_CASE("charts stay valid SVG with huge values, limits of infinite span and colours with XML characters",
          "[plot][svg][errors]") {
  LineChart chart;
  chart.add_series("diverged", std::vector<double>{1, 2, 3}, std::vector<double>{0.5, 1e100, 1e300},
                   {.color = "#123\"&<x>"});
  chart.y_limits = std::pair{0.0, 1.0};  // 1e300 maps to about 1e302 pixels
  const std::string svg_text = chart.to_svg();
  const auto svg = parse_xml(svg_text);
  check_svg_root(*svg);
  CHECK(svg_text.find("&quot;&amp;&lt;x&gt;") != std::string::npos);  // the colour, escaped everywhere
  CHECK(svg_text.find("\"&<x>") == std::string::npos);
  for (const auto* line : svg->with_class("series"))
    for (const auto* polyline : line->find_all("polyline"))
      for (const auto& [x, y] : polyline_points(*polyline)) CHECK(std::abs(y) <= 1e9);

  LineChart wide;  // data spanning the whole double range
  wide.add_series("", std::vector<double>{1, 2}, std::vector<double>{-1.7e308, 1.7e308});
  check_svg_root(*parse_xml(wide.to_svg()));
  wide.y_limits = std::pair{-std::numeric_limits<double>::max(), std::numeric_limits<double>::max()};
  CHECK_THROWS_WITH(wide.to_svg(), Catch::Contains("finite span"));
  ScatterChart scatter;
  scatter.add_points(std::vector<double>{0, 1}, std::vector<double>{-1e308, 1e308}, std::vector<int>{0, 1});
  check_svg_root(*parse_xml(scatter.to_svg()));
  CHECK_THROWS_WITH(
      scatter.add_points(std::vector<double>{0}, std::vector<double>{0}, std::vector<double>{0.5}),
      Catch::Contains("label 0.5"));

  // U+FFFE and U+FFFF are well-formed UTF-8 but not XML characters: each becomes one U+FFFD.
  LineChart odd;
  odd.title =
      "a\xef\xbf\xbe"
      "b\xef\xbf\xbf"
      "c\xef\xbf\xbd";
  odd.add_series("", std::vector<double>{1, 2}, std::vector<double>{1, 2});
  const std::string odd_svg = odd.to_svg();
  check_svg_root(*parse_xml(odd_svg));
  CHECK(odd_svg.find("a\xef\xbf\xbd"
                     "b\xef\xbf\xbd"
                     "c\xef\xbf\xbd<") != std::string::npos);
}
