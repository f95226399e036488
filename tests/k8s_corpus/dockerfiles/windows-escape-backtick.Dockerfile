# escape=`

# Written on Windows for a Linux image: the backtick continues lines, backslashes are plain characters.
FROM python:3.12-slim
ENV BUILD_ROOT=C:\build\
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir `
      -r requirements.txt `
      lameduck
ENV LAMEDUCK_GRACE=45 `
    LAMEDUCK_LAME_DUCK=5
CMD lameduck serve app:app `
    --host 0.0.0.0
