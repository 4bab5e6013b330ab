// arch/horizontal.hpp: hmax / hmin and mask_bits equal their scalar twins bit for bit at every arch this
// build runs, NaNs and signed zeros included; without NaN, hmax / hmin are the largest / smallest lane.

#include <algorithm>

#include <tpp/arch/horizontal.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_horizontal() {
  using F = xsimd::batch<float, A>;
  constexpr std::size_t W = F::size;
  const std::vector<float> special = tpp::test::special_values();
  for (int rep = 0; rep < 2000; ++rep) {
    std::vector<float> v = rep % 2 ? tpp::test::uniform(W, -100.0f, 100.0f, rep) : tpp::test::any_bits(W, rep);
    if (rep % 3 == 0) v[std::size_t(rep) % W] = special[std::size_t(rep) % special.size()];
    const F x = F::load_unaligned(v.data());
    CHECK(tpp::test::bits(tpp::arch::hmax<A>(x)) == tpp::test::bits(tpp::arch::hreduce_scalar<true, A>(x)));
    CHECK(tpp::test::bits(tpp::arch::hmin<A>(x)) == tpp::test::bits(tpp::arch::hreduce_scalar<false, A>(x)));
    if (std::none_of(v.begin(), v.end(), [](float f) { return std::isnan(f); })) {
      CHECK(tpp::arch::hmax<A>(x) == *std::max_element(v.begin(), v.end()));
      CHECK(tpp::arch::hmin<A>(x) == *std::min_element(v.begin(), v.end()));
    }
    const auto m = x > F(0.0f);
    const std::uint64_t bits = tpp::arch::mask_bits<A>(m);
    CHECK(bits == tpp::arch::mask_bits_scalar<A>(m));
    for (std::size_t k = 0; k < W; ++k) CHECK(((bits >> k) & 1u) == (v[k] > 0.0f ? 1u : 0u));
  }
}

}  // namespace

TEST_CASE("arch: hmax, hmin and mask_bits equal their scalar twins") {
  tpp::test::for_each_arch([](auto arch) { check_horizontal<decltype(arch)>(); });
}
