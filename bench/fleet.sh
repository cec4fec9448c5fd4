#!/usr/bin/env bash
# The fleet test: 200 secrets-init processes (the release build, or $BIN)
# started at once, 10 Secrets Manager references each, against the AWS fake
# (provider/aws/awsfake, loopback) limited to 100 requests/s: a token bucket
# of 100 (or -burst) refilled at 100/s, answering ThrottlingException above
# it, 50 ms per call. Each process needs one BatchGetSecretValue, so the
# minimum is 200 calls; the target is every child started with its values,
# and at most 1.5 x the minimum.
#
# Rows:
#   start as they can  the processes start as fast as this machine runs them
#                      (on a few cores, starting 200 processes spreads them over
#                      a second or two, which softens the burst)
#   at once            the fake holds every first request until all 200 have
#                      sent one ("held s"), then lets them reach the limit
#                      together, as 200 pods on as many nodes would
#   at once, burst 10  the same against a bucket of 10: a stress row
#
# Columns: started = processes whose child ran with every value; wrong = a
# child that got a raw reference or a wrong value; failed = secrets-init
# exited non-zero or was killed; wall s = first exec to last exit; p50/p90/max
# s = exec until the child's first output; calls = API calls the fake
# received (throttled ones included); ratio = calls / minimum.
#
# Each process has --timeout 30s and is killed at 40s: the script ends within
# about 2 minutes whatever happens. Extra arguments go to every row, e.g.
# -procs 100, -env NAME=VALUE. LABEL names the build in the table.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
binary_under_test
LABEL=${LABEL:-$(git describe --tags --always --dirty 2>/dev/null || echo this)}
echo "# fleet: 200 processes x 10 Secrets Manager references, 100 requests/s ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start)"
"$tmp/harness" fleet -label "$LABEL, start as they can" "$@" "$BIN"
"$tmp/harness" fleet -header=false -label "$LABEL, at once" -at-once "$@" "$BIN"
"$tmp/harness" fleet -header=false -label "$LABEL, at once, burst 10" -at-once -burst 10 "$@" "$BIN"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
