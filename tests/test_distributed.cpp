// The MPI process group, on loopback: each case runs strata_dist_worker (tests/distributed/)
// under `mpirun --oversubscribe -np N` and reads its exit status and output. Skipped with the
// reason when this Strata was built without MPI or no mpirun was found.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <string>
#include <vector>

#include "strata/distributed.h"
#include "strata/strata.h"
#include "subprocess.h"
#include "test_files.h"
#include "test_util.h"

namespace strata {
namespace {

struct JobResult {
  int status = -1;
  double seconds = 0.0;
  std::string output;
};

// NOTE: mpirun refuses to start as root without these (CI containers run as root);
// --oversubscribe lets 3 ranks share 2 cores.
JobResult run_job(int ranks, const std::string& scenario) {
  test::TempDir dir;
  const std::vector<std::string> argv = {STRATA_MPIEXEC,        "--oversubscribe",  "-np",
                                         std::to_string(ranks), STRATA_DIST_WORKER, scenario};
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = test::spawn(argv, dir.path() / "output.txt",
                                {"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1",
                                 "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1"});
  JobResult result;
  if (pid < 0) return result;
  result.status = test::wait_for(pid, std::chrono::seconds(120), "mpirun " + scenario);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.output = test::read_text(dir.path() / "output.txt");
  return result;
}

#define SKIP_WITHOUT_MPI()                                                                  \
  do {                                                                                      \
    if (!distributed::mpi_available()) GTEST_SKIP() << "this Strata was built without MPI"; \
    if (std::string(STRATA_MPIEXEC).empty()) GTEST_SKIP() << "CMake found no mpirun";       \
  } while (false)

// Runs `scenario` on 2 and on 3 ranks; each must exit cleanly with every rank's "ok" line.
void expect_every_rank_ok(const std::string& scenario) {
  for (int ranks : {2, 3}) {
    SCOPED_TRACE(std::to_string(ranks) + " ranks");
    const JobResult job = run_job(ranks, scenario);
    EXPECT_TRUE(test::exited_cleanly(job.status)) << job.output;
    for (int r = 0; r < ranks; ++r) {
      EXPECT_NE(job.output.find("rank " + std::to_string(r) + ": " + scenario + " ok"),
                std::string::npos)
          << job.output;
    }
  }
}

TEST(DistributedMpi, CollectivesAreExactOnTwoAndThreeRanks) {
  SKIP_WITHOUT_MPI();
  expect_every_rank_ok("collectives");
}

TEST(DistributedMpi, MismatchedSizesAreReportedOnEveryRank) {
  SKIP_WITHOUT_MPI();
  const JobResult job = run_job(2, "mismatch");
  EXPECT_TRUE(test::exited_cleanly(job.status)) << job.output;
  EXPECT_NE(job.output.find("rank 0: mismatch reported"), std::string::npos) << job.output;
  EXPECT_NE(job.output.find("rank 1: mismatch reported"), std::string::npos) << job.output;
}

TEST(DistributedMpi, ARankThatNeverArrivesFailsTheJobWithinTheTimeout) {
  SKIP_WITHOUT_MPI();
  const JobResult job = run_job(2, "timeout");
  EXPECT_FALSE(test::exited_cleanly(job.status)) << job.output;
  EXPECT_NE(job.output.find(
                "rank 0: process group broken (all_reduce #1 of 8 f32 elements (sum) timed out"),
            std::string::npos)
      << job.output;
  EXPECT_NE(job.output.find("rank 1 never reached it"), std::string::npos) << job.output;
  EXPECT_LT(job.seconds, 30.0) << job.output;
}

TEST(DistributedMpi, ARankThatDiesEndsTheJob) {
  SKIP_WITHOUT_MPI();
  const JobResult job = run_job(2, "die");
  EXPECT_FALSE(test::exited_cleanly(job.status)) << job.output;
  EXPECT_LT(job.seconds, 30.0) << job.output;
}

TEST(DistributedMpi, ARankThatDiesDuringFitEndsTheJob) {
  SKIP_WITHOUT_MPI();
  const JobResult job = run_job(2, "fit_die");
  EXPECT_FALSE(test::exited_cleanly(job.status)) << job.output;
  EXPECT_LT(job.seconds, 30.0) << job.output;
}

TEST(DistributedMpi, FitOnAProcessGroupEqualsOneProcessOnTheWholeBatch) {
  SKIP_WITHOUT_MPI();
  expect_every_rank_ok("fit");
}

TEST(DistributedMpi, DataParallelEqualsOneProcessOnTheWholeBatch) {
  SKIP_WITHOUT_MPI();
  expect_every_rank_ok("ddp");
}

TEST(DistributedMpi, SyncBatchNormEqualsBatchNormOnTheWholeBatch) {
  SKIP_WITHOUT_MPI();
  expect_every_rank_ok("syncbn");
}

TEST(DistributedMpi, CheckpointAndResumeUnderDataParallelEqualAnUninterruptedRun) {
  SKIP_WITHOUT_MPI();
  expect_every_rank_ok("resume");
}

TEST(DistributedMpi, MisuseIsAnErrorNamingTheCall) {
  if (distributed::mpi_available()) GTEST_SKIP() << "built with MPI (the worker covers misuse)";
  test::expect_error([] { (void)distributed::new_mpi_group(); },
                     {"new_mpi_group", "without MPI", "libopenmpi-dev"});
}

}  // namespace
}  // namespace strata
