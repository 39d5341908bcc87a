# syntax=docker/dockerfile:1
# Examwire engine node. Build: docker build -t examwire .
# Run (needs a Redis): docker run -e EXAMWIRE_REDIS_URL=redis://… -e EXAMWIRE_JWT_SECRET=… -e EXAMWIRE_SECRET=… -p 8000:8000 examwire
# Without EXAMWIRE_REDIS_URL the engine starts an embedded Redis in its data dir (single node only).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# .dockerignore keeps tests, load tests, VCS and local state out of the context
COPY . .
RUN pip install .

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXAMWIRE_DATA_DIR=/var/lib/examwire
RUN groupadd --system --gid 10001 examwire \
 && useradd --system --uid 10001 --gid examwire --home-dir /var/lib/examwire --create-home --shell /usr/sbin/nologin examwire \
 && install -d -o examwire -g examwire /var/lib/examwire/exports
COPY --from=build /opt/venv /opt/venv
USER examwire:examwire
WORKDIR /var/lib/examwire
EXPOSE 8000
# slim has no curl: probe /healthz with the standard library
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["examwire", "serve", "--host", "0.0.0.0", "--port", "8000"]
