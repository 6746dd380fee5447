# ddb2es as a container (a sidecar, or a service of its own).  The whole
# configuration comes from the environment (DDB2ES_TABLES, DDB2ES_SINK_URL,
# DDB2ES_<SECTION>_<KEY>); logs go to stderr; SIGTERM stops it cleanly within
# [daemon] shutdown_timeout.  See deploy/kubernetes-sidecar.yaml.
#
#   docker build -t ddb2es .
#   docker run --rm -e DDB2ES_TABLES=posts -e DDB2ES_AWS_REGION=eu-west-1 \
#       -e DDB2ES_SINK_URL=https://search-x.eu-west-1.es.amazonaws.com \
#       -v ddb2es-state:/var/lib/ddb2es ddb2es

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libuv1-dev \
        libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY aws aws
COPY config config
COPY daemon daemon
COPY indexer indexer
RUN make ddb2es

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libuv1 libcurl4 libjansson4 libinih1 zlib1g \
        libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ddb2es --shell /usr/sbin/nologin ddb2es \
 && install -d -m 0700 -o ddb2es -g ddb2es /var/lib/ddb2es
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
