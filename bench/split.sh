#!/usr/bin/env bash
# The split build (a supervisor with no SDK, the resolver embedded) side by
# side, in one run, with the single-process build of the same code (plain
# `go build`), the release build from before the split, and tini (the
# floor; Debian's package). One table: size, pass-through wall time and
# the supervisor's memory while the command runs (interleaved runs), and
# the time to start the command with 1, 10 and 50 Secrets Manager
# references against the fake at 50 ms per call. Then the resolver's own
# start cost, and how much of it is copying the executable into the memfd.
#
#   bench/split.sh [BEFORE]    BEFORE: a git revision (default: the commit
#                              before internal/resolver was added)
#
# Environment: RUNS (pass-through runs, default 500), REFRUNS (runs per
# reference count, default 11), SPLIT_BEFORE (a git revision: its split
# build, made by its own scripts/build.sh, is one more column), GO.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
before=${1:-$(git log --diff-filter=A --format=%H -- internal/resolver/protocol.go | tail -1)^}
before=$(git rev-parse --short "$before")

release_build "$tmp/split"
CGO_ENABLED=0 "$GO" build -trimpath -tags grpcnotrace -ldflags '-s -w' -o "$tmp/single" .
mkdir "$tmp/src"
git archive "$before" | tar -x -C "$tmp/src"
(cd "$tmp/src" && CGO_ENABLED=0 "$GO" build -trimpath -tags grpcnotrace -ldflags '-s -w' -o "$tmp/before" .)
CGO_ENABLED=0 "$GO" build -trimpath -tags grpcnotrace -ldflags '-s -w -buildid=' -o "$tmp/resolver" ./internal/resolver/cmd/secrets-init-resolver

builds=("split=$tmp/split")
if [ -n "${SPLIT_BEFORE:-}" ]; then
	mkdir "$tmp/src-split"
	git archive "$SPLIT_BEFORE" | tar -x -C "$tmp/src-split"
	(cd "$tmp/src-split" && GO="$GO" scripts/build.sh "$tmp/split-before")
	builds+=("split at $(git rev-parse --short "$SPLIT_BEFORE")=$tmp/split-before")
fi
builds+=("single-process=$tmp/single" "before ($before)=$tmp/before")
if tini=$(command -v tini); then
	builds+=("tini $($tini --version | awk '{print $3}')=$tini -s")
else
	echo "# tini not found (apt-get install tini): no tini column" >&2
fi

echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $("$GO" env GOVERSION)"
"$tmp/harness" compare -n "${RUNS:-500}" -runs "${REFRUNS:-11}" "${builds[@]}"
echo
echo "# the resolver alone ($(stat -c %s "$tmp/resolver" | awk '{printf "%.1f MB", $1/1e6}')): copy into a memfd; copy, start, one request, exit"
RESOLVER_BENCH_EXE=$tmp/resolver "$GO" test ./internal/resolver -run '^$' -bench 'Copy|Start' -benchtime 50x | grep '^Benchmark'
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
