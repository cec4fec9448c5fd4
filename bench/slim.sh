#!/usr/bin/env bash
# Slim builds: the full binary and each one-store build, built as `make
# release` does (CGO_ENABLED=0 go build -trimpath -tags grpcnotrace -ldflags='-s -w'), with
# their size and start time: `secrets-init --version` and `secrets-init --
# /bin/true` (no reference: pass-through), median wall time of $RUNS runs
# (default 200) after 5 warm-up runs, each from exec to exit, in an
# environment of PATH and HOME only. /bin/true alone is the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-200}
. bench/lib.sh
builds=(
	"full|"
	"none|no_aws no_gcp no_azure no_vault"
	"aws-only|no_gcp no_azure no_vault"
	"gcp-only|no_aws no_azure no_vault"
	"vault-only|no_aws no_gcp no_azure"
	"azure-only|no_aws no_gcp no_vault"
)
echo "# slim builds: size and start time, median of $RUNS runs ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start)"
printf '%-11s %-34s %9s %9s %14s %16s\n' build tags 'size MB' 'size MiB' '--version ms' '-- /bin/true ms'
for b in "${builds[@]}"; do
	name=${b%%|*} tags=${b#*|}
	release_build "$tmp/$name" "$tags"
	size=$(stat -c %s "$tmp/$name")
	version=$("$tmp/harness" exectime -n "$RUNS" "$tmp/$name" --version)
	true_ms=$("$tmp/harness" exectime -n "$RUNS" "$tmp/$name" -- /bin/true)
	awk -v n="$name" -v t="${tags:-(none)}" -v s="$size" -v v="$version" -v p="$true_ms" \
		'BEGIN { printf "%-11s %-34s %9.1f %9.1f %14s %16s\n", n, t, s / 1e6, s / 1048576, v, p }'
done
printf '%-11s %-34s %9s %9s %14s %16s\n' /bin/true '' '' '' '' "$("$tmp/harness" exectime -n "$RUNS" /bin/true)"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
