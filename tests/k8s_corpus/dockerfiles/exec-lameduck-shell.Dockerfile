FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
ENV LAMEDUCK_LOG_FORMAT=json
# Cloud Run and Heroku pass PORT; the shell form expands it, exec hands PID 1 to lameduck.
CMD exec lameduck serve app:app --host 0.0.0.0 --port ${PORT:-8080}
