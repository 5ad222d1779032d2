#pragma once
// t-SNE (van der Maaten and Hinton, 2008) into 2 dimensions, with scikit-learn's defaults and optimiser so
// results are comparable with sklearn.manifold.TSNE:
//   - input affinities from the 3 * perplexity + 1 nearest neighbours (exact search, as scikit-learn), a
//     per-point binary search for the Gaussian bandwidth that reaches the perplexity, symmetrised and
//     normalised to sum 1;
//   - early exaggeration 12 for 250 iterations with momentum 0.5, then momentum 0.8 up to 1000 iterations,
//     per-coordinate gains (+0.2 / *0.8, at least 0.01), learning rate "auto" = max(N / 12 / 4, 50);
//   - initialisation by PCA scaled to standard deviation 1e-4 along the first axis.
// The repulsive forces are computed exactly (vectorised, O(N^2)) up to exact_max_points and by Barnes-Hut
// beyond (a quadtree walked once per group of points); FFT-accelerated interpolation (FIt-SNE) is available
// too (see tsne_gradient.hpp). The result is reproducible for a given seed and thread count.
//
//   sumi::analysis::TsneOptions options;
//   options.seed = 1;
//   const auto result = sumi::analysis::tsne(points, options);   // result.embedding: [N, 2]
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/analysis/nearest_neighbors.hpp"
#include "sumi/analysis/pca.hpp"
#include "sumi/analysis/point_matrix.hpp"
#include "sumi/analysis/tsne_gradient.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/progress_bar.hpp"
#include "sumi/util/timer.hpp"

