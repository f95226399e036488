FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
stopsignal sigint
entrypoint ["lameduck", "work", "jobs:worker", "--broker", "redis://redis:6379/0"]
