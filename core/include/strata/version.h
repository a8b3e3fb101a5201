// Strata's version.
#pragma once

#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 1
#define STRATA_VERSION_PATCH 0

namespace strata {
inline constexpr const char* kVersion = "0.1.0";
}
