#!/bin/sh
# What secrets-init costs on its pass-through path (no reference in the
# environment): the wall time it adds to `secrets-init -- /bin/true` over
# `/bin/true` alone (median of RUNS interleaved runs each, at least 200), the
# supervisor's memory from /proc/PID/status while its child sleeps, and the
# binary's size. Prints a Markdown table.
#
#   bench/passthrough.sh                                  the default build
#   TAGS='no_aws no_gcp no_azure no_vault' bench/passthrough.sh   a slim build
#
# Environment: TAGS (build tags added to the release build's grpcnotrace),
# RUNS (default 500), GO (default go).
set -eu

cd "$(dirname "$0")/.."
RUNS=${RUNS:-500}
TAGS=${TAGS:-}
tags="grpcnotrace${TAGS:+ $TAGS}"

if [ "$RUNS" -lt 200 ]; then
	echo "passthrough.sh: RUNS must be at least 200" >&2
	exit 2
fi

. bench/lib.sh
release_build "$tmp/secrets-init" "$TAGS"

"$tmp/harness" passthrough -bin "$tmp/secrets-init" -n "$RUNS" >"$tmp/results"
get() { awk -F '\t' -v k="$1" '$1 == k { print $2 }' "$tmp/results"; }

size=$(stat -c %s "$tmp/secrets-init")
cpus=$(nproc 2>/dev/null || echo '?')
load=$(cut -d ' ' -f 1 /proc/loadavg 2>/dev/null || echo '?')

printf '\nsecrets-init pass-through (tags: %s; %s; %s CPUs, load %s; %s runs each, interleaved)\n\n' \
	"$tags" "$("$GO" env GOVERSION)" "$cpus" "$load" "$RUNS"
printf '| measure | value |\n'
printf '|---|---|\n'
printf '| binary size | %s |\n' "$(awk -v s="$size" 'BEGIN { printf "%.1f MB (%d bytes)", s / 1e6, s }')"
printf '| `/bin/true` alone, median | %s |\n' "$(get true_median)"
printf '| `secrets-init -- /bin/true`, median | %s |\n' "$(get wrapped_median)"
printf '| **added wall time, median** | **%s** |\n' "$(get added_median)"
printf '| `/bin/true` alone, p90 | %s |\n' "$(get true_p90)"
printf '| `secrets-init -- /bin/true`, p90 | %s |\n' "$(get wrapped_p90)"
printf '| added CPU time (user+sys), mean | %s |\n' "$(get added_cpu_mean)"
printf '| supervisor VmRSS while the child sleeps | %s |\n' "$(get VmRSS)"
printf '| **supervisor RssAnon while the child sleeps** | **%s** |\n' "$(get RssAnon)"
printf '| supervisor RssFile | %s |\n' "$(get RssFile)"
printf '| supervisor VmHWM (peak RSS) | %s |\n' "$(get VmHWM)"
