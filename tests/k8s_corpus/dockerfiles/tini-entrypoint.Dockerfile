FROM python:3.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["lameduck", "serve", "app:app", "--host", "0.0.0.0", "--grace", "45"]
