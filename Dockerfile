# One Chord peer. Configure with CHORD_* environment variables (see config/default.yaml):
#   docker run -p 7000:7000 -p 17000:17000 -e CHORD_ADVERTISE_HOST=<this host's IP> chord-dht
#   docker run ... -e CHORD_ADVERTISE_HOST=<ip> -e CHORD_JOIN=<seed ip>:7000 chord-dht
FROM python:3.11.7-slim-bookworm

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

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY proto/ proto/
RUN python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. proto/chord.proto

COPY chord/ chord/
COPY services/ services/
COPY config/ config/
COPY run_node.py server.py client.py ./

RUN useradd --system --uid 10001 --no-create-home chord \
    && mkdir -p /data && chown chord /data
USER chord
VOLUME ["/data"]
EXPOSE 7000 17000

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('CHORD_API_PORT', '17000'), timeout=2)"

ENTRYPOINT ["python", "run_node.py"]
