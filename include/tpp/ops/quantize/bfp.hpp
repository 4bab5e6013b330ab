#pragma once
// Block floating point (LightNorm): each row of an (M, N) view splits into blocks of B consecutive values
// (the last block of a row may be shorter); a block shares one exponent E and each value keeps a sign and an
// m-bit magnitude k in [0, 2^m - 1]: x ~ +-k 2^(E - m + 1), the step 2^(E - m + 1).
//   nearest (default): k = rne(|x| / step), E = the exponent of the block's largest finite |x| rounded to m
//   significant bits (so the largest k fits m bits): |error| <= step / 2 for every finite value;
//   truncate: k = floor(|x| / step), E = the exponent of the largest finite |x|: |error| < step.
// E >= m - 150 (the step is at least the smallest denormal, so every code decodes exactly); a block whose
// rounded maximum reaches 2^128 keeps E = 127 and saturates k at 2^m - 1 (error < one step).
//
//   bfp_quantize    x -> mantissas (signed codes +-k, int8 for m <= 7 or int16 for m <= 15, (M, N)) and
//                   exponents (int16 E, (M, bfp_blocks(N, B)))
//   bfp_dequantize  y = k 2^(E - m + 1) (exact in fp32; a bf16 y rounds to nearest even)
//   bfp_fake_quant  fp32 / bf16 -> fp32 / bf16, the BFP value of x in one pass (m <= 24); y may be the very
//                   same view as x (in place)
// No Policy product: every scaling is by a power of two, exact.
//
// Special values: fake-quant passes NaN and +-Inf through (their very bits); quantize codes Inf as
// +-(2^m - 1) and NaN as 0. Sign of zero: +-0 in, +-0 out (fake-quant), code 0.
//
// How: BFP works on groups of W blocks, block k of a group in lane k. A group's maxima come from one
// transposing reduction (arch/block_max.hpp, AVX-512; a horizontal max per block elsewhere: a scalar search
// per block cost four times the block's own arithmetic at B = 16), its exponents and scale factors are
// computed in lanes (bfp_exponents from the maxima's bits, bfp_group_scales), round to nearest goes by magic
// constants (two adds a vector) where the group allows, and bfp_fake_quant writes an fp32 output past the
// caches (core/stream.hpp) when x and y together hold at least tpp::stream_threshold bytes, where its rows
// start on vector boundaries (x86 AVX / AVX-512) and B is a multiple of the vector width.
//
//   bfp_quantize_kernel<TI, TM> k(rows, cols, bfp_params);     k(x, mantissa, exponent)
//   bfp_dequantize_kernel<TM, TO> k(rows, cols, bfp_params);   k(mantissa, exponent, y)
//   bfp_fake_quant_kernel<TI, TO> k(rows, cols, bfp_params);   k(x, y)
//   bfp_quantize(x, mantissa, exponent, p), bfp_dequantize(mantissa, exponent, y, p), bfp_fake_quant(x, y, p)

#include "../../arch/block_max.hpp"
#include "../../arch/scale.hpp"
#include "common.hpp"

