# graph-router: drop-in replacement for KServe's router image.
#   docker build -t graph-router .
#   docker run --read-only -p 8080:8080 graph-router --graph-json '{"nodes": {...}}'
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY graph_router ./graph_router
# grpc: `serve --grpc-port` (the Open Inference Protocol over gRPC) and grpc:// steps
RUN pip install --no-cache-dir --prefix=/install '.[fast,grpc]'

FROM python:3.11-slim
COPY --from=build /install /usr/local
# non-root; nothing is written at run time, so the root filesystem can be read-only.
# Metrics with --workers N use PROMETHEUS_MULTIPROC_DIR, which must be a writable tmpfs (emptyDir).
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin router
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# 8080 HTTP; 8081 gRPC when started with --grpc-port 8081 (KServe's model servers' gRPC port)
EXPOSE 8080 8081
ENTRYPOINT ["graph-router", "serve"]
CMD ["--help"]
