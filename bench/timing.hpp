#pragma once
// Interleaved timing for the comparison programs: every callable runs once per round, rounds repeat, and
// each gets the median of its rounds, so tpp and its peer see the same machine state (the machine is
// shared: quote ratios of medians, not single absolute times).

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace tpp::bench {

inline double seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// reps rounds of (each callable once), after a warm-up round; the medians, in the callables' order.
inline std::vector<double> interleaved(const std::vector<std::function<void()>>& fs, int reps) {
  for (auto& f : fs) f();
  std::vector<std::vector<double>> t(fs.size());
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < fs.size(); ++i) t[i].push_back(seconds(fs[i]));
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;
}

}  // namespace tpp::bench
