#pragma once
// How faithful a low-dimensional embedding is to its input, and how well it separates classes.
//
// trustworthiness: scikit-learn's sklearn.manifold.trustworthiness (Venna and Kaski): penalises every
//   embedding neighbour that is not among the point's k nearest in the input space, by how far down the
//   input-space ranking it is. 1 means every embedding neighbourhood is an input neighbourhood.
// knn_accuracy: leave-one-out k-NN classification in the embedding, each point labelled by a majority vote
//   of its k nearest other points (ties to the smallest class, as scikit-learn's KNeighborsClassifier).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "sumi/analysis/nearest_neighbors.hpp"
#include "sumi/analysis/point_matrix.hpp"
#include "sumi/kernels/threading.hpp"
#include "sumi/util/dense_ranks.hpp"

namespace sumi::analysis {

// Trustworthiness of `embedding` (rows matching `input`'s) with the embedding's neighbours given.
// O(N^2 D): every input-space distance is computed once, and nothing N x N is stored.
inline double trustworthiness(const PointMatrix& input, const Neighbors& embedding_neighbors) {
  const int64_t n = input.rows(), k = embedding_neighbors.k, d = input.cols();
  if (embedding_neighbors.points != n)
    throw std::invalid_argument("trustworthiness: " + std::to_string(n) + " input points but " +
                                std::to_string(embedding_neighbors.points) + " embedded points");
  detail::check_neighbors(embedding_neighbors, "trustworthiness");
  detail::check_coordinates(input, "trustworthiness input");
  if (2 * k >= n)  // scikit-learn's bound, k < n / 2 in real numbers
    throw std::invalid_argument("trustworthiness: k = " + std::to_string(k) + " must be below half of the " +
                                std::to_string(n) + " points");
  double penalty = 0;
#pragma omp parallel num_threads(get_num_threads())
  {
    std::vector<double> distance(static_cast<std::size_t>(n));
    std::vector<std::pair<double, int64_t>> targets(static_cast<std::size_t>(k));
    std::vector<int64_t> ahead(static_cast<std::size_t>(k));
#pragma omp for schedule(dynamic, 16) reduction(+ : penalty)
    for (int64_t i = 0; i < n; ++i) {
      const double* xi = input.data() + i * d;
      for (int64_t l = 0; l < n; ++l) {
        const double* xl = input.data() + l * d;
        double s = 0;
        for (int64_t c = 0; c < d; ++c) s += (xi[c] - xl[c]) * (xi[c] - xl[c]);
        distance[std::size_t(l)] = s;
      }
      for (int64_t m = 0; m < k; ++m) {
        const int64_t j = embedding_neighbors.indices_of(i)[m];
        targets[std::size_t(m)] = {distance[std::size_t(j)], j};
      }
      std::sort(targets.begin(), targets.end());
      // ahead[m]: input points ranked before the m-th target (ties broken by index, like a stable sort).
      std::fill(ahead.begin(), ahead.end(), 0);
      const std::pair<double, int64_t> last = targets.back();
      for (int64_t l = 0; l < n; ++l) {
        if (l == i) continue;
        const std::pair<double, int64_t> key{distance[std::size_t(l)], l};
        if (!(key < last)) continue;
        const auto first_after = std::upper_bound(targets.begin(), targets.end(), key);
        ++ahead[std::size_t(first_after - targets.begin())];
      }
      int64_t before = 0;
      for (int64_t m = 0; m < k; ++m) {
        before += ahead[std::size_t(m)];
        const int64_t rank = before + 1;  // 1-based rank among the other points
        if (rank > k) penalty += double(rank - k);
      }
    }
  }
  return 1.0 - penalty * (2.0 / (double(n) * double(k) * (2.0 * double(n) - 3.0 * double(k) - 1.0)));
}

// Trustworthiness with the embedding's k nearest neighbours found here (k = 5 is scikit-learn's default;
// this project reports k = 10).
inline double trustworthiness(const PointMatrix& input, const PointMatrix& embedding, int64_t k) {
  if (embedding.rows() != input.rows())
    throw std::invalid_argument("trustworthiness: " + std::to_string(input.rows()) + " input points but " +
                                std::to_string(embedding.rows()) + " embedded points");
  return trustworthiness(input, exact_knn(embedding, k));
}

// Leave-one-out k-NN accuracy with the embedding's neighbours given; labels are classes >= 0.
inline double knn_accuracy(const Neighbors& neighbors, const std::vector<int64_t>& labels) {
  const int64_t n = neighbors.points;
  if (int64_t(labels.size()) != n)
    throw std::invalid_argument("knn_accuracy: " + std::to_string(labels.size()) + " labels for " +
                                std::to_string(n) + " points");
  detail::check_neighbors(neighbors, "knn_accuracy");
  for (const int64_t label : labels)
    if (label < 0) throw std::invalid_argument("knn_accuracy: negative label " + std::to_string(label));
  // Votes are counted per dense class id (the label's rank among the distinct labels, so the order and the
  // tie-break are the labels'), and only the k entries a point touched are cleared: sparse labels (a year,
  // an id) cost no more than 0..9.
  const util::DenseRanks<int64_t> classes = util::dense_ranks(labels);
  const std::vector<int64_t>& dense = classes.ranks;
  int64_t correct = 0;
#pragma omp parallel num_threads(get_num_threads())
  {
    std::vector<int64_t> votes(classes.distinct.size(), 0);
#pragma omp for schedule(static) reduction(+ : correct)
    for (int64_t i = 0; i < n; ++i) {
      const int64_t* neighbours = neighbors.indices_of(i);
      for (int64_t m = 0; m < neighbors.k; ++m) ++votes[std::size_t(dense[std::size_t(neighbours[m])])];
      int64_t winner = -1, most = 0;  // the most votes; on a tie the smallest class
      for (int64_t m = 0; m < neighbors.k; ++m) {
        const int64_t c = dense[std::size_t(neighbours[m])];
        if (votes[std::size_t(c)] > most || (votes[std::size_t(c)] == most && c < winner))
          most = votes[std::size_t(c)], winner = c;
      }
      for (int64_t m = 0; m < neighbors.k; ++m) votes[std::size_t(dense[std::size_t(neighbours[m])])] = 0;
      if (winner == dense[std::size_t(i)]) ++correct;
    }
  }
  return double(correct) / double(n);
}

inline double knn_accuracy(const PointMatrix& embedding, const std::vector<int64_t>& labels, int64_t k) {
  return knn_accuracy(exact_knn(embedding, k), labels);
}

}  // namespace sumi::analysis
