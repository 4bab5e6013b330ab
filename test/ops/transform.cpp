// ops/transform.hpp: transpose equals the reference bit for bit for many shapes, element sizes and lds
// (padding never read into nor written by results), round trips; VNNI-2 / VNNI-4 pack against the documented
// index formula (and zero padding for K not a multiple of G), unpack its exact inverse; overlap and
// argument checks.

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <tpp/ops/transform.hpp>

#include "support.hpp"

namespace {

using namespace tpp;

constexpr index_t W = simd::width<>;

// Random bit patterns of T (every float bit pattern, NaNs included).
template <class T>
std::vector<T> random_elems(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::vector<T> v(n);
  for (auto& x : v) {
    const std::uint64_t r = g();
    std::memcpy(static_cast<void*>(&x), &r, sizeof(T));
  }
  return v;
}

template <class T>
bool same_bits(const T& a, const T& b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
T sentinel() {
  T s;
  std::memset(static_cast<void*>(&s), 0xa5, sizeof(T));
  return s;
}

std::vector<index_t> transpose_sizes() {
  return {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 67, 130};
}

// Transposes a random (M, N) with ld M/N padding and checks every element and every padding element.
template <class T>
void check_transpose(index_t M, index_t N, index_t pad_in, index_t pad_out, std::uint64_t seed) {
  CAPTURE(M);
  CAPTURE(N);
  const index_t ldi = N + pad_in, ldo = M + pad_out;
  std::vector<T> in = random_elems<T>(std::size_t(M * ldi), seed);
  std::vector<T> out(std::size_t(N * ldo), sentinel<T>());
  const std::vector<T> in_copy = in;
  transpose(mat<const T>{in.data(), M, N, ldi}, mat<T>{out.data(), N, M, ldo});
  std::size_t bad = 0, pad_bad = 0;
  for (index_t j = 0; j < N; ++j)
    for (index_t i = 0; i < ldo; ++i) {
      const T& o = out[std::size_t(j * ldo + i)];
      if (i < M)
        bad += !same_bits(o, in[std::size_t(i * ldi + j)]);
      else
        pad_bad += !same_bits(o, sentinel<T>());
    }
  CHECK(bad == 0);
  CHECK(pad_bad == 0);
  CHECK(std::memcmp(in.data(), in_copy.data(), in.size() * sizeof(T)) == 0);  // in untouched
  // Round trip.
  std::vector<T> back(std::size_t(M * ldi), sentinel<T>());
  transpose_kernel<T> k(N, M);
  k(mat<T>{out.data(), N, M, ldo}, mat<T>{back.data(), M, N, ldi});
  std::size_t rt_bad = 0;
  for (index_t i = 0; i < M; ++i)
    for (index_t j = 0; j < N; ++j) rt_bad += !same_bits(back[std::size_t(i * ldi + j)], in[std::size_t(i * ldi + j)]);
  CHECK(rt_bad == 0);
}

}  // namespace

TEST_CASE_TEMPLATE("transpose equals the reference bit for bit", T, float, bf16, std::uint8_t, std::int16_t,
                   std::int32_t, double) {
  std::uint64_t seed = 1;
  for (index_t M : transpose_sizes())
    for (index_t N : transpose_sizes()) check_transpose<T>(M, N, 0, 0, seed++);
  for (index_t M : {index_t(1), W + 1, index_t(19), index_t(70)})
    for (index_t N : {index_t(1), W - 1, index_t(35), index_t(129)}) check_transpose<T>(M, N, 5, 3, seed++);
}

TEST_CASE("transpose: large and thin shapes (tiles, 1xN, Nx1)") {
  check_transpose<float>(257, 301, 1, 2, 7);
  check_transpose<float>(1, 1000, 0, 0, 8);
  check_transpose<float>(1000, 1, 0, 0, 9);
  check_transpose<bf16>(129, 200, 0, 1, 10);
  check_transpose<std::uint8_t>(100, 161, 2, 0, 11);
}

TEST_CASE("transpose: strides near multiples of 4 KiB (the buffered path)") {
  check_transpose<float>(130, 70, 1024 - 70, 1024 - 130, 20);
  check_transpose<float>(33, 200, 2048 - 200, 0, 21);  // only in crowded
  check_transpose<float>(200, 33, 0, 2048 - 200, 22);  // only out crowded
  check_transpose<bf16>(150, 129, 2048 - 129, 2048 - 150, 23);
  check_transpose<std::uint8_t>(131, 260, 4096 - 260, 4096 - 131, 24);
  check_transpose<double>(70, 67, 512 - 67, 512 - 70, 25);
}

TEST_CASE("transpose: empty shapes, kernel reuse, const input") {
  std::vector<float> a(12), b(12);
  transpose(mat<float>{nullptr, 0, 5, 5}, mat<float>{nullptr, 5, 0, 0});
  transpose(mat<float>{a.data(), 3, 0, 0}, mat<float>{nullptr, 0, 3, 3});
  transpose_kernel<float> k(3, 4);
  for (int rep = 0; rep < 3; ++rep) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(i) + float(rep);
    k(view(static_cast<const float*>(a.data()), 3, 4), view(b.data(), 4, 3));
    for (index_t i = 0; i < 3; ++i)
      for (index_t j = 0; j < 4; ++j) CHECK(b[std::size_t(j * 3 + i)] == a[std::size_t(i * 4 + j)]);
  }
}

