# CronChat: a small image, run as a non-root user, the `cronchat` command as entrypoint.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY cronchat ./cronchat
COPY cli ./cli
COPY storage ./storage
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 cronchat && mkdir /data && chown cronchat /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY static /app/static
USER cronchat
ENV CRONCHAT_DATA_DIR=/data \
    CRONCHAT_STATIC_DIR=/app/static \
    CRONCHAT_HOST=0.0.0.0 \
    CRONCHAT_PORT=8080 \
    PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["cronchat"]
CMD ["serve"]
