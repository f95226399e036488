# Build wheels in a full image, run them on distroless: no shell at all in the final image.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml poetry.lock ./
RUN pip wheel --wheel-dir /wheels .
# The build stage's CMD is never part of the final image.
CMD uvicorn app:app

FROM gcr.io/distroless/python3-debian12:nonroot
COPY --from=build /wheels /wheels
ENV PYTHONPATH=/wheels \
    LAMEDUCK_GRACE=30 \
    LAMEDUCK_HOST=0.0.0.0
ENTRYPOINT ["python3", "-m", "lameduck", "serve", "app.main:app"]
