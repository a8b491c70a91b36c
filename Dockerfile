# syntax=docker/dockerfile:1.7
#
# One image for every Tribe process: `tribe api`, `tribe realtime`, `tribe worker`,
# `tribe migrate`, `tribe seed`. compose.yaml picks the subcommand per service.
#
#   docker build -t tribe .
#   docker run --rm --env-file tribe.env tribe api --host 0.0.0.0 --port 8000
#
# Only the main dependencies go in: the `engines` group (embedded Postgres, Redis,
# NATS, SeaweedFS, localstripe, the SMTP sink) and the `dev` group stay out, since a
# container reaches real engines through the TRIBE_*_URL settings.

ARG PYTHON_IMAGE=python:3.11-slim
# Same uv release that wrote uv.lock, so `--locked` reads it as the developers do.
ARG UV_VERSION=0.13.9
# localstripe, the fake Stripe API compose.yaml runs; same version as uv.lock.
ARG LOCALSTRIPE_VERSION=1.15.10

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- builder: resolve and install into /app/.venv ------------------------------------
FROM ${PYTHON_IMAGE} AS builder

COPY --from=uv /uv /usr/local/bin/uv

ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies first, from the lock file alone, so a source change reuses this layer.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    uv sync --locked --no-dev --no-install-project

# Then the project itself, editable: /app is laid out like a checkout, so code that
# finds files beside the packages (shared/db/migrate.py -> /app/migrations) works.
COPY . /app
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev \
 && /app/.venv/bin/python -m compileall -q -j 0 api realtime workers shared migrations

# --- localstripe: the fake Stripe API used by compose.yaml (`target: localstripe`) ----
FROM ${PYTHON_IMAGE} AS localstripe
ARG LOCALSTRIPE_VERSION
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --disable-pip-version-check "localstripe==${LOCALSTRIPE_VERSION}" \
 && groupadd --system --gid 10001 stripe \
 && useradd --system --uid 10001 --gid stripe --home-dir /nonexistent --shell /usr/sbin/nologin stripe
USER 10001:10001
WORKDIR /tmp
EXPOSE 8420
ENTRYPOINT ["localstripe"]
CMD ["--port", "8420"]

# --- runtime: the default target --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN groupadd --system --gid 10001 tribe \
 && useradd --system --uid 10001 --gid tribe --home-dir /home/tribe --create-home \
        --shell /usr/sbin/nologin tribe

# Code stays owned by root: the processes only read it.
COPY --from=builder /app /app

WORKDIR /app
USER 10001:10001

EXPOSE 8000 8001
ENTRYPOINT ["tribe"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
