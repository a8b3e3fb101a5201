# Placeholder replaced by the install/package-config work.
include(GNUInstallDirs)
