# chaosproxy as a sidecar: configured by CHAOSPROXY_* environment variables alone.
#
#   podman build --format docker -t chaosproxy .        (docker build -t chaosproxy . works too)
#   podman run -e CHAOSPROXY_UPSTREAM=http://127.0.0.1:9000 -e CHAOSPROXY_ADMIN_TOKEN=... chaosproxy
#
# The admin listener binds 0.0.0.0:8081 here, so chaosproxy refuses to start without
# CHAOSPROXY_ADMIN_TOKEN (or CHAOSPROXY_ADMIN_INSECURE=1). See docs/deploy.md.
# BASE is any image with python3 (3.11+) and its venv module; CI builds a local Debian one.
ARG BASE=python:3.12-slim

# ---- build: wheels of the dependencies (a layer that survives source changes), then chaosproxy's
# (setuptools 77+: builds wheels by itself, as --no-build-isolation needs, and reads the SPDX license)
FROM ${BASE} AS build
# Set only at build time to a mounted pip configuration (CA bundle, the machine's index); never an
# ENV, so nothing of it reaches an image.
ARG PIP_CONFIG_FILE
WORKDIR /src
COPY pyproject.toml ./
RUN python3 -m venv /opt/build \
    && /opt/build/bin/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")' > /tmp/requirements.txt \
    && /opt/build/bin/python -m pip install --no-cache-dir "setuptools>=77" \
    && /opt/build/bin/python -m pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt
COPY README.md ./
COPY chaosproxy ./chaosproxy
RUN /opt/build/bin/python -m pip wheel --no-cache-dir --no-deps --no-build-isolation \
    --wheel-dir /wheels .
# The per-request path compiled to C (chaosproxy/native.py): a C compiler, Python's headers (a
# Debian python3 has none) and mypy here only; the images get the built libraries, never these.
# The build reads the project's mypy configuration and hashes the very sources the wheel holds.
# hadolint ignore=DL3008,SC2086
RUN headers="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
    && extra="" && { [ -f "$headers/Python.h" ] || extra=python3-dev; } \
    && apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev $extra \
    && rm -rf /var/lib/apt/lists/* \
    && /opt/build/bin/python -m pip install --no-cache-dir --find-links /wheels \
        -r /tmp/requirements.txt "mypy>=1.10" types-PyYAML \
    && /opt/build/bin/python -m chaosproxy.native_build --dir /opt/native --log /tmp/native.log

# ---- runner (optional target): the experiment side, with Locust (and grpcio for gRPC load).
#   Never the sidecar.
#   podman build --format docker --target runner -t chaosproxy-runner .
FROM ${BASE} AS runner
ARG PIP_CONFIG_FILE
COPY --from=build /wheels/chaosproxy-*.whl /tmp/wheel/
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/chaosproxy \
    && /opt/chaosproxy/bin/python -m pip install --no-cache-dir --find-links /wheels \
        "$(echo /tmp/wheel/chaosproxy-*.whl)[loadtest,grpc]" \
    && rm -rf /tmp/wheel
COPY --from=build /opt/native /opt/chaosproxy/chaosproxy-native
ENV PATH=/opt/chaosproxy/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["chaosproxy"]
CMD ["--help"]

# ---- sidecar (the default target, last on purpose): the proxy, no Locust, no compiler, no pip
FROM ${BASE} AS sidecar
# chaosproxy's own wheel (~130 KB) is copied: a COPY is content-addressed, so a new wheel
# invalidates the cached layers below (a bind mount alone does not, for every builder). The
# dependency wheels are only mounted, never stored in a layer.
COPY --from=build /wheels/chaosproxy-*.whl /tmp/wheel/
# The build stage's pip installs into a venv that never gets one of its own.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,from=build,source=/opt/build,target=/opt/build \
    python3 -m venv --without-pip /opt/chaosproxy \
    && /opt/build/bin/python -m pip --python /opt/chaosproxy/bin/python install --no-cache-dir \
        --no-index --find-links /wheels /tmp/wheel/chaosproxy-*.whl \
    && rm -rf /tmp/wheel
# The compiled per-request path, used when it matches the installed sources (it does: same wheel)
COPY --from=build /opt/native /opt/chaosproxy/chaosproxy-native
ENV PATH=/opt/chaosproxy/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CHAOSPROXY_LISTEN=0.0.0.0:8080 \
    CHAOSPROXY_ADMIN=0.0.0.0:8081 \
    CHAOSPROXY_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
# `chaosproxy health` reads CHAOSPROXY_ADMIN (0.0.0.0 means this container's loopback).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["chaosproxy", "health", "--timeout", "3"]
ENTRYPOINT ["chaosproxy"]
CMD ["run"]
