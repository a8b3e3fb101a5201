// Starting and waiting for other programs from a test (the crash trainer, mpirun): posix_spawn
// (exec), never fork alone — this process has OpenMP threads, so library code must not run in
// a forked copy of it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace strata::test {

// Starts argv[0] (a path) with the rest of argv as its arguments and `environment` added to
// this process's ("NAME=value" each); its stdout and stderr go to `output`. Returns its pid,
// or -1 after a test failure.
pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& output,
            const std::vector<std::string>& environment = {});

// Waits for `pid`; a process still running after `limit` is killed (SIGKILL) with a test
// failure naming `what`, and -1 returned. Otherwise its wait status.
int wait_for(pid_t pid, std::chrono::seconds limit, const std::string& what);

// Exited by itself with status 0.
bool exited_cleanly(int status);

// The whole file as text ("" when missing).
std::string read_text(const std::filesystem::path& path);

}  // namespace strata::test