namespace tpp {

struct bfp_params {
  index_t block = 16;     // B >= 1 values per shared exponent, along a row
  int mantissa_bits = 8;  // m: 1..7 (int8 codes), 1..15 (int16 codes), 1..24 (fake-quant)
  bool truncate = false;  // false: round to nearest even; true: toward zero
};

// Shared-exponent blocks of a row of cols values.
constexpr index_t bfp_blocks(index_t cols, index_t block) noexcept { return block > 0 ? (cols + block - 1) / block : 0; }

namespace detail::quant {

inline VI iclamp(VI v, std::int32_t lo, std::int32_t hi) noexcept {
  return lanes::min_int(lanes::max_int(v, VI(lo)), VI(hi));
}

// 2^e for integer lanes e in [-126, 127].
inline V pow2_lanes(VI e) noexcept { return lanes::as_f32((e + VI(127)) << 23); }

// x 2^n, n an integer in [-277, 277]: x f1 f2 with 2^n split into two normal floats, or one vscalefps by n
// where the arch has it (arch/scale.hpp). Both are exact wherever x 2^n is representable; where it is not,
// they differ only below 2^-126, which rounds to the code 0 either way (see bfp_magnitude).
template <class L>
L scale_by_pow2(L x, L n, L f1, L f2) noexcept {
  if constexpr (!lanes::is_scalar<L>)
    if constexpr (arch::scalef_instruction<typename L::arch_type>) return arch::scalef<typename L::arch_type>(x, n);
  return x * f1 * f2;
}

struct pow2_factor {
  V n, f1, f2;
  V operator()(V x) const noexcept { return scale_by_pow2(x, n, f1, f2); }
};

// The power-of-two factors of a block with shared exponent e that take |x| to k's scale (up: 2^u,
// u = m - 1 - e in [m - 128, 149]) and k back (down: 2^-u).
struct bfp_scale {
  float u, d, magic, up1, up2, down1, down2;  // d = -u; magic: see bfp_group_scales
  pow2_factor up() const noexcept { return {V(u), V(up1), V(up2)}; }
  pow2_factor down() const noexcept { return {V(d), V(down1), V(down2)}; }
};

// How a group's blocks round: toward zero or to nearest, and (nearest) whether by the magic constants; and
// whether all the group's values are known to be finite (no NaN or Inf to pass through).
template <bool Truncate, bool Magic, bool Finite = false>
struct bfp_mode {
  static constexpr bool truncate = Truncate, magic = Magic, finite = Finite;
};

// The scales of a group of up to W blocks, block k in element k. magic[k] = 1.5 2^(s + 23), s = e - m + 1
// the step's exponent: for |x| < 2^(s + 22), x + magic lies in [2^(s+23), 2^(s+24)), whose spacing is the
// step, so (x + magic) - magic is x rounded to nearest even on the step's grid, exactly (both sums are
// exact or correctly rounded once), sign and all: 2 ops for abs, scaling up, rounding and scaling back.
// Every finite |x| of a block is below 2^(e + 1) = 2^(s + m), so it applies when m <= 22 and the constant
// is finite (s <= 104); magic_ok says so for the whole group (and rounding is to nearest). Blocks at e =
// 127 are the only ones that saturate, and s <= 104 excludes them, so no clamp is needed either.
struct bfp_group_scales {
  bool magic_ok;
  bool finite;  // every value of the group is finite or a quiet NaN (false: unknown; see gathered_maxima)
  alignas(64) std::int32_t e[W];
  alignas(64) float magic[W];
  alignas(64) float u[W];
  alignas(64) float d[W];
  alignas(64) float up1[W];
  alignas(64) float up2[W];
  alignas(64) float down1[W];
  alignas(64) float down2[W];

  // The lanes' exponents e in [m - 150, 127]; magic_allowed: whether the caller rounds to nearest and can
  // use the magic constants. Where magic_ok, the factors are not computed (they keep whatever they held).
  void set(VI ev, int m, bool magic_allowed) noexcept {
    const VI se = ev - VI(m - 1);  // the step's exponent s, in [-149, 127]
    store_lanes(e, ev);
    store_lanes(magic, lanes::as_f32(lanes::as_u32(lanes::min_int(se + VI(150), VI(254)) << 23) | VU(0x00400000u)));
    magic_ok = magic_allowed && m <= 22 && !lanes::any(se > VI(104));
    if (magic_ok) return;
    const VI un = VI(m - 1) - ev, u1 = iclamp(un, -126, 127), dn = -un, d1 = lanes::max_int(dn, VI(-126));
    store_lanes(u, lanes::to_f32(un));
    store_lanes(d, lanes::to_f32(dn));
    store_lanes(up1, pow2_lanes(u1));
    store_lanes(up2, pow2_lanes(un - u1));
    store_lanes(down1, pow2_lanes(d1));
    store_lanes(down2, pow2_lanes(dn - d1));
  }
  bfp_scale operator[](index_t k) const noexcept { return {u[k], d[k], magic[k], up1[k], up2[k], down1[k], down2[k]}; }

