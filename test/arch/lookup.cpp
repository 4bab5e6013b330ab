// arch/lookup.hpp: row_lookup<N> equals its scalar twin row[i] for every index of every table size,
// in every lane position (the indices are rotated through the lanes), with distinct, sign-mixed entries
// so a wrong register, blend or lane cannot go unseen.

#include <vector>

#include <tpp/arch/lookup.hpp>

#include "support.hpp"

namespace {

template <int N>
std::size_t lookup_mismatches() {
  using A = xsimd::default_arch;
  using I = xsimd::batch<std::int32_t, A>;
  constexpr int W = int(I::size);
  std::vector<float> row(N);
  for (int i = 0; i < N; ++i) row[std::size_t(i)] = float(i % 2 == 0 ? i + 1 : -(3 * i + 1)) * 0.5f;
  const tpp::arch::row_lookup<N, A> lookup(row.data());
  std::size_t bad = 0;
  for (int start = 0; start < N + W; ++start) {
    alignas(64) std::int32_t idx[W];
    alignas(64) float got[W];
    for (int l = 0; l < W; ++l) idx[l] = (start * 7 + l * 5) % N;
    lookup(I::load_aligned(idx)).store_aligned(got);
    for (int l = 0; l < W; ++l)
      if (got[l] != tpp::arch::lookup_scalar(row.data(), idx[l]) && bad++ < 3)
        MESSAGE("N=", N, " lane ", l, " index ", idx[l], ": got ", got[l], " want ", row[std::size_t(idx[l])]);
  }
  return bad;
}

}  // namespace

TEST_CASE("arch: row_lookup equals row[i] for every table size and index") {
  CHECK(lookup_mismatches<1>() == 0);
  CHECK(lookup_mismatches<2>() == 0);
  CHECK(lookup_mismatches<8>() == 0);
  CHECK(lookup_mismatches<16>() == 0);
  CHECK(lookup_mismatches<32>() == 0);
  CHECK(lookup_mismatches<64>() == 0);
  CHECK(lookup_mismatches<128>() == 0);
  CHECK(lookup_mismatches<256>() == 0);
}
