// tpp_train's IDX reader and writer (examples/train/idx.hpp): round trips, every kind of bad file, and the
// normalisation of load_dataset against statistics computed here in double.

#include <doctest/doctest.h>
#include <stdlib.h>
#include <zlib.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "idx.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace tpp_train;

namespace {

using tpp_train::test::temp_dir;

// The message of the input_error f throws, or "(no error)". Any other exception fails the test.
template <class F>
std::string input_error_of(F&& f) {
  try {
    f();
  } catch (const input_error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::vector<std::uint8_t> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void put_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Compresses bytes into a gzip file with zlib directly (not through the code under test).
void put_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

// An IDX header built by hand: magic, then big-endian dimensions.
std::vector<std::uint8_t> header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  std::vector<std::uint8_t> h;
  dims.insert(dims.begin(), magic);
  for (const std::uint32_t v : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<std::uint8_t>(v >> s));
  return h;
}

idx_images random_images(std::int64_t count, std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 gen(seed);
  idx_images im{count, rows, cols, std::vector<std::uint8_t>(static_cast<std::size_t>(count * rows * cols))};
  // Skewed like real images: many zeros, a spread of the rest.
  for (auto& p : im.pixels) p = gen() % 3 == 0 ? 0 : static_cast<std::uint8_t>(gen() % 256);
  return im;
}

std::vector<std::uint8_t> random_labels(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::uint8_t> l(n);
  for (auto& v : l) v = static_cast<std::uint8_t>(gen() % 10);
  return l;
}

}  // namespace

TEST_CASE("idx: images and labels round-trip through raw and gzip files") {
  temp_dir dir;
  const idx_images im = random_images(7, 5, 3, 1);
  const std::vector<std::uint8_t> labels = random_labels(7, 2);
  for (const std::string suffix : {"", ".gz"}) {
    CAPTURE(suffix);
    const std::string ip = dir / ("images" + suffix), lp = dir / ("labels" + suffix);
    write_idx_images(ip, im);
    write_idx_labels(lp, labels);
    const idx_images back = read_idx_images(ip);
    CHECK(back.count == 7);
    CHECK(back.rows == 5);
    CHECK(back.cols == 3);
    CHECK(back.pixels == im.pixels);
    CHECK(read_idx_labels(lp) == labels);
    const std::vector<std::uint8_t> bytes = file_bytes(ip);
    REQUIRE(bytes.size() >= 2);
    if (suffix.empty()) {
      // The raw file is exactly header + data.
      std::vector<std::uint8_t> expected = header(0x803, {7, 5, 3});
      expected.insert(expected.end(), im.pixels.begin(), im.pixels.end());
      CHECK(bytes == expected);
      CHECK(fs::file_size(lp) == 8 + 7);
    } else {
      CHECK(bytes[0] == 0x1f);  // gzip magic
      CHECK(bytes[1] == 0x8b);
    }
  }
}

TEST_CASE("idx: a raw file cut at every length names the expected and found sizes") {
  temp_dir dir;
  const std::string good = dir / "good", cut = dir / "cut";
  write_idx_images(good, random_images(4, 3, 2, 3));  // 16-byte header + 24 bytes
  const std::vector<std::uint8_t> bytes = file_bytes(good);
  REQUIRE(bytes.size() == 40);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    put_bytes(cut, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    const std::string e = input_error_of([&] { read_idx_images(cut); });
    CHECK(starts_with(e, cut + ": truncated: "));
    if (n < 16)
      CHECK(contains(e, "expected a 16-byte IDX header, found " + std::to_string(n) + " byte"));
    else
      CHECK(contains(e, "expected 24 bytes of data after the header (4 x 3 x 2), found " + std::to_string(n - 16) +
                            " byte"));
  }
}

TEST_CASE("idx: a gzip file cut at every length is an input_error, never a crash or a silent success") {
  temp_dir dir;
  const std::string good = dir / "good.gz", cut = dir / "cut.gz";
  // Random pixels barely compress, so the cuts land all through the deflate data.
  write_idx_images(good, random_images(10, 8, 8, 4));
  const std::vector<std::uint8_t> bytes = file_bytes(good);
  REQUIRE(bytes.size() > 100);
  int truncated = 0;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CAPTURE(n);
    put_bytes(cut, std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)));
    const std::string e = input_error_of([&] { read_idx_images(cut); });
    CHECK(starts_with(e, cut + ": "));
    CHECK(!contains(e, "\n"));
    truncated += contains(e, "truncated");
  }
  // Cuts inside the gzip header, the IDX header, the data or the 8-byte gzip trailer all say so.
  CHECK(truncated == static_cast<int>(bytes.size()));
}

