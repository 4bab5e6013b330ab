#pragma once
// ApproxTrain's AMSim tables (AMsimulator, Gong et al. 2023: MBM_7.bin, MIT_7.bin, ACC_7.bin, ...) read at
// run time, and approx::amsim, the policy that multiplies through the installed one.
//
// File format: one byte per mantissa pair, 2^(2m) bytes, m read from the size (1 <= m <= 7). Entry
// (ma << m) | mb, for ma, mb the top m mantissa bits of the operands, is carry << 7 | mant, mant in the low
// m bits (bits m..6 zero): the product of the significands 1.ma and 1.mb is (1 + mant 2^-m) 2^carry, the
// multiplier's product truncated to m mantissa bits.
//
//   amsim_table                    the bytes, m and where they came from; read / write a file, build one
//                                  from any policy (from_policy<P>(m)), significand(i, j) of an entry
//   amsim_model::install(table)    sets the process-wide table (once, before the first product)
//   amsim                          the policy: lut<amsim_model, 7> with the table's name and an install check
//
// Semantics: mul(a, b) = +-significand(ma, mb) 2^(ea + eb) with ma, mb the top m mantissa bits of a, b
// and the special-value and range rules of policy.hpp. For normal operands with biased exponents
// ea + eb >= 128 and a result exponent ea + eb - 127 + carry <= 254 this is ApproxTrain's AMsimulator bit
// for bit: sign | (ea + eb - 127 + carry) << 23 | mant << (23 - m). Elsewhere AMsimulator has bugs or
// different rules, which tpp does not copy:
//   - zero operands: its zero test `(at & EXPONENT_MASK == 0)` is never true (== binds first), so 0 * x with
//     x >= 2 returns a nonzero value (0 * 2^10 = 2^-117 for a table with entry 0 = 1.0); tpp: +-0;
//   - denormal operands: read as exponent 0 with an implicit 1 (nonzero garbage when the other operand is
//     large); tpp flushes them: +-0;
//   - overflow: the exponent sum spills into bit 31 (2^100 * 2^100 = -2^-56) or gives an Inf / NaN bit
//     pattern; tpp: +-Inf;
//   - underflow: ea + eb <= 127 returns +0 (never -0), even when ea + eb = 127 with a carry, whose
//     product 2^-126 s is normal; tpp: +-0 by the final exponent, so that product is returned;
//   - Inf and NaN operands: treated as numbers with exponent 255; tpp: policy.hpp's NaN / Inf rules.
//
// Design. amsim is a struct deriving from lut<amsim_model, 7>: lut_core builds its 128 x 128 table of
// amsim_model::mul once per process (a function-local static) and amsim takes lut's SIMD gather and the GEMM
// table path (gemm_traits<amsim> is lut's) unchanged. A table with m < 7 is expanded: the top m of the 7
// index bits select its entry. Only two things are amsim's own: name() is the installed table's
// ("amsim:MBM_7.bin") and validate() -- what every op calls when a kernel object is made -- throws unless a
// table is installed, before lut's table is built (a plain alias could not check that and would silently
// build a table of NaN). The installed table lives in a slot (amsim_slot) that freezes the first time a
// product is read from it: lut's table can never disagree with the installed one, an install of a
// different table after that throws, and so does an install after a product was computed with no table
// (that product was NaN, and lut's table is NaN for good). lut.hpp is unchanged: a lut_core parameterised
// by a table source would spare the expansion (a 2^m-sided table for m < 7), but would change a header
// every lut policy relies on, and the derived struct reaches the same fast paths without it.
//
// Thread safety: install and the freeze take a mutex; once frozen the table is immutable and read without
// one. max_rel_error is unknown (infinite): it depends on the file.

#include <atomic>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "gemm_traits.hpp"
#include "lut.hpp"
#include "policy.hpp"

namespace tpp::approx {
namespace detail {
// The shortest decimal that reads back as v ("4.046875"), or hex for a byte ("0x45"), for messages.
inline std::string amsim_number(float v) {
  char buf[32];
  return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}
inline std::string amsim_hex(unsigned v) {
  char buf[16] = "0x";
  return std::string(buf, std::to_chars(buf + 2, buf + sizeof buf, v, 16).ptr);
}
}  // namespace detail

class amsim_table {
 public:
  static constexpr int max_m = 7;

