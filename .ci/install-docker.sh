#!/usr/bin/env bash
# Make a Debian machine ready to build and run the AgentVine sandbox, as root, without stdin:
# install docker.io, mmdebstrap, socat, git, ca-certificates, chromium and npm (only what is missing),
# start dockerd in the background if no engine answers, and wait until `docker info` answers.
# Idempotent: a second run changes nothing and takes well under a second.
#
#   DOCKERD_LOG           where dockerd's output goes (default /var/log/agentvine-dockerd.log)
#   DOCKER_WAIT_SECONDS   how long to wait for the engine (default 60)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

log() { echo "install-docker: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (apt-get and dockerd need it)"
    exit 1
fi

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/agentvine-dockerd.log}"
DOCKER_WAIT_SECONDS="${DOCKER_WAIT_SECONDS:-60}"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=()
# e2fsprogs and mount: each job's own filesystem (app/agent/sandbox/disk.py). chromium: the job
# pages' test in a real headless browser (tests/web/test_jobs_browser.py). iproute2 and util-linux
# (ip netns, nsenter): the scale-out tests' extra engines in network namespaces (tests/support/engines.py).
for pkg in mmdebstrap socat git ca-certificates e2fsprogs mount chromium iproute2 util-linux; do
    installed "$pkg" || missing+=("$pkg")
done
# Any Docker engine will do (docker.io, or docker-ce installed by other means).
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    missing+=(docker.io)
fi
# npm fetches the Claude Code binary when the image is built; keep an existing Node.js install.
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
else
    log "packages already installed"
fi

if docker info >/dev/null 2>&1; then
    log "Docker engine already answers"
    exit 0
fi

dockerd_running() {
    [ -s /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null
}

if dockerd_running; then
    log "dockerd is running but does not answer yet; waiting"
else
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
fi

deadline=$(( $(date +%s) + DOCKER_WAIT_SECONDS ))
until docker info >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log "ERROR: the Docker engine did not answer within ${DOCKER_WAIT_SECONDS}s"
        if [ -f "$DOCKERD_LOG" ]; then
            log "last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
        fi
        exit 1
    fi
    sleep 0.5
done
log "Docker engine is up: $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
