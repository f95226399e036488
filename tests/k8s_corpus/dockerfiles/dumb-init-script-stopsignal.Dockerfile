ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim
RUN pip install --no-cache-dir dumb-init lameduck
COPY start.sh /start.sh
STOPSIGNAL 9
ENTRYPOINT ["dumb-init", "--"]
CMD ["/start.sh"]
