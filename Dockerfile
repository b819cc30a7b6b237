# The EMC worker image: `docker build -t emc-streams .`; `docker run emc-streams` runs `emc worker`.
# Settings come from the EMC_* environment variables (contract section 6).

# Build wheels in a throw-away stage: some dependencies (faust-streaming's Cython
# extensions, rocksdict) may need a compiler when no wheel fits, the runtime image does not.
FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# pyproject.toml names README.md as the package's readme: the build needs it.
COPY pyproject.toml README.md ./
COPY streams ./streams
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    EMC_DATA_DIR=/data \
    EMC_METRICS_PORT=9108
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels \
 && useradd --system --uid 10001 --home-dir /data --create-home emc \
 && mkdir /keys && chown emc /keys  # the keyring volume (docker-compose.yml), owned by the worker's user
USER emc
WORKDIR /data
# The RocksDB table store: keep it on a volume so a restarted worker does not rebuild its
# tables from the changelogs.
VOLUME /data
EXPOSE 9108
# /healthz on the metrics port: the event loop answers, no task has ended, no consumer with
# lag is stuck (the worker also exits by itself then). /readyz: partitions assigned, tables
# restored, control topic read. The slim image has no curl: Python asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EMC_METRICS_PORT', '9108') + '/healthz', timeout=4)"]
ENTRYPOINT ["emc"]
CMD ["worker"]
