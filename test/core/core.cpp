// core/: bf16 conversions, mat views and their validation, tpp::error, parallel helpers (the SIMD lane forms: lanes.cpp).

#include <atomic>
#include <cmath>
#include <limits>

#include <tpp/core/bf16.hpp>
#include <tpp/core/mat.hpp>
#include <tpp/core/parallel.hpp>

#include "support.hpp"

using namespace tpp;
using test::bits;
using test::from_bits;

namespace {

// Round-to-nearest-even to bf16 written from the definition, in double: the nearest multiple of the
// bf16 spacing at x's binade, ties to an even last mantissa bit; NaN -> quiet NaN.
std::uint16_t reference_rne(float x) {
  const std::uint32_t u = bits(x);
  if (std::isnan(x)) return std::uint16_t((u >> 16) | 0x40);
  if (std::isinf(x)) return std::uint16_t(u >> 16);
  const std::uint16_t lo = std::uint16_t(u >> 16), hi = std::uint16_t(lo + 1);  // neighbours toward 0 / away
  const double dl = std::abs(double(x) - double(from_bits(std::uint32_t(lo) << 16)));
  // one bf16 step above FLT_MAX's binade is 2^128 (IEEE rounds to Inf from the midpoint on)
  const double hv = (hi & 0x7fff) == 0x7f80 ? 0x1p128 : std::abs(double(from_bits(std::uint32_t(hi) << 16)));
  const double dh = std::abs(hv - std::abs(double(x)));
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

}  // namespace

TEST_CASE("bf16: RNE and RZ conversions against a reference from the definition") {
  auto values = test::any_bits(1u << 20, 5);
  for (float f : test::special_values()) values.push_back(f);
  values.push_back(from_bits(0x3f808000u));  // tie, even below -> stays
  values.push_back(from_bits(0x3f818000u));  // tie, odd below -> rounds up
  values.push_back(from_bits(0x7f7fffffu));  // FLT_MAX rounds to Inf
  for (float f : values) {
    INFO("x = ", f, " (", test::hex(f), ")");
    REQUIRE(to_bf16_rne(f).bits == reference_rne(f));
    const std::uint16_t rz = to_bf16_rz(f).bits;
    if (std::isnan(f)) {
      CHECK(std::isnan(to_float(to_bf16_rz(f))));
      CHECK((rz & 0x8000) == ((bits(f) >> 16) & 0x8000));  // sign kept
    } else {
      CHECK(rz == (bits(f) >> 16));
      CHECK(std::abs(to_float(to_bf16_rz(f))) <= std::abs(f));
    }
  }
  CHECK(to_bf16_rne(from_bits(0x3f808000u)).bits == 0x3f80);
  CHECK(to_bf16_rne(from_bits(0x3f818000u)).bits == 0x3f82);
  CHECK(std::isinf(to_float(to_bf16_rne(std::numeric_limits<float>::max()))));
  CHECK(std::isnan(to_float(to_bf16_rne(from_bits(0x7f800001u)))));  // a NaN whose payload is in the low half
  CHECK(std::isnan(to_float(to_bf16_rz(from_bits(0x7f800001u)))));
  CHECK(to_float(to_bf16_rne(1.0f)) == 1.0f);
  static_assert(to_float(to_bf16_rne(-2.5f)) == -2.5f);  // constexpr
}

TEST_CASE("mat/view: element access, ld, const conversion") {
  std::vector<float> buf(3 * 5);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  const mat<float> m = view(buf.data(), 3, 4, 5);
  CHECK(m(2, 3) == 13.0f);
  CHECK(m.row(1)[0] == 5.0f);
  const mat<const float> c = m;
  CHECK(c(1, 1) == 6.0f);
  CHECK(view(buf.data(), 3, 5).ld == 5);  // default ld = cols
  CHECK(view<float>(nullptr, 0, 4).empty());
  CHECK(view<float>(nullptr, 4, 0).empty());
}

TEST_CASE("mat/view: bad arguments throw tpp::error naming the op and the argument") {
  float x[16] = {};
  CHECK_THROWS_WITH_AS(view(x, -1, 2), "tpp::view: matrix.rows is negative (-1)", error);
  CHECK_THROWS_WITH_AS(view(x, 2, -3), "tpp::view: matrix.cols is negative (-3)", error);
  CHECK_THROWS_WITH_AS(view(x, 2, 4, 3), "tpp::view: matrix.ld (3) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(view(x, 2, 4, -5), "tpp::view: matrix.ld (-5) is smaller than cols (4)", error);
  CHECK_THROWS_WITH_AS(view<float>(nullptr, 2, 2), "tpp::view: matrix.data is null with nonzero size", error);
  const index_t huge = std::numeric_limits<index_t>::max() / 2;
  CHECK_THROWS_WITH_AS(view(x, huge, 4, huge), doctest::Contains("overflows"), error);
  CHECK_THROWS_WITH_AS(view(x, 3, 2, std::numeric_limits<index_t>::max()), doctest::Contains("overflows"), error);
  // Ops validate hand-built aggregates the same way.
  const mat<float> bad{x, 2, 4, 1};
  CHECK_THROWS_WITH_AS(detail::check_mat(bad, "unary", "in"), "tpp::unary: in.ld (1) is smaller than cols (4)", error);
  const mat<float> a{x, 2, 3, 3}, b{x, 3, 2, 2};
  CHECK_THROWS_WITH_AS(detail::check_same_shape(a, b, "binary", "a", "b"),
                       "tpp::binary: b shape (3x2) differs from a (2x3)", error);
  try {
    view(x, 2, 4, 3);
  } catch (const error& e) {
    CHECK(e.op() == "view");
    CHECK(e.argument() == "matrix.ld");
    const std::invalid_argument& base = e;  // derives from std::invalid_argument
    CHECK(std::string(base.what()).find("ld") != std::string::npos);
  }
}

TEST_CASE("parallel: split covers [0, n) exactly, balanced; parallel_for visits every index once") {
  for (index_t n : {0, 1, 7, 64, 1001})
    for (index_t parts : {1, 2, 3, 8}) {
      index_t next = 0, lo = n, hi = 0;
      for (index_t p = 0; p < parts; ++p) {
        const range r = split(n, parts, p);
        CHECK(r.begin == next);
        next = r.end;
        lo = std::min(lo, r.end - r.begin);
        hi = std::max(hi, r.end - r.begin);
      }
      CHECK(next == n);
      CHECK(hi - lo <= 1);
    }
  std::vector<std::atomic<int>> hits(1000);
  parallel_for(1000, [&](index_t b, index_t e) {
    for (index_t i = b; i < e; ++i) hits[std::size_t(i)]++;
  });
  for (auto& h : hits) CHECK(h.load() == 1);
}
