// arch/gather.hpp: the gather instructions equal their scalar twin (lane i = table[index[i]]) bit for bit
// at every arch this build runs, for float and int32 tables, indices anywhere in the table (first and
// last entries included), NaN payloads passed through unchanged.

#include <tpp/arch/gather.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

namespace {

template <class A>
void check_gather() {
  using I = xsimd::batch<std::int32_t, A>;
  constexpr std::size_t W = I::size;
  constexpr std::int32_t n = 1 << 12;
  const std::vector<float> ft = tpp::test::any_bits(n, 21);
  std::vector<std::int32_t> it(n);
  for (std::int32_t i = 0; i < n; ++i) it[std::size_t(i)] = std::int32_t(tpp::test::bits(ft[std::size_t(i)]) ^ 0x9e3779b9u);
  std::mt19937 rng(5);
  std::size_t bad = 0;
  for (int rep = 0; rep < 2000; ++rep) {
    alignas(64) std::int32_t idx[64];
    for (std::size_t k = 0; k < W; ++k) idx[k] = rep == 0 ? (k % 2 ? n - 1 : 0) : std::int32_t(rng() % n);
    const I index = I::load_aligned(idx);
    alignas(64) float fa[64], fb[64];
    alignas(64) std::int32_t ia[64], ib[64];
    tpp::arch::gather<A>(ft.data(), index).store_aligned(fa);
    tpp::arch::gather_scalar<A>(ft.data(), index).store_aligned(fb);
    tpp::arch::gather<A>(it.data(), index).store_aligned(ia);
    tpp::arch::gather_scalar<A>(it.data(), index).store_aligned(ib);
    for (std::size_t k = 0; k < W; ++k) {
      bad += tpp::test::bits(fa[k]) != tpp::test::bits(fb[k]);
      bad += tpp::test::bits(fa[k]) != tpp::test::bits(ft[std::size_t(idx[k])]);
      bad += ia[k] != ib[k] || ia[k] != it[std::size_t(idx[k])];
    }
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("arch: gather equals its scalar twin for float and int32 tables") {
  tpp::test::for_each_arch([](auto arch) { check_gather<decltype(arch)>(); });
}
