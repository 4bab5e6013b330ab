#pragma once
// Scratch memory with an owner.
//
// A kernel object that needs scratch memory says how much (workspace_bytes()), and each of its calls takes
// it from one of two places:
//   - the caller's: a tpp::workspace of at least workspace_bytes() bytes (oneDNN's user scratchpad), any
//     alignment, passed as the call's last argument; too small throws tpp::error naming the op and
//     "workspace";
//   - by default, a frame on the calling thread's arena: a stack of 64-byte aligned blocks, pushed when
//     the call starts and popped when it returns. A call made while another holds its buffers (a GEMM
//     inside an epilogue or inside a norm's loop, a layer calling a GEMM) pushes a frame above the
//     other's, so composed ops never share a buffer. The blocks are kept (grow-only) for the thread's
//     next calls; when the stack is empty and spans several blocks, they are merged into one.
// Inside a call, regions are named variables carved from the frame in order by scratch::take<T>(n): n
// elements of T at a 64-byte boundary. A kernel computes workspace_bytes() with a scratch_size that
// takes the same regions.
//
//   workspace                      {data, bytes}: caller memory (empty: use the thread's arena)
//   scratch s(ws, op)              one call's frame; s.take<T>(n) -> T*; popped by ~scratch
//   scratch_size z; z.take<T>(n)   the bytes the same takes need; z.bytes()
//
// Each OpenMP thread has its own arena (thread_local), so a kernel called from a caller's parallel region
// uses the calling thread's. Contents do not survive the frame.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"

namespace tpp {

// Caller-provided scratch memory for one kernel call (data may be unaligned; bytes >= workspace_bytes()).
struct workspace {
  void* data = nullptr;
  std::size_t bytes = 0;
  bool empty() const noexcept { return data == nullptr; }
};

namespace detail {

inline constexpr std::size_t scratch_align = 64;

constexpr std::size_t round_up(std::size_t n, std::size_t a) noexcept { return (n + a - 1) / a * a; }

// The bytes of n elements of T in a scratch region, rounded to the region alignment.
template <class T>
constexpr std::size_t region_bytes(std::size_t n) noexcept {
  return round_up(n * sizeof(T), scratch_align);
}

// A thread's arena: blocks of bytes used as one stack. A frame is the stack's top when it began (block and
// offset); a take that does not fit the current block moves to the next (allocating one at least twice the
// size of the last, so pointers already handed out never move).
class arena {
 public:
  struct mark {
    std::size_t block, offset;
  };

  arena() = default;
  arena(const arena&) = delete;
  arena& operator=(const arena&) = delete;
  ~arena() {
    for (block& b : blocks_) std::free(b.data);
  }

  mark top() const noexcept { return {current_, offset_}; }

  std::byte* take(std::size_t bytes) {
    bytes = round_up(bytes, scratch_align);
    if (blocks_.empty()) grow(bytes);
    while (offset_ + bytes > blocks_[current_].size) {
      if (current_ + 1 == blocks_.size()) grow(bytes);
      ++current_;
      offset_ = 0;
    }
    std::byte* p = blocks_[current_].data + offset_;
    offset_ += bytes;
    ++depth_;
    return p;
  }

  // Back to a frame's start (frames end in the reverse order they began).
  void release(mark m, std::size_t takes) noexcept {
    current_ = m.block;
    offset_ = m.offset;
    depth_ -= takes;
    if (depth_ == 0 && blocks_.size() > 1) merge();
  }

  static arena& of_this_thread() noexcept {
    thread_local arena a;
    return a;
  }

 private:
  struct block {
    std::byte* data;
    std::size_t size;
  };

  void grow(std::size_t at_least) {
    std::size_t size = std::max<std::size_t>(at_least, std::size_t(1) << 16);
    if (!blocks_.empty()) size = std::max(size, 2 * blocks_.back().size);
    auto* p = static_cast<std::byte*>(std::aligned_alloc(scratch_align, round_up(size, scratch_align)));
    if (p == nullptr) throw std::bad_alloc();
    blocks_.push_back({p, size});
  }

  // Nothing is held: replace the blocks by one of their total size (the next calls fit in one block).
  void merge() noexcept {
    std::size_t total = 0;
    for (const block& b : blocks_) total += b.size;
    auto* p = static_cast<std::byte*>(std::aligned_alloc(scratch_align, round_up(total, scratch_align)));
    if (p == nullptr) return;  // keep the blocks as they are
    for (block& b : blocks_) std::free(b.data);
    blocks_.assign(1, block{p, total});
    current_ = 0;
    offset_ = 0;
  }

  std::vector<block> blocks_;
  std::size_t current_ = 0, offset_ = 0, depth_ = 0;
};

}  // namespace detail

// The bytes a sequence of scratch::take calls needs in a caller's workspace (including the slack for
// aligning an unaligned workspace).
class scratch_size {
 public:
  template <class T>
  scratch_size& take(std::size_t n) noexcept {
    bytes_ += detail::region_bytes<T>(n);
    return *this;
  }
  std::size_t bytes() const noexcept { return bytes_ == 0 ? 0 : bytes_ + detail::scratch_align; }

 private:
  std::size_t bytes_ = 0;
};

// One call's scratch memory: the caller's workspace when given, else a frame on this thread's arena.
class scratch {
 public:
  explicit scratch(workspace ws = {}, std::string_view op = "scratch") : ws_(ws), op_(op) {
    if (!ws_.empty()) {
      const auto base = reinterpret_cast<std::uintptr_t>(ws_.data);
      const std::size_t skip = detail::round_up(base, detail::scratch_align) - base;
      next_ = static_cast<std::byte*>(ws_.data) + skip;
      left_ = ws_.bytes >= skip ? ws_.bytes - skip : 0;
    } else {
      mark_ = detail::arena::of_this_thread().top();
    }
  }
  scratch(const scratch&) = delete;
  scratch& operator=(const scratch&) = delete;
  ~scratch() {
    if (ws_.empty() && takes_ > 0) detail::arena::of_this_thread().release(mark_, takes_);
  }

  // n elements of T at a 64-byte boundary, valid until this scratch ends.
  template <class T>
  T* take(std::size_t n) {
    const std::size_t bytes = detail::region_bytes<T>(n);
    if (!ws_.empty()) {
      if (bytes > left_) [[unlikely]]
        throw error(op_, "workspace",
                    detail::concat("(", std::to_string(ws_.bytes), " bytes) is smaller than the call needs (see workspace_bytes())"));
      std::byte* p = next_;
      next_ += bytes;
      left_ -= bytes;
      return reinterpret_cast<T*>(p);
    }
    ++takes_;
    return reinterpret_cast<T*>(detail::arena::of_this_thread().take(bytes));
  }

 private:
  workspace ws_;
  std::string_view op_;
  detail::arena::mark mark_{};
  std::byte* next_ = nullptr;
  std::size_t left_ = 0, takes_ = 0;
};

}  // namespace tpp
