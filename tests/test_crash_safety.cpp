// Crash safety of training: runs strata_crash_trainer (tests/crash/) and kills it with SIGKILL
// at random moments, most of them while it writes a checkpoint, then checks that the newest
// checkpoint on disk loads and restores, that the killed write's temporary file misleads
// neither latest_checkpoint nor the resume, and that the resumed run's per-epoch losses equal
// an uninterrupted run's to the last digit (CPU, one thread).
// NOTE: the trainer runs in its own process, started with posix_spawn (tests/subprocess.h).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "crash/crash_model.h"
#include "strata/io/checkpoint.h"
#include "strata/train/callbacks.h"
#include "subprocess.h"
#include "test_files.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using test::exited_cleanly;
using test::read_text;
using test::TempDir;

// NOTE: under AddressSanitizer each trial's run is several times slower; the sanitized suite
// looks for memory errors on the kill-and-resume paths, which a fifth of the trials exercise,
// and the plain suite runs all of them.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kTrials = 20;
#else
constexpr int kTrials = 100;
#endif
constexpr int64_t kEpochs = 6;
// A run that has not ended by then is hung (an uninterrupted one takes about a second).
constexpr auto kRunLimit = std::chrono::seconds(120);

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Starts the trainer with `args`, its stdout and stderr going to `output`.
pid_t spawn_trainer(const std::vector<std::string>& args, const fs::path& output) {
  std::vector<std::string> argv = {STRATA_CRASH_TRAINER};
  argv.insert(argv.end(), args.begin(), args.end());
  return test::spawn(argv, output);
}

int wait_for(pid_t pid) { return test::wait_for(pid, kRunLimit, "the trainer"); }

// The trainer's marker: a one-byte file, mapped shared, that it sets to 1 while it writes a
// checkpoint.
class Marker {
 public:
  explicit Marker(const fs::path& path) {
    std::ofstream(path, std::ios::binary).put('\0');
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    EXPECT_GE(fd, 0) << path << ": " << std::strerror(errno);
    if (fd < 0) return;
    void* mapped = ::mmap(nullptr, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    EXPECT_NE(mapped, MAP_FAILED) << "mmap " << path << ": " << std::strerror(errno);
    if (mapped != MAP_FAILED) byte_ = static_cast<volatile unsigned char*>(mapped);
  }
  ~Marker() {
    if (byte_ != nullptr) ::munmap(const_cast<unsigned char*>(byte_), 1);
  }
  Marker(const Marker&) = delete;
  Marker& operator=(const Marker&) = delete;

  bool writing() const { return byte_ != nullptr && *byte_ != 0; }

 private:
  volatile unsigned char* byte_ = nullptr;
};

// The rows of a log.csv: (epoch, the loss column's text), in file order.
std::vector<std::pair<int64_t, std::string>> loss_rows(const fs::path& path) {
  std::istringstream text(read_text(path));
  std::vector<std::pair<int64_t, std::string>> rows;
  std::string line;
  if (!std::getline(text, line)) {
    ADD_FAILURE() << path << " is empty";
    return rows;
  }
  auto split = [](const std::string& row) {
    std::vector<std::string> fields;
    std::string field;
    std::istringstream cells(row);
    while (std::getline(cells, field, ',')) fields.push_back(field);
    return fields;
  };
  const std::vector<std::string> header = split(line);
  const auto loss = std::find(header.begin(), header.end(), "loss");
  if (header.empty() || header[0] != "epoch" || loss == header.end()) {
    ADD_FAILURE() << path << ": unexpected header \"" << line << "\"";
    return rows;
  }
  const size_t loss_column = static_cast<size_t>(loss - header.begin());
  while (std::getline(text, line)) {
    const std::vector<std::string> fields = split(line);
    if (fields.size() != header.size()) {
      ADD_FAILURE() << path << ": a row of " << fields.size() << " fields: \"" << line << "\"";
      continue;
    }
    rows.emplace_back(std::stoll(fields[0]), fields[loss_column]);
  }
  return rows;
}

struct CheckpointFiles {
  int64_t newest_epoch = -1;  // -1: no complete checkpoint
  int temporaries = 0;        // files left by an interrupted write_file_atomic
};

CheckpointFiles list_checkpoints(const fs::path& directory) {
  CheckpointFiles files;
  if (!fs::is_directory(directory)) return files;
  static const std::regex complete(R"(epoch-(\d+)\.safetensors)");
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    std::smatch match;
    if (std::regex_match(name, match, complete)) {
      files.newest_epoch = std::max<int64_t>(files.newest_epoch, std::stoll(match[1].str()));
    } else if (name.find(".tmp-") != std::string::npos) {
      ++files.temporaries;
    } else {
      ADD_FAILURE() << "unexpected file " << entry.path();
    }
  }
  return files;
}

