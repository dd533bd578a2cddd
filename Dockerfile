# syntax=docker/dockerfile:1
# batchrun as a container: docker build --build-arg VERSION=0.1.0 -t batchrun:0.1.0 .
# VERSION must be the package version (pyproject.toml): the build checks that the wheel agrees.

FROM python:3.11-slim AS builder
ARG VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY batchrun ./batchrun
RUN python -m pip wheel --no-deps --wheel-dir /dist . \
 && if [ ! -f "/dist/batchrun-${VERSION}-py3-none-any.whl" ]; then \
      echo "VERSION='${VERSION}' does not match the built wheel: $(ls /dist)" >&2; exit 1; \
    fi


FROM python:3.11-slim
ARG VERSION
ARG SOURCE
LABEL org.opencontainers.image.title="batchrun" \
      org.opencontainers.image.description="Trigger many Azure Data Factory pipeline runs from one YAML manifest." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only wheels: the slim image has no compiler, and nothing should be built here.
# tests/test_image.py installs the wheel into a fresh venv with these same pip options.
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    python -m pip install --no-cache-dir --only-binary=:all: \
        --constraint /tmp/constraints.txt "/dist/batchrun-${VERSION}-py3-none-any.whl" \
 && rm /tmp/constraints.txt \
 && groupadd --system --gid 10001 batchrun \
 && useradd --system --uid 10001 --gid 10001 --home-dir /work --no-create-home \
        --shell /usr/sbin/nologin batchrun \
 && mkdir /work \
 && chown 10001:10001 /work

# Reports land in the working directory unless --report says otherwise: mount a volume here.
WORKDIR /work
VOLUME ["/work"]
# Numeric, so Kubernetes' runAsNonRoot can verify it without looking up /etc/passwd.
USER 10001:10001
ENTRYPOINT ["batchrun"]
CMD ["--help"]
