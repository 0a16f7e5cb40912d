"""tqdm bars for transfers: on stderr, only when asked or when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import NoReturn

from tqdm import tqdm


def wanted(forced: bool) -> bool:
    return forced or sys.stderr.isatty()


def bar(total: int, description: str, enabled: bool, initial: int = 0) -> tqdm[NoReturn]:
    return tqdm(
        total=total,
        initial=initial,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )
