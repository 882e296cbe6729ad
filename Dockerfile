# One image for every process of the Product Order Service; the command picks the process:
#   docker run IMAGE gateway | accounts | products | inventory | orders | notifications | webhooks | payments |
#                    kafka_bridge
#   docker run IMAGE migrate | payment_provider | inventory_grpc
# CONFIG (default config/prod.yml) selects the environment's config; every address and secret comes from the env.

# The gRPC stubs are generated here, never committed: grpcio-tools (setup.cfg's `protos` extra) stays in this stage.
FROM python:3.11-slim-bookworm AS protos
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY setup.cfg ./
RUN python -c "import configparser; c = configparser.RawConfigParser(); c.read('setup.cfg'); \
print(c['options.extras_require']['protos'])" > protos-requirements.txt \
    && pip install --no-cache-dir -r protos-requirements.txt
COPY protos/ protos/
COPY common/__init__.py common/protos.py common/
COPY payment_provider/__init__.py payment_provider/build_protos.py payment_provider/
COPY inventory_grpc/__init__.py inventory_grpc/build_protos.py inventory_grpc/
RUN python -m payment_provider.build_protos && python -m inventory_grpc.build_protos

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The runtime dependencies only (setup.cfg's install_requires, no extras) first, so a code change reuses this layer.
COPY setup.cfg pyproject.toml README.md ./
RUN mkdir common && touch common/__init__.py \
    && pip install --no-cache-dir . \
    && pip uninstall --yes product-order-service \
    && rm -rf common build ./*.egg-info
COPY common/ common/
COPY services/ services/
COPY gateway/ gateway/
COPY bridge/ bridge/
COPY schemas/ schemas/
COPY payment_provider/ payment_provider/
COPY inventory_grpc/ inventory_grpc/
COPY protos/ protos/
COPY config/ config/
COPY scripts/ scripts/
COPY --from=protos /app/payment_provider/generated/ payment_provider/generated/
COPY --from=protos /app/inventory_grpc/generated/ inventory_grpc/generated/
RUN python -m compileall -q common services gateway bridge schemas payment_provider inventory_grpc scripts

FROM python:3.11-slim-bookworm
ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="product-order-service" \
      org.opencontainers.image.revision="${GIT_SHA}"
# Unicode fonts for the invoices (DejaVu; Droid Sans Fallback for CJK): services/notifications/invoices.py
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-dejavu-core=2.37-6 fonts-droid-fallback=1:6.0.1r16-1.1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONWARNINGS=ignore \
    CONFIG=config/prod.yml \
    METRICS_PORT=9100 \
    METRICS_ADDR=0.0.0.0 \
    GIT_SHA=${GIT_SHA}
USER 10001:10001
EXPOSE 8000 9100 50051 50052
ENTRYPOINT ["/app/scripts/container-entrypoint.sh"]
CMD ["gateway"]
