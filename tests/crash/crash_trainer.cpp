// The program test_crash_safety.cpp kills: trains crash_model.h's model with fit(), a
// CsvLogger (log.csv) and a ModelCheckpoint every epoch into --out, and with --resume goes on
// from the newest checkpoint there, as a sample's --resume does. On the CPU with one thread a
// resumed run's losses equal an uninterrupted run's bit for bit.
//
// --marker FILE (an existing file of at least one byte, mapped shared) has its first byte set
// to 1 while a checkpoint is being captured and written and to 0 otherwise, so that the test
// can tell whether its SIGKILL landed inside a write.
//
// Exit codes: 0 done, 1 a library error (printed), 2 bad flags.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "crash_model.h"
#include "strata/strata.h"

namespace {

namespace fs = std::filesystem;
using namespace strata;

const char* kUsage =
    "usage: strata_crash_trainer --out DIR [--epochs N] [--resume] [--marker FILE] "
    "[--threads N]\n"
    "Trains a fixed model on fixed synthetic data, writing DIR/log.csv and\n"
    "DIR/checkpoints/epoch-NNNN.safetensors every epoch (the crash-safety test's subject).\n"
    "  --out DIR       where the log and the checkpoints go (required)\n"
    "  --epochs N      epochs in all, counting those before a resume (default 6)\n"
    "  --resume        continue from the newest checkpoint in DIR/checkpoints, if any\n"
    "  --marker FILE   set FILE's first byte to 1 while a checkpoint is written, else 0\n"
    "  --threads N     CPU threads (default 1: reductions then run in one fixed order)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "strata_crash_trainer: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

int64_t positive_integer(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < 1) {
    usage_error(flag + " expects a positive integer, got '" + text + "'");
  }
  return value;
}

struct Flags {
  std::string out;
  int64_t epochs = 6;
  bool resume = false;
  std::string marker;
  int64_t threads = 1;
};

Flags parse(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    if (name == "-h" || name == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (name == "--resume") {
      flags.resume = true;
      continue;
    }
    if (name != "--out" && name != "--epochs" && name != "--marker" && name != "--threads") {
      usage_error("unknown flag '" + name + "'");
    }
    if (i + 1 >= argc) usage_error(name + " needs a value");
    const std::string value = argv[++i];
    if (name == "--out") flags.out = value;
    if (name == "--epochs") flags.epochs = positive_integer(name, value);
    if (name == "--marker") flags.marker = value;
    if (name == "--threads") flags.threads = positive_integer(name, value);
  }
  if (flags.out.empty()) usage_error("--out DIR is required");
  return flags;
}

// The first byte of a file, mapped shared: what this process stores there the test sees at
// once, and it survives the SIGKILL.
class Marker {
 public:
  explicit Marker(const std::string& path) {
    if (path.empty()) return;
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct stat info {};
    if (fd < 0 || ::fstat(fd, &info) != 0 || info.st_size < 1) {
      usage_error("--marker " + path + " must be an existing file of at least one byte" +
                  (fd < 0 ? std::string(" (") + std::strerror(errno) + ")" : ""));
    }
    void* mapped = ::mmap(nullptr, 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (mapped == MAP_FAILED) usage_error("--marker " + path + ": mmap failed: " + std::strerror(errno));
    byte_ = static_cast<volatile unsigned char*>(mapped);
  }
  Marker(const Marker&) = delete;
  Marker& operator=(const Marker&) = delete;

  void set(unsigned char value) const {
    if (byte_ != nullptr) *byte_ = value;
  }

 private:
  volatile unsigned char* byte_ = nullptr;
};

// Sets the marker at an epoch's end; one goes before ModelCheckpoint (1) and one after (0).
class SetMarker : public train::Callback {
 public:
  SetMarker(const Marker& marker, unsigned char value) : marker_(marker), value_(value) {}
  void on_epoch_end(train::TrainContext& context) override {
    (void)context;
    marker_.set(value_);
  }

 private:
  const Marker& marker_;
  unsigned char value_;
};

int run(const Flags& flags) {
  set_num_threads(static_cast<int>(flags.threads));
  const Marker marker(flags.marker);
  const fs::path out = flags.out;
  const fs::path checkpoints = out / "checkpoints";
  fs::create_directories(out);

  nn::Sequential model = crash_test::make_model();
  std::unique_ptr<optim::Adam> optimizer = crash_test::make_optimizer(model);
  int64_t initial_epoch = 0;
  if (flags.resume) {
    const train::Resumed resumed =
        train::resume_from_latest(checkpoints.string(), model, *optimizer);
    if (resumed.path.empty()) {
      std::printf("nothing to resume in %s: starting at epoch 1\n", checkpoints.c_str());
    } else {
      std::printf("resuming from %s (%lld epochs done)\n", resumed.path.c_str(),
                  static_cast<long long>(resumed.epoch));
    }
    initial_epoch = resumed.epoch;
  }
  if (initial_epoch >= flags.epochs) {
    std::printf("the checkpoint has all %lld epochs: nothing to train\n",
                static_cast<long long>(flags.epochs));
    return 0;
  }

  // The log row of an epoch is written before its checkpoint, so a checkpoint always has its
  // row; a kill between the two leaves a row that the resumed run writes again.
  const std::vector<std::shared_ptr<train::Callback>> callbacks = {
      std::make_shared<train::CsvLogger>((out / "log.csv").string(), flags.resume),
      std::make_shared<SetMarker>(marker, 1),
      std::make_shared<train::ModelCheckpoint>(checkpoints.string()),
      std::make_shared<SetMarker>(marker, 0),
  };
  train::fit(model, nn::MSELoss{}, *optimizer, crash_test::make_data(),
             {.epochs = flags.epochs,
              .batch_size = crash_test::kBatchSize,
              .seed = crash_test::kSeed,
              .callbacks = callbacks,
              .verbose = train::Verbosity::Silent,
              .device = Device(DeviceType::CPU),
              .initial_epoch = initial_epoch});
  std::printf("trained epochs %lld to %lld\n", static_cast<long long>(initial_epoch + 1),
              static_cast<long long>(flags.epochs));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags flags = parse(argc, argv);
  try {
    return run(flags);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "strata_crash_trainer: %s\n", error.what());
    return 1;
  }
}