namespace sumi::analysis {

enum class TsneGradient { automatic, exact, barnes_hut, fft };
enum class TsneInit { pca, random };

inline const char* tsne_gradient_name(TsneGradient g) {
  switch (g) {
    case TsneGradient::exact:
      return "exact";
    case TsneGradient::barnes_hut:
      return "barnes_hut";
    case TsneGradient::fft:
      return "fft";
    default:
      return "automatic";
  }
}

// The method named by tsne_gradient_name; throws std::invalid_argument for other names.
inline TsneGradient parse_tsne_gradient(const std::string& name) {
  for (const TsneGradient g :
       {TsneGradient::automatic, TsneGradient::exact, TsneGradient::barnes_hut, TsneGradient::fft})
    if (name == tsne_gradient_name(g)) return g;
  throw std::invalid_argument("t-SNE: unknown gradient method '" + name +
                              "' (automatic, exact, barnes_hut or fft)");
}

struct TsneOptions {
  double perplexity = 30;
  int iterations = 1000;  // in total, the exaggeration phase included
  int exaggeration_iterations = 250;
  double early_exaggeration = 12;
  double learning_rate = 0;  // <= 0: "auto", max(N / early_exaggeration / 4, 50)
  double momentum = 0.5, final_momentum = 0.8;
  double min_gain = 0.01;
  TsneInit init = TsneInit::pca;
  TsneGradient gradient = TsneGradient::automatic;
  int64_t exact_max_points = 1000;      // automatic: exact up to this many points, Barnes-Hut above
  int64_t exact_kl_max_points = 20000;  // the final KL with the exact Z up to this many points
  double theta = 0.5;                   // Barnes-Hut opening angle
  double fft_box_width = 1.0;           // FFT interpolation: box side in embedding units (3 x 3 nodes a box)
  uint64_t seed = 0;                    // for random initialisation
  bool progress = false;                // a progress bar over iterations on stderr
  int kl_every = 50;  // record the KL divergence every this many iterations (0: only at the end)
};

struct TsneResult {
  PointMatrix embedding;          // [N, 2]
  double kl_divergence = 0;       // KL(P || Q) of the final embedding
  std::string kl_method;          // "exact", or "barnes_hut" / "fft" when Z is that method's estimate
  std::string gradient;           // the repulsion method used: "exact", "barnes_hut" or "fft"
  TsneInit init = TsneInit::pca;  // the initialisation used (random for 1-d input, which has no 2-d PCA)
  double learning_rate = 0;
  std::vector<std::pair<int, double>> kl_history;  // (iteration, KL) with the unexaggerated P
  double affinity_seconds = 0, optimisation_seconds = 0;
};

// Row-normalised Gaussian affinities of every point over its nearest neighbours, p_{j|i}.
struct ConditionalProbabilities {
  Neighbors neighbors;
  std::vector<double> p;     // [N * k], row i over neighbors.indices_of(i)
  std::vector<double> beta;  // [N], precision 1 / (2 sigma_i^2) on squared distances
};

// Symmetric sparse P (CSR, sums to 1): p_ij = (p_{j|i} + p_{i|j}) / sum.
struct JointProbabilities {
  int64_t points = 0;
  std::vector<int64_t> row_start;  // [N + 1]
  std::vector<int64_t> column;
  std::vector<double> value;
  std::size_t nonzeros() const { return value.size(); }
};

// The binary search of scikit-learn's _binary_search_perplexity: beta such that the entropy of the row
// (natural log) is within 1e-5 of log(perplexity), at most 100 steps.
inline ConditionalProbabilities conditional_probabilities(Neighbors neighbors, double perplexity) {
  // The entropy of a distribution is >= 0 = log(1): a perplexity below 1 cannot be reached.
  if (!(perplexity >= 1)) throw std::invalid_argument("t-SNE: perplexity must be >= 1");
  const int64_t n = neighbors.points, k = neighbors.k;
  // Nor can k neighbours give more than log(k), their uniform distribution.
  if (perplexity > double(k))
    throw std::invalid_argument("t-SNE: perplexity " + std::to_string(perplexity) +
                                " cannot be reached with " + std::to_string(k) + " neighbours per point");
  ConditionalProbabilities result;
  result.p.resize(std::size_t(n * k));
  result.beta.resize(std::size_t(n));
  const double desired_entropy = std::log(perplexity), tolerance = 1e-5;
#pragma omp parallel for schedule(static) num_threads(get_num_threads())
  for (int64_t i = 0; i < n; ++i) {
    const double* d = neighbors.sq_distances_of(i);
    double* p = result.p.data() + i * k;
    // Distances are taken from the nearest one's, which changes no row (a common factor) but keeps the
    // nearest weight at exp(0) = 1: exp(-d * beta) underflowed to a row of zeros once beta * d passed ~745.
    const double nearest = *std::min_element(d, d + k);
    double beta = 1, beta_min = -std::numeric_limits<double>::infinity(),
           beta_max = std::numeric_limits<double>::infinity();
    // Doubling or halving beta until the target is bracketed does not count towards the 100 bisection
    // steps, so distances of any scale are reached (2^±1000 spans a double's range); scikit-learn counts
    // both and gives up with uniform or all-zero rows for points far apart or very close.
    for (int bisections = 0, expansions = 0; bisections < 100 && expansions < 1000;) {
      double sum = 0;
      for (int64_t m = 0; m < k; ++m) sum += p[m] = std::exp(-(d[m] - nearest) * beta);
      double weighted = 0;  // the entropy is log(sum) + beta * E[d - nearest]
      for (int64_t m = 0; m < k; ++m) {
        p[m] /= sum;
        weighted += (d[m] - nearest) * p[m];
      }
      const double diff = std::log(sum) + beta * weighted - desired_entropy;
      if (std::abs(diff) <= tolerance) break;
      double& bound = diff > 0 ? beta_min : beta_max;
      const double other = diff > 0 ? beta_max : beta_min;
      bound = beta;
      if (std::isinf(other)) {
        beta = diff > 0 ? beta * 2 : beta / 2;
        ++expansions;
      } else {
        beta = (beta + other) / 2;
        ++bisections;
      }
    }
    result.beta[std::size_t(i)] = beta;
  }
  result.neighbors = std::move(neighbors);
  return result;
}

inline JointProbabilities joint_probabilities(const ConditionalProbabilities& conditional) {
  const Neighbors& nn = conditional.neighbors;
  const int64_t n = nn.points, k = nn.k;
  // Row i holds its own neighbours and every point that has i as a neighbour; merge duplicates.
  std::vector<int64_t> count(std::size_t(n), k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < k; ++m) ++count[std::size_t(nn.indices_of(i)[m])];
  std::vector<int64_t> start(std::size_t(n + 1), 0);
  for (int64_t i = 0; i < n; ++i) start[std::size_t(i + 1)] = start[std::size_t(i)] + count[std::size_t(i)];
  std::vector<std::pair<int64_t, double>> entries(std::size_t(start.back()));
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t m = 0; m < k; ++m) {
      const int64_t j = nn.indices_of(i)[m];
      const double p = conditional.p[std::size_t(i * k + m)];
      entries[std::size_t(fill[std::size_t(i)]++)] = {j, p};
      entries[std::size_t(fill[std::size_t(j)]++)] = {i, p};
    }
  JointProbabilities joint;
  joint.points = n;
  joint.row_start.assign(1, 0);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto first = entries.begin() + start[std::size_t(i)], last = entries.begin() + start[std::size_t(i + 1)];
    std::sort(first, last, [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto it = first; it != last; ++it) {
      if (!joint.column.empty() && int64_t(joint.column.size()) > joint.row_start.back() &&
          joint.column.back() == it->first) {
        joint.value.back() += it->second;
      } else {
        joint.column.push_back(it->first);
        joint.value.push_back(it->second);
      }
      total += it->second;
    }
    joint.row_start.push_back(int64_t(joint.column.size()));
  }
  for (double& v : joint.value) v /= total;  // 2N: every conditional row sums to 1
  return joint;
}

