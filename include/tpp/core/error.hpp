#pragma once
// tpp::error: the one exception type for bad arguments. Its message names the op and the argument,
// e.g. "tpp::view: matrix.ld (3) is smaller than cols (4)".

#include <stdexcept>
#include <string>
#include <string_view>

namespace tpp {

namespace detail {
// Joins strings and string views by appending (operator+ chains trip GCC 12's false -Wrestrict, bug 105329).
template <class... S>
std::string concat(const S&... parts) {
  std::string out;
  ((out += parts), ...);
  return out;
}
}  // namespace detail

class error : public std::invalid_argument {
 public:
  error(std::string_view op, std::string_view argument, std::string_view what)
      : std::invalid_argument(detail::concat("tpp::", op, ": ", argument, " ", what)),
        op_(op),
        argument_(argument) {}

  const std::string& op() const noexcept { return op_; }
  const std::string& argument() const noexcept { return argument_; }

 private:
  std::string op_, argument_;
};

namespace detail {

// Throws tpp::error(op, argument, what) unless ok.
inline void require(bool ok, std::string_view op, std::string_view argument, std::string_view what) {
  if (!ok) [[unlikely]]
    throw error(op, argument, what);
}

}  // namespace detail
}  // namespace tpp
