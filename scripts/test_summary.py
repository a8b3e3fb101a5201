#!/usr/bin/env python3
"""Counts GoogleTest cases from the JSON reports that the ctest entries write (one per suite,
cmake/StrataTestSuites.cmake), since ctest itself counts suites: cases run, passed, failed and
skipped, in total and, with --by-suite, per suite; the failed cases by name.

usage: scripts/test_summary.py RESULTS_DIR [--by-suite | --notable] [--out FILE]
  --notable: the per-suite rows of suites with failed or skipped cases only
Exits 0 whatever the results (the caller decides from ctest's status); 2 when there are no
reports at all.
"""
import argparse
import glob
import json
import os
import sys
from collections import OrderedDict


def read_reports(results_dir):
    """{suite: {"passed": n, "failed": n, "skipped": n, "seconds": s, "failed_cases": [...]}}"""
    suites = OrderedDict()
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
        except (OSError, ValueError) as error:
            print(f"test_summary: cannot read {path}: {error}", file=sys.stderr)
            continue
        for suite in report.get("testsuites", []):
            counts = suites.setdefault(suite["name"], {"passed": 0, "failed": 0, "skipped": 0,
                                                       "seconds": 0.0, "failed_cases": []})
            for case in suite.get("testsuite", []):
                if case.get("status") != "RUN":
                    continue  # filtered out or disabled
                counts["seconds"] += float(str(case.get("time", "0s")).rstrip("s") or 0)
                if case.get("failures"):
                    counts["failed"] += 1
                    counts["failed_cases"].append(f"{suite['name']}.{case['name']}")
                elif case.get("result") == "SKIPPED":
                    counts["skipped"] += 1
                else:
                    counts["passed"] += 1
    return suites


def format_summary(suites, by_suite, notable=False):
    lines = []
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for counts in suites.values():
        for key in total:
            total[key] += counts[key]
    run = sum(total.values())
    rows = suites
    if notable:
        rows = {name: c for name, c in suites.items() if c["failed"] or c["skipped"]}
    if (by_suite or notable) and rows:
        width = max(len(name) for name in rows)
        lines.append(f"{'suite':<{width}}  {'cases':>5} {'passed':>6} {'failed':>6} "
                     f"{'skipped':>7} {'seconds':>8}")
        for name, c in rows.items():
            cases = c["passed"] + c["failed"] + c["skipped"]
            lines.append(f"{name:<{width}}  {cases:>5} {c['passed']:>6} {c['failed']:>6} "
                         f"{c['skipped']:>7} {c['seconds']:>8.1f}")
    lines.append(f"GoogleTest cases: {run} run in {len(suites)} suites, {total['passed']} passed, "
                 f"{total['failed']} failed, {total['skipped']} skipped")
    skipped_suites = [name for name, c in suites.items() if c["skipped"]]
    if skipped_suites and not notable:
        lines.append("  skipped cases are in: " + ", ".join(skipped_suites))
    failed = [case for c in suites.values() for case in c["failed_cases"]]
    if failed:
        lines.append("  failed cases:")
        lines.extend("    " + case for case in failed)
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir")
    parser.add_argument("--by-suite", action="store_true")
    parser.add_argument("--notable", action="store_true")
    parser.add_argument("--out", help="also write the summary to this file")
    args = parser.parse_args()
    suites = read_reports(args.results_dir)
    if not suites:
        print(f"no GoogleTest reports in {args.results_dir}")
        return 2
    text = format_summary(suites, args.by_suite, args.notable)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
