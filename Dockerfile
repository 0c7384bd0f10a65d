# syntax=docker/dockerfile:1
#
# The Larder image: the `larder` binary alone, on a minimal base with CA certificates (for
# TLS to PostgreSQL, Redis and the trace collector), run as a non-root user.
#
#   docker build -t larder:0.1.0 .
#   docker run --rm -p 8080:8080 -e DATABASE_URL=postgres://… larder:0.1.0
#
# The Helm chart's default image.repository is `larder`, this image; push it to your
# registry and set image.repository to where it lives.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a change to Larder's own code rebuilds only Larder.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY migrations ./migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p larder-server --bin larder \
    && install -D -m 0755 target/release/larder /out/larder

# distroless: glibc, CA certificates, no shell, no package manager; `nonroot` is uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/larder /usr/local/bin/larder
ENV LARDER_LISTEN=0.0.0.0:8080
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/larder"]
CMD ["serve"]
