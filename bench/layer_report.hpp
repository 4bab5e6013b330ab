#pragma once
// What the layer comparison programs (tpp_compare_conv, tpp_compare_pool) share: their inputs and their
// JSON rows.

#include <cstddef>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "aligned.hpp"

namespace tpp::bench {

// n values uniform in [-1, 1), from seed.
inline aligned_vector<float> random_vector(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  aligned_vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// One measured row: a layer, a direction, the peer, the thread count, both median times (seconds) and
// the work (GFLOP; 0 where the program measures time only).
struct layer_result {
  std::string layer, dir, peer;
  int threads;
  double t_tpp, t_peer, gflop;
};

// rows as a JSON array in path; false (and a line on stderr naming program) when it cannot be written.
inline bool write_json(const std::string& path, const std::vector<layer_result>& rows, const char* program) {
  std::ofstream f(path);
  if (!f) {
    std::fprintf(stderr, "%s: cannot write '%s'\n", program, path.c_str());
    return false;
  }
  f << "[\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const layer_result& r = rows[i];
    f << "  {\"layer\": \"" << r.layer << "\", \"dir\": \"" << r.dir << "\", \"peer\": \"" << r.peer
      << "\", \"threads\": " << r.threads << ", \"gflop\": " << r.gflop << ", \"t_tpp\": " << r.t_tpp
      << ", \"t_peer\": " << r.t_peer << "}" << (i + 1 < rows.size() ? ",\n" : "\n");
  }
  f << "]\n";
  return true;
}

}  // namespace tpp::bench
