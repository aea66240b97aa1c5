# Fulmen: the host and the first-party plugins, as a non-root container.
#   docker build -t fulmen .      (or: podman build -t fulmen .)
#   docker run -p 5001:5001 -v fulmen-data:/data fulmen
# Settings are FULMEN_* environment variables (docs/operations.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy UV=/opt/uv/bin/uv UV_PYTHON=python3
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY host/ host/
COPY plugins/ plugins/
COPY plugin-template/ plugin-template/
COPY deploy/build-wheels.sh deploy/install-wheels.sh deploy/
RUN deploy/build-wheels.sh /wheels && deploy/install-wheels.sh /wheels /opt/fulmen

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 fulmen \
    && useradd --system --uid 10001 --gid fulmen --home-dir /data --shell /usr/sbin/nologin fulmen \
    && mkdir /data && chown fulmen:fulmen /data && chmod 0700 /data
COPY --from=build /opt/fulmen /opt/fulmen
ENV PATH=/opt/fulmen/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FULMEN_DATA_DIR=/data \
    FULMEN_HOST=0.0.0.0 \
    FULMEN_PORT=5001
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 5001
HEALTHCHECK --interval=30s --timeout=6s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/ready' % os.environ.get('FULMEN_PORT', '5001'); sys.exit(0 if urllib.request.urlopen(url, timeout=5).status == 200 else 1)"]
CMD ["fulmen", "serve"]