  // Takes 4^m bytes (1 <= m <= 7); source names them in errors and in amsim's name. Throws tpp::error
  // (op "amsim_table", argument source) for another size or an entry with bits m..6 set.
  amsim_table(std::vector<std::uint8_t> bytes, std::string source) : bytes_(std::move(bytes)), source_(std::move(source)) {
    for (int m = 1; m <= max_m; ++m)
      if (bytes_.size() == std::size_t(1) << (2 * m)) m_ = m;
    if (m_ == 0)
      throw error("amsim_table", source_,
                  tpp::detail::concat("has ", std::to_string(bytes_.size()),
                                      " bytes: an AMSim table has 4^m bytes for 1 <= m <= 7 (4, 16, 64, 256, 1024, 4096 "
                                      "or 16384)"));
    const unsigned bad_bits = 0x7fu & ~((1u << m_) - 1u);
    for (std::size_t k = 0; k < bytes_.size(); ++k)
      if (bytes_[k] & bad_bits) {
        const std::size_t side = std::size_t(1) << m_;
        throw error("amsim_table", source_,
                    tpp::detail::concat("entry ", std::to_string(k), " (ma ", std::to_string(k / side), ", mb ",
                                        std::to_string(k % side), ") is ", detail::amsim_hex(bytes_[k]),
                                        ": for m = ", std::to_string(m_), " only the carry (bit 7) and bits ",
                                        std::to_string(m_ - 1), "..0 may be set"));
      }
  }

  // The table in file path. Throws tpp::error (op "amsim_table", argument path) when the file cannot be read,
  // its size is not 4^m for 1 <= m <= 7, or an entry has bits m..6 set.
  static amsim_table read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error("amsim_table", path, "cannot be opened for reading");
    constexpr std::size_t cap = std::size_t(1) << (2 * max_m);
    std::vector<std::uint8_t> bytes(cap + 1);  // one more than the largest table: detects larger files
    in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(bytes.size()));
    if (in.bad() || (in.fail() && !in.eof())) throw error("amsim_table", path, "could not be read");
    bytes.resize(std::size_t(in.gcount()));
    if (bytes.size() > cap) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(path, ec);
      throw error("amsim_table", path,
                  tpp::detail::concat("has ", ec ? std::string("more than 16384") : std::to_string(size),
                                      " bytes: an AMSim table has 4^m bytes for 1 <= m <= 7 (at most 16384)"));
    }
    return amsim_table(std::move(bytes), path);
  }

  // Writes the bytes to path (the AMSim file format). Throws tpp::error (op "amsim_table", argument path).
  void write(const std::string& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw error("amsim_table", path, "cannot be opened for writing");
    out.write(reinterpret_cast<const char*>(bytes_.data()), std::streamsize(bytes_.size()));
    out.close();
    if (!out) throw error("amsim_table", path, "could not be written");
  }

  // The table of policy P at m bits: entry (i, j) from P::mul(1 + i 2^-m, 1 + j 2^-m), truncated (toward
  // zero) to m mantissa bits and a carry. Throws tpp::error for m outside 1..7 and for a product outside
  // [1, 4) (the format's range: mbm<M>'s correction takes its top corner to 4.05).
  template <multiplier P>
  static amsim_table from_policy(int m) {
    if (m < 1 || m > max_m)
      throw error("amsim_table", "m", tpp::detail::concat("is ", std::to_string(m), ": a table needs 1 <= m <= 7"));
    const int side = 1 << m, shift = 23 - m;
    std::vector<std::uint8_t> bytes(std::size_t(side) * std::size_t(side));
    for (int i = 0; i < side; ++i)
      for (int j = 0; j < side; ++j) {
        const float x = detail::from_bits(detail::one_bits | std::uint32_t(i) << shift);
        const float y = detail::from_bits(detail::one_bits | std::uint32_t(j) << shift);
        const float r = P::mul(x, y);
        if (!(r >= 1.0f && r < 4.0f))
          throw error("amsim_table", P::name(),
                      tpp::detail::concat("gives ", detail::amsim_number(r), " for (", detail::amsim_number(x), ", ",
                                          detail::amsim_number(y),
                                          "): an AMSim table holds products in [1, 4)"));
        const std::uint32_t carry = r >= 2.0f ? 1u : 0u;
        const std::uint32_t mant = (detail::bits(carry ? r * 0.5f : r) & detail::man_mask) >> shift;
        bytes[std::size_t(i) * std::size_t(side) + std::size_t(j)] = std::uint8_t(carry << 7 | mant);
      }
    return amsim_table(std::move(bytes), tpp::detail::concat(P::name(), " m=", std::to_string(m)));
  }

  int m() const noexcept { return m_; }
  const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }  // (2^m, 2^m), row ma
  // The file read() was given, or "P m=M" for from_policy, or the constructor's source.
  const std::string& source() const noexcept { return source_; }

  // Entry (i, j) as a value: (1 + mant 2^-m) * (carry ? 2 : 1), in [1, 4). i, j < 2^m.
  float significand(int i, int j) const noexcept {
    const std::uint32_t e = bytes_[(std::size_t(i) << m_) | std::size_t(j)];
    return detail::from_bits(((127u + (e >> 7)) << 23) | (e & 0x7fu) << (23 - m_));
  }
  // The table's product of two significands: their top m mantissa bits index it (exponents are ignored).
  float product(float x, float y) const noexcept {
    const int shift = 23 - m_;
    return significand(int((detail::bits(x) & detail::man_mask) >> shift), int((detail::bits(y) & detail::man_mask) >> shift));
  }
  // Same m and bytes (wherever they came from).
  bool same_entries(const amsim_table& o) const noexcept { return m_ == o.m_ && bytes_ == o.bytes_; }

 private:
  std::vector<std::uint8_t> bytes_;
  std::string source_;
  int m_ = 0;
};

