FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
COPY docker-entrypoint.sh /docker-entrypoint.sh
RUN chmod +x /docker-entrypoint.sh
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["lameduck", "serve", "app:app", "--host", "0.0.0.0"]
