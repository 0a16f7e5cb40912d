from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.storage import StorageEngine
from tests.storage.storage_helpers import CS


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "peer"


@pytest.fixture
def engine(data_dir: Path) -> Iterator[StorageEngine]:
    eng = StorageEngine(data_dir, chunk_size=CS)
    yield eng
    eng.close()
