# dittofs-operator image: one static-enough binary on distroless.
# glibc build (ring needs no system crypto), run as the distroless nonroot user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
COPY samples ./samples
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin dittofs-operator \
 && cp target/release/dittofs-operator /dittofs-operator

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /dittofs-operator /dittofs-operator
USER 65532:65532
EXPOSE 9443 8081
ENTRYPOINT ["/dittofs-operator"]
CMD ["run", "--help"]
