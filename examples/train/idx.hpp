#pragma once
// tpp_train's data: IDX files (the MNIST / Fashion-MNIST format), read and written through zlib.
//
//   read_idx_images / read_idx_labels   one IDX3 (magic 0x00000803) or IDX1 (0x00000801) file of unsigned bytes,
//                                       gzip or raw (gzread reads both)
//   load_dataset(dir)                   the four files of a directory, checked against each other, as floats
//                                       normalised with the training set's mean and standard deviation
//   write_idx_images / write_idx_labels the inverse, gzip when the name ends in ".gz" (tests, synthetic data)
//
// An IDX file is a big-endian header (magic, then one uint32 per dimension) followed by exactly the product of
// the dimensions in bytes. Every problem with a file is an input_error whose one-line message starts with the
// file's name; the reader checks the header before it allocates, so no input makes it crash or allocate more
// than the 2^31-byte limit on the data.

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace tpp_train {

// A file that cannot be used: "<file>: <what is wrong>".
struct input_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct idx_images {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // (count, rows, cols)
};

// One split as the trainer uses it.
struct split {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<float> images;          // (count, rows * cols), (pixel / 255 - mean) / stddev
  std::vector<std::int32_t> labels;   // (count), each in [0, classes)
};

struct dataset {
  split train, test;
  float mean = 0, stddev = 1;  // of pixel / 255 over the training images
};

// Labels load_dataset accepts: 0..9 (MNIST, Fashion-MNIST, KMNIST).
inline constexpr std::int32_t classes = 10;

// Largest data section a file may declare (count * rows * cols bytes).
inline constexpr std::int64_t idx_max_bytes = std::int64_t{1} << 31;

namespace detail {

// Joins strings by appending (operator+ chains trip GCC 12's false -Wrestrict, bug 105329).
template <class... S>
std::string concat(const S&... parts) {
  std::string out;
  ((out += parts), ...);
  return out;
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
  return buf;
}

inline input_error file_error(const std::string& path, std::string_view what) {
  return input_error(concat(path, ": ", what));
}

struct gz_closer {
  void operator()(gzFile f) const noexcept { gzclose(f); }
};
using gz_ptr = std::unique_ptr<gzFile_s, gz_closer>;

// zlib's description of the stream's last error, without the path prefix gzerror adds.
inline std::string gz_message(gzFile f, const std::string& path) {
  int code = 0;
  const char* msg = gzerror(f, &code);
  std::string m = msg ? msg : "unknown zlib error";
  if (m.size() > path.size() + 2 && m.compare(0, path.size(), path) == 0 && m.compare(path.size(), 2, ": ") == 0)
    m.erase(0, path.size() + 2);
  return m;
}

inline gz_ptr open_for_reading(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw file_error(path, "cannot open: is a directory");
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw file_error(path, concat("cannot open: ", errno ? std::strerror(errno) : "out of memory"));
  return gz_ptr(f);
}

// Reads up to n bytes; returns how many (fewer only at the end of the data). A zlib error other than the
// end of a cut-off gzip stream (which the caller reports as truncation) throws.
inline std::int64_t read_bytes(gzFile f, const std::string& path, std::uint8_t* out, std::int64_t n) {
  std::int64_t got = 0;
  while (got < n) {
    const std::int64_t want = std::min<std::int64_t>(n - got, std::int64_t{1} << 30);
    const int r = gzread(f, out + got, static_cast<unsigned>(want));
    int code = Z_OK;
    if (r < want) gzerror(f, &code);
    if (code != Z_OK && code != Z_BUF_ERROR)
      throw file_error(path,
                       concat(code == Z_DATA_ERROR ? "corrupt gzip data: " : "read error: ", gz_message(f, path)));
    if (r <= 0) break;
    got += r;
    if (r < want) break;  // end of file, or a gzip stream that ends early
  }
  return got;
}

inline std::uint32_t big_endian32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | std::uint32_t{p[3]};
}

inline std::string count_bytes(std::int64_t n) { return concat(std::to_string(n), n == 1 ? " byte" : " bytes"); }

// Reads one IDX file of unsigned bytes with `rank` dimensions: checks the magic and the dimensions, then reads
// exactly their product in bytes and checks that nothing follows.
inline std::vector<std::uint8_t> read_idx(const std::string& path, int rank, const char* kind,
                                          std::vector<std::int64_t>& dims) {
  gz_ptr f = open_for_reading(path);
  // The magic first, so that a file of another kind is named as such even when it is shorter than our header.
  const std::int64_t header = 4 + 4 * std::int64_t{rank};
  std::uint8_t head[16] = {};
  const std::int64_t got_magic = read_bytes(f.get(), path, head, 4);
  // zlib keeps what it decompressed of a cut-off gzip block to itself, so "found" is what gzread returned.
  const auto stream_ended = [&] {
    int code = Z_OK;
    gzerror(f.get(), &code);
    return code == Z_BUF_ERROR ? " before the gzip stream ends" : "";
  };
  const auto short_header = [&](std::int64_t found) {
    return file_error(path, concat("truncated: expected a ", std::to_string(header), "-byte IDX header, found ",
                                   count_bytes(found), stream_ended()));
  };
  if (got_magic < 4) throw short_header(got_magic);
  const std::uint32_t expected_magic = 0x800u + static_cast<std::uint32_t>(rank);
  const std::uint32_t magic = big_endian32(head);
  if (magic != expected_magic) {
    std::string what = concat("bad magic: expected ", hex32(expected_magic), " (", kind, "), found ", hex32(magic));
    if ((magic & 0xffffff00u) == 0x800u && (magic & 0xffu) >= 1 && (magic & 0xffu) <= 4)
      what += concat(" (an IDX file of unsigned bytes with ", std::to_string(magic & 0xffu), " dimensions)");
    else if ((magic & 0xffff0000u) == 0)
      what += " (not unsigned-byte IDX data)";
    else
      what += " (not an IDX file)";
    throw file_error(path, what);
  }
  const std::int64_t got_dims = read_bytes(f.get(), path, head + 4, header - 4);
  if (got_dims < header - 4) throw short_header(4 + got_dims);
  dims.assign(static_cast<std::size_t>(rank), 0);
  std::int64_t total = 1;
  std::string shape;
  for (int d = 0; d < rank; ++d) {
    dims[static_cast<std::size_t>(d)] = big_endian32(head + 4 + 4 * d);
    shape += concat(d ? " x " : "", std::to_string(dims[static_cast<std::size_t>(d)]));
  }
  for (const std::int64_t d : dims)
    if (d == 0) throw file_error(path, concat("zero dimension in the header (", shape, ")"));
  for (const std::int64_t d : dims) {
    // Each factor is below 2^32 and total stays at most 2^31 before the product, so this cannot overflow.
    total *= d;
    if (total > idx_max_bytes)
      throw file_error(path, concat("absurd dimensions ", shape, ": more than 2^31 bytes of data"));
  }
  // Grow the buffer as data arrives, so a small file that claims 2^31 bytes costs little before it is found
  // to be truncated; 16 MiB reads keep this at a few gzread calls for a whole dataset.
  std::vector<std::uint8_t> data;
  std::int64_t got = 0;
  for (;;) {
    const std::int64_t want = std::min<std::int64_t>(total - got, std::int64_t{1} << 24);
    data.resize(static_cast<std::size_t>(got + want));
    const std::int64_t r = read_bytes(f.get(), path, data.data() + got, want);
    got += r;
    if (r < want || got == total) break;
  }
  if (got < total)
    throw file_error(path, concat("truncated: expected ", count_bytes(total), " of data after the header (", shape,
                                  "), found ", count_bytes(got), stream_ended()));
  // Anything after the data is an error; count it (up to a bound, so a huge tail costs little).
  std::int64_t extra = 0;
  std::uint8_t tail[65536];
  constexpr std::int64_t tail_limit = std::int64_t{1} << 24;
  while (extra <= tail_limit) {
    const std::int64_t r = read_bytes(f.get(), path, tail, sizeof tail);
    extra += r;
    if (r < static_cast<std::int64_t>(sizeof tail)) break;
  }
  if (extra == 0 && *stream_ended())
    throw file_error(path, "truncated: the gzip stream ends inside its trailer (after all the data)");
  if (extra > 0)
    throw file_error(path, concat("trailing data: ", extra > tail_limit ? "more than " : "",
                                  count_bytes(std::min(extra, tail_limit)), " after the ", count_bytes(total),
                                  " the header (", shape, ") describes"));
  return data;
}

inline bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Writes header + data; gzip when the name ends in ".gz", else the bytes as they are (zlib's transparent mode).
inline void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::int64_t>& dims,
                      const std::uint8_t* data, std::int64_t n) {
  std::vector<std::uint8_t> head;
  const auto put32 = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) head.push_back(static_cast<std::uint8_t>(v >> s));
  };
  put32(magic);
  for (const std::int64_t d : dims) put32(static_cast<std::uint32_t>(d));
  errno = 0;
  gzFile raw = gzopen(path.c_str(), ends_with(path, ".gz") ? "wb6" : "wbT");
  if (!raw) throw file_error(path, concat("cannot open for writing: ", errno ? std::strerror(errno) : "out of memory"));
  gz_ptr f(raw);
  const auto put = [&](const std::uint8_t* p, std::int64_t len) {
    while (len > 0) {
      const std::int64_t chunk = std::min<std::int64_t>(len, std::int64_t{1} << 30);
      if (gzwrite(f.get(), p, static_cast<unsigned>(chunk)) != static_cast<int>(chunk))
        throw file_error(path, concat("write error: ", gz_message(f.get(), path)));
      p += chunk;
      len -= chunk;
    }
  };
  put(head.data(), static_cast<std::int64_t>(head.size()));
  put(data, n);
  errno = 0;
  const int rc = gzclose(f.release());
  if (rc != Z_OK) throw file_error(path, concat("write error on close: ", errno ? std::strerror(errno) : "zlib error"));
}