// Computes the KL gradient and divergence for a 2-d embedding given as coordinate arrays.
class TsneObjective {
 public:
  TsneObjective(TsneGradient method, double theta, double fft_box_width = 1.0)
      : method_(method), barnes_hut_(theta), fft_(fft_box_width) {
    if (method == TsneGradient::automatic)
      throw std::invalid_argument("TsneObjective: choose exact, barnes_hut or fft");
  }

  TsneGradient method() const { return method_; }

  // Writes the gradient of KL(exaggeration * P || Q) into grad_x, grad_y and returns Z = sum_{i != j} w_ij.
  double gradient(const JointProbabilities& p, double exaggeration, std::span<const float> x,
                  std::span<const float> y, std::span<double> grad_x, std::span<double> grad_y) {
    const int64_t n = int64_t(x.size());
    if (p.points != n) throw std::invalid_argument("TsneObjective: P and the embedding differ in size");
    const double z = repulsion(x, y, grad_x, grad_y);
    const double inv_z = 1.0 / z;
    compact(p);
    const bool avx2 = SUMI_X86_KERNELS && kernels::active_isa() != kernels::Isa::scalar;
    if (avx2) {
      xy_.resize(std::size_t(2 * n));
      for (std::size_t i = 0; i < std::size_t(n); ++i) xy_[2 * i] = x[i], xy_[2 * i + 1] = y[i];
    }
#pragma omp parallel for schedule(static) num_threads(n < 2048 ? 1 : get_num_threads())
    for (int64_t i = 0; i < n; ++i) {
      double ax = 0, ay = 0;
      const int64_t begin = row_start_[std::size_t(i)], end = row_start_[std::size_t(i + 1)];
#if SUMI_X86_KERNELS
      if (avx2)
        detail::attraction_row_avx2(xy_.data(), column_.data(), value_.data(), begin, end, x[std::size_t(i)],
                                    y[std::size_t(i)], ax, ay);
      else
#endif
        detail::attraction_row_scalar(x.data(), y.data(), column_.data(), value_.data(), begin, end,
                                      x[std::size_t(i)], y[std::size_t(i)], ax, ay);
      grad_x[std::size_t(i)] = 4.0 * (exaggeration * ax - grad_x[std::size_t(i)] * inv_z);
      grad_y[std::size_t(i)] = 4.0 * (exaggeration * ay - grad_y[std::size_t(i)] * inv_z);
    }
    (void)avx2;
    return z;
  }

