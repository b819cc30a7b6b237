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
 && useradd --system --uid 10001 --home-dir /data --create-home emc
USER emc
WORKDIR /data
# The RocksDB table store: keep it on a volume so a restarted worker does not rebuild its
# tables from the changelogs.
VOLUME /data
EXPOSE 9108
ENTRYPOINT ["emc"]
CMD ["worker"]
