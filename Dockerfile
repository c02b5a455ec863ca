# AgentVine's own image (the service; the agent's sandbox image is built by `agentvine sandbox build`).
#
# The service starts sandboxes with Docker, so this image carries a Docker engine and starts it
# before `agentvine serve` (a Fly Machine is a VM: dockerd runs in it). On a host with its own
# engine, mount /var/run/docker.sock instead and set AGENTVINE_START_DOCKERD=0.
#
# Not built in this project's CI: its machines reach no container registry for the base image.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io mmdebstrap socat git ca-certificates npm tini e2fsprogs mount \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv/agentvine
COPY pyproject.toml README.md ./
COPY app ./app
COPY bot_config ./bot_config
RUN pip install --no-cache-dir .

ENV AGENTVINE_DATA_DIR=/data \
    AGENTVINE_START_DOCKERD=1 \
    PYTHONUNBUFFERED=1
VOLUME ["/data", "/var/lib/docker"]
EXPOSE 8080

COPY <<'SH' /usr/local/bin/agentvine-start
#!/bin/sh
set -e
if [ "$AGENTVINE_START_DOCKERD" = 1 ]; then
  dockerd >/var/log/dockerd.log 2>&1 &
  i=0; until docker info >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 60 ] && { tail -20 /var/log/dockerd.log; exit 1; }; sleep 1; done
fi
agentvine sandbox build          # skipped when the image exists (kept on the /var/lib/docker volume)
exec agentvine serve --host 0.0.0.0 --port 8080
SH
RUN chmod +x /usr/local/bin/agentvine-start
ENTRYPOINT ["tini", "--", "agentvine-start"]
