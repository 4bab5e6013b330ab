#pragma once
// The formats the sparse products take, as one set, and the way back to dense:
//   sparse_format<F>   csr_matrix, bcsr_matrix, nm_matrix or codebook_matrix
//   to_dense(S, out)   writes every element of out (S.rows, S.cols): the stored values, zero elsewhere
//                      (out must share no byte with S's arrays)

#include <algorithm>
#include <concepts>
#include <string_view>

#include "bcsr.hpp"
#include "codebook.hpp"
#include "common.hpp"
#include "csr.hpp"
#include "nm.hpp"

namespace tpp {

template <class F>
concept sparse_format = std::same_as<F, csr_matrix> || std::same_as<F, bcsr_matrix> || std::same_as<F, nm_matrix> ||
                        std::same_as<F, codebook_matrix>;

template <class Format>
  requires sparse_format<Format>
void to_dense(const Format& S, mat<float> out) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "to_dense";
  check_format(S, op, "S");
  check_mat(out, op, "out");
  check_shape(out, S.rows, S.cols, op, "out", "S's");
  check_not_in(out, S, op, "out", "S");
  const auto rows = rows_of(S);
  for (index_t i = 0; i < S.rows; ++i) {
    float* o = out.row(i);
    std::fill_n(o, S.cols, 0.0f);
    rows.row(i, [&](index_t k, float s) { o[k] = s; });
  }
}

}  // namespace tpp