 private:
  template <class T, class L>
  static void store_lanes(T* p, L v) noexcept {
    if constexpr (W == 1)
      *p = v;
    else
      v.store_aligned(p);
  }
};

// The shared exponents of blocks whose largest finite |x| are the lanes of maxabs (0 for an all-zero,
// all-NaN or absent block): e = max(floor(log2 maxabs), m - 150), plus 1 where (rounding to nearest) the
// maximum rounds up to 2^m at e's step; at most 127.
inline VI bfp_exponents(V maxabs, int m, bool truncate) noexcept {
  const VU b = lanes::as_u32(maxabs);
  if (!lanes::any(b - VU(1u) < VU(0x007fffffu))) {  // no subnormal lane (the usual case): the rounding in the bits, ~9 ops
    VU r = b;  // b rounded to m significant bits, to nearest even: a carry into the exponent field is the +1
    if (const int d = 24 - m; !truncate && d > 0)  // (or the implicit bit: m = 1 keeps it alone, always odd)
      r = b + VU((1u << (d - 1)) - 1u) + (((b | VU(0x00800000u)) >> d) & VU(1u));
    return lanes::min_int(lanes::select(lanes::as_i32(b) == VI(0), VI(m - 150), lanes::as_i32(r >> 23) - VI(127)), VI(127));
  }
  const VI be = lanes::as_i32(b >> 23);
  // a denormal: bit_width(b) - 150 (b < 2^23: exact)
  const VI sub = lanes::as_i32(lanes::as_u32(lanes::to_f32(lanes::as_i32(b))) >> 23) - VI(276);
  VI e = lanes::max_int(lanes::select(be > VI(0), be - VI(127), sub), VI(m - 150));  // 0: sub = -276, so m - 150
  if (!truncate) {
    const VI u = VI(m - 1) - e, u1 = iclamp(u, -126, 127);
    const V t = maxabs * pow2_lanes(u1) * pow2_lanes(u - u1);  // exact: below 2^(m+1) <= 2^25
    e = e + lanes::to_i32(lanes::select(lanes::round_even(t) >= V(pow2f(m)), V(1.0f), V(0.0f)));
  }
  return lanes::min_int(e, VI(127));
}

// k = round(|x| / step) (truncate: toward zero), at most 2^m - 1: Inf gives 2^m - 1, NaN NaN or 2^m - 1
// (min_second_on_nan gives its second operand), the caller's to replace. |x| 2^u below 2^-126 (where
// pow2_factor's two forms may round differently) is below 1/2: k = 0 either way.
template <bool Truncate>
V bfp_magnitude(V x, const pow2_factor& up, V kmax) noexcept {
  const V t = up(lanes::abs(x));
  return lanes::min_second_on_nan(Truncate ? lanes::floor(t) : lanes::round_even(t), kmax);
}

inline V finite_abs(V v) noexcept {
  const V a = lanes::abs(v);
  return lanes::select(a < V(inf), a, V(0.0f));
}

// The largest finite |x| of len values.
template <class T>
float block_maxabs(const T* p, index_t len) noexcept {
  V m(0.0f);
  chunks(len, p, [&](index_t j, index_t n) { m = lanes::max_propagating_nan(m, finite_abs(quant::load(p + j, n))); });
  return lanes::hmax(m);
}

// The maxima of 16 blocks' |x| as they are gathered, block k in c[k] (arch::block_maxima archs): its
// values' bits folded lane-wise (B = 16: the block's own vector, raw, its abs taken by the transposition's
// first round; B = 16 t: pairs of vectors through larger_magnitude_bits (vrangeps), then unsigned maxima,
// so a vector and a half of loads cost one op). A lane at or above Inf's bits (0x7f800000) flags a block
// holding Inf or a signalling NaN (vrangeps returns it quietened); a quiet NaN beside a number gives the
// number, so such a block is not flagged: its maximum is the largest finite |x| all the same, and the quiet
// NaN passes unchanged through the magic-constant rounding, the one path that trusts the flag. (Were quiet
// NaNs kept, their blocks would be flagged.) Elsewhere a stand-in that is never used (available = false).
template <class L>
struct gathered_maxima_of {
  static constexpr bool available = false;
  template <class T>
  void add(index_t, const T*, index_t) noexcept {}
  template <class T>
  void add_scan(index_t, const T*, index_t) noexcept {}
  template <class T>
  V maxabs(bool, const T*, index_t, index_t, index_t, index_t, bool& finite) noexcept {
    finite = false;
    return V(0.0f);
  }
};

template <class A>
  requires arch::block_maxima<A>
struct gathered_maxima_of<xsimd::batch<float, A>> {
  using F = xsimd::batch<float, A>;
  using U = xsimd::batch<std::uint32_t, A>;
  static constexpr bool available = true;
  arch::u32_registers<A> c[16];

