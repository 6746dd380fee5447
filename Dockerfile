# ddb2es as a container (a sidecar, or a service of its own).  The whole
# configuration comes from the environment (DDB2ES_TABLES, DDB2ES_SINK_URL,
# DDB2ES_<SECTION>_<KEY>); logs go to stderr; SIGTERM stops it cleanly within
# [daemon] shutdown_timeout.  See deploy/kubernetes-sidecar.yaml.
#
#   docker build -t ddb2es .
#   docker run --rm -e DDB2ES_TABLES=posts -e DDB2ES_AWS_REGION=eu-west-1 \
#       -e DDB2ES_SINK_URL=https://search-x.eu-west-1.es.amazonaws.com \
#       -v ddb2es-state:/var/lib/ddb2es ddb2es
#
# It runs as uid/gid 10001: a named volume takes the owner of the image's
# /var/lib/ddb2es; a host directory mounted there must belong to 10001.
# `make check-image` (tests/image/check-image.sh) builds this file with
# buildah and runs the image as a sidecar against DynamoDB Local and the
# search double; README "As a sidecar" has its size and what takes the room.

FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libuv1-dev \
        libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every folder the Makefile compiles into the daemon (LIB_SRC, MAIN_OBJ).
COPY Makefile ./
COPY base base
COPY aws aws
COPY indexer indexer
COPY config config
COPY daemon daemon
COPY cmd cmd
# Stripped: debug information is three quarters of the binary.
RUN make -j"$(nproc)" ddb2es \
 && strip --strip-unneeded ddb2es \
 && ./ddb2es --version

FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# Only the libraries ddb2es links and the CA certificates.  The packages'
# documentation (copyright files aside), man pages and translations are left
# out, as the slim base does for its own packages; apt's lists, the
# downloaded packages and the install logs do not stay in the layer.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
        'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
        'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/lintian/*' \
        >/etc/dpkg/dpkg.cfg.d/ddb2es-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libcurl4 libjansson4 libinih1 zlib1g \
        libssl3 ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \
        /var/cache/debconf/*-old /var/lib/dpkg/*-old \
 && groupadd --gid 10001 ddb2es \
 && useradd --no-log-init --no-create-home --uid 10001 --gid 10001 --home-dir /var/lib/ddb2es \
        --shell /usr/sbin/nologin ddb2es \
 && install -d -m 0700 -o 10001 -g 10001 /var/lib/ddb2es
COPY --from=build /src/ddb2es /usr/local/bin/ddb2es
USER 10001:10001
# Checkpoints (and the dead-letter file): mount a volume that outlives the
# container, used by one ddb2es at a time.
VOLUME /var/lib/ddb2es
ENV DDB2ES_DAEMON_STATE_DIR=/var/lib/ddb2es \
    DDB2ES_DAEMON_METRICS_LISTEN=0.0.0.0:9108 \
    DDB2ES_DAEMON_LOG_FORMAT=json
# /metrics, /healthz, /readyz
EXPOSE 9108
ENTRYPOINT ["/usr/local/bin/ddb2es"]
CMD ["run"]
