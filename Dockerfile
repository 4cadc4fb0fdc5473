# botwatch's own image: the exporter, the remediator and the CLI (docker-compose.yml runs it).
FROM python:3.11.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/botwatch
COPY pyproject.toml README.md ./
COPY botwatch ./botwatch
COPY prometheus ./prometheus
COPY alertmanager ./alertmanager
RUN pip install . && useradd --system --uid 10001 --home-dir /var/lib/botwatch botwatch \
    && mkdir -p /var/lib/botwatch/exporter && chown -R botwatch /var/lib/botwatch

USER botwatch
ENV BOTWATCH_DATA_DIR=/var/lib/botwatch
ENTRYPOINT ["botwatch"]
CMD ["--help"]
