// strata::Error and the two check macros every file uses.
// STRATA_CHECK(cond, parts...) reports a user error: the message starts with the op and shows
// the values involved. STRATA_ASSERT(cond, parts...) guards our own invariants: if it fires,
// Strata has a bug, and the message says so.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace strata {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {

template <typename... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream out;
  (out << ... << std::forward<Parts>(parts));
  return out.str();
}

[[noreturn]] void throw_error(const std::string& message);
[[noreturn]] void throw_internal(const char* condition, const char* file, int line,
                                 const std::string& message);

}  // namespace detail
}  // namespace strata

#define STRATA_CHECK(cond, ...)                                        \
  do {                                                                 \
    if (!(cond)) [[unlikely]] {                                        \
      ::strata::detail::throw_error(::strata::detail::concat(__VA_ARGS__)); \
    }                                                                  \
  } while (false)

#define STRATA_ASSERT(cond, ...)                                                    \
  do {                                                                              \
    if (!(cond)) [[unlikely]] {                                                     \
      ::strata::detail::throw_internal(#cond, __FILE__, __LINE__,                   \
                                       ::strata::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                               \
  } while (false)
