# Sourced by the bench scripts, from the repository's root: a scratch
# directory, the harness, and the release build as `make build` makes it.
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
"$GO" build -o "$tmp/harness" ./bench/harness

# release_build OUT [TAGS]: the release build, as `make build` makes it
# (scripts/build.sh: CGO_ENABLED=0, -trimpath, grpcnotrace, stripped; the
# supervisor with the resolver embedded unless TAGS leaves out every SDK).
release_build() {
	GO="$GO" TAGS="${2:-}" scripts/build.sh "$1"
}

# binary_under_test sets BIN, unless the caller did, to a release build.
binary_under_test() {
	if [ -z "${BIN:-}" ]; then
		release_build "$tmp/secrets-init"
		BIN=$tmp/secrets-init
	fi
}