  static U abs_bits(F v) noexcept { return lanes::as_u32(v) & U(0x7fffffffu); }

  // Block k, whole, of B = 16 t values from p.
  template <class T>
  void add(index_t k, const T* p, index_t B) noexcept {
    if (B == 16) {
      c[k] = lanes::as_u32(quant::load(p, W));
      return;
    }
    U m(0u);
    index_t j = 0;
    for (; j + 32 <= B; j += 32)
      m = lanes::max_int(m, arch::larger_magnitude_bits<A>(quant::load(p + j, W), quant::load(p + j + 16, W)));
    if (j < B) m = lanes::max_int(m, abs_bits(quant::load(p + j, W)));
    c[k] = m;
  }

  // Block k of len values from p (0 <= len, any length), prefetching ahead. (Into a register: c[k] itself
  // would be stored and reloaded per vector.)
  template <class T>
  void add_scan(index_t k, const T* p, index_t len) noexcept {
    U ck(0u);
    index_t j = 0;
    for (; j + W <= len; j += W) {
      prefetch_ahead(p + j);
      ck = lanes::max_int(ck, abs_bits(quant::load(p + j, W)));
    }
    if (j < len) ck = lanes::max_int(ck, abs_bits(quant::load(p + j, len - j)));
    c[k] = ck;
  }

