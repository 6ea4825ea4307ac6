# Our OpenTelemetry Collector distribution (otelcol-caret), built from
# collector/builder-config.yaml exactly as `make collector` does, in a small image.
#
#   docker build -f deploy/collector.Dockerfile -t otelcol-caret .   # from the repo root
#
# The configs are not baked in: docker-compose mounts otel-collector-config.yaml and
# collector/privacy-pass.yaml, so a registry change (caret-otel generate) needs no rebuild.

FROM golang:1.26 AS build
ARG COLLECTOR_VERSION=0.161.0
RUN go install go.opentelemetry.io/collector/cmd/builder@v${COLLECTOR_VERSION}
WORKDIR /src/collector
COPY collector/builder-config.yaml ./
# Static binary: the runtime image has no C library to link against.
ENV CGO_ENABLED=0
RUN builder --config builder-config.yaml && cp ../build/otelcol-caret-src/otelcol-caret /otelcol-caret
# The persistent queue's directory, owned by the runtime user (a named volume mounted
# here starts with this ownership).
RUN mkdir -p /queue/storage

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /otelcol-caret /otelcol-caret
COPY --from=build --chown=65532:65532 /queue /var/lib/otelcol-caret
# OTLP gRPC/HTTP, health check, own metrics.
EXPOSE 4317 4318 13133 8888
ENTRYPOINT ["/otelcol-caret"]
CMD ["--config=/etc/otelcol-caret/otel-collector-config.yaml", "--config=/etc/otelcol-caret/privacy-pass.yaml"]