TEST(CrashSafety, KillDuringCheckpointWritesThenResume) {
  const Clock::time_point test_start = Clock::now();
  TempDir dir;
  const std::vector<std::string> run_args = {"--epochs", std::to_string(kEpochs)};

  // The reference: one uninterrupted run, watched through its marker to learn how long an
  // epoch (training and checkpoint write) takes and how much of it is the write.
  const fs::path reference = dir.path() / "reference";
  fs::create_directories(reference);
  std::vector<double> write_starts;
  double last_write = -1.0, writing_seconds = 0.0, run_seconds = 0.0;
  {
    const Marker marker(reference / "marker");
    std::vector<std::string> args = run_args;
    args.insert(args.end(), {"--out", (reference / "run").string(), "--marker",
                             (reference / "marker").string()});
    const Clock::time_point start = Clock::now();
    const pid_t pid = spawn_trainer(args, reference / "output.txt");
    ASSERT_GT(pid, 0);
    int status = -1;
    Clock::time_point last = start;
    bool was_writing = false;
    while (true) {
      const pid_t done = ::waitpid(pid, &status, WNOHANG);
      const Clock::time_point now = Clock::now();
      if (done == pid) break;
      ASSERT_EQ(done, 0) << "waitpid: " << std::strerror(errno);
      ASSERT_LT(now - start, kRunLimit) << "the reference run hangs";
      const bool writing = marker.writing();
      if (writing && !was_writing) write_starts.push_back(seconds_between(start, now));
      if (writing) {
        last_write = seconds_between(start, now);
        writing_seconds += seconds_between(last, now);
      }
      was_writing = writing;
      last = now;
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    run_seconds = seconds_between(start, Clock::now());
    ASSERT_TRUE(exited_cleanly(status)) << read_text(reference / "output.txt");
    ASSERT_EQ(write_starts.size(), static_cast<size_t>(kEpochs))
        << "the marker did not show one checkpoint write per epoch";
  }
  std::map<int64_t, std::string> reference_losses;
  for (const auto& [epoch, loss] : loss_rows(reference / "run" / "log.csv")) {
    EXPECT_TRUE(reference_losses.emplace(epoch, loss).second) << "epoch " << epoch << " twice";
  }
  ASSERT_EQ(reference_losses.size(), static_cast<size_t>(kEpochs));
  ASSERT_EQ(reference_losses.rbegin()->first, kEpochs);
  const auto checkpoint_bytes =
      fs::file_size(reference / "run" / "checkpoints" / "epoch-0001.safetensors");
  const double epoch_seconds = (last_write - write_starts.front()) / kEpochs;
  std::cout << "[ crash    ] uninterrupted run " << run_seconds << " s, first checkpoint write at "
            << write_starts.front() << " s, then " << epoch_seconds << " s per epoch, "
            << 100.0 * writing_seconds / (last_write - write_starts.front())
            << "% of it writing a checkpoint of " << checkpoint_bytes << " bytes\n";

  // Each kill comes at a random moment in an epoch's write or the training after it: the
  // trial waits for the start of a random epoch's write in its own run, then up to an epoch's
  // time as the reference measured it. Counting writes rather than seconds from the start
  // keeps the kills spread over the run when the machine is busier than it was for the
  // reference.
  std::mt19937 random(20240611);
  std::uniform_int_distribution<int64_t> kill_in_epoch(1, kEpochs);
  std::uniform_real_distribution<double> kill_after(0.0, epoch_seconds);
  int kills_in_write = 0, no_checkpoint = 0, finished_first = 0, left_temporaries = 0;
  for (int trial = 0; trial < kTrials && !::testing::Test::HasFailure(); ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const fs::path root = dir.path() / ("trial-" + std::to_string(trial));
    const fs::path out = root / "run";
    const fs::path checkpoints = out / "checkpoints";
    fs::create_directories(root);
    const int64_t kill_epoch = kill_in_epoch(random);
    const double delay = kill_after(random);
    {
      const Marker marker(root / "marker");
      std::vector<std::string> args = run_args;
      args.insert(args.end(), {"--out", out.string(), "--marker", (root / "marker").string()});
      const Clock::time_point start = Clock::now();
      const pid_t pid = spawn_trainer(args, root / "killed.txt");
      ASSERT_GT(pid, 0);
      int status = 0;
      bool ended = false, was_writing = false;
      for (int64_t writes = 0; writes < kill_epoch && !ended;) {
        const bool writing = marker.writing();
        if (writing && !was_writing) ++writes;
        was_writing = writing;
        ended = ::waitpid(pid, &status, WNOHANG) == pid;
        if (Clock::now() - start > kRunLimit) ::kill(pid, SIGKILL);
        if (writes < kill_epoch) std::this_thread::sleep_for(std::chrono::microseconds(500));
      }
      if (!ended) {
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        ended = ::waitpid(pid, &status, WNOHANG) == pid;
      }
      if (ended) {
        // The last epoch's write ended before the kill (or this process, descheduled, missed
        // a write).
        ++finished_first;
        ASSERT_TRUE(exited_cleanly(status)) << read_text(root / "killed.txt");
      } else {
        if (marker.writing()) ++kills_in_write;
        ASSERT_EQ(::kill(pid, SIGKILL), 0) << std::strerror(errno);
        status = wait_for(pid);
        ASSERT_TRUE(exited_cleanly(status) || (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            << "status " << status << "\n" << read_text(root / "killed.txt");
      }
    }

    // (a) the newest complete checkpoint loads and restores into a model of the same structure.
    const CheckpointFiles files = list_checkpoints(checkpoints);
    if (files.temporaries > 0) ++left_temporaries;
    // (b) temporary files are not taken for checkpoints.
    const std::string latest = train::latest_checkpoint(checkpoints.string());
    if (files.newest_epoch < 0) {
      ++no_checkpoint;
      EXPECT_EQ(latest, "");
    } else {
      char name[48];
      std::snprintf(name, sizeof name, "epoch-%04lld.safetensors",
                    static_cast<long long>(files.newest_epoch));
      ASSERT_EQ(latest, (checkpoints / name).string());
      io::Checkpoint checkpoint;
      ASSERT_NO_THROW(checkpoint = io::load_checkpoint(latest)) << latest;
      EXPECT_EQ(checkpoint.epoch, files.newest_epoch);
      nn::Sequential model = crash_test::make_model();
      std::unique_ptr<optim::Adam> optimizer = crash_test::make_optimizer(model);
      EXPECT_NO_THROW(io::restore(checkpoint, model, *optimizer, nullptr, /*restore_rng=*/false));
    }

    // (c) the resumed run completes and its losses, and those the killed run logged, are the
    // reference's.
    std::vector<std::string> args = run_args;
    args.insert(args.end(), {"--out", out.string(), "--resume"});
    const pid_t pid = spawn_trainer(args, root / "resumed.txt");
    ASSERT_GT(pid, 0);
    const int status = wait_for(pid);
    const std::string output = read_text(root / "resumed.txt");
    ASSERT_TRUE(exited_cleanly(status)) << "status " << status << "\n" << output;
    if (latest.empty()) {
      EXPECT_NE(output.find("nothing to resume"), std::string::npos) << output;
    } else {
      EXPECT_NE(output.find(latest), std::string::npos) << output;
    }
    std::map<int64_t, std::string> losses;
    for (const auto& [epoch, loss] : loss_rows(out / "log.csv")) {
      const auto expected = reference_losses.find(epoch);
      ASSERT_NE(expected, reference_losses.end()) << "epoch " << epoch;
      EXPECT_EQ(loss, expected->second) << "epoch " << epoch << "'s loss";
      losses[epoch] = loss;
    }
    EXPECT_EQ(losses, reference_losses);
    const CheckpointFiles after = list_checkpoints(checkpoints);
    EXPECT_EQ(after.newest_epoch, kEpochs);
    EXPECT_EQ(after.temporaries, 0) << "the resumed run left the killed write's temporary file";
    fs::remove_all(root);  // a trial's checkpoints take about 75 MB
  }

  const double total_seconds = seconds_between(test_start, Clock::now());
  const int killed = kTrials - finished_first;
  std::cout << "[ crash    ] " << kTrials << " trials: " << kills_in_write << " of " << killed
            << " kills landed inside a checkpoint write, " << no_checkpoint
            << " before the first checkpoint, " << finished_first
            << " runs ended before their kill, " << left_temporaries
            << " left a temporary file; " << total_seconds << " s in all\n";
  ::testing::Test::RecordProperty("kills_in_write", kills_in_write);
  ::testing::Test::RecordProperty("no_checkpoint", no_checkpoint);
  ::testing::Test::RecordProperty("seconds", static_cast<int>(total_seconds));
  // The trainer spends most of each epoch writing; a third leaves room for a loaded machine.
  EXPECT_GE(3 * kills_in_write, kTrials)
      << "too few kills hit a write: the test no longer exercises what it is meant to";
}

}  // namespace
}  // namespace strata
