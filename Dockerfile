# secrets-init image: the static binary and CA certificates on an empty base.
#
#   As an ENTRYPOINT base:   COPY --from=IMAGE /secrets-init /secrets-init
#                            ENTRYPOINT ["/secrets-init", "--"]
#   As an initContainer:     image: IMAGE, args: ["copy", "/helper/bin"]
#                            (the default command already is `copy /helper/bin`)
#
# Build: docker build --build-arg VERSION=$(git describe --tags --always) -t secrets-init .
# Slim:  docker build --build-arg TAGS='no_gcp no_azure' -t secrets-init:aws-vault .

FROM golang:1.26-bookworm AS build
ARG VERSION=dev
ARG TAGS=
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same static build as `make release`: the resolver, then the
# supervisor that embeds it (scripts/build.sh; its grpcnotrace tag: see the Makefile).
RUN TAGS="$TAGS" VERSION="$VERSION" scripts/build.sh /out/secrets-init \
 && /out/secrets-init --version \
 && mkdir -p /out/root/usr/local/bin \
 && mv /out/secrets-init /out/root/secrets-init \
 && ln -s /secrets-init /out/root/usr/local/bin/secrets-init

FROM scratch AS secrets-init
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# /secrets-init, as doitintl's image has it, and /usr/local/bin/secrets-init
# (a symlink), the path kube-secrets-init's initContainer copies from.
COPY --from=build /out/root/ /
# nobody: the copy step and the supervisor need no privilege.
USER 65534:65534
ENTRYPOINT ["/secrets-init"]
CMD ["copy", "/helper/bin"]

# The admission webhook (docs/kubernetes.md), a target of its own:
#   docker build --target webhook -t secrets-init-webhook .
# Its module (webhook/, with client-go and go-containerregistry) is built
# apart from the secrets-init binary above, which never links them.
FROM golang:1.26-bookworm AS webhook-build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
COPY webhook/go.mod webhook/go.sum ./webhook/
RUN cd webhook && go mod download
COPY . .
RUN cd webhook && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION" \
      -o /out/secrets-init-webhook ./cmd/secrets-init-webhook \
 && /out/secrets-init-webhook --version

FROM scratch AS webhook
COPY --from=webhook-build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=webhook-build /out/secrets-init-webhook /secrets-init-webhook
USER 65534:65534
EXPOSE 8443
ENTRYPOINT ["/secrets-init-webhook"]

# The default target stays the secrets-init image.
FROM secrets-init
