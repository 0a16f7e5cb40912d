"""Security settings: protected mode (no unauthenticated non-loopback bind), the ring
secret's rules (never echoed), mutual TLS all-or-none, the secret file, secrets kept
out of repr()."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.cli import parse_args
from config.settings import ConfigError, Settings, is_loopback, load_settings
from services.rpc.security import RingSecurity, SecurityError

SECRET = "s3cret-s3cret-s3cret"


def load(**flags: object) -> Settings:
    return load_settings(flags, None, {})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.8.7", "::1", "localhost"])
def test_loopback_binds_need_nothing(host: str) -> None:
    assert is_loopback(host)
    assert load(host=host).insecure is False


@pytest.mark.parametrize(
    ("host", "advertise"),
    [("0.0.0.0", "10.1.2.3"), ("::", "10.1.2.3"), ("10.1.2.3", None), ("peer.example", None)],
)
def test_a_non_loopback_bind_without_a_secret_refuses_to_start(
    host: str, advertise: str | None
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(host=host, advertise_host=advertise)
    message = str(caught.value)
    assert caught.value.setting == "ring_secret"
    assert "--ring-secret" in message and "--insecure" in message and "loopback" in message


@pytest.mark.parametrize(
    "extra",
    [
        {"ring_secret": SECRET},
        {"ring_secret_file": "/run/secrets/ring"},
        {"tls_cert": "c.pem", "tls_key": "k.pem", "tls_ca": "ca.pem"},
        {"insecure": True},
    ],
)
def test_a_secret_tls_or_insecure_allows_a_non_loopback_bind(extra: dict[str, object]) -> None:
    settings = load(host="0.0.0.0", advertise_host="10.1.2.3", **extra)
    assert settings.bind_address == "0.0.0.0:7000"


def test_the_cli_flags_and_environment() -> None:
    options = parse_args(
        ["--host", "0.0.0.0", "--advertise-host", "10.0.0.9", "--insecure"], environ={}
    )
    assert options.settings.insecure
    options = parse_args(
        ["--host", "0.0.0.0", "--advertise-host", "10.0.0.9"],
        environ={"CHORD_RING_SECRET": SECRET},
    )
    assert options.settings.ring_secret == SECRET
    with pytest.raises(SystemExit) as caught:
        parse_args(["--host", "0.0.0.0", "--advertise-host", "10.0.0.9"], environ={})
    assert caught.value.code == 2


@pytest.mark.parametrize("bad", ["short", "has spaces in the secret", "ünïcödé-ünïcödé-ünïcödé"])
def test_a_weak_or_unsendable_secret_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(ring_secret=bad)
    assert caught.value.setting == "ring_secret"
    assert bad not in str(caught.value)


def test_secret_and_secret_file_are_exclusive() -> None:
    with pytest.raises(ConfigError) as caught:
        load(ring_secret=SECRET, ring_secret_file="/x")
    assert caught.value.setting == "ring_secret_file"


def test_tls_needs_all_three_files() -> None:
    with pytest.raises(ConfigError) as caught:
        load(tls_cert="c.pem", tls_key="k.pem")
    assert caught.value.setting == "tls_ca" and "tls_ca" in str(caught.value)


def test_secrets_stay_out_of_repr() -> None:
    settings = load(ring_secret=SECRET, api_token="api-token-1", admin_token="admin-token-1")
    text = repr(settings) + repr(RingSecurity.from_settings(settings))
    for secret in (SECRET, "api-token-1", "admin-token-1"):
        assert secret not in text


def test_the_secret_file_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "ring_secret"
    path.write_text(SECRET + "\n")  # a trailing newline, as `echo` writes it
    assert RingSecurity.from_settings(load(ring_secret_file=str(path))).secret == SECRET
    path.write_text("tiny\n")
    with pytest.raises(ConfigError) as caught:
        RingSecurity.from_settings(load(ring_secret_file=str(path)))
    assert "tiny" not in str(caught.value)
    with pytest.raises(SecurityError, match="cannot read the ring secret file"):
        RingSecurity.from_settings(load(ring_secret_file=str(tmp_path / "missing")))


def test_tls_files_are_read(tmp_path: Path) -> None:
    for name in ("c.pem", "k.pem", "ca.pem"):
        (tmp_path / name).write_text(name)
    settings = load(
        tls_cert=str(tmp_path / "c.pem"),
        tls_key=str(tmp_path / "k.pem"),
        tls_ca=str(tmp_path / "ca.pem"),
    )
    tls = RingSecurity.from_settings(settings).tls
    assert tls is not None and (tls.cert, tls.key, tls.ca) == (b"c.pem", b"k.pem", b"ca.pem")
    with pytest.raises(SecurityError, match="TLS key"):
        RingSecurity.from_settings(
            load(tls_cert=settings.tls_cert, tls_key="/nonexistent", tls_ca=settings.tls_ca)
        )
