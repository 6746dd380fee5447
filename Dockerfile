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
#
# The image is FROM scratch: ddb2es, the shared objects it loads, the CA
# certificates and a few files of /etc, all from Debian bookworm's packages
# (scripts/image-rootfs.sh; /usr/share/doc/ddb2es/packages.txt lists them
# with their versions).  There is no shell, no package manager and no other
# program in it: `docker exec` has nothing to run.  To look inside, build the
# first stage, which holds the same binary (/src/ddb2es) and libraries with
# Debian's tools, and the image's tree in /rootfs:
#
#   docker build --target build -t ddb2es-build .
#
# or attach a debugging container to the running one: it shares ddb2es's
# process and network namespaces, and with CAP_SYS_PTRACE /proc/1/root is
# the image's tree:
#
#   docker run --rm -it --pid=container:NAME --network=container:NAME \
#       --cap-add SYS_PTRACE debian:bookworm-slim
#   kubectl debug -it POD --image=debian:bookworm-slim --target=ddb2es --profile=general
#
# `make check-image` (tests/image/check-image.sh) builds this file with
# buildah and runs the image as a sidecar against DynamoDB Local and the
# search double; README "As a sidecar" has its size and what takes the room.

FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
# deb-src and dpkg-dev: `make` builds libcurl from Debian's curl source, HTTP
# and HTTPS only (scripts/curl.sh), which leaves 27 shared objects out of the
# image.  The lists stay: this stage is not the image.
RUN sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources \
 && apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config dpkg-dev libuv1-dev \
        libcurl4-openssl-dev libjansson-dev libinih-dev zlib1g-dev libssl-dev ca-certificates
WORKDIR /src
# Every folder the Makefile compiles into the daemon (LIB_SRC, MAIN_OBJ).
COPY Makefile ./
COPY scripts/curl.sh scripts/
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

# The final image's tree, from this stage's packages (the -dev packages
# depend on the libraries), and the state directory apart, for COPY --chown
# to give it to uid 10001 (0700).
COPY scripts/image-rootfs.sh /usr/local/sbin/
RUN image-rootfs.sh ddb2es /rootfs .cache/curl/current \
 && install -d -m 0700 /state/ddb2es

FROM scratch
COPY --from=build /rootfs /
COPY --from=build --chown=10001:10001 /state /var/lib
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
