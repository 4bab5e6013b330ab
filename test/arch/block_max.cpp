// arch/block_max.hpp: larger_magnitude_bits (vrangeps) and both forms of transpose_max (the AVX-512
// transposing reduction) equal their scalar twins bit for bit at every arch this build runs, on any bit
// pattern: quiet and signalling NaNs of either sign beside numbers, infinities and each other, denormals,
// zeros of both signs, equal magnitudes of opposite signs.

#include <cstring>

#include <tpp/arch/block_max.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

using tpp::test::from_bits;

template <class A>
void check_block_max() {
  using F = xsimd::batch<float, A>;
  using U = xsimd::batch<std::uint32_t, A>;
  constexpr std::size_t W = F::size;
  // operand pairs: every pair of a set of edge patterns, then random patterns with the specials mixed in
  const std::uint32_t edge[] = {0x7fc00000u, 0xffc01234u, 0x7f800321u, 0xff800001u, 0x7fbfffffu, 0x3f800000u,
                                0xbf800000u, 0x7f800000u, 0xff800000u, 0x00000000u, 0x80000000u, 0x00000001u,
                                0x80000002u, 0x007fffffu, 0x40000000u, 0xc0000000u};
  std::vector<float> a, b;
  for (std::uint32_t x : edge)
    for (std::uint32_t y : edge) a.push_back(from_bits(x)), b.push_back(from_bits(y));
  const std::vector<float> ra = tpp::test::any_bits(4096, 8), rb = tpp::test::any_bits(4096, 9);
  a.insert(a.end(), ra.begin(), ra.end());
  b.insert(b.end(), rb.begin(), rb.end());
  for (std::size_t k = 0; k < 64; ++k) b[256 + 7 * k] = tpp::test::from_bits(tpp::test::bits(a[256 + 7 * k]) ^ 0x80000000u);
  std::size_t bad = 0;
  for (std::size_t i = 0; i + W <= a.size(); i += W) {
    alignas(64) std::uint32_t x[64], y[64];
    const F fa = F::load_unaligned(a.data() + i), fb = F::load_unaligned(b.data() + i);
    tpp::arch::larger_magnitude_bits<A>(fa, fb).store_aligned(x);
    tpp::arch::larger_magnitude_bits_scalar<A>(fa, fb).store_aligned(y);
    bad += std::memcmp(x, y, W * sizeof(std::uint32_t)) != 0;
  }
  CHECK(bad == 0);
  // the reduction of W vectors, raw (float bits) and as unsigned integers
  for (std::size_t i = 0; i + W * W <= a.size(); i += W * W / 2) {
    tpp::arch::u32_registers<A> c[64], d[64];
    for (std::size_t k = 0; k < W; ++k) c[k] = xsimd::bitwise_cast<U>(F::load_unaligned(a.data() + i + k * W));
    alignas(64) std::uint32_t x[64], y[64];
    std::copy(c, c + W, d);
    tpp::arch::transpose_max<true, A>(d).store_aligned(x);
    tpp::arch::transpose_max_scalar<true, A>(c).store_aligned(y);
    bad += std::memcmp(x, y, W * sizeof(std::uint32_t)) != 0;
    std::copy(c, c + W, d);
    tpp::arch::transpose_max<false, A>(d).store_aligned(x);
    tpp::arch::transpose_max_scalar<false, A>(c).store_aligned(y);
    bad += std::memcmp(x, y, W * sizeof(std::uint32_t)) != 0;
    for (std::size_t k = 0; k < W; ++k) {  // the unsigned form is the plain maximum of each vector
      std::uint32_t m = 0;
      for (std::size_t j = 0; j < W; ++j) m = std::max(m, tpp::test::bits(a[i + k * W + j]));
      bad += x[k] != m;
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: larger_magnitude_bits and transpose_max equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_block_max<decltype(arch)>(); });
}