  // The blocks' largest finite |x|, lane k for block k (whose nb <= 16 values, or fewer at the row's end,
  // start at xr + (b0 + k) B); c[k] past nb must be 0. finite: no lane is flagged.
  template <class T>
  F maxabs(bool raw, const T* xr, index_t cols, index_t block, index_t b0, index_t nb, bool& finite) noexcept {
    const U mx = raw ? arch::transpose_max<true, A>(c) : arch::transpose_max<false, A>(c);
    const auto special = lanes::greater_equal(mx, 0x7f800000u);
    finite = !lanes::any(special);
    if (finite) return lanes::as_f32(mx);
    const std::uint64_t flagged = lanes::bits(special);
    alignas(64) float f[16];
    lanes::as_f32(mx).store_aligned(f);
    for (index_t k = 0; k < nb; ++k)
      if ((flagged >> k) & 1) f[k] = block_maxabs(xr + (b0 + k) * block, std::min(block, cols - (b0 + k) * block));
    return F::load_aligned(f);
  }
};

using gathered_maxima = gathered_maxima_of<V>;

// The largest finite |x| of blocks b0 .. b0 + nb - 1 of a row of cols (nb <= W), block k in lane k (0 past
// nb), and finite = whether all their values are finite or quiet NaNs (false: unknown).
// Where gathered_maxima is available, any B: the maxima of |x|'s bits (unsigned integers order as the
// values) come out of one transposing reduction (partial loads and blocks past nb give 0), flagged lanes
// are found again by a scan of their blocks. Elsewhere a horizontal maximum per block.
template <class T>
V group_maxabs(const T* xr, index_t cols, index_t block, index_t b0, index_t nb, bool& finite) noexcept {
  finite = false;
  if constexpr (gathered_maxima::available) {
    gathered_maxima g;
    const T* p = xr + b0 * block;
    // B = 16: unrolled, the maxima stay in registers; no software prefetch (it measured slower here)
    if (block == 16 && nb == 16 && (b0 + 16) * 16 <= cols) {
#pragma GCC unroll 16
      for (index_t k = 0; k < 16; ++k) g.add(k, p + k * 16, 16);
      return g.maxabs(true, xr, cols, block, b0, nb, finite);
    }
    if (block % 16 == 0 && nb == 16 && (b0 + 16) * block <= cols) {  // whole blocks of whole vectors
      for (index_t k = 0; k < 16; ++k) g.add(k, p + k * block, block);
      return g.maxabs(false, xr, cols, block, b0, nb, finite);
    }
    for (index_t k = 0; k < 16; ++k, p += block) g.add_scan(k, p, k < nb ? std::min(block, cols - (b0 + k) * block) : 0);
    return g.maxabs(false, xr, cols, block, b0, nb, finite);
  }
  alignas(64) float mx[W] = {};
  for (index_t k = 0; k < nb; ++k) {
    const index_t j0 = (b0 + k) * block;
    mx[k] = block_maxabs(xr + j0, std::min(block, cols - j0));
  }
  return quant::load(mx, W);
}

// The blocks of x, W at a time (a group): group(i, b0, n, scales) for the n blocks of row i from block b0,
// then f = row(i) (a functor holding the row's pointers, a local here so its fields stay in registers:
// the stores of vector intrinsics may alias anything in memory) and f(j, c, scale, mode) over their
// columns, c <= W consecutive columns of one block from column j, with mode a bfp_mode (magic where the
// group's magic_ok). (Magic: whether f rounds by the magic constants where it can; otherwise it is always
// given the factors.) Where W divides B, a whole group's blocks are visited in a plain loop of whole vectors.
// Software-pipelined two groups deep (scales in a ring of three): the group after next has its scales
// computed during this group's step, so the dependency chain from its loads through the reduction to its
// exponents overlaps a whole group's work. Where gathered_maxima is available, when that group is 16 whole
// blocks of 2 or more whole vectors each, it is gathered block by block between this group's blocks (its
// loads, from DRAM perhaps, interleave with this group's stores as in a copy loop, faster than all loads
// first), and reduced after them; otherwise its scales come first.
template <bool Magic, class TI, class G, class R>
TPP_FLATTEN void bfp_blocks_of(mat<const TI> x, const bfp_params& p, G&& group, R&& row) {
  const index_t B = p.block, nb = bfp_blocks(x.cols, B), groups = (nb + W - 1) / W;
  const int m = p.mantissa_bits;
  if (x.rows <= 0 || groups <= 0) return;
  // whether group q of a row is gathered between the blocks of the group before it
  const auto gathers = [&](index_t q) {
    return gathered_maxima::available && B % W == 0 && B > W && (q + 1) * W <= nb && (q + 1) * W * B <= x.cols;
  };
  const auto run = [&](auto truncate) {
    bfp_group_scales g[3] = {};  // (zeroed once: factors a magic group skips are never indeterminate)
    const auto finish = [&](V mx, bool finite, bfp_group_scales& out) {
      out.set(bfp_exponents(mx, m, truncate), m, Magic && !truncate);
      out.finite = finite;
    };
    // group (i, q): row i's blocks from q W, its scales in g[t % 3] at step t
    const auto scales = [&](index_t i, index_t q, bfp_group_scales& out) {
      bool finite = false;
      const V mx = group_maxabs(x.row(i), x.cols, B, q * W, std::min(W, nb - q * W), finite);
      finish(mx, finite, out);
    };
    const auto advance = [&](index_t& i, index_t& q) {  // (counters, not a division per group)
      if (++q == groups) q = 0, ++i;
    };
    gathered_maxima later;  // the maxima of the group after next, gathered during this group
    index_t i = 0, q = 0, i2 = 0, q2 = 0;  // this group, the group after next
    scales(0, 0, g[0]);
    advance(i2, q2);
    if (i2 < x.rows) scales(i2, q2, g[1]);
    advance(i2, q2);
    for (index_t t = 0; i < x.rows; ++t) {
      const bool gather = i2 < x.rows && gathers(q2);
      if (i2 < x.rows && !gather) scales(i2, q2, g[(t + 2) % 3]);
      const TI* next = gather ? x.row(i2) + q2 * W * B : nullptr;
      index_t gathered = 0;  // blocks of that group gathered so far
      const bfp_group_scales& gt = g[t % 3];
      const index_t b0 = q * W, n = std::min(W, nb - b0);
      const TI* xr = x.row(i);
      group(i, b0, n, gt);
      const auto f = row(i);
      const auto visit = [&](auto mode) {
        if (B == W && (b0 + n) * B <= x.cols) {  // (B = 16 on AVX-512: one vector a block)
          for (index_t k = 0; k < n; ++k) f((b0 + k) * W, W, gt[k], mode);
        } else if (B % W == 0 && (b0 + n) * B <= x.cols) {
          for (index_t k = 0; k < n; ++k) {
            if (gather) later.add(gathered++, next + k * B, B);
            const bfp_scale s = gt[k];
            for (index_t j = (b0 + k) * B, end = j + B; j < end; j += W) f(j, W, s, mode);
          }
        } else {
          for (index_t k = 0; k < n; ++k) {
            const bfp_scale s = gt[k];
            const index_t j0 = (b0 + k) * B;
            chunks(std::min(B, x.cols - j0), xr + j0, [&](index_t j, index_t c) { f(j0 + j, c, s, mode); });
          }
        }
      };
      if constexpr (decltype(truncate)::value)
        visit(bfp_mode<true, false>{});
      else if (gt.magic_ok && gt.finite)
        visit(bfp_mode<false, true, true>{});
      else if (gt.magic_ok)
        visit(bfp_mode<false, true>{});
      else
        visit(bfp_mode<false, false>{});
      if (gather) {
        for (; gathered < W; ++gathered) later.add(gathered, next + gathered * B, B);
        bool finite = false;
        const V mx = later.maxabs(false, x.row(i2), x.cols, B, q2 * W, W, finite);
        finish(mx, finite, g[(t + 2) % 3]);
      }
      advance(i, q);
      advance(i2, q2);
    }
  };
  if (p.truncate)
    run(std::true_type{});
  else
    run(std::false_type{});
}

// The most mantissa bits (sign apart) a TM mantissa holds.
template <class TM>
inline constexpr int mantissa_bits_of = int(sizeof(TM)) * 8 - 1;

// The mantissa code types: int8 or int16.
template <class TM>
concept mantissa_code = std::same_as<TM, std::int8_t> || std::same_as<TM, std::int16_t>;

inline void check_bfp_params(const bfp_params& p, int max_bits, std::string_view op) {
  if (p.block < 1) throw error(op, "block", concat("(", std::to_string(p.block), ") is not >= 1"));
  if (p.mantissa_bits < 1 || p.mantissa_bits > max_bits)
    throw error(op, "mantissa_bits",
                concat("(", std::to_string(p.mantissa_bits), ") is outside [1, ", std::to_string(max_bits), "]"));
}

}  // namespace detail::quant

// x (rows, cols) -> mantissa codes +-k (rows, cols) and shared exponents E (rows, bfp_blocks(cols, B)).
template <detail::float_element TI = float, detail::quant::mantissa_code TM = std::int16_t>
class bfp_quantize_kernel : public detail::params_kernel<bfp_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("bfp_quantize", "");

