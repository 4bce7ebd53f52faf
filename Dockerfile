# guardproxy: slim runtime image, non-root, no secrets baked in (pass GUARDPROXY_UPSTREAM_API_KEY at run time).
# It listens on 0.0.0.0, so `guardproxy serve` refuses to start unless the policy defines client keys
# (mount a policy with GUARDPROXY_POLICY_FILE) or GUARDPROXY_ALLOW_UNAUTHENTICATED=true is passed at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUARDPROXY_HOST=0.0.0.0 \
    GUARDPROXY_PORT=8080 \
    GUARDPROXY_WORKERS=0 \
    GUARDPROXY_RULES_DIR=/app/rules \
    GUARDPROXY_EVIDENCE_DIR=/var/lib/guardproxy/evidence

WORKDIR /app

# The same install as `make`: a pinned pip first, then the lock (the full closure) with --no-deps, so no
# resolver runs and a new upload to the index cannot change or break the image.
COPY requirements-bootstrap.lock requirements.lock ./
RUN python -m pip install --no-cache-dir --no-deps --require-hashes -r requirements-bootstrap.lock \
    && python -m pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
    && python -m pip check

COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY rules ./rules
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /var/lib/guardproxy --create-home guardproxy \
    && mkdir -p /var/lib/guardproxy/evidence \
    && chown -R guardproxy /var/lib/guardproxy

USER 10001
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["guardproxy", "serve"]
