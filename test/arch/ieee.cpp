// arch/ieee.hpp: fma (at archs with an fma instruction), div and sqrt equal their scalar twins (the <cmath> operations, correctly rounded)
// bit for bit at every arch this build runs, on any bit patterns (NaNs compared as NaNs: IEEE leaves a
// NaN result's payload open).

#include <tpp/arch/ieee.hpp>
#include <tpp/arch/registers.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

bool same(float a, float b) { return std::isnan(a) ? std::isnan(b) : tpp::test::bits(a) == tpp::test::bits(b); }

template <class A>
void check_ieee() {
  using F = xsimd::batch<float, A>;
  constexpr std::size_t W = F::size;
  std::size_t bad = 0;
  for (int rep = 0; rep < 4000; ++rep) {
    const auto gen = [&](int s) {
      return rep % 2 ? tpp::test::any_bits(W, 3 * rep + s) : tpp::test::uniform(W, -1e3f, 1e3f, 3 * rep + s);
    };
    const std::vector<float> a = gen(0), b = gen(1), c = gen(2);
    const F x = F::load_unaligned(a.data()), y = F::load_unaligned(b.data()), z = F::load_unaligned(c.data());
    alignas(64) float g[3][64], t[3][64];
    tpp::arch::fma<A>(x, y, z).store_aligned(g[0]);
    tpp::arch::fma_scalar<A>(x, y, z).store_aligned(t[0]);
    tpp::arch::div<A>(x, y).store_aligned(g[1]);
    tpp::arch::div_scalar<A>(x, y).store_aligned(t[1]);
    tpp::arch::sqrt<A>(x).store_aligned(g[2]);
    tpp::arch::sqrt_scalar<A>(x).store_aligned(t[2]);
    for (int f = tpp::arch::fused_fma<A> ? 0 : 1; f < 3; ++f)
      for (std::size_t k = 0; k < W; ++k) bad += same(g[f][k], t[f][k]) ? 0 : 1;
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: fma, div and sqrt equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_ieee<decltype(arch)>(); });
}
