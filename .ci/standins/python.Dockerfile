# STAND-IN for python:3.11-slim, for CI machines that cannot reach a container registry.
# Built from Debian bookworm's own packages (its Python is 3.11); never ship it.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
LABEL org.opencontainers.image.title="stand-in for python:3.11-slim (Debian bookworm python3)" \
      interest-clusters.stand-in="python:3.11-slim"
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Registries are reached through this machine's TLS proxy: trust what the machine trusts. The
# CI serves its local CPU torch wheel over plain HTTP on the Docker bridge's gateway.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ARG TRUSTED_HOST
ENV PIP_TRUSTED_HOST=${TRUSTED_HOST}
