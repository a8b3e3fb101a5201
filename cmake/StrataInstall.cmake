# Installs Strata so that another CMake project can use it with
#   find_package(Strata REQUIRED)
#   target_link_libraries(app PRIVATE strata::strata)
# What goes where (under CMAKE_INSTALL_PREFIX):
#   include/strata/**             the public headers
#   lib/libstrata.so (or .a)      the library
#   lib/libstrata_cuda.so         the CUDA backend, loaded by libstrata.so on first use (shared
#                                 builds with CUDA)
#   lib/cmake/Strata/             StrataConfig.cmake, its version file, the exported targets,
#                                 and FindCUDNN.cmake (a static CUDA build needs it downstream)
# NOTE: a shared libstrata keeps its dependencies (OpenBLAS, OpenMP, CUDA) private, so its
# consumers need none of them at configure time; a static one exports them as $<LINK_ONLY:...>
# and StrataConfig.cmake finds them again (see StrataConfig.cmake.in).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(STRATA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/Strata"
    CACHE STRING "Where the Strata package config files are installed (relative to the prefix)")
mark_as_advanced(STRATA_INSTALL_CMAKEDIR)

# The installed library finds the libraries it links (CUDA's live outside the system
# directories) through its RUNPATH; this also lets the linker of a consumer resolve them.
set_target_properties(strata PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)

install(TARGETS strata EXPORT StrataTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}"
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")

# The CUDA plugin goes beside libstrata.so, where libstrata looks for it; it finds libstrata
# there too ($ORIGIN) and the CUDA libraries where it was linked against them.
if(TARGET strata_cuda)
  set_target_properties(strata_cuda PROPERTIES INSTALL_RPATH "$ORIGIN" INSTALL_RPATH_USE_LINK_PATH ON)
  install(TARGETS strata_cuda LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}")
endif()

install(DIRECTORY "${PROJECT_SOURCE_DIR}/core/include/strata"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
  FILES_MATCHING PATTERN "*.h")

install(EXPORT StrataTargets
  NAMESPACE strata::
  FILE StrataTargets.cmake
  DESTINATION "${STRATA_INSTALL_CMAKEDIR}")

# Facts about this build that StrataConfig.cmake needs.
get_target_property(STRATA_LIBRARY_TYPE strata TYPE)  # SHARED_LIBRARY or STATIC_LIBRARY
if(STRATA_WITH_CUDA)
  set(STRATA_CONFIG_WITH_CUDA ON)
  set(STRATA_CONFIG_CUDA_ROOT "${CUDAToolkit_LIBRARY_ROOT}")  # a hint for static consumers
else()
  set(STRATA_CONFIG_WITH_CUDA OFF)
  set(STRATA_CONFIG_CUDA_ROOT "")
endif()

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/StrataConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/StrataConfig.cmake"
  INSTALL_DESTINATION "${STRATA_INSTALL_CMAKEDIR}")

# 0.x releases may break the API between minor versions: only the same minor is compatible.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/StrataConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion)

install(FILES
  "${PROJECT_BINARY_DIR}/StrataConfig.cmake"
  "${PROJECT_BINARY_DIR}/StrataConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindCUDNN.cmake"
  DESTINATION "${STRATA_INSTALL_CMAKEDIR}")
