# syntax=docker/dockerfile:1
# batchrun as a container: docker build --build-arg VERSION=0.1.0 -t batchrun:0.1.0 .
# VERSION must be the package version (batchrun/__init__.py): the build checks that the wheel agrees.
#
# Everything that goes into the image is pinned: the base image by digest, the build backend
# and every runtime dependency by version and sha256 (pip --require-hashes).
# Base: python:3.11-slim, the multi-arch index (linux/amd64 + linux/arm64; Python 3.11.16 on
# Debian trixie) as pushed 2026-08-16. To move to a newer one, resolve the tag's index digest
# (`docker buildx imagetools inspect python:3.11-slim`) and replace it in both FROM lines.

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS builder
ARG VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# The build backend (hatchling) and its dependencies, hashed; the wheel is built with them only.
COPY build-requirements.txt /tmp/build-requirements.txt
RUN python -m pip install --no-cache-dir --only-binary=:all: --require-hashes \
        -r /tmp/build-requirements.txt
COPY pyproject.toml README.md ./
COPY batchrun ./batchrun
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /dist . \
 && if [ ! -f "/dist/batchrun-${VERSION}-py3-none-any.whl" ]; then \
      echo "VERSION='${VERSION}' does not match the built wheel: $(ls /dist)" >&2; exit 1; \
    fi


FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
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

# Only wheels (the slim image has no compiler, and nothing should be built here), each checked
# against constraints.txt's sha256; then batchrun's own wheel, from the builder, adding nothing.
# tests/deploy/test_image.py installs into a fresh venv with these same pip options.
COPY constraints.txt /tmp/constraints.txt
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    python -m pip install --no-cache-dir --only-binary=:all: --require-hashes \
        -r /tmp/constraints.txt \
 && python -m pip install --no-cache-dir --no-deps --no-index \
        "/dist/batchrun-${VERSION}-py3-none-any.whl" \
 && python -m pip check \
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
