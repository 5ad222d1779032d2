// The tsne example end to end on a small CSV, with and without labels: its outputs, the --theta flag and
// bad flags.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "example_runner.hpp"
#include "sumi/util/csv.hpp"
#include "sumi/util/json_file.hpp"

namespace fs = std::filesystem;
using namespace sumi;

TEST_CASE("tsne example embeds a labelled CSV with the given Barnes-Hut theta", "[example][e2e][tsne]") {
  const fs::path dir = fs::temp_directory_path() / "sumi_e2e_tsne";
  fs::remove_all(dir);
  fs::create_directories(dir);
  // three well separated clusters of 30 points in 4-d
  std::mt19937 rng(5);
  std::normal_distribution<double> noise(0.0, 0.3);
  {
    std::ofstream csv(dir / "points.csv");
    csv << "a,b,c,d,label\n";
    for (int cluster = 0; cluster < 3; ++cluster)
      for (int i = 0; i < 30; ++i) {
        for (int d = 0; d < 4; ++d) csv << (d == cluster ? 10.0 : 0.0) + noise(rng) << ",";
        csv << "c" << cluster << "\n";
      }
  }
  const std::string common = "--input " + (dir / "points.csv").string() + " --gradient barnes_hut --quiet";
  REQUIRE(test::run_example("tsne",
                            common + " --theta 0.3 --iterations 400 --out " + (dir / "e.csv").string(),
                            dir / "run.log") == 0);
  const nlohmann::json summary = util::read_json_file(dir / "e.json");
  REQUIRE(summary.at("theta").get<double>() == 0.3);
  REQUIRE(summary.at("gradient").get<std::string>().find("barnes") != std::string::npos);
  REQUIRE(summary.at("points").get<int>() == 90);
  REQUIRE(summary.at("knn_accuracy").get<double>() > 0.95);  // the clusters stay apart
  REQUIRE(fs::exists(dir / "e.svg"));
  // Without the label column the scatter is drawn in one colour, replacing the labelled one.
  {
    std::ifstream labelled(dir / "points.csv");
    std::ofstream unlabelled(dir / "unlabelled.csv");
    for (std::string line; std::getline(labelled, line);)
      unlabelled << line.substr(0, line.rfind(',')) << "\n";
  }
  REQUIRE(test::run_example("tsne",
                            "--input " + (dir / "unlabelled.csv").string() +
                                " --quiet --iterations 300 --out " + (dir / "e.csv").string(),
                            dir / "run.log") == 0);
  const std::string scatter = test::read_text(dir / "e.svg");
  CHECK(scatter.find("unlabelled.csv") != std::string::npos);
  CHECK(scatter.find("points") != std::string::npos);
  CHECK(util::read_csv(dir / "e.csv").header == std::vector<std::string>{"x", "y"});

  // Fewer than 21 points: the metrics use the largest k below half the points (7 of 15), and every output
  // is written.
  {
    std::ifstream labelled(dir / "points.csv");
    std::ofstream few(dir / "few.csv");
    std::string line;
    for (int row = 0; row <= 15 && std::getline(labelled, line); ++row) few << line << "\n";
  }
  REQUIRE(test::run_example("tsne",
                            "--input " + (dir / "few.csv").string() +
                                " --perplexity 4 --quiet --iterations 250 --out " +
                                (dir / "few_e.csv").string(),
                            dir / "run.log") == 0);
  const nlohmann::json few_summary = util::read_json_file(dir / "few_e.json");
  CHECK(few_summary.at("metric_k") == 7);
  CHECK(few_summary.at("trustworthiness").get<double>() > 0.0);
  CHECK(fs::exists(dir / "few_e.svg"));
  CHECK(util::read_csv(dir / "few_e.csv").size() == 15);

  REQUIRE(test::run_example("tsne", common + " --theta -1 --out " + (dir / "bad.csv").string(),
                            dir / "bad.log") == 2);
  REQUIRE(test::read_text(dir / "bad.log").find("--theta") != std::string::npos);
  // A perplexity below 1 or not below the point count, an --out that is the input, would be overwritten by
  // the summary or is (or ends like) a folder, and a folder as input are refused naming the flag or the path.
  const std::string input = (dir / "points.csv").string();
  for (const std::string& args : {"--perplexity 0.5 --out " + (dir / "bad.csv").string(),
                                  "--perplexity 89 --out " + (dir / "bad.csv").string(), "--out " + input,
                                  "--out " + (dir / "bad.json").string(), "--out " + dir.string(),
                                  "--out " + (dir / "new_folder").string() + "/"}) {
    INFO(args);
    REQUIRE(test::run_example("tsne", common + " " + args, dir / "bad.log") == 2);
    const std::string flag = args.substr(0, args.find(' '));
    REQUIRE(test::read_text(dir / "bad.log").find(flag) != std::string::npos);
  }
  REQUIRE_FALSE(fs::exists(dir / "new_folder"));  // refused before anything is made or computed
  REQUIRE(test::read_text(dir / "points.csv").find("a,b,c,d,label\n") == 0);  // the input is intact
  REQUIRE(test::run_example("tsne", "--input " + dir.string() + " --out " + (dir / "bad.csv").string(),
                            dir / "bad.log") == 1);
  REQUIRE(test::read_text(dir / "bad.log").find("is a folder") != std::string::npos);
  // An --out in a folder that takes no new files fails before the input is read and embedded, naming it.
  REQUIRE(test::run_example("tsne", common + " --out /proc/sumi_tsne.csv", dir / "bad.log") == 1);
  REQUIRE(test::read_text(dir / "bad.log").find("cannot write '/proc/sumi_tsne.csv'") != std::string::npos);
  REQUIRE(test::read_text(dir / "bad.log").find(" points, ") == std::string::npos);
  // Two columns of one name (one of them would be dropped unseen) are refused naming it.
  {
    std::ofstream duplicated(dir / "duplicated.csv");
    duplicated << "label,a,label\n0,1.5,8\n1,2.5,9\n";
  }
  REQUIRE(test::run_example(
              "tsne", "--input " + (dir / "duplicated.csv").string() + " --out " + (dir / "bad.csv").string(),
              dir / "bad.log") == 1);
  REQUIRE(test::read_text(dir / "bad.log").find("two columns named 'label'") != std::string::npos);
  // A coordinate too large to square and sum is refused as the file is read, naming it.
  {
    std::ofstream huge(dir / "huge.csv");
    huge << "a,b\n1,2\n3,1e200\n5,6\n";
  }
  REQUIRE(test::run_example("tsne",
                            "--input " + (dir / "huge.csv").string() + " --out " + (dir / "bad.csv").string(),
                            dir / "bad.log") == 1);
  REQUIRE_THAT(
      test::read_text(dir / "bad.log"),
      Catch::Contains("'" + (dir / "huge.csv").string() + "': the points: point 1, coordinate 1 is 1e+200"));

  // --seed moves a random initialisation and leaves the (deterministic) PCA one alone.
  const auto embed = [&](const std::string& args, const std::string& name) {
    REQUIRE(test::run_example("tsne",
                              common + " --iterations 300 " + args + " --out " + (dir / name).string(),
                              dir / "seed.log") == 0);
    return test::read_text(dir / name);
  };
  REQUIRE(embed("--seed 1", "pca1.csv") == embed("--seed 2", "pca2.csv"));
  const std::string random1 = embed("--init random --seed 1", "random1.csv");
  REQUIRE(random1 != embed("--init random --seed 2", "random2.csv"));
  REQUIRE(random1 == embed("--init random --seed 1", "random1b.csv"));
  REQUIRE(util::read_json_file(dir / "random1.json").at("init") == "random");
  for (const char* flag : {"--init", "--gradient"}) {
    REQUIRE(test::run_example("tsne", common + " " + flag + " spiral --out " + (dir / "bad.csv").string(),
                              dir / "bad.log") == 2);
    REQUIRE(test::read_text(dir / "bad.log").find(flag) != std::string::npos);
  }
  fs::remove_all(dir);
}
