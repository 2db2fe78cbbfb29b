# The retain binary in a small image: the same binary serves the dashboard and API, runs the
# batch steps and the schedule, and runs as a Ballista scheduler or executor (`retain cluster`).
#
#   docker build -t retain .
#   docker run -v retain-data:/data -p 8080:8080 retain            # serve /data/retain
#   docker run -v retain-data:/data retain demo --dir /data/retain --subscribers 20000
#
# Two stages: the build toolchain stays out of the image; the image runs as a user of its own.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p retain

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home retain
COPY --from=build /src/target/release/retain /usr/local/bin/retain
USER retain
WORKDIR /data
ENV TZ=Asia/Shanghai RETAIN_LOG=info
EXPOSE 8080
# The server's own health endpoint, asked with bash alone: the image carries no HTTP client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["retain"]
CMD ["serve", "--dir", "/data/retain", "--addr", "0.0.0.0:8080"]
