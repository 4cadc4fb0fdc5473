# botwatch's image: the exporter, the remediator, the agent and the CLI (docker-compose.yml runs it).
# BASE: any Debian bookworm with python3 (3.11) and python3-venv; the official slim Python image by default
# (the tests build it on a Debian made with debootstrap: no registry is reachable there).
ARG BASE=python:3.11.11-slim-bookworm
FROM ${BASE}

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/botwatch/venv/bin:$PATH BOTWATCH_DATA_DIR=/var/lib/botwatch
WORKDIR /opt/botwatch
COPY pyproject.toml README.md runbook.md ./
COPY prometheus ./prometheus
COPY alertmanager ./alertmanager
COPY botwatch ./botwatch
# a venv: Debian's own python3 refuses pip into the system (PEP 668); the slim image does not mind it
RUN python3 -m venv /opt/botwatch/venv \
    && pip install . \
    && rm -rf build botwatch.egg-info \
    && useradd --system --uid 10001 --home-dir /var/lib/botwatch botwatch \
    && mkdir -p /var/lib/botwatch/exporter && chown -R botwatch /var/lib/botwatch \
    # where alertmanager-config renders Alertmanager's config as nobody, Alertmanager's uid (a named volume
    # takes this folder's owner when it is first mounted)
    && mkdir /rendered && chown 65534:65534 /rendered

USER botwatch
# the service this container runs (its --listen) answers /-/healthy
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["botwatch", "healthcheck"]
ENTRYPOINT ["botwatch"]
CMD ["--help"]
