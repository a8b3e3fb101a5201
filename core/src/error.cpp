// Throwing helpers behind STRATA_CHECK and STRATA_ASSERT (kept out of line so the macros stay
// small at every call site).
#include "strata/error.h"

namespace strata::detail {

void throw_error(const std::string& message) { throw Error(message); }

void throw_internal(const char* condition, const char* file, int line,
                    const std::string& message) {
  std::ostringstream out;
  out << "internal error (a bug in Strata, please report it): " << condition << " failed at "
      << file << ":" << line;
  if (!message.empty()) out << ": " << message;
  throw Error(out.str());
}

}  // namespace strata::detail