TEST_CASE("transpose: overlap and bad arguments throw tpp::error") {
  std::vector<float> buf(400);
  // In place and partial overlaps.
  CHECK_THROWS_WITH_AS(transpose(view(buf.data(), 4, 4), view(buf.data(), 4, 4)), doctest::Contains("transpose: out"), error);
  CHECK_THROWS_AS(transpose(view(buf.data(), 4, 8), view(buf.data() + 30, 8, 4)), error);
  CHECK_THROWS_AS(transpose(view(buf.data() + 3, 4, 4, 20), view(buf.data() + 1, 4, 4, 20)), error);
  // Interleaved but disjoint sub-views of one buffer are fine: columns 0..3 and 4..7 with ld 20.
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = float(i);
  CHECK_NOTHROW(transpose(view(buf.data(), 4, 4, 20), view(buf.data() + 4, 4, 4, 20)));
  for (index_t i = 0; i < 4; ++i)
    for (index_t j = 0; j < 4; ++j) CHECK(buf[std::size_t(j * 20 + 4 + i)] == float(i * 20 + j));
  CHECK_NOTHROW(transpose(view(buf.data(), 4, 4, 10), view(buf.data() + 44, 4, 4, 10)));  // just after in's last row
  // Shapes and views.
  std::vector<float> a(64), b(64);
  CHECK_THROWS_WITH_AS(transpose(view(a.data(), 4, 8), view(b.data(), 4, 8)), doctest::Contains("transpose: out shape"), error);
  CHECK_THROWS_WITH_AS(transpose(mat<float>{a.data(), 4, 8, 7}, view(b.data(), 8, 4)), doctest::Contains("transpose: in.ld"), error);
  CHECK_THROWS_WITH_AS(transpose(view(a.data(), 4, 8), mat<float>{nullptr, 8, 4, 4}), doctest::Contains("transpose: out.data"), error);
  CHECK_THROWS_WITH_AS(transpose(mat<float>{a.data(), -2, 8, 8}, view(b.data(), 8, 4)), doctest::Contains("transpose: in.rows"), error);
  CHECK_THROWS_WITH_AS(transpose_kernel<float>(3, -1), doctest::Contains("transpose: cols"), error);
  transpose_kernel<float> k(4, 8);
  CHECK_THROWS_WITH_AS(k(view(a.data(), 8, 4), view(b.data(), 4, 8)), doctest::Contains("transpose: in shape"), error);
}

