# The image helm/keel runs (docs/kubernetes.md, "The image"): the `keel` binary on a minimal
# base, as a non-root user. Build from the repository root:
#   docker build -t ghcr.io/keel/keel:$(git describe --tags --always) .

# Build: the toolchain rust-toolchain.toml pins, the locked dependencies, no debug info.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY . .
RUN CARGO_PROFILE_RELEASE_DEBUG=false cargo build --release --locked -p keel --bin keel \
    && strip target/release/keel \
    && install -D target/release/keel /out/keel \
    && mkdir -p /out/data

# Run: glibc and libgcc only (what the binary links, see `ldd`), no shell, uid 65532 as the
# chart's securityContext expects; the data directory is the mounted volume.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/keel /usr/local/bin/keel
COPY --from=build --chown=65532:65532 /out/data /var/lib/keel
USER 65532:65532
# Listen beyond the container's loopback; keep state where the chart mounts its volume.
ENV KEEL_HTTP_ADDR=0.0.0.0:8080 KEEL_DATA_DIR=/var/lib/keel
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/keel"]
