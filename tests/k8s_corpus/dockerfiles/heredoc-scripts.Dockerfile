# syntax=docker/dockerfile:1.4
FROM python:3.12-slim
WORKDIR /app
RUN <<EOF
pip install --no-cache-dir lameduck
# Lines that look like instructions inside a heredoc are not instructions:
CMD uvicorn app:app
STOPSIGNAL SIGKILL
EOF
COPY <<-'SCRIPT' /usr/local/bin/docker-entrypoint
	#!/bin/sh
	set -e
	python manage.py migrate --noinput
	exec "$@"
	SCRIPT
RUN chmod +x /usr/local/bin/docker-entrypoint
ENTRYPOINT ["docker-entrypoint"]
CMD ["lameduck", "serve", "app:app", "--host", "0.0.0.0"]
