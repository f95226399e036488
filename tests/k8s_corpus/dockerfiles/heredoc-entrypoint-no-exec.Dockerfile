# syntax=docker/dockerfile:1.4
FROM python:3.12-slim
WORKDIR /app
RUN pip install --no-cache-dir lameduck
COPY <<EOF ./entrypoint.sh
#!/bin/sh
set -e
python manage.py migrate --noinput
lameduck serve app:app --host 0.0.0.0
EOF
RUN chmod +x ./entrypoint.sh
ENTRYPOINT ["./entrypoint.sh"]