TEST_CASE("idx: a changed byte in a gzip file reads back unchanged or is an input_error") {
  temp_dir dir;
  const std::string good = dir / "good.gz", bad = dir / "bad.gz";
  const idx_images im = random_images(6, 5, 4, 5);
  write_idx_images(good, im);
  const std::vector<std::uint8_t> bytes = file_bytes(good);
  int errors = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    CAPTURE(i);
    std::vector<std::uint8_t> b = bytes;
    b[i] ^= 0x5a;
    put_bytes(bad, b);
    try {
      const idx_images back = read_idx_images(bad);
      CHECK(back.pixels == im.pixels);  // a changed header field such as the gzip mtime
    } catch (const input_error& e) {
      CHECK(starts_with(e.what(), bad + ": "));
      ++errors;
    }
  }
  // Every change after the 10-byte gzip header breaks the deflate data or its CRC.
  CHECK(errors >= static_cast<int>(bytes.size()) - 10);
}

TEST_CASE("idx: wrong magic prints both numbers in hex") {
  temp_dir dir;
  const std::string ip = dir / "images", lp = dir / "labels.gz", tp = dir / "text";
  write_idx_images(ip, random_images(2, 2, 2, 6));
  write_idx_labels(lp, random_labels(2, 7));
  put_bytes(tp, {'h', 'e', 'l', 'l', 'o', ',', ' ', 'w', 'o', 'r', 'l', 'd', '!', '!', '!', '!', '\n'});
  const std::string e1 = input_error_of([&] { read_idx_images(lp); });
  CHECK(starts_with(e1, lp + ": bad magic: expected 0x00000803"));
  CHECK(contains(e1, "found 0x00000801"));
  const std::string e2 = input_error_of([&] { read_idx_labels(ip); });
  CHECK(starts_with(e2, ip + ": bad magic: expected 0x00000801"));
  CHECK(contains(e2, "found 0x00000803"));
  const std::string e3 = input_error_of([&] { read_idx_images(tp); });
  CHECK(contains(e3, "found 0x68656c6c"));
  CHECK(contains(e3, "not an IDX file"));
  // IDX, but floats (type byte 0x0d) rather than unsigned bytes.
  std::vector<std::uint8_t> floats = header(0xd03, {1, 1, 1});
  floats.resize(floats.size() + 4);
  put_bytes(tp, floats);
  CHECK(contains(input_error_of([&] { read_idx_images(tp); }), "found 0x00000d03 (not unsigned-byte IDX data)"));
}

TEST_CASE("idx: trailing bytes after the data, raw and gzip") {
  temp_dir dir;
  const std::string raw = dir / "images", gz = dir / "images.gz";
  write_idx_images(raw, random_images(3, 2, 2, 8));
  std::vector<std::uint8_t> bytes = file_bytes(raw);
  bytes.insert(bytes.end(), {1, 2, 3});
  put_bytes(raw, bytes);
  put_gzip(gz, bytes);
  for (const std::string& p : {raw, gz}) {
    const std::string e = input_error_of([&] { read_idx_images(p); });
    CHECK(e == p + ": trailing data: 3 bytes after the 12 bytes the header (3 x 2 x 2) describes");
  }
  const std::string lp = dir / "labels";
  std::vector<std::uint8_t> lb = header(0x801, {2});
  lb.insert(lb.end(), {4, 5, 6});
  put_bytes(lp, lb);
  CHECK(contains(input_error_of([&] { read_idx_labels(lp); }), "trailing data: 1 byte after the 2 bytes"));
}

TEST_CASE("idx: zero and absurd dimensions are rejected before any allocation") {
  temp_dir dir;
  const std::string p = dir / "f";
  const auto error_for = [&](std::uint32_t magic, std::vector<std::uint32_t> dims) {
    put_bytes(p, header(magic, std::move(dims)));
    return input_error_of([&] { magic == 0x803 ? (void)read_idx_images(p) : (void)read_idx_labels(p); });
  };
  CHECK(error_for(0x803, {0, 28, 28}) == p + ": zero dimension in the header (0 x 28 x 28)");
  CHECK(error_for(0x803, {10, 28, 0}) == p + ": zero dimension in the header (10 x 28 x 0)");
  CHECK(error_for(0x801, {0}) == p + ": zero dimension in the header (0)");
  CHECK(error_for(0x803, {0xffffffffu, 0xffffffffu, 0}) ==
        p + ": zero dimension in the header (4294967295 x 4294967295 x 0)");
  CHECK(error_for(0x803, {65536, 65536, 1}) ==
        p + ": absurd dimensions 65536 x 65536 x 1: more than 2^31 bytes of data");
  CHECK(contains(error_for(0x803, {0xffffffffu, 0xffffffffu, 0xffffffffu}), "absurd dimensions 4294967295 x"));
  CHECK(contains(error_for(0x801, {0xffffffffu}), "absurd dimensions 4294967295"));
  // Within the limit but far more than the file holds: reported as truncated.
  CHECK(contains(error_for(0x803, {32768, 256, 256}), "truncated: expected 2147483648 bytes of data"));
}

