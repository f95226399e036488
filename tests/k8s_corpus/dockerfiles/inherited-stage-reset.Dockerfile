FROM python:3.12-slim AS base
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
CMD uvicorn app:app --host 0.0.0.0

FROM base AS release
# A new ENTRYPOINT resets the CMD inherited from base.
ENTRYPOINT ["lameduck", "serve", "app:app", "--host", "0.0.0.0"]
