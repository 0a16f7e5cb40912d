"""The protobuf code in proto/ is generated (``make install``) and git-ignored. This
regenerates it into a temporary directory with the same command and compares, so a
.proto edit without regeneration fails here, not at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTOS = sorted((REPO / "proto").glob("*.proto"))
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_names(proto: Path) -> list[str]:
    return [f"proto/{proto.stem}{suffix}" for suffix in SUFFIXES]


def test_there_is_a_proto_file() -> None:
    assert REPO / "proto" / "chord.proto" in PROTOS


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_generated_code_is_up_to_date(proto: Path, tmp_path: Path) -> None:
    relative = proto.relative_to(REPO).as_posix()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{REPO}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            relative,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, f"protoc failed on {relative}:\n{completed.stderr}"
    for name in generated_names(proto):
        fresh = tmp_path / name
        assert fresh.is_file(), f"protoc did not write {name}"
        current = REPO / name
        assert current.is_file(), f"{name} is missing: run `make install`"
        assert current.read_bytes() == fresh.read_bytes(), f"{name} is stale: run `make install`"


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_generated_code_is_git_ignored(proto: Path) -> None:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    inside = subprocess.run(
        [git, "rev-parse", "--is-inside-work-tree"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if inside.returncode != 0:
        pytest.skip("not a git checkout")
    for name in generated_names(proto):
        ignored = subprocess.run([git, "check-ignore", "--quiet", name], cwd=REPO, check=False)
        assert ignored.returncode == 0, f"{name} should be git-ignored (it is generated)"