// Checks a dimension for writing: positive and representable in the header.
inline void check_dim(const std::string& path, const char* name, std::int64_t v) {
  if (v <= 0 || v > 0xffffffffLL)
    throw file_error(path, concat("cannot write: ", name, " is ", std::to_string(v), ", not in 1..2^32-1"));
}

}  // namespace detail

inline idx_images read_idx_images(const std::string& path) {
  std::vector<std::int64_t> dims;
  idx_images out;
  out.pixels = detail::read_idx(path, 3, "IDX3 unsigned-byte images", dims);
  out.count = dims[0];
  out.rows = dims[1];
  out.cols = dims[2];
  return out;
}

inline std::vector<std::uint8_t> read_idx_labels(const std::string& path) {
  std::vector<std::int64_t> dims;
  return detail::read_idx(path, 1, "IDX1 unsigned-byte labels", dims);
}

inline void write_idx_images(const std::string& path, const idx_images& images) {
  detail::check_dim(path, "count", images.count);
  detail::check_dim(path, "rows", images.rows);
  detail::check_dim(path, "cols", images.cols);
  // Each is below 2^32, so compare through division: the product may not fit in 64 bits.
  const auto n = static_cast<std::uint64_t>(images.pixels.size());
  const auto c = static_cast<std::uint64_t>(images.count), r = static_cast<std::uint64_t>(images.rows),
             k = static_cast<std::uint64_t>(images.cols);
  if (n % (r * k) != 0 || n / (r * k) != c)
    throw detail::file_error(path, detail::concat("cannot write: ", std::to_string(n), " pixels for ",
                                                  std::to_string(c), " x ", std::to_string(r), " x ",
                                                  std::to_string(k), " images"));
  detail::write_idx(path, 0x803u, {images.count, images.rows, images.cols}, images.pixels.data(),
                    static_cast<std::int64_t>(n));
}

