// arch/tail.hpp: each masked load / store equals its scalar twin, bit for bit, for every count n in
// [0, W] at every arch this build runs, and never touches memory past n (guard values around the row).

#include <cstring>

#include <tpp/arch/tail.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_tails() {
  constexpr std::ptrdiff_t W = std::ptrdiff_t(xsimd::batch<float, A>::size);
  const std::vector<float> src = tpp::test::any_bits(W, 5);
  std::vector<std::uint16_t> half(W);
  for (std::ptrdiff_t i = 0; i < W; ++i) half[i] = std::uint16_t(tpp::test::bits(src[i]) >> 7);
  const auto u = xsimd::bitwise_cast<xsimd::batch<std::uint32_t, A>>(xsimd::batch<float, A>::load_unaligned(src.data()));
  for (std::ptrdiff_t n = 0; n <= W; ++n) {
    CAPTURE(n);
    alignas(64) float a[64], b[64];
    tpp::arch::load_first<A>(src.data(), n).store_aligned(a);
    tpp::arch::load_first_scalar<A>(src.data(), n).store_aligned(b);
    CHECK(std::memcmp(a, b, W * sizeof(float)) == 0);
    for (std::ptrdiff_t i = n; i < W; ++i) CHECK(tpp::test::bits(a[i]) == 0u);
    tpp::arch::widen_bf16_first<A>(half.data(), n).store_aligned(a);
    tpp::arch::widen_bf16_first_scalar<A>(half.data(), n).store_aligned(b);
    CHECK(std::memcmp(a, b, W * sizeof(float)) == 0);
    for (std::ptrdiff_t i = 0; i < W; ++i) CHECK(tpp::test::bits(a[i]) == (i < n ? std::uint32_t(half[i]) << 16 : 0u));

    // Stores: W + 2 guard elements around the row stay as they were.
    std::vector<float> fa(W + 2, -7.0f), fb(W + 2, -7.0f);
    tpp::arch::store_first<A>(fa.data() + 1, xsimd::batch<float, A>::load_unaligned(src.data()), n);
    tpp::arch::store_first_scalar<A>(fb.data() + 1, xsimd::batch<float, A>::load_unaligned(src.data()), n);
    CHECK(std::memcmp(fa.data(), fb.data(), fa.size() * sizeof(float)) == 0);
    for (std::ptrdiff_t i = n; i < W; ++i) CHECK(fa[i + 1] == -7.0f);
    CHECK(fa[0] == -7.0f);
    std::vector<std::uint16_t> ha(W + 2, 0xabcd), hb(W + 2, 0xabcd);
    tpp::arch::store_high_halves_first<A>(ha.data() + 1, u, n);
    tpp::arch::store_high_halves_first_scalar<A>(hb.data() + 1, u, n);
    CHECK(ha == hb);
    for (std::ptrdiff_t i = 0; i < W; ++i)
      CHECK(ha[i + 1] == (i < n ? std::uint16_t(tpp::test::bits(src[i]) >> 16) : std::uint16_t(0xabcd)));
  }
}

}  // namespace

TEST_CASE("arch: masked first-n loads and stores equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_tails<decltype(arch)>(); });
}
