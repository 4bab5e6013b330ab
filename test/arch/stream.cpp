// arch/stream.hpp: a streaming store writes the same bytes as its scalar twin (an ordinary store), at
// every arch this build runs that has one; the fence orders them before they are read back.

#include <cstring>

#include <tpp/arch/stream.hpp>

#include "approx/arch_list.hpp"
#include "support.hpp"

TEST_CASE("arch: stream_store writes what its scalar twin writes") {
  tpp::test::for_each_arch([](auto arch) {
    using A = decltype(arch);
    using F = xsimd::batch<float, A>;
    const std::vector<float> src = tpp::test::any_bits(F::size, 3);
    alignas(64) float a[64] = {}, b[64] = {};
    tpp::arch::stream_store<A>(a, F::load_unaligned(src.data()));
    tpp::arch::stream_fence();
    tpp::arch::stream_store_scalar<A>(b, F::load_unaligned(src.data()));
    CHECK(std::memcmp(a, b, sizeof a) == 0);
    CHECK(std::memcmp(a, src.data(), F::size * sizeof(float)) == 0);
  });
}
