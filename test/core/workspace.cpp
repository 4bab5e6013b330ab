// core/workspace.hpp: frames nest without sharing bytes, are released in order (the next frame reuses the
// same memory), survive growth (pointers handed out never move), a caller's workspace is used as given
// and checked for size, and each OpenMP thread has an arena of its own.

#include <algorithm>
#include <set>

#include <tpp/core/workspace.hpp>

#include "support.hpp"

namespace {

bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

}  // namespace

TEST_CASE("workspace: nested frames get disjoint, aligned regions and release in order") {
  {
    tpp::scratch outer;
    float* a = outer.take<float>(1000);
    double* b = outer.take<double>(3);
    CHECK(aligned(a));
    CHECK(aligned(b));
    CHECK(reinterpret_cast<std::byte*>(b) >= reinterpret_cast<std::byte*>(a + 1000));
    std::fill_n(a, 1000, 1.0f);
    {
      tpp::scratch inner;  // a call made while the outer one holds a and b
      float* c = inner.take<float>(1 << 20);  // larger than the first block: a new block, a and b stay put
      CHECK(aligned(c));
      const auto* cb = reinterpret_cast<const std::byte*>(c);
      const auto* ab = reinterpret_cast<const std::byte*>(a);
      CHECK((cb + (4 << 20) <= ab || cb >= ab + 4000));
      std::fill_n(c, 1 << 20, 2.0f);
    }
    CHECK(std::all_of(a, a + 1000, [](float x) { return x == 1.0f; }));
  }
  // Released: frames that follow start at the same place (the blocks were merged into one).
  float* first = nullptr;
  {
    tpp::scratch s;
    first = s.take<float>(10);
  }
  tpp::scratch again;
  CHECK(again.take<float>(10) == first);
}

TEST_CASE("workspace: a caller's workspace is used as given and checked") {
  std::vector<std::byte> mem(4096 + 1);
  tpp::workspace ws{mem.data() + 1, mem.size() - 1};  // unaligned on purpose
  tpp::scratch_size need;
  need.take<float>(100).take<std::int32_t>(7);
  CHECK(need.bytes() == 448 + 64 + 64);
  {
    tpp::scratch s(ws, "op");
    float* a = s.take<float>(100);
    auto* b = s.take<std::int32_t>(7);
    CHECK(aligned(a));
    CHECK(aligned(b));
    CHECK(reinterpret_cast<std::byte*>(a) >= mem.data());
    CHECK(reinterpret_cast<std::byte*>(b + 7) <= mem.data() + mem.size());
  }
  tpp::workspace small{mem.data() + 1, need.bytes() - 65};
  tpp::scratch s(small, "my_op");
  s.take<float>(100);
  try {
    s.take<std::int32_t>(7);
    FAIL("expected tpp::error");
  } catch (const tpp::error& e) {
    CHECK(e.op() == "my_op");
    CHECK(e.argument() == "workspace");
  }
}

TEST_CASE("workspace: every OpenMP thread has its own arena") {
  std::vector<std::uintptr_t> seen;
  int threads = 0, intact = 0;
#pragma omp parallel reduction(+ : threads, intact)
  {
    tpp::scratch s;
    float* p = s.take<float>(256);
    const float mine = float(reinterpret_cast<std::uintptr_t>(&s) % 65521);  // differs between threads
    std::fill_n(p, 256, mine);
#pragma omp barrier
    intact += std::all_of(p, p + 256, [&](float x) { return x == mine; }) ? 1 : 0;
    threads += 1;
#pragma omp critical
    seen.push_back(reinterpret_cast<std::uintptr_t>(p));
  }
  CHECK(intact == threads);
  CHECK(std::set<std::uintptr_t>(seen.begin(), seen.end()).size() == seen.size());
}