TEST_CASE("idx: missing files, directories and unwritable paths") {
  temp_dir dir;
  const std::string missing = dir / "nope.gz";
  const std::string e = input_error_of([&] { read_idx_labels(missing); });
  CHECK(e == missing + ": cannot open: No such file or directory");
  CHECK(input_error_of([&] { read_idx_images(dir.path.string()); }) ==
        dir.path.string() + ": cannot open: is a directory");
  const std::string unwritable = dir / "no/such/dir/x.gz";
  CHECK(starts_with(input_error_of([&] { write_idx_labels(unwritable, {1}); }),
                    unwritable + ": cannot open for writing: "));
  // Images whose pixel count does not match their dimensions, or no labels at all, are not written.
  idx_images im = random_images(2, 3, 3, 9);
  im.pixels.pop_back();
  const std::string ip = dir / "im";
  CHECK(input_error_of([&] { write_idx_images(ip, im); }) == ip + ": cannot write: 17 pixels for 2 x 3 x 3 images");
  im.rows = 0;
  CHECK(contains(input_error_of([&] { write_idx_images(ip, im); }), "rows is 0"));
  CHECK(contains(input_error_of([&] { write_idx_labels(ip, {}); }), "count is 0"));
}

namespace {

// Writes a dataset directory: train and t10k images and labels, with the given suffix for each file.
struct synthetic {
  idx_images train_images, test_images;
  std::vector<std::uint8_t> train_labels, test_labels;
};

synthetic make_synthetic(std::int64_t train_count, std::int64_t test_count, std::int64_t rows, std::int64_t cols) {
  return {random_images(train_count, rows, cols, 11), random_images(test_count, rows, cols, 12),
          random_labels(static_cast<std::size_t>(train_count), 13),
          random_labels(static_cast<std::size_t>(test_count), 14)};
}

void write_dataset(const temp_dir& dir, const synthetic& s, const std::array<const char*, 4>& suffixes) {
  write_idx_images(dir / (std::string("train-images-idx3-ubyte") + suffixes[0]), s.train_images);
  write_idx_labels(dir / (std::string("train-labels-idx1-ubyte") + suffixes[1]), s.train_labels);
  write_idx_images(dir / (std::string("t10k-images-idx3-ubyte") + suffixes[2]), s.test_images);
  write_idx_labels(dir / (std::string("t10k-labels-idx1-ubyte") + suffixes[3]), s.test_labels);
}

}  // namespace

