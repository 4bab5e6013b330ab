#pragma once
// Complementary sparsity (Numenta): several sparse matrices whose entries do not collide, overlaid into one
// dense operand and multiplied by a vector once.
//   pack_complementary(parts)              overlays count <= 255 CSR matrices S_j of one shape into
//                                          complementary_matrix: a dense (rows, cols) operand and a
//                                          per-element owner (j + 1; 0 for no entry); tpp::error naming the
//                                          part and position when two collide
//   unpack_part(pack, j)                   S_j back
//   complementary_product<P>(pack, x, Y)   multiplies the packed operand once by the vector x (cols) and
//                                          unpacks: Y (rows, count) with Y(i, j) = (S_j x)_i = sum over k
//                                          with owner(i, k) = j + 1 of P(packed(i, k), x_k), each in
//                                          ascending k with the step of the sparse products, so column j
//                                          equals sparse_dense<P>(S_j, x) bit for bit. Y shares no byte
//                                          with x or the pack.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../approx/exact.hpp"
#include "../../approx/policy.hpp"
#include "../../core/workspace.hpp"
#include "common.hpp"
#include "csr.hpp"

namespace tpp {

struct complementary_matrix {
  index_t rows = 0, cols = 0, count = 0;
  std::vector<float> val;           // (rows, cols) row-major: every part's stored entries in place, 0 elsewhere
  std::vector<std::uint8_t> owner;  // (rows, cols): j + 1 for an entry of part j, 0 for none
};

inline complementary_matrix pack_complementary(std::span<const csr_matrix> parts) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "pack_complementary";
  if (parts.empty() || parts.size() > 255)
    throw error(op, "parts", concat("has ", to_string(parts.size()), " matrices (1 to 255 can be packed)"));
  complementary_matrix pk{parts[0].rows, parts[0].cols, index_t(parts.size()), {}, {}};
  for (std::size_t j = 0; j < parts.size(); ++j) {
    const std::string name = concat("parts[", to_string(j), "]");
    check_format(parts[j], op, name);
    if (parts[j].rows != pk.rows || parts[j].cols != pk.cols)
      throw error(op, name, concat("is (", to_string(parts[j].rows), "x", to_string(parts[j].cols), "), parts[0] is (",
                                   to_string(pk.rows), "x", to_string(pk.cols), ")"));
  }
  const index_t count = mul_or_throw(pk.rows, pk.cols, op, "parts[0]");
  pk.val.assign(std::size_t(count), 0.0f);
  pk.owner.assign(std::size_t(count), 0);
  for (std::size_t j = 0; j < parts.size(); ++j) {
    const csr_matrix& s = parts[j];
    for (index_t i = 0; i < s.rows; ++i)
      for (index_t e = s.row_ptr[std::size_t(i)]; e < s.row_ptr[std::size_t(i + 1)]; ++e) {
        const std::size_t at = std::size_t(i * pk.cols + s.col[std::size_t(e)]);
        if (pk.owner[at] != 0)
          throw error(op, concat("parts[", to_string(j), "]"),
                      concat("collides with parts[", to_string(pk.owner[at] - 1), "] at (", to_string(i), ", ",
                             to_string(s.col[std::size_t(e)]), ")"));
        pk.owner[at] = std::uint8_t(j + 1);
        pk.val[at] = s.val[std::size_t(e)];
      }
  }
  return pk;
}

namespace detail::sparse_impl {

inline void check_format(const complementary_matrix& pk, std::string_view op, std::string_view name) {
  check_sizes(op, pk.rows, pk.cols, concat(name, ".rows"), concat(name, ".cols"));
  if (pk.count < 1 || pk.count > 255)
    throw error(op, concat(name, ".count"), concat("(", to_string(pk.count), ") is outside [1, 255]"));
  const index_t n = mul_or_throw(pk.rows, pk.cols, op, name);
  check_size(pk.val.size(), n, op, concat(name, ".val"));
  check_size(pk.owner.size(), n, op, concat(name, ".owner"));
  for (std::uint8_t o : pk.owner)
    if (o > pk.count) throw error(op, concat(name, ".owner"), concat("holds ", to_string(o), ", above count"));
}

template <class F>
void arrays_of(by_format, const complementary_matrix& s, F&& f) {
  f(s.val), f(s.owner);
}

// prod[k] = P(v[k], x[k]) for k < K, a vector at a time (the tail in the last one's first lanes).
template <class P>
void packed_products(const float* v, const float* x, float* prod, index_t K) noexcept {
  index_t k = 0;
  for (; k + W <= K; k += W) lanes::store(prod + k, P::mul(lanes::load<lane>(v + k), lanes::load<lane>(x + k)));
  if (k < K) lanes::store(prod + k, P::mul(lanes::load<lane>(v + k, K - k), lanes::load<lane>(x + k, K - k)), K - k);
}

}  // namespace detail::sparse_impl

// Part j of a packing: its stored entries, in place.
inline csr_matrix unpack_part(const complementary_matrix& pk, index_t j) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "unpack_part";
  check_format(pk, op, "pack");
  if (j < 0 || j >= pk.count)
    throw error(op, "j", concat("(", to_string(j), ") is outside [0, ", to_string(pk.count), ")"));
  csr_matrix s{pk.rows, pk.cols, {0}, {}, {}};
  for (index_t i = 0; i < pk.rows; ++i) {
    for (index_t k = 0; k < pk.cols; ++k)
      if (pk.owner[std::size_t(i * pk.cols + k)] == j + 1) {
        s.col.push_back(k);
        s.val.push_back(pk.val[std::size_t(i * pk.cols + k)]);
      }
    s.row_ptr.push_back(index_t(s.col.size()));
  }
  return s;
}

// Y (rows, count): Y(i, j) = (S_j x)_i, the packed operand multiplied by x (cols) once and unpacked by owner.
template <class Policy = approx::exact>
  requires approx::multiplier<Policy>
void complementary_product(const complementary_matrix& pk, std::span<const float> x, mat<float> Y) {
  using namespace detail;
  using namespace detail::sparse_impl;
  constexpr std::string_view op = "complementary_product";
  check_format(pk, op, "pack");
  check_size(x.size(), pk.cols, op, "x");
  if (x.data() == nullptr && pk.cols != 0) throw error(op, "x.data", "is null with nonzero size");
  check_mat(Y, op, "Y");
  check_shape(Y, pk.rows, pk.count, op, "Y", "pack.rows by pack.count");
  const index_t K = pk.cols;
  if (views_overlap(Y, mat<const float>{x.data(), 1, K, K})) throw error(op, "Y", "overlaps x");
  check_not_in(Y, pk, op, "Y", "pack");
  approx::check_policy<Policy>();
  constexpr bool exact = std::is_same_v<Policy, approx::exact>;
  scratch z({}, op);
  float* prod = exact ? nullptr : take(z, std::max<index_t>(K, 1));  // one row's packed products
  for (index_t i = 0; i < pk.rows; ++i) {
    float* y = Y.row(i);
    std::fill_n(y, pk.count, 0.0f);
    const float* v = pk.val.data() + i * K;
    const std::uint8_t* own = pk.owner.data() + i * K;
    if constexpr (exact) {
      for (index_t k = 0; k < K; ++k)
        if (own[k] != 0) y[own[k] - 1] = std::fma(v[k], x[std::size_t(k)], y[own[k] - 1]);
    } else {
      packed_products<Policy>(v, x.data(), prod, K);  // then summed by owner
      for (index_t k = 0; k < K; ++k)
        if (own[k] != 0) y[own[k] - 1] = y[own[k] - 1] + prod[k];
    }
  }
}

}  // namespace tpp
