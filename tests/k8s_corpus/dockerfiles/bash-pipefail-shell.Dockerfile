FROM python:3.12-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl -fsSL https://example.com/install.sh | bash
WORKDIR /app
COPY . .
CMD lameduck serve app:app --host 0.0.0.0