namespace {

// Packs a random (K, N) with padded lds, checks the documented formula, the zero padding of the last
// group, the out padding, and the exact round trip through unpack.
template <int G, class T>
void check_vnni(index_t K, index_t N, index_t pad_in, index_t pad_out, std::uint64_t seed) {
  CAPTURE(K);
  CAPTURE(N);
  const index_t ldi = N + pad_in, R = vnni_rows(K, G), ldo = G * N + pad_out;
  CHECK(R == (K + G - 1) / G);
  std::vector<T> in = random_elems<T>(std::size_t(std::max<index_t>(K * ldi, 1)), seed);
  std::vector<T> out(std::size_t(std::max<index_t>(R * ldo, 1)), sentinel<T>());
  vnni_pack<G>(mat<const T>{in.data(), K, N, ldi}, mat<T>{out.data(), R, G * N, ldo});
  std::size_t bad = 0, zero_bad = 0, pad_bad = 0;
  for (index_t r = 0; r < R; ++r)
    for (index_t c = 0; c < ldo; ++c) {
      const T& o = out[std::size_t(r * ldo + c)];
      if (c >= G * N) {
        pad_bad += !same_bits(o, sentinel<T>());
        continue;
      }
      const index_t k = G * r + c % G, n = c / G;  // packed[k / G][n][k % G] = B[k][n]
      if (k < K)
        bad += !same_bits(o, in[std::size_t(k * ldi + n)]);
      else
        zero_bad += !same_bits(o, T{});
    }
  CHECK(bad == 0);
  CHECK(zero_bad == 0);
  CHECK(pad_bad == 0);
  // Exact inverse.
  std::vector<T> back(std::size_t(std::max<index_t>(K * ldi, 1)), sentinel<T>());
  vnni_unpack_kernel<G, T> u(K, N);
  u(mat<T>{out.data(), R, G * N, ldo}, mat<T>{back.data(), K, N, ldi});
  std::size_t rt_bad = 0, rt_pad = 0;
  for (index_t k = 0; k < K; ++k)
    for (index_t n = 0; n < ldi; ++n) {
      if (n < N)
        rt_bad += !same_bits(back[std::size_t(k * ldi + n)], in[std::size_t(k * ldi + n)]);
      else
        rt_pad += !same_bits(back[std::size_t(k * ldi + n)], sentinel<T>());
    }
  CHECK(rt_bad == 0);
  CHECK(rt_pad == 0);
}

}  // namespace

TEST_CASE_TEMPLATE("vnni2 pack / unpack: 16-bit types", T, bf16, std::int16_t, std::uint16_t) {
  std::uint64_t seed = 100;
  for (index_t K : {index_t(1), index_t(2), index_t(3), index_t(4), index_t(7), index_t(32), index_t(33)})
    for (index_t N : {index_t(1), W - 1, W, W + 1, 2 * W + 3, index_t(67)}) {
      check_vnni<2, T>(K, N, 0, 0, seed++);
      check_vnni<2, T>(K, N, 3, 5, seed++);
    }
}

TEST_CASE_TEMPLATE("vnni4 pack / unpack: 8-bit types", T, std::int8_t, std::uint8_t) {
  std::uint64_t seed = 200;
  for (index_t K : {index_t(1), index_t(2), index_t(3), index_t(4), index_t(5), index_t(6), index_t(7), index_t(64), index_t(65)})
    for (index_t N : {index_t(1), index_t(7), index_t(8), index_t(9), index_t(15), index_t(16), index_t(17), index_t(35), index_t(67)}) {
      check_vnni<4, T>(K, N, 0, 0, seed++);
      check_vnni<4, T>(K, N, 1, 7, seed++);
    }
}