inline void write_idx_labels(const std::string& path, const std::vector<std::uint8_t>& labels) {
  detail::check_dim(path, "count", static_cast<std::int64_t>(labels.size()));
  detail::write_idx(path, 0x801u, {static_cast<std::int64_t>(labels.size())}, labels.data(),
                    static_cast<std::int64_t>(labels.size()));
}

namespace detail {

// DIR/NAME.gz if it exists, else DIR/NAME if it exists; otherwise input_error naming both.
inline std::string find_idx(const std::string& dir, const std::string& name) {
  const std::string base = (std::filesystem::path(dir) / name).string(), gz = base + ".gz";
  std::error_code ec;
  if (std::filesystem::exists(gz, ec)) return gz;
  if (std::filesystem::exists(base, ec)) return base;
  throw file_error(gz, concat("missing (and so is ", base, ")"));
}

// Reads one split's images and labels and checks them against each other.
struct raw_split {
  std::string images_path, labels_path;
  idx_images images;
  std::vector<std::uint8_t> labels;
};

inline raw_split read_split(const std::string& dir, const std::string& prefix) {
  raw_split s;
  s.images_path = find_idx(dir, prefix + "-images-idx3-ubyte");
  s.labels_path = find_idx(dir, prefix + "-labels-idx1-ubyte");
  s.images = read_idx_images(s.images_path);
  s.labels = read_idx_labels(s.labels_path);
  if (static_cast<std::int64_t>(s.labels.size()) != s.images.count)
    throw file_error(s.labels_path, concat(std::to_string(s.labels.size()), " labels, but ", s.images_path, " has ",
                                           std::to_string(s.images.count), " images"));
  for (std::size_t i = 0; i < s.labels.size(); ++i)
    if (s.labels[i] >= classes)
      throw file_error(s.labels_path, concat("label ", std::to_string(i), " is ", std::to_string(s.labels[i]),
                                             ", not a class in 0..", std::to_string(classes - 1)));
  return s;
}

inline split normalised(const raw_split& s, const float (&table)[256]) {
  split out;
  out.count = s.images.count;
  out.rows = s.images.rows;
  out.cols = s.images.cols;
  out.images.resize(s.images.pixels.size());
  for (std::size_t i = 0; i < s.images.pixels.size(); ++i) out.images[i] = table[s.images.pixels[i]];
  out.labels.assign(s.labels.begin(), s.labels.end());
  return out;
}

}  // namespace detail

