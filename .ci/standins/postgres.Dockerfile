# STAND-IN for postgres:16, for CI machines that cannot reach a container registry.
# Debian bookworm's PostgreSQL 15 with an entrypoint that honours POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB like the official image's; never ship it.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
LABEL org.opencontainers.image.title="stand-in for postgres:16 (Debian bookworm postgresql-15)" \
      interest-clusters.stand-in="postgres:16"
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
# As the official image does: no packaged "main" cluster; the entrypoint makes one in PGDATA.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-common \
    && sed -ri 's/#(create_main_cluster) .*$/\1 = false/' /etc/postgresql-common/createcluster.conf \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \
    && install -d -o postgres -g postgres -m 2775 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/postgresql/data
USER postgres
