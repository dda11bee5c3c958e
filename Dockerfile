# One dex node. docker-compose.yml runs four of these (n1..n4) and PostgreSQL;
# each container picks its node with DEX_NODE_ID.
# The dashboard's assets: npm installs the pinned front-end packages and
# web/build.mjs writes dex/api/static/ (served by every node at /).
FROM node:20-slim AS assets
WORKDIR /src
COPY web ./web
RUN cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

# dex as a wheel with the compiled engine (setup.py: Cython from PyPI and the C
# compiler, linked to OpenSSL's libcrypto for SHA-256; docs/ENGINE.md). Built in
# a stage that has gcc and OpenSSL's headers; the runtime image gets the wheel
# without them (python:3.11-slim has libcrypto itself, for Python's ssl module).
# Without this stage the image would run the pure-Python engine (it says so in
# its log and in /api/v1/cluster/status).
FROM python:3.11-slim AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY dex ./dex
COPY cluster ./cluster
COPY --from=assets /src/dex/api/static ./dex/api/static
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed non-root uid/gid. /var/lib/dex (the config's data_dir) is created
# and owned by it here so that an empty named volume mounted on it starts with
# this owner (Docker copies the image directory's ownership into a new volume).
RUN groupadd --system --gid 10001 dex \
 && useradd --system --uid 10001 --gid dex --no-create-home --home-dir /app --shell /usr/sbin/nologin dex \
 && mkdir -p /var/lib/dex \
 && chown dex:dex /var/lib/dex

WORKDIR /app
COPY --from=wheel /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && python -c "import dex.engine as e; assert e.IMPLEMENTATION == 'compiled', e.IMPLEMENTATION_REASON"
COPY configs ./configs

USER dex

# Raft (internal to the compose network) and the HTTP API.
EXPOSE 7100 8100

# The node binds its API to its own api host from the config (the service
# name, i.e. the container's address), not to 127.0.0.1, so the check asks the
# config where this node listens.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; from dex.config import load_cluster; cfg = load_cluster(os.environ.get('DEX_CONFIG', '/app/configs/compose-4.toml')); urllib.request.urlopen(cfg.node(os.environ['DEX_NODE_ID']).api_url + '/healthz', timeout=3)"]

# exec: dex becomes PID 1 and gets SIGTERM from `docker stop` itself.
CMD ["sh", "-c", "exec dex node --config \"${DEX_CONFIG:-/app/configs/compose-4.toml}\" --id \"${DEX_NODE_ID:?set DEX_NODE_ID to this node id (n1..n4)}\""]