  // Z alone (with the method's accuracy), for the final divergence.
  double normalisation(std::span<const float> x, std::span<const float> y) {
    scratch_x_.resize(x.size());
    scratch_y_.resize(x.size());
    return repulsion(x, y, scratch_x_, scratch_y_);
  }

 private:
  double repulsion(std::span<const float> x, std::span<const float> y, std::span<double> fx,
                   std::span<double> fy) {
    switch (method_) {
      case TsneGradient::exact:
        return exact_(x, y, fx, fy);
      case TsneGradient::fft:
        return fft_(x, y, fx, fy);
      default:
        return barnes_hut_(x, y, fx, fy);
    }
  }

  // P's columns as int32 and values as float for the attraction kernels (half the memory traffic), each row
  // padded with zero entries to a multiple of 8 so that the vector loop has no scalar tail (a tail of
  // divisions cost as much as the rest of a ~100-entry row); rebuilt when a different P comes in. A P must
  // not be modified in place between calls of one objective (tsne() holds it const).
  void compact(const JointProbabilities& p) {
    if (compacted_ == p.value.data() && compacted_nonzeros_ == p.nonzeros()) return;
    if (p.points > std::numeric_limits<int32_t>::max())
      throw std::invalid_argument("TsneObjective: too many points for 32-bit indices");
    column_.clear();
    value_.clear();
    row_start_.assign(1, 0);
    for (int64_t i = 0; i < p.points; ++i) {
      for (int64_t e = p.row_start[std::size_t(i)]; e < p.row_start[std::size_t(i + 1)]; ++e) {
        column_.push_back(int32_t(p.column[std::size_t(e)]));
        value_.push_back(float(p.value[std::size_t(e)]));
      }
      while (column_.size() % 8 != 0) column_.push_back(int32_t(i)), value_.push_back(0.0f);
      row_start_.push_back(int64_t(column_.size()));
    }
    compacted_ = p.value.data();
    compacted_nonzeros_ = p.nonzeros();
  }

  TsneGradient method_;
  const double* compacted_ = nullptr;
  std::size_t compacted_nonzeros_ = 0;
  std::vector<int64_t> row_start_;
  std::vector<int32_t> column_;
  std::vector<float> value_;
  std::vector<float> xy_;  // the positions interleaved, for the attraction's 64-bit loads
  ExactRepulsion exact_;
  BarnesHutRepulsion barnes_hut_;
  FftRepulsion fft_;
  std::vector<double> scratch_x_, scratch_y_;
};

// sum p log p over P's positive entries: the part of the KL divergence that does not depend on the embedding.
inline double sum_p_log_p(const JointProbabilities& p) {
  double sum = 0;
  for (const double v : p.value)
    if (v > 0) sum += v * std::log(v);
  return sum;
}

// KL(P || Q) = sum p log p - sum p log w + log Z for normalised P (entries with p = 0 contribute nothing),
// given p_log_p = sum_p_log_p(p), which an optimisation loop computes once.
inline double tsne_kl_divergence(const JointProbabilities& p, std::span<const float> x,
                                 std::span<const float> y, double z, double p_log_p) {
  double sum = 0;
#pragma omp parallel for schedule(static) reduction(+ : sum) num_threads(p.points < 2048 ? 1 : get_num_threads())
  for (int64_t i = 0; i < p.points; ++i)
    for (int64_t e = p.row_start[std::size_t(i)]; e < p.row_start[std::size_t(i + 1)]; ++e) {
      const double v = p.value[std::size_t(e)];
      if (!(v > 0)) continue;
      const std::size_t j = std::size_t(p.column[std::size_t(e)]);
      const double dx = double(x[std::size_t(i)]) - x[j], dy = double(y[std::size_t(i)]) - y[j];
      sum += v * std::log1p(dx * dx + dy * dy);
    }
  return p_log_p + sum + std::log(z);
}

