#!/usr/bin/env bash
# Time to start the child per store: secrets-init (the release build, or $BIN)
# resolves 1, 10, 50 and 200 references of one store against the fakes the
# tests use (provider/*/*fake, on loopback), each call delayed by 50 ms, and
# runs `env -0`. "to child" is the wall time from exec of secrets-init until
# the child's first output, median of 5 runs after a warm-up run; every run
# checks that the child got every value. "API calls" are counted by the fake:
# Secrets Manager BatchGetSecretValue (20 per call), SSM GetParameters (10 per
# call), Google AccessSecretVersion, Azure every HTTPS request (Entra discovery,
# metadata and token, Key Vault challenges and reads).
#
#   bench/stores.sh [-runs N] [-refs 1,10] [-store secretsmanager|ssm|gcp|azure] [-latency 50ms]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
binary_under_test
echo "# time to start the child, per store ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start)"
"$tmp/harness" stores "$@" "$BIN"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
