# syntax=docker/dockerfile:1
# Build stage: a wheel and its dependencies in a virtualenv.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN /opt/venv/bin/pip install --no-cache-dir .

# Runtime stage: the virtualenv only, as a non-root user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin gateway \
    && mkdir -p /data /config && chown gateway:gateway /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ONEBOT_GATEWAY_CONFIG=/config/onebot11.json5 \
    ONEBOT_GATEWAY_LOG_FORMAT=json
# The sandbox database and other state live in /data; mount the config at /config/onebot11.json5.
VOLUME ["/data"]
WORKDIR /data
USER gateway
EXPOSE 3000 3001 9090
# /healthz is served by the admin listener (config: `admin: {host: "0.0.0.0", port: 9090, ...}`).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9090/healthz', timeout=2).status == 200 else 1)"]
# Exec form: onebot-gateway runs as PID 1 and receives SIGTERM itself.
ENTRYPOINT ["onebot-gateway", "run"]
