#pragma once
// What tpp_train's tests share: a temporary directory, and synthetic separable data.

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "idx.hpp"
#include "network.hpp"

namespace tpp_train::test {

// A fresh directory under the system's temp dir, removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "tpp_train_test_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Ten classes of 28x28 images: class c is a bright 6x6 square at one of ten places, on uniform noise in
// [0, 0.3), normalised like load_dataset does (mean 0, unit variance over the training split).
inline dataset synthetic(index_t train, index_t test, std::uint64_t seed) {
  const auto make = [&](index_t count, std::uint64_t stream) {
    split s{count, 28, 28, std::vector<float>(std::size_t(count * 784)), std::vector<std::int32_t>(std::size_t(count))};
    for (index_t i = 0; i < count; ++i) {
      const int c = int(i % 10);
      s.labels[std::size_t(i)] = c;
      const index_t top = 2 + (c / 5) * 12 + c % 2 * 4, left = 2 + (c % 5) * 4;
      for (index_t y = 0; y < 28; ++y)
        for (index_t x = 0; x < 28; ++x) {
          const bool lit = y >= top && y < top + 6 && x >= left && x < left + 6;
          s.images[std::size_t(i * 784 + y * 28 + x)] =
              float((lit ? 0.7 : 0.0) + 0.3 * uniform01(seed, stream, std::uint64_t(i * 784 + y * 28 + x)));
        }
    }
    return s;
  };
  dataset d{make(train, 1), make(test, 2), 0, 1};
  double sum = 0, sq = 0;
  for (float v : d.train.images) sum += v, sq += double(v) * v;
  const double n = double(d.train.images.size()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  for (split* s : {&d.train, &d.test})
    for (float& v : s->images) v = float((v - mean) / sd);
  d.mean = float(mean), d.stddev = float(sd);
  return d;
}

}  // namespace tpp_train::test
