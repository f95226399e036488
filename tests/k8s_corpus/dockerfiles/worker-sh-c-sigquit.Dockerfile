FROM python:3.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
# Copied from a Celery guide; lameduck's worker drains on SIGTERM or SIGINT only.
STOPSIGNAL SIGQUIT
ENTRYPOINT ["tini", "--"]
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python -m lameduck work jobs:worker"]
