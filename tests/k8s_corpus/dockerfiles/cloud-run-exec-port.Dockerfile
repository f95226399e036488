FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
# Exec form passes "$PORT" to lameduck as it is written: no shell expands it.
CMD ["lameduck", "serve", "app:app", "--host", "0.0.0.0", "--port", "$PORT"]
