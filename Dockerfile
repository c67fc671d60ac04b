# One image for the api, worker, migrate and ui services of docker-compose.yml.
FROM python:3.11-slim
# No usage data leaves the container, whatever command it runs (docs/security.md).
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false \
    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY platform platform
COPY workers workers
COPY migrations migrations
COPY ui ui
RUN pip install --no-cache-dir -e .
EXPOSE 8000 8501
CMD ["asifdb", "status"]
