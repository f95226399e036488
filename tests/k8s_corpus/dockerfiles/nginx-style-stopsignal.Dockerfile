# Someone copied nginx's Dockerfile habits into a Python service.
FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
STOPSIGNAL SIGQUIT
ENTRYPOINT ["lameduck", "serve", "app:app", "--host", "0.0.0.0"]
