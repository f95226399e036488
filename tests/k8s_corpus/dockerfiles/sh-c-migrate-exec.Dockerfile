FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
CMD ["sh", "-c", "python manage.py migrate --noinput && exec lameduck serve app:app --host 0.0.0.0"]
