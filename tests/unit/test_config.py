"""Settings loader and command line (config/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from config import ConfigError, Settings, load_settings, parse_args, validate

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def write_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "peer.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(
    flags: dict[str, object] | None = None,
    file: str | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    return load_settings(flags or {}, file, env or {})


def parse_error(capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str]) -> str:
    """Run parse_args expecting exit 2; return the error line from stderr."""
    with pytest.raises(SystemExit) as exc:
        parse_args(argv, env)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("run_node.py: error:")]
    assert len(error_lines) == 1, err
    return error_lines[0]


# --- defaults ---------------------------------------------------------------------------


def test_defaults() -> None:
    s = load()
    assert s == Settings()
    assert s.address == "127.0.0.1:7000"
    assert s.bind_address == "127.0.0.1:7000"
    assert s.resolved_api_port == 17000
    assert s.api_address == "127.0.0.1:17000"
    assert s.api_bind == "127.0.0.1:17000"
    assert s.resolved_data_dir == str(Path("data") / "127.0.0.1_7000")
    assert s.join_host_port() is None
    assert validate(Settings()) == Settings()


def test_default_yaml_loads_to_defaults_exactly() -> None:
    assert load(file=str(CONFIG_DIR / "default.yaml")) == Settings()


def test_default_yaml_lists_every_setting() -> None:
    text = (CONFIG_DIR / "default.yaml").read_text(encoding="utf-8")
    keys = {line.split(":")[0] for line in text.splitlines() if line and line[0].isalpha()}
    assert keys == {f.name for f in dataclasses.fields(Settings)}


# --- precedence: flags > env > file > defaults ------------------------------------------


def test_file_beats_defaults(tmp_path: Path) -> None:
    assert load(file=write_yaml(tmp_path, "port: 7100\n")).port == 7100


def test_env_beats_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "port: 7100\nbits: 16\n")
    s = load(file=path, env={"CHORD_PORT": "7200"})
    assert (s.port, s.bits) == (7200, 16)


def test_flags_beat_env(tmp_path: Path) -> None:
    s = load(flags={"port": "7300"}, env={"CHORD_PORT": "7200", "CHORD_BITS": "20"})
    assert (s.port, s.bits) == (7300, 20)


def test_flags_beat_file_and_env_through_parse_args(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "port: 7100\nsuccessors: 3\nlog_level: warning\n")
    env = {"CHORD_PORT": "7200", "CHORD_LOG_LEVEL": "error"}
    s = parse_args(["--config", path, "--port", "7300"], env).settings
    assert (s.port, s.log_level, s.successors) == (7300, "error", 3)


def test_chord_config_env_names_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "port: 7100\n")
    assert load(env={"CHORD_CONFIG": path}).port == 7100
    other = tmp_path / "other.yaml"
    other.write_text("port: 7400\n", encoding="utf-8")
    # --config wins over CHORD_CONFIG
    assert load(file=str(other), env={"CHORD_CONFIG": path}).port == 7400


def test_unset_flags_do_not_override() -> None:
    assert load(flags={"port": None}, env={"CHORD_PORT": "7200"}).port == 7200


# --- ancestor forms ---------------------------------------------------------------------


def test_positional_create() -> None:
    opts = parse_args(["127.0.0.1", "7000"], {})
    assert opts.local_ring is None
    assert opts.settings.address == "127.0.0.1:7000"
    assert opts.settings.join is None


def test_positional_join() -> None:
    s = parse_args(["127.0.0.1", "8000", "127.0.0.1", "7000"], {}).settings
    assert s.address == "127.0.0.1:8000"
    assert s.join == "127.0.0.1:7000"
    assert s.join_host_port() == ("127.0.0.1", 7000)


def test_positional_and_equal_flag_agree() -> None:
    s = parse_args(["--port", "8000", "127.0.0.1", "8000"], {}).settings
    assert s.port == 8000


@pytest.mark.parametrize(
    "argv", [["127.0.0.1"], ["127.0.0.1", "1", "2"], ["a", "1", "b", "2", "c"]]
)
def test_positional_count(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "HOST PORT" in parse_error(capsys, argv, {})


def test_positional_conflicts_with_flag(capsys: pytest.CaptureFixture[str]) -> None:
    line = parse_error(capsys, ["--port", "9000", "127.0.0.1", "8000"], {})
    assert "--port" in line


def test_ancestor_yaml_keys() -> None:
    master = load(file=str(CONFIG_DIR / "peerMaster_config.yaml"))
    assert (master.host, master.port, master.join) == ("127.0.0.1", 7000, None)
    slave = load(file=str(CONFIG_DIR / "peerSlave_config.yaml"))
    assert (slave.address, slave.join) == ("127.0.0.1:8000", "127.0.0.1:7000")


def test_ancestor_seed_needs_both_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(file=write_yaml(tmp_path, "ip: 127.0.0.1\nport: 8000\nip_seed: 127.0.0.1\n"))
    assert exc.value.setting == "port_seed"


def test_yaml_dash_and_underscore_keys(tmp_path: Path) -> None:
    s = load(file=write_yaml(tmp_path, "api-port: 9000\nstabilize_interval: 2\n"))
    assert s.api_port == 9000
    assert s.stabilize_interval == 2.0


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "setting"),
    [
        ({"port": "abc"}, "port"),
        ({"port": "-5"}, "port"),
        ({"port": "65536"}, "port"),
        ({"api_port": "70000"}, "api_port"),
        ({"port": "60000"}, "api_port"),  # default api port would be 70000
        ({"api_port": "7000"}, "api_port"),  # same as the gRPC port
        ({"bits": "0"}, "bits"),
        ({"bits": "161"}, "bits"),
        ({"successors": "0"}, "successors"),
        ({"log_level": "verbose"}, "log_level"),
        ({"join": "127.0.0.1"}, "join"),
        ({"join": "127.0.0.1:notaport"}, "join"),
        ({"join": "::1:7000"}, "join"),
        ({"join": "127.0.0.1:7000"}, "join"),  # own address
        ({"host": ""}, "host"),
        ({"host": "bad host"}, "host"),
        ({"host": "300.1.1.1"}, "host"),
        ({"host": "0.0.0.0"}, "advertise_host"),
        ({"host": "0.0.0.0", "advertise_host": "::"}, "advertise_host"),
        ({"rpc_timeout": "0"}, "rpc_timeout"),
        ({"stabilize_interval": "inf"}, "stabilize_interval"),
        ({"max_workers": "1"}, "max_workers"),
        ({"max_workers": "32", "max_concurrent_rpcs": "16"}, "max_concurrent_rpcs"),
    ],
)
def test_invalid_settings(flags: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(flags=flags)
    assert exc.value.setting == setting
    message = str(exc.value)
    assert message.startswith(f"invalid setting '{setting}'")
    assert "\n" not in message


def test_port_error_message() -> None:
    with pytest.raises(ConfigError) as exc:
        load(env={"CHORD_PORT": "x"})
    assert str(exc.value) == (
        "invalid setting 'port' (from CHORD_PORT): must be an integer in 0..65535, got 'x'"
    )


def test_unspecified_bind_host_message() -> None:
    with pytest.raises(ConfigError) as exc:
        load(flags={"host": "0.0.0.0"})
    assert "--advertise-host" in str(exc.value)
    # insecure: protected mode wants a ring secret on a non-loopback bind (test_security_config)
    s = load(flags={"host": "0.0.0.0", "advertise_host": "10.1.2.3", "insecure": True})
    assert (s.bind_address, s.address) == ("0.0.0.0:7000", "10.1.2.3:7000")
    assert s.api_address == "10.1.2.3:17000"


def test_unknown_yaml_key_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(file=write_yaml(tmp_path, "prot: 7000\n"))
    assert exc.value.setting == "prot"
    assert "did you mean 'port'?" in str(exc.value)


@pytest.mark.parametrize(
    "text", ["port: [1, 2\n", "- 1\n- 2\n", "just a string\n", "port: [7000]\n"]
)
def test_bad_yaml_files(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load(file=write_yaml(tmp_path, text))
    assert exc.value.setting in {"config", "port"}
    assert "\n" not in str(exc.value)


def test_yaml_value_errors_name_the_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "bits: lots\n")
    with pytest.raises(ConfigError) as exc:
        load(file=path)
    assert exc.value.setting == "bits"
    assert path in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load(file=str(tmp_path / "nope.yaml"))
    assert exc.value.setting == "config"


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--port", "abc"], {}, "invalid setting 'port'"),
        (["--bits", "999"], {}, "invalid setting 'bits'"),
        (["--log-level", "loud"], {}, "invalid setting 'log_level'"),
        (["--join", "nowhere"], {}, "invalid setting 'join'"),
        (["--host", "0.0.0.0"], {}, "invalid setting 'advertise_host'"),
        (["--config", "/nonexistent/peer.yaml"], {}, "invalid setting 'config'"),
        ([], {"CHORD_SUCCESSORS": "many"}, "invalid setting 'successors' (from CHORD_SUCCESSORS)"),
        (["--local-ring", "0"], {}, "--local-ring"),
    ],
)
def test_parse_args_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str], fragment: str
) -> None:
    assert fragment in parse_error(capsys, argv, env)


def test_config_error_is_exactly_one_stderr_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["--port", "abc"], {})
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "run_node.py: error: invalid setting 'port' (from --port): "
        "must be an integer in 0..65535, got 'abc'\n"
    )


def test_unknown_yaml_key_through_parse_args(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_yaml(tmp_path, "sucessors: 4\n")
    assert "did you mean 'successors'?" in parse_error(capsys, ["--config", path], {})


# --- IPv6, coercion, local ring -------------------------------------------------------


def test_ipv6_formatting() -> None:
    s = load(flags={"host": "::1", "port": "7001", "join": "[::1]:7000"})
    assert s.address == "[::1]:7001"
    assert s.bind_address == "[::1]:7001"
    assert s.api_address == "[::1]:17001"
    assert s.join == "[::1]:7000"
    assert s.join_host_port() == ("::1", 7000)
    assert ":" not in Path(s.resolved_data_dir).name.replace("_7001", "")


def test_ipv6_positional_join_and_own_address() -> None:
    s = parse_args(["::1", "8000", "::1", "7000"], {}).settings
    assert (s.address, s.join) == ("[::1]:8000", "[::1]:7000")
    with pytest.raises(ConfigError) as exc:
        load(flags={"host": "::1", "join": "[0:0::1]:7000"})  # same address, other spelling
    assert exc.value.setting == "join"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("no", False),
        ("On", True),
        ("off", False),
    ],
)
def test_env_bool_coercion(text: str, expected: bool) -> None:
    assert load(env={"CHORD_MENU": text}).menu is expected


def test_env_bool_rejects_junk() -> None:
    with pytest.raises(ConfigError) as exc:
        load(env={"CHORD_MENU": "maybe"})
    assert exc.value.setting == "menu"
    assert exc.value.source == "CHORD_MENU"


def test_env_float_and_int_coercion() -> None:
    s = load(
        env={
            "CHORD_STABILIZE_INTERVAL": "0.25",
            "CHORD_RPC_TIMEOUT": "3",
            "CHORD_BITS": " 32 ",
            "CHORD_LOG_LEVEL": "DEBUG",
            "CHORD_API_PORT": "",  # empty optional = not set
        }
    )
    assert s.stabilize_interval == 0.25
    assert s.rpc_timeout == 3.0 and isinstance(s.rpc_timeout, float)
    assert s.bits == 32
    assert s.log_level == "debug"
    assert s.api_port is None
    with pytest.raises(ConfigError) as exc:
        load(env={"CHORD_RPC_TIMEOUT": "soon"})
    assert exc.value.setting == "rpc_timeout"


def test_no_menu_flag() -> None:
    assert parse_args(["--no-menu"], {}).settings.menu is False
    assert parse_args([], {"CHORD_MENU": "off"}).settings.menu is False
    assert parse_args(["--menu"], {"CHORD_MENU": "off"}).settings.menu is True


def test_local_ring_ignores_join() -> None:
    opts = parse_args(["--local-ring", "4"], {"CHORD_JOIN": "127.0.0.1:7000"})
    assert opts.local_ring == 4
    assert opts.settings.join is None


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_port_0_means_any_free_port_for_both() -> None:
    s = load(flags={"port": "0"})
    assert (s.port, s.resolved_api_port) == (0, 0)
    assert load(flags={"port": "0", "api_port": "18000"}).resolved_api_port == 18000
    assert load(flags={"port": "7000", "api_port": "0"}).resolved_api_port == 0
