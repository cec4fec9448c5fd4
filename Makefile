# secrets-init — build, test, release.
#
#   make build     the binary for this machine, ./secrets-init
#   make demo      secrets-init against local fakes of AWS, Google and Azure
#   make test      everything CI runs: vet, unit and PID-1 tests with -race,
#                  the fuzz targets for a short time, the end-to-end modules,
#                  the demo
#   make release   static linux/amd64 and linux/arm64 binaries in dist/
#   make bench     the benchmark tables

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Build tags added to the release build's own. scripts/build.sh always adds
# grpcnotrace, which keeps golang.org/x/net/trace (and the html/template it
# brings, which stops the linker from dropping unused methods) out of the
# resolver: 28.6 MB to 20.3 MB.
TAGS      ?=
FUZZTIME  ?= 20s
# The e2e modules build Vault and kube-apiserver inside the test binary (in
# TestMain), and go test's -timeout covers that: a cold build on a busy
# 2-core machine took over 10 minutes, go test's default.
E2ETIMEOUT ?= 45m
E2E       := $(wildcard e2e/*/go.mod)

.PHONY: build test vet unit fuzz e2e e2e-kubernetes release bench demo example clean

# The release build is two steps (the resolver, then the supervisor that
# embeds it); scripts/build.sh runs them. A plain `go build` gives the
# single-process binary.
build:
	GO='$(GO)' TAGS='$(TAGS)' VERSION='$(VERSION)' scripts/build.sh secrets-init

test: vet unit fuzz e2e demo

# vet checks every build-tag variant (each no_* alone, then all together),
# and the split supervisor's (tag embedresolver), so that files only one
# variant compiles (provider/vault/login_off_*.go, internal/stores/*.go,
# split_*.go) cannot rot.
vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...
	@for tags in no_aws no_gcp no_azure no_vault 'no_aws no_gcp no_azure no_vault'; do \
		echo "$(GO) vet -tags '$$tags' ./..."; $(GO) vet -tags "$$tags" ./... || exit 1; \
	done
	@# The split supervisor's files, with an empty stand-in for the resolver.
	@tmp=$$(mktemp -d) && : >"$$tmp/empty" && \
	printf '{"Replace":{"%s/internal/resolver/bin/secrets-init-resolver":"%s/empty"}}' "$$(pwd)" "$$tmp" >"$$tmp/overlay.json" && \
	echo "$(GO) vet -tags embedresolver ./..." && $(GO) vet -tags embedresolver -overlay "$$tmp/overlay.json" ./...; \
	rc=$$?; rm -rf "$$tmp"; exit $$rc

unit:
	$(GO) test -race -count=1 ./...
	$(GO) build -tags 'no_aws no_gcp no_azure no_vault' -o /dev/null .
	cd webhook && $(GO) vet ./... && $(GO) test -race -count=1 ./...

fuzz:
	$(GO) test ./provider -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./provider -run '^$$' -fuzz '^FuzzShownReference$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./envfile -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./provider -run '^$$' -fuzz '^FuzzMembers$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./provider/jwe -run '^$$' -fuzz '^FuzzPrepare$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./supervisor -run '^$$' -fuzz '^FuzzScrub$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./supervisor -run '^$$' -fuzz '^FuzzEnvRange$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzReadYAML$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	$(GO) test ./internal/resolver -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	cd webhook && $(GO) test ./server -run '^$$' -fuzz '^FuzzSecretsReview$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x
	cd webhook && $(GO) test ./registry -run '^$$' -fuzz '^FuzzACRParsers$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 200x

e2e:
	@for m in $(E2E); do d=$$(dirname $$m); echo "== $$d"; (cd $$d && $(GO) test -count=1 -timeout $(E2ETIMEOUT) ./...) || exit 1; done

e2e-kubernetes:
	cd e2e/kubernetes && $(GO) test -count=1 -timeout $(E2ETIMEOUT) -v ./...

release:
	@mkdir -p dist
	@for arch in amd64 arm64; do \
		GOOS=linux GOARCH=$$arch GO='$(GO)' TAGS='$(TAGS)' VERSION='$(VERSION)' scripts/build.sh dist/secrets-init-linux-$$arch || exit 1; \
	done
	@cd dist && sha256sum secrets-init-linux-* > SHA256SUMS && ls -l secrets-init-linux-* | awk '{printf "%-28s %8.1f MB\n", $$9, $$5/1e6}'

bench:
	$(GO) test ./provider/... -run '^$$' -bench . -benchtime 5x
	bench/passthrough.sh
	bench/slim.sh
	bench/stores.sh
	bench/fleet.sh
	bench/split.sh
	bench/refresh.sh

clean:
	rm -rf secrets-init dist

example: build
	./secrets-init --env-file examples/local/app.env -- sh examples/local/show.sh

demo: build
	$(GO) run ./internal/demo ./secrets-init
