FROM python:3.12-slim
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
# Migrate, then serve: the shell stays PID 1 because the last command is not exec'd.
CMD ["sh", "-c", "python manage.py migrate --noinput && lameduck serve app:app --host 0.0.0.0"]
