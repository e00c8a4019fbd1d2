# The agenthost image: one static binary (CGO_ENABLED=0) on an empty base,
# run as the non-root user agenthost (10001). It runs any subcommand:
#
#   docker build -t agenthost .
#   docker run -p 8080:8080 agenthost serve            # the demo agent
#   docker run -p 8080:8080 agenthost relay
#   docker run -p 8080:8080 agenthost platform --driver docker ...
#
# serve, platform and relay listen on $PORT (8080 here), and HEALTHCHECK
# probes it with "agenthost health" (the image has no shell and no curl).
# State goes to /data, the working directory and $HOME: mount a volume there.
# See docs/operations.md.
#
# It needs BuildKit (docker build's builder since Docker 23), which skips
# the stages the chosen ROOTFS does not use.
#
# GO_IMAGE is the Go toolchain image the build stage compiles in.
ARG GO_IMAGE=golang:1.26-bookworm
# ROOTFS says where the root filesystem comes from: "build" compiles this
# source tree in GO_IMAGE; "prebuilt" takes dist/rootfs from the build
# context, laid out by deploy/docker/rootfs.sh around a static binary built
# on the host (make image-prebuilt): no Go image, and so no registry, needed.
ARG ROOTFS=build

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# VERSION, when given, is what "agenthost version" prints; otherwise the
# module version, or "devel" (the build context has no .git).
ARG VERSION=""
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w${VERSION:+ -X github.com/agenthost/agenthost/internal/version.Version=$VERSION}" \
      -o /out/agenthost ./cmd/agenthost && \
    sh deploy/docker/rootfs.sh /out/agenthost /rootfs

FROM scratch AS prebuilt
COPY dist/rootfs/ /rootfs/

FROM ${ROOTFS} AS rootfs

FROM scratch
COPY --from=rootfs /rootfs/root/ /
COPY --from=rootfs --chown=10001:10001 /rootfs/data/ /data/
USER 10001:10001
WORKDIR /data
ENV HOME=/data \
    PORT=8080 \
    AGENTHOST_DATA=/data/platform \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["agenthost", "health"]
ENTRYPOINT ["agenthost"]
CMD ["serve"]
