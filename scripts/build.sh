#!/bin/sh
# The release build of secrets-init, as `make build`, `make release` and the
# Dockerfile run it:
#
#   scripts/build.sh OUT
#
# Two steps (docs/resolver-protocol.md): first the resolver, every store that
# needs an SDK, as a static executable; then the supervisor, which links no
# SDK and embeds that executable (tag embedresolver; the file reaches
# go:embed through -overlay, so nothing is written into the source tree).
# When TAGS leaves out every SDK there is no resolver: one plain build.
# The result is checked to link no SDK module.
#
# Environment: TAGS (more build tags, e.g. 'no_gcp no_azure'), VERSION,
# GO (default go); GOOS and GOARCH reach go as usual.
set -eu
out=$1
GO=${GO:-go}
tags="grpcnotrace${TAGS:+ $TAGS}"
ldflags="-s -w -X main.version=${VERSION:-dev}"
export CGO_ENABLED=0

sdk=
for s in aws gcp azure vault; do
	case " $tags " in *" no_$s "*) ;; *) sdk=yes ;; esac
done
if [ -z "$sdk" ]; then
	exec "$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$out" .
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$GO" build -trimpath -tags "$tags" -ldflags '-s -w -buildid=' -o "$tmp/secrets-init-resolver" ./internal/resolver/cmd/secrets-init-resolver
printf '{"Replace":{"%s/internal/resolver/bin/secrets-init-resolver":"%s/secrets-init-resolver"}}\n' "$(pwd)" "$tmp" >"$tmp/overlay.json"
"$GO" build -trimpath -tags "$tags embedresolver" -overlay "$tmp/overlay.json" -ldflags "$ldflags" -o "$out" .

# The supervisor must link no SDK: its build info lists every module linked.
if "$GO" version -m "$out" | grep -E '^\s+dep\s+(github\.com/aws/|cloud\.google\.com/|github\.com/Azure/|github\.com/hashicorp/vault/|google\.golang\.org/grpc )'; then
	echo "build.sh: $out links an SDK" >&2
	exit 1
fi
