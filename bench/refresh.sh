#!/usr/bin/env bash
# The cost of --refresh while the command runs: the release build (or $BIN)
# with 25 Secrets Manager and 25 SSM references against the AWS fake (50 ms
# per call) and a child that sleeps. The interval is 2s, below the 10s
# minimum through the test-only SECRETS_INIT_TEST_REFRESH_FLOOR, standing in
# for --refresh 1m: 10 rounds are "10 minutes" (a round's work does not
# depend on the interval). One row per round: the fake's calls per API, the
# child's starts, and the CPU time (utime+stime, cumulative) and
# RssAnon/VmRSS of the supervisor and of the resident resolver. After round
# 5 one secret is rotated: round 6 shows the extra read and the one restart.
#
#   bench/refresh.sh [-sm 25] [-ssm 25] [-interval 2s] [-rounds 10] [-rotate-after 5] [-latency 50ms]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
binary_under_test
echo "# --refresh rounds ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $("$GO" env GOVERSION))"
"$tmp/harness" refresh "$@" "$BIN"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
