// Dense row-major matrix of doubles: the training and scoring input of every detector.
// Plain value type; not synchronised (share const references freely across threads).
// Owns its storage.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace immunizer::analyze {

struct Matrix {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> values;  // rows * cols, row-major

  Matrix() = default;
  Matrix(std::size_t r, std::size_t c) : rows(r), cols(c), values(r * c, 0.0) {}

  std::span<const double> row(std::size_t i) const { return {values.data() + i * cols, cols}; }
  std::span<double> row(std::size_t i) { return {values.data() + i * cols, cols}; }
  double at(std::size_t i, std::size_t j) const { return values[i * cols + j]; }
  double& at(std::size_t i, std::size_t j) { return values[i * cols + j]; }
};

}  // namespace immunizer::analyze
