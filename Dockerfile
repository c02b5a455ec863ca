# AgentVine's own image: the service (`agentvine serve`: web and worker processes) and what it needs
# to start sandboxes through a Docker engine. The agent's sandbox image is another one
# (`agentvine sandbox build`, docs/sandbox.md).
#
# Build it with `agentvine image build` (docs/deploy.md), which needs no container registry:
#   - BASE_IMAGE is a Debian root filesystem made by mmdebstrap and `docker import`ed, the way the
#     sandbox image is made (app/operator/deploy/recipe.py lists what is in it);
#   - the Python packages are wheels the host's pip fetched into build/wheelhouse/ (a build container
#     may reach no package index), installed here with --no-index;
#   - only the classic builder's instructions are used, so any engine builds this file.
# .dockerignore lets only build/wheelhouse/ and deploy/ into the context.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}

ENV PATH=/opt/agentvine/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# The dependencies first: this layer is reused until pyproject.toml's dependencies change.
COPY build/wheelhouse/deps/ /tmp/wheels/
RUN python3 -m venv /opt/agentvine \
 && pip install --quiet --no-index --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
 && rm -rf /tmp/wheels

# AgentVine itself (its wheel is reproducible: an unchanged checkout reuses this layer too).
COPY build/wheelhouse/app/ /tmp/wheels/
RUN pip install --quiet --no-index --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels

COPY deploy/agentvine-start /usr/local/bin/agentvine-start

# The data directory: mounted at the same path on the host when the host's engine runs the
# sandboxes (it mounts job folders by their host path; docs/deploy.md).
ENV AGENTVINE_DATA_DIR=/data/agentvine \
    AGENTVINE_START_DOCKERD=auto
EXPOSE 8080
ENTRYPOINT ["tini", "--", "agentvine-start"]
CMD ["serve"]
