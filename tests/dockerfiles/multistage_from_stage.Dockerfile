# syntax=docker/dockerfile:1
# Written for defbuilder's tests: the multi-stage patterns of real Dockerfiles.
ARG PYTHON_VERSION=3.12
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

FROM ${BASE_IMAGE} AS Base
ENV APP_HOME=/opt/app \
    PIP_NO_CACHE_DIR=1
WORKDIR $APP_HOME
ARG BUILD_JOBS=4
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

FROM base AS deps
COPY requirements.txt ./
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --prefix=/install -r requirements.txt

FROM base AS dev
RUN pip install pytest
CMD ["pytest"]

FROM base
COPY --from=DEPS /install /usr/local
COPY --from=ghcr.io/astral-sh/uv:0.5 /uv /uvx /bin/
COPY --from=0 /etc/os-release /etc/base-os-release
COPY src/ ./src/
LABEL org.opencontainers.image.version="${PYTHON_VERSION}"
ENTRYPOINT ["python", "-m", "app"]
