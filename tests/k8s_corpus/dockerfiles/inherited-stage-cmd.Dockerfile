FROM python:3.12-slim AS base
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
STOPSIGNAL SIGINT
CMD uvicorn app:app --host 0.0.0.0

FROM base AS test
RUN pip install --no-cache-dir pytest && pytest -q

# The release image adds nothing of its own: it runs base's shell-form CMD.
FROM base AS release
LABEL org.opencontainers.image.source=https://example.com/app
