# syntax=docker/dockerfile:1
# The router as a container image: `docker build -t router:0.1.0 .`
#
# Run it with the config mounted read-only and the secrets in the environment (the config listens
# on server.host 0.0.0.0, or -p cannot reach it; docs/deployment.md):
#   docker run --rm -p 8080:8080 --stop-timeout 75 -v "$PWD/my-config.yaml:/etc/router/config.yaml:ro" \
#     -e OPENAI_API_KEY -e ANTHROPIC_API_KEY router:0.1.0
# The config's `${VAR}`s are read from the container's environment when the router starts, so
# provider keys and passwords never go into the image or the config file.
#
# Stopping: the router is PID 1 (exec-form ENTRYPOINT, no shell in between) and handles SIGTERM
# itself: /health/ready turns 503, new requests are still served for server.drain_grace_s, then
# requests and streams in flight get server.drain_timeout_s to finish, and it exits 0. Give the
# container longer than drain_grace_s + drain_timeout_s + a few seconds before the SIGKILL
# (`docker stop -t`, compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds).

ARG PYTHON_IMAGE=python:3.11-slim
# Extras baked in: `otel` lets the OTEL_* variables turn tracing on (docs/tracing.md); it is
# imported only then. `--build-arg ROUTER_EXTRAS=` leaves it out.
ARG ROUTER_EXTRAS=otel

# Builder: every wheel the router needs, the router's own included. Compilers, if a dependency
# ever lacks a binary wheel, stay in this stage.
FROM ${PYTHON_IMAGE} AS builder
ARG ROUTER_EXTRAS
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY router ./router
RUN pip wheel --wheel-dir /wheels ".${ROUTER_EXTRAS:+[$ROUTER_EXTRAS]}"

# Runtime: the wheels installed from the builder, offline, and nothing else.
FROM ${PYTHON_IMAGE}
ARG ROUTER_EXTRAS
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "router${ROUTER_EXTRAS:+[$ROUTER_EXTRAS]}" \
    && groupadd --system --gid 10001 router \
    && useradd --system --uid 10001 --gid router --home-dir /var/lib/router --shell /usr/sbin/nologin router \
    && mkdir -p /var/lib/router /etc/router \
    && chown router:router /var/lib/router
# The working directory is the one writable place: the usage ledger (ledger.path) goes here.
WORKDIR /var/lib/router
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# Ready: providers probed and one healthy, not draining. No curl in the slim image: Python's
# urllib, which raises on any status >= 400 (exit 1). The port is the config's server.port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health/ready', timeout=2)"]
ENTRYPOINT ["router"]
CMD ["serve", "--config", "/etc/router/config.yaml"]