TEST_CASE("load_dataset: both splits normalised with the training set's mean and standard deviation") {
  temp_dir dir;
  const synthetic s = make_synthetic(50, 20, 4, 5);
  write_dataset(dir, s, {".gz", "", "", ".gz"});
  const dataset d = load_dataset(dir.path.string());

  // Reference statistics, two-pass in double.
  double mean = 0;
  for (const std::uint8_t p : s.train_images.pixels) mean += p / 255.0;
  mean /= static_cast<double>(s.train_images.pixels.size());
  double var = 0;
  for (const std::uint8_t p : s.train_images.pixels) var += (p / 255.0 - mean) * (p / 255.0 - mean);
  const double stddev = std::sqrt(var / static_cast<double>(s.train_images.pixels.size()));
  CHECK(d.mean == doctest::Approx(mean).epsilon(1e-6));
  CHECK(d.stddev == doctest::Approx(stddev).epsilon(1e-6));

  const auto check_split = [&](const split& got, const idx_images& im, const std::vector<std::uint8_t>& labels) {
    CHECK(got.count == im.count);
    CHECK(got.rows == im.rows);
    CHECK(got.cols == im.cols);
    REQUIRE(got.images.size() == im.pixels.size());
    REQUIRE(got.labels.size() == labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) CHECK(got.labels[i] == labels[i]);
    // Each value is a float rounding of the exact one (|v| < 8 here, so within 8 * 2^-24).
    double worst = 0;
    for (std::size_t i = 0; i < im.pixels.size(); ++i)
      worst = std::max(worst, std::abs(got.images[i] - (im.pixels[i] / 255.0 - mean) / stddev));
    CHECK(worst <= 8 * 0x1p-24);
  };
  check_split(d.train, s.train_images, s.train_labels);
  check_split(d.test, s.test_images, s.test_labels);

  // Over the training images the result has mean 0 and standard deviation 1 (up to float rounding).
  double m = 0, sq = 0;
  for (const float v : d.train.images) m += v;
  m /= static_cast<double>(d.train.images.size());
  for (const float v : d.train.images) sq += (v - m) * (v - m);
  CHECK(std::abs(m) < 1e-6);
  CHECK(std::sqrt(sq / static_cast<double>(d.train.images.size())) == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("load_dataset: the .gz file is read first, the raw one when there is no .gz") {
  temp_dir dir;
  const synthetic s = make_synthetic(6, 3, 2, 3);
  write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
  // A broken raw twin beside each .gz is never opened.
  for (const char* name :
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"})
    put_bytes(dir / name, {0, 0});
  CHECK(load_dataset(dir.path.string()).train.count == 6);
  // Without the .gz files the raw ones are read (and here rejected, naming the raw file).
  fs::remove(dir / "train-images-idx3-ubyte.gz");
  CHECK(starts_with(input_error_of([&] { load_dataset(dir.path.string()); }),
                    dir / "train-images-idx3-ubyte" + ": truncated"));
  write_idx_images(dir / "train-images-idx3-ubyte", s.train_images);
  const dataset d = load_dataset(dir.path.string());
  CHECK(d.train.count == 6);
  CHECK(d.test.count == 3);
}

TEST_CASE("load_dataset: files that disagree, labels out of range, a missing file, constant pixels") {
  temp_dir dir;
  synthetic s = make_synthetic(6, 3, 2, 3);
  const std::string ti = dir / "train-images-idx3-ubyte.gz", tl = dir / "train-labels-idx1-ubyte.gz",
                    vi = dir / "t10k-images-idx3-ubyte.gz", vl = dir / "t10k-labels-idx1-ubyte.gz";

  SUBCASE("label count differs from image count: both files named") {
    s.test_labels.push_back(1);
    write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
    CHECK(input_error_of([&] { load_dataset(dir.path.string()); }) ==
          vl + ": 4 labels, but " + vi + " has 3 images");
  }
  SUBCASE("test images of another size than the training images") {
    s.test_images = random_images(3, 3, 2, 15);
    write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
    CHECK(input_error_of([&] { load_dataset(dir.path.string()); }) ==
          vi + ": 3x2 images, but " + ti + " has 2x3");
  }
  SUBCASE("a label that is not a class") {
    s.train_labels[4] = 10;
    write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
    CHECK(input_error_of([&] { load_dataset(dir.path.string()); }) == tl + ": label 4 is 10, not a class in 0..9");
  }
  SUBCASE("a missing file: both names it was looked for under") {
    write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
    fs::remove(vl);
    CHECK(input_error_of([&] { load_dataset(dir.path.string()); }) ==
          vl + ": missing (and so is " + dir / "t10k-labels-idx1-ubyte" + ")");
    CHECK(starts_with(input_error_of([&] { load_dataset((dir.path / "absent").string()); }),
                      (dir.path / "absent" / "train-images-idx3-ubyte.gz").string() + ": missing"));
  }
  SUBCASE("every training pixel the same") {
    for (auto& p : s.train_images.pixels) p = 7;
    write_dataset(dir, s, {".gz", ".gz", ".gz", ".gz"});
    CHECK(input_error_of([&] { load_dataset(dir.path.string()); }) ==
          ti + ": every pixel has the same value (7): nothing to normalise by");
  }
}

TEST_CASE("load_dataset: Debian's Fashion-MNIST (when installed)") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: " << dir << " is not installed (apt-get install dataset-fashion-mnist)");
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  const dataset d = load_dataset(dir);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE("load_dataset(" << dir << "): " << seconds << " s, mean " << d.mean << ", stddev " << d.stddev);
  CHECK(d.train.count == 60000);
  CHECK(d.test.count == 10000);
  for (const split* s : {&d.train, &d.test}) {
    CHECK(s->rows == 28);
    CHECK(s->cols == 28);
    CHECK(s->images.size() == static_cast<std::size_t>(s->count * 28 * 28));
    CHECK(s->labels.size() == static_cast<std::size_t>(s->count));
  }
  std::array<int, 10> train_per_class{}, test_per_class{};
  for (const std::int32_t l : d.train.labels) {
    REQUIRE((l >= 0 && l <= 9));
    ++train_per_class[static_cast<std::size_t>(l)];
  }
  for (const std::int32_t l : d.test.labels) {
    REQUIRE((l >= 0 && l <= 9));
    ++test_per_class[static_cast<std::size_t>(l)];
  }
  for (int c = 0; c < 10; ++c) {
    CAPTURE(c);
    CHECK(train_per_class[static_cast<std::size_t>(c)] == 6000);
    CHECK(test_per_class[static_cast<std::size_t>(c)] == 1000);
  }
  // The published statistics of Fashion-MNIST's training images (pixel / 255): mean 0.2860, stddev 0.3530.
  CHECK(d.mean == doctest::Approx(0.2860).epsilon(1e-3));
  CHECK(d.stddev == doctest::Approx(0.3530).epsilon(1e-3));
  CHECK(seconds < 10);
}