inline dataset load_dataset(const std::string& dir) {
  const detail::raw_split train = detail::read_split(dir, "train"), test = detail::read_split(dir, "t10k");
  if (train.images.rows != test.images.rows || train.images.cols != test.images.cols)
    throw detail::file_error(
        test.images_path,
        detail::concat(std::to_string(test.images.rows), "x", std::to_string(test.images.cols), " images, but ",
                       train.images_path, " has ", std::to_string(train.images.rows), "x",
                       std::to_string(train.images.cols)));
  // Mean and standard deviation of pixel / 255 over the training set, from the byte histogram (exact sums).
  std::int64_t histogram[256] = {};
  for (const std::uint8_t p : train.images.pixels) ++histogram[p];
  const auto n = static_cast<double>(train.images.pixels.size());
  double sum = 0;
  for (int v = 0; v < 256; ++v) sum += static_cast<double>(histogram[v]) * (v / 255.0);
  const double mean = sum / n;
  double squares = 0;
  for (int v = 0; v < 256; ++v) squares += static_cast<double>(histogram[v]) * (v / 255.0 - mean) * (v / 255.0 - mean);
  const double stddev = std::sqrt(squares / n);
  if (!(stddev > 0))
    throw detail::file_error(train.images_path, detail::concat("every pixel has the same value (",
                                                               std::to_string(train.images.pixels[0]),
                                                               "): nothing to normalise by"));
  float table[256];
  for (int v = 0; v < 256; ++v) table[v] = static_cast<float>((v / 255.0 - mean) / stddev);
  dataset out;
  out.train = detail::normalised(train, table);
  out.test = detail::normalised(test, table);
  out.mean = static_cast<float>(mean);
  out.stddev = static_cast<float>(stddev);
  return out;
}

}  // namespace tpp_train