inline double tsne_kl_divergence(const JointProbabilities& p, std::span<const float> x,
                                 std::span<const float> y, double z) {
  return tsne_kl_divergence(p, x, y, z, sum_p_log_p(p));
}

// The repulsion method `options` selects for `points` points.
inline TsneGradient resolve_tsne_gradient(const TsneOptions& options, int64_t points) {
  if (options.gradient != TsneGradient::automatic) return options.gradient;
  return points <= options.exact_max_points ? TsneGradient::exact : TsneGradient::barnes_hut;
}

// Embeds the rows of `x` in 2 dimensions.
inline TsneResult tsne(const PointMatrix& x, const TsneOptions& options = {}) {
  const int64_t n = x.rows();
  if (n < 4) throw std::invalid_argument("t-SNE: need at least 4 points, got " + std::to_string(n));
  if (x.cols() < 1) throw std::invalid_argument("t-SNE: points have no coordinates");
  if (!(options.perplexity >= 1) || options.perplexity >= double(n - 1))
    throw std::invalid_argument("t-SNE: perplexity " + std::to_string(options.perplexity) +
                                " must be >= 1 and below the number of points minus one (" +
                                std::to_string(n - 1) + ")");
  if (options.iterations < 1 || options.exaggeration_iterations < 0)
    throw std::invalid_argument("t-SNE: need iterations >= 1 and exaggeration_iterations >= 0");
  const auto require = [](bool ok, const char* option, double value, const char* requirement) {
    if (!ok)
      throw std::invalid_argument(std::string("t-SNE: ") + option + " " + std::to_string(value) + " " +
                                  requirement);
  };
  require(options.early_exaggeration > 0 && std::isfinite(options.early_exaggeration), "early_exaggeration",
          options.early_exaggeration, "must be finite and > 0");
  require(std::isfinite(options.learning_rate), "learning_rate", options.learning_rate,
          "must be finite (<= 0 for automatic)");
  require(options.momentum >= 0 && options.momentum < 1, "momentum", options.momentum, "must be in [0, 1)");
  require(options.final_momentum >= 0 && options.final_momentum < 1, "final_momentum", options.final_momentum,
          "must be in [0, 1)");
  require(options.min_gain >= 0 && std::isfinite(options.min_gain), "min_gain", options.min_gain,
          "must be finite and >= 0");
  require(options.theta >= 0 && std::isfinite(options.theta), "theta", options.theta,
          "must be finite and >= 0");
  require(options.fft_box_width > 0 && std::isfinite(options.fft_box_width), "fft_box_width",
          options.fft_box_width, "must be finite and > 0");
  require(options.kl_every >= 0, "kl_every", options.kl_every, "must be >= 0");
  detail::check_coordinates(x, "t-SNE input");

  TsneResult result;
  util::Timer timer;
  const int64_t k = std::min<int64_t>(n - 1, int64_t(3.0 * options.perplexity + 1));
  const JointProbabilities p =
      joint_probabilities(conditional_probabilities(exact_knn(x, k), options.perplexity));
  result.affinity_seconds = timer.elapsed_seconds();

  // Initial positions.
  std::vector<double> pos(static_cast<std::size_t>(2 * n));
  result.init = options.init == TsneInit::pca && x.cols() >= 2 ? TsneInit::pca : TsneInit::random;
  if (result.init == TsneInit::pca) {
    const PointMatrix scores = fit_pca(x, 2).transform(x);
    const double sd = std::sqrt((scores.col(0).array() - scores.col(0).mean()).square().mean());
    const double scale = sd > 0 ? 1e-4 / sd : 1.0;
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 2; ++c) pos[std::size_t(2 * i + c)] = scores(i, c) * scale;
  } else {
    std::mt19937_64 engine(options.seed);
    std::normal_distribution<double> normal(0.0, 1e-4);
    for (double& v : pos) v = normal(engine);
  }

  const TsneGradient method = resolve_tsne_gradient(options, n);
  result.gradient = tsne_gradient_name(method);
  result.learning_rate = options.learning_rate > 0
                             ? options.learning_rate
                             : std::max(double(n) / options.early_exaggeration / 4.0, 50.0);
  TsneObjective objective(method, options.theta, options.fft_box_width);
  const double p_log_p = sum_p_log_p(p);
  std::vector<float> xs(static_cast<std::size_t>(n)), ys(static_cast<std::size_t>(n));
  std::vector<double> gx(static_cast<std::size_t>(n)), gy(static_cast<std::size_t>(n)),
      update(static_cast<std::size_t>(2 * n)), gains(static_cast<std::size_t>(2 * n));
  const auto sync_positions = [&] {
    for (int64_t i = 0; i < n; ++i) {
      xs[std::size_t(i)] = float(pos[std::size_t(2 * i)]);
      ys[std::size_t(i)] = float(pos[std::size_t(2 * i + 1)]);
    }
  };

  util::ProgressBar bar(options.iterations, "t-SNE (" + result.gradient + ")",
                        {.quiet = !options.progress, .unit = "it"});
  timer.reset();
  const int stage_one = std::min(options.exaggeration_iterations, options.iterations);
  for (int it = 0; it < options.iterations; ++it) {
    // Two stages as in scikit-learn: each starts with zero updates and unit gains.
    if (it == 0 || it == stage_one) {
      std::fill(update.begin(), update.end(), 0.0);
      std::fill(gains.begin(), gains.end(), 1.0);
    }
    const bool exaggerated = it < stage_one;
    const double momentum = exaggerated ? options.momentum : options.final_momentum;
    const double exaggeration = exaggerated ? options.early_exaggeration : 1.0;
    sync_positions();
    const double z = objective.gradient(p, exaggeration, xs, ys, gx, gy);
    if (options.kl_every > 0 && (it + 1) % options.kl_every == 0) {
      const double kl = tsne_kl_divergence(p, xs, ys, z, p_log_p);
      result.kl_history.emplace_back(it + 1, kl);
      bar.set_postfix("KL", kl);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int c = 0; c < 2; ++c) {
        const std::size_t e = std::size_t(2 * i + c);
        const double g = c == 0 ? gx[std::size_t(i)] : gy[std::size_t(i)];
        gains[e] = update[e] * g < 0.0 ? gains[e] + 0.2 : gains[e] * 0.8;
        gains[e] = std::max(gains[e], options.min_gain);
        update[e] = momentum * update[e] - result.learning_rate * gains[e] * g;
        pos[e] += update[e];
      }
    bar.update();
  }
  sync_positions();
  // The final divergence with the exact Z where one O(N^2) pass is cheap (about 10 ms at 10,000 points), so
  // that maps made with different repulsion methods compare exactly.
  const bool exact_kl = n <= options.exact_kl_max_points;
  const double z = exact_kl ? ExactRepulsion()(xs, ys, gx, gy) : objective.normalisation(xs, ys);
  result.kl_divergence = tsne_kl_divergence(p, xs, ys, z, p_log_p);
  result.kl_method = exact_kl ? tsne_gradient_name(TsneGradient::exact) : result.gradient;
  bar.set_postfix("KL", result.kl_divergence);
  bar.close();
  result.optimisation_seconds = timer.elapsed_seconds();
  result.embedding.resize(n, 2);
  for (int64_t i = 0; i < n; ++i) {
    result.embedding(i, 0) = pos[std::size_t(2 * i)];
    result.embedding(i, 1) = pos[std::size_t(2 * i + 1)];
  }
  return result;
}

}  // namespace sumi::analysis