// A table installed once and frozen at its first use (see the top of the file); amsim_model has the
// process's one. Thread-safe.
class amsim_slot {
 public:
  // Sets the table. Before the first use it replaces any earlier one; after it, installing the same
  // entries again does nothing and anything else throws tpp::error (op "amsim").
  void install(amsim_table t) {
    std::lock_guard<std::mutex> g(mutex_);
    if (frozen_.load(std::memory_order_relaxed)) {
      if (table_ && table_->same_entries(t)) return;
      throw error("amsim", tpp::detail::concat("install(", t.source(), ")"),
                  table_ ? tpp::detail::concat("after amsim:", table_->source(),
                                               " was used: the table is fixed at the first product (install once, "
                                               "before any use)")
                         : std::string("after a product was computed with no table installed (it was NaN, and the "
                                       "table is fixed at the first product): install before any use"));
    }
    table_ = std::make_unique<const amsim_table>(std::move(t));
  }

  bool installed() const {
    std::lock_guard<std::mutex> g(mutex_);
    return table_ != nullptr;
  }
  bool frozen() const noexcept { return frozen_.load(std::memory_order_acquire); }

  // The table, fixed from now on (nullptr if none is installed: then none can be, ever).
  const amsim_table* freeze() noexcept {
    if (frozen_.load(std::memory_order_acquire)) return table_.get();
    std::lock_guard<std::mutex> g(mutex_);
    frozen_.store(true, std::memory_order_release);
    return table_.get();
  }

  // The frozen table's product of significands x, y in [1, 2) (amsim_table::product), NaN if it has none.
  float product(float x, float y) noexcept {
    const amsim_table* t = freeze();
    return t ? t->product(x, y) : std::numeric_limits<float>::quiet_NaN();
  }

  // "amsim:" and the table's file name (its source without directories), or "amsim:none".
  std::string name() const {
    std::lock_guard<std::mutex> g(mutex_);
    if (!table_) return "amsim:none";
    return tpp::detail::concat("amsim:", std::filesystem::path(table_->source()).filename().string());
  }

 private:
  mutable std::mutex mutex_;
  std::unique_ptr<const amsim_table> table_;  // changes only while !frozen_, under mutex_
  std::atomic<bool> frozen_{false};
};

// The scalar model of the installed table: mul(x, y) = table.product(x, y) for significands x, y in [1, 2),
// NaN while none is installed. The first call freezes the table.
struct amsim_model {
  static amsim_slot& slot() {
    static amsim_slot s;
    return s;
  }
  static void install(amsim_table t) { slot().install(std::move(t)); }
  static bool installed() { return slot().installed(); }
  static std::string name() { return slot().name(); }
  static float mul(float x, float y) noexcept { return slot().product(x, y); }
};

struct amsim : lut<amsim_model, 7> {
  static std::string name() { return amsim_model::name(); }
  // Throws tpp::error unless a table is installed (then builds lut's table from it, once).
  static void validate() {
    if (!amsim_model::installed())
      throw error("amsim", "table",
                  "is not installed: call approx::amsim_model::install(approx::amsim_table::read(FILE)) before any "
                  "op uses amsim");
    lut<amsim_model, 7>::validate();
  }
};

template <>
struct gemm_traits<amsim> : gemm_traits<lut<amsim_model, 7>> {};

}  // namespace tpp::approx
