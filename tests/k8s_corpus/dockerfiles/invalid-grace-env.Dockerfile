FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
ENV LAMEDUCK_HOST=0.0.0.0 \
    LAMEDUCK_GRACE=30s
CMD ["lameduck", "serve", "app:app"]