  bfp_quantize_kernel(index_t rows, index_t cols, bfp_params p) : params_kernel(label, rows, cols, p) {
    detail::quant::check_bfp_params(p, detail::quant::mantissa_bits_of<TM>, label);
  }

  void operator()(mat<const TI> x, mat<TM> mantissa, mat<std::int16_t> exponent) const {
    namespace quant = detail::quant;
    using quant::V;
    detail::check_in_out(x, mantissa, rows_, cols_, label, "x", "mantissa");
    detail::check_view(exponent, rows_, bfp_blocks(cols_, params_.block), label, "exponent", "the blocks\'");
    detail::check_alias(exponent, x, label, "exponent", "x");
    detail::check_alias(exponent, mantissa, label, "exponent", "mantissa");
    const V kmax(quant::pow2f(params_.mantissa_bits) - 1.0f);
    quant::bfp_blocks_of<false>(
        x, params_,
        [=](index_t i, index_t b0, index_t n, const quant::bfp_group_scales& g) {
          for (index_t k = 0; k < n; ++k) exponent(i, b0 + k) = std::int16_t(g.e[k]);
        },
        [=](index_t i) {
          return [xr = x.row(i), mr = mantissa.row(i), kmax](index_t j, index_t n, const quant::bfp_scale& s, auto mode) {
            const V v = quant::load(xr + j, n);
            const V k = quant::bfp_magnitude<decltype(mode)::truncate>(v, s.up(), kmax);
            lanes::store_int(mr + j, lanes::to_i32(lanes::copysign(lanes::select(lanes::is_nan(v), V(0.0f), k), v)), n);
          };
        });
  }
};

