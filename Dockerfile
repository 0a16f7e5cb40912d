# One Chord peer. Build:  docker build -t chord-dht .
# Configure it with CHORD_<SETTING> variables (every setting of config/default.yaml), e.g.
#   docker run -p 7000:7000 -p 17000:17000 -v chord-data:/data \
#       -e CHORD_RING_SECRET -e CHORD_ADVERTISE_HOST=<this host's IP> chord-dht   # create a ring
#   docker run ... -e CHORD_RING_SECRET -e CHORD_ADVERTISE_HOST=<ip> \
#       -e CHORD_JOIN=<seed ip>:7000 chord-dht                                   # join it
# (`-e CHORD_RING_SECRET` with no value passes the variable of the calling shell.)
# The ancestor's NODE_MODE=master|slave works too: master creates the ring, slave joins the
# seed named by CHORD_JOIN (and refuses to start without one).
# The peer binds 0.0.0.0 here, so CHORD_ADVERTISE_HOST is required: an address the other
# peers can reach (the host's public or VPC IP, or a DNS name). The peer ID is SHA-1 of it.
# A ring secret is required too (protected mode: a non-loopback bind without one refuses to
# start), the same on every peer of the ring: -e CHORD_RING_SECRET (e.g. from
# `openssl rand -hex 32`) or, better, CHORD_RING_SECRET_FILE naming a mounted secret file
# readable by uid 10001. Optional: CHORD_API_TOKEN, CHORD_ADMIN_TOKEN, or mutual TLS with
# CHORD_TLS_CERT/CHORD_TLS_KEY/CHORD_TLS_CA. No secret is baked into the image: set them
# at run time (docs/security.md).
# The root filesystem may be read-only: the peer keeps everything under /data; give /tmp
# a tmpfs or a volume for temporary files (docker run --read-only --tmpfs /tmp, or
# -v chord-tmp:/tmp). A host directory mounted on /data must belong to 10001:10001
# (sudo chown 10001:10001 DIR).
# See docs/deploy-ec2.md, compose.yaml and deploy/k8s/.

# Pinned by version (Debian bookworm, CPython 3.11.7: what the tests run on).
FROM python:3.11.7-slim-bookworm

# PYTHONDONTWRITEBYTECODE: the source tree is read-only for the peer's user.
# MALLOC_*: glibc malloc tuning measured with bench.transfer (see the Makefile): 1 MiB gRPC
# buffers stay off mmap (about twice the throughput of big messages), freed memory goes
# back above 16 MiB, one arena keeps peak memory of big transfers down.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_MMAP_THRESHOLD_=67108864 \
    MALLOC_TRIM_THRESHOLD_=16777216 \
    MALLOC_ARENA_MAX=1 \
    CHORD_HOST=0.0.0.0 \
    CHORD_PORT=7000 \
    CHORD_API_PORT=17000 \
    CHORD_DATA_DIR=/data \
    CHORD_MENU=false

WORKDIR /app

# Dependencies first, from pyproject.toml only, so a change to the source does not
# reinstall them (the lists are read with tomllib: nothing is built or packaged).
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Protobuf code is generated here, never copied from a developer's tree (.dockerignore).
COPY proto/ proto/
RUN python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. proto/*.proto

COPY chord/ chord/
COPY services/ services/
COPY config/ config/
COPY clientlib/ clientlib/
COPY devtools/ devtools/
COPY run_node.py server.py client.py ./

# A numeric, unprivileged user and group, both 10001 (what deploy/k8s/ sets as runAsUser,
# runAsGroup and fsGroup): it owns only the data volume, and a secret file readable by
# group 10001 is readable here as in Kubernetes. (useradd alone would give the user a
# group with another gid.) Not --system: that only picks ids below 1000 and warns at 10001.
# A bind mount on /data must be owned by 10001:10001 on the host (chown 10001:10001 DIR).
RUN groupadd --gid 10001 chord \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin chord \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
# gRPC (peers) and REST API (clients, health checks).
EXPOSE 7000 17000

# GET /health answers 200 once the peer is a ring member, 503 while it joins or leaves.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CHORD_API_PORT', '17000'), timeout=2)"]

ENTRYPOINT ["python", "run_node.py"]
CMD []