TEST_CASE("vnni: the flat index formula, spot checks") {
  // bf16 B (3, 5): packed[(k / 2) 2 N + 2 n + k % 2] = B[k][n]; row 3 of the group is zero.
  const index_t K = 3, N = 5;
  std::vector<bf16> b(std::size_t(K * N));
  for (index_t k = 0; k < K; ++k)
    for (index_t n = 0; n < N; ++n) b[std::size_t(k * N + n)] = to_bf16_rne(float(10 * k + n));
  std::vector<bf16> p(std::size_t(vnni_rows(K, 2) * 2 * N), to_bf16_rne(-1.0f));
  vnni_pack<2>(view(static_cast<const bf16*>(b.data()), K, N), view(p.data(), vnni_rows(K, 2), 2 * N));
  CHECK(to_float(p[0]) == 0.0f);            // B[0][0]
  CHECK(to_float(p[1]) == 10.0f);           // B[1][0]
  CHECK(to_float(p[2]) == 1.0f);            // B[0][1]
  CHECK(to_float(p[2 * 4 + 1]) == 14.0f);   // B[1][4]
  CHECK(to_float(p[10 + 2 * 3]) == 23.0f);  // B[2][3]
  CHECK(p[10 + 2 * 3 + 1].bits == 0);       // padding row 3
  // int8 B (6, 3): packed[(k / 4) 4 N + 4 n + k % 4].
  std::vector<std::int8_t> c(18), q(std::size_t(vnni_rows(6, 4) * 12), 99);
  for (int i = 0; i < 18; ++i) c[std::size_t(i)] = std::int8_t(i - 9);
  vnni_pack<4>(view(c.data(), 6, 3), view(q.data(), 2, 12));
  CHECK(q[0 * 12 + 4 * 2 + 3] == c[3 * 3 + 2]);  // B[3][2]
  CHECK(q[1 * 12 + 4 * 1 + 1] == c[5 * 3 + 1]);  // B[5][1]
  CHECK(q[1 * 12 + 4 * 1 + 2] == 0);             // padding rows 6, 7
  CHECK(q[1 * 12 + 4 * 2 + 3] == 0);
}

TEST_CASE("vnni: bad arguments throw tpp::error") {
  std::vector<bf16> a(64), b(64);
  CHECK_THROWS_WITH_AS(vnni_pack<2>(view(a.data(), 3, 4), view(b.data(), 1, 8)), doctest::Contains("vnni_pack: out shape"), error);
  CHECK_THROWS_WITH_AS(vnni_pack<2>(view(a.data(), 3, 4), view(b.data(), 2, 4)), doctest::Contains("vnni_pack: out shape"), error);
  CHECK_NOTHROW(vnni_pack<2>(view(a.data(), 3, 4), view(b.data(), 2, 8)));
  CHECK_THROWS_WITH_AS(vnni_pack<2>(view(a.data(), 3, 4), view(a.data() + 4, 2, 8)), doctest::Contains("vnni_pack: out overlaps"), error);
  CHECK_THROWS_WITH_AS(vnni_pack<2>(mat<bf16>{a.data(), 3, 4, 2}, view(b.data(), 2, 8)), doctest::Contains("vnni_pack: in.ld"), error);
  CHECK_THROWS_WITH_AS(vnni_unpack<2>(view(a.data(), 2, 8), view(b.data(), 5, 4)), doctest::Contains("vnni_unpack: in shape"), error);
  CHECK_THROWS_WITH_AS(vnni_unpack<2>(view(a.data(), 2, 8), mat<bf16>{nullptr, 3, 4, 4}), doctest::Contains("vnni_unpack: out.data"), error);
  CHECK_THROWS_WITH_AS((vnni_pack_kernel<4, std::int8_t>(-1, 3)), doctest::Contains("vnni_pack: k"), error);
  std::vector<std::uint8_t> c(64);
  CHECK_THROWS_AS(vnni_unpack<4>(view(c.data(), 2, 12), view(c.data() + 20, 5, 3)), error);
  // Empty.
  CHECK_NOTHROW(vnni_pack<4>(mat<std::uint8_t>{nullptr, 0, 3, 3}, mat<std::uint8_t>{nullptr, 0, 12, 12}));
  CHECK_NOTHROW(vnni_unpack<2>(mat<bf16>{nullptr, 0, 8, 8}, mat<bf16>{nullptr, 0, 4, 4}));
}