// y = k 2^(E - m + 1) (exact in fp32; a bf16 y rounds to nearest even). Only block and mantissa_bits are used.
template <detail::quant::mantissa_code TM = std::int16_t, detail::float_output TO = float>
class bfp_dequantize_kernel : public detail::params_kernel<bfp_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("bfp_dequantize", "");

  bfp_dequantize_kernel(index_t rows, index_t cols, bfp_params p) : params_kernel(label, rows, cols, p) {
    detail::quant::check_bfp_params(p, detail::quant::mantissa_bits_of<TM>, label);
  }

  void operator()(mat<const TM> mantissa, mat<const std::int16_t> exponent, mat<TO> y) const {
    namespace quant = detail::quant;
    using quant::W;
    detail::check_in_out(mantissa, y, rows_, cols_, label, "mantissa", "y");
    detail::check_view(exponent, rows_, bfp_blocks(cols_, params_.block), label, "exponent", "the blocks\'");
    detail::check_alias(y, exponent, label, "y", "exponent");
    const int m = params_.mantissa_bits;
    const index_t nb = bfp_blocks(cols_, params_.block);
    quant::bfp_group_scales g;
    for (index_t i = 0; i < rows_; ++i)
      for (index_t b0 = 0; b0 < nb; b0 += W) {
        const index_t n = std::min(W, nb - b0);
        const quant::VI e = lanes::to_i32(quant::load(exponent.row(i) + b0, n));  // (partial: 0 past n)
        g.set(quant::iclamp(e, m - 150, 127), m, false);
        for (index_t k = 0; k < n; ++k) {
          const index_t j0 = (b0 + k) * params_.block;
          const quant::pow2_factor down = g[k].down();
          const TM* mr = mantissa.row(i) + j0;
          TO* yr = y.row(i) + j0;
          quant::chunks(std::min(params_.block, cols_ - j0),
                        [&](index_t j, index_t c) { lanes::store(yr + j, down(quant::load(mr + j, c)), c); });
        }
      }
  }
};

// y = the BFP value of x, in one pass (non-finite x pass through). y may be the very same view as x.
template <detail::float_element TI = float, detail::float_output TO = float>
class bfp_fake_quant_kernel : public detail::params_kernel<bfp_params> {
 public:
  static constexpr detail::op_label label = detail::make_label("bfp_fake_quant", "");

  bfp_fake_quant_kernel(index_t rows, index_t cols, bfp_params p) : params_kernel(label, rows, cols, p) {
    detail::quant::check_bfp_params(p, 24, label);
  }

  void operator()(mat<const TI> x, mat<TO> y) const {
    namespace quant = detail::quant;
    using quant::V, quant::VU;
    detail::check_in_out(x, y, rows_, cols_, label, "x", "y");
    const V kmax(quant::pow2f(params_.mantissa_bits) - 1.0f);
    const bool stream = detail::streams(y, detail::view_bytes(x) + detail::view_bytes(y)) &&
                        params_.block % quant::W == 0;  // (then every full vector is aligned)
    quant::bfp_blocks_of<true>(
        x, params_, [](index_t, index_t, index_t, const quant::bfp_group_scales&) {},
        [=](index_t i) {
          return [xr = x.row(i), yr = y.row(i), kmax, stream](index_t j, index_t n, const quant::bfp_scale& s, auto mode) {
            const V v = quant::load(xr + j, n);
            V q;
            if constexpr (decltype(mode)::magic) {  // the sign of v where the rounding gave +0
              const V c(s.magic);
              q = lanes::as_f32(lanes::as_u32((v + c) - c) | (lanes::as_u32(v) & VU(0x80000000u)));
            } else {
              q = lanes::copysign(s.down()(quant::bfp_magnitude<decltype(mode)::truncate>(v, s.up(), kmax)), v);
            }
            if constexpr (!decltype(mode)::finite) q = lanes::finite_else(q, v);  // NaN, Inf pass through
            quant::store_out(yr + j, q, n, stream);
          };
        });
    if (stream) detail::stream_fence();
  }
};

template <class TI, class TM>
void bfp_quantize(mat<TI> x, mat<TM> mantissa, mat<std::int16_t> exponent, bfp_params p) {
  detail::kernel_for<bfp_quantize_kernel<std::remove_const_t<TI>, TM>>(mantissa, "mantissa", p)(x, mantissa, exponent);
}

template <class TM, class TE, class TO>
  requires std::same_as<std::remove_const_t<TE>, std::int16_t>
void bfp_dequantize(mat<TM> mantissa, mat<TE> exponent, mat<TO> y, bfp_params p) {
  detail::kernel_for<bfp_dequantize_kernel<std::remove_const_t<TM>, TO>>(y, "y", p)(mantissa, exponent, y);
}

template <class TI, class TO>
void bfp_fake_quant(mat<TI> x, mat<TO> y, bfp_params p) {
  detail::kernel_for<bfp_fake_quant_kernel<std::remove_const_t<TI>, TO>>(y, "y", p)(x, y);
}

}  // namespace tpp
