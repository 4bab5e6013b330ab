// arch/popcount.hpp: xor_popcount_4x4 (vpopcntq where the target has AVX-512 VPOPCNTDQ) equals its scalar
// twin at every arch this build runs, for every word count 0 .. 40 (whole groups of 8 words and the masked
// rest), on random rows, all-ones and all-zero rows; and the twin equals a per-bit count.

#include <tpp/arch/popcount.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_popcount() {
  std::mt19937_64 g(77);
  std::vector<std::uint64_t> rows(8 * 48);
  for (auto& w : rows) w = g();
  for (std::size_t w = 0; w < 48; ++w) rows[1 * 48 + w] = ~std::uint64_t(0), rows[6 * 48 + w] = 0;
  const std::uint64_t* a[4] = {rows.data(), rows.data() + 48, rows.data() + 96, rows.data() + 144};
  const std::uint64_t* b[4] = {rows.data() + 192, rows.data() + 240, rows.data() + 288, rows.data() + 48};
  std::size_t bad = 0;
  for (std::ptrdiff_t words = 0; words <= 40; ++words) {
    std::int64_t x[4][4], y[4][4];
    tpp::arch::xor_popcount_4x4<A>(a, b, words, x);
    tpp::arch::xor_popcount_4x4_scalar(a, b, words, y);
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 4; ++c) {
        std::int64_t n = 0;
        for (std::ptrdiff_t w = 0; w < words; ++w)
          for (int k = 0; k < 64; ++k) n += ((a[r][w] ^ b[c][w]) >> k) & 1;
        bad += x[r][c] != y[r][c];
        bad += y[r][c] != n;
      }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: xor_popcount_4x4 equals its scalar twin") {
  tpp::test::for_each_arch([](auto arch) { check_popcount<decltype(arch)>(); });
}
