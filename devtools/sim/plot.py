"""``--plot FILE.png``: each experiment's main figure, after the paper's (matplotlib,
a dev dependency, imported only here)."""

from __future__ import annotations

import math
from typing import Any

from chord.sim.experiments import ExperimentResult, Row


def plot(result: ExperimentResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    rows = result.rows
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if result.experiment == "path-length":
        x = [r["nodes"] for r in rows]
        mean = [r["mean"] for r in rows]
        low = [r["mean"] - r["p1"] for r in rows]
        high = [r["p99"] - r["mean"] for r in rows]
        axes.errorbar(x, mean, yerr=[low, high], fmt="o-", capsize=4, label="mean, 1st-99th pct")
        axes.plot(x, [0.5 * math.log2(n) for n in x], "--", color="grey", label="½·log2 N (paper)")
        axes.set_xscale("log", base=2)
        axes.set_xlabel("number of peers")
        axes.set_ylabel("path length (hops)")
        axes.set_title("Lookup path length vs network size")
    elif result.experiment == "failures":
        _lookup_outcomes(axes, rows, "fail_fraction")
        axes.set_xlabel("fraction of peers failed simultaneously")
        axes.set_title("Lookups after simultaneous failures (no repair)")
    elif result.experiment == "load-balance":
        plain = [r for r in rows if r["virtual_nodes"] == 1]
        virtual = [r for r in rows if r["keys"] == rows[-1]["keys"]]
        axes.errorbar(
            [r["keys"] for r in plain],
            [r["mean"] for r in plain],
            yerr=[[r["mean"] - r["p1"] for r in plain], [r["p99"] - r["mean"] for r in plain]],
            fmt="o-",
            capsize=4,
            label="keys per peer: mean, 1st-99th pct",
        )
        axes.set_xlabel("total keys")
        axes.set_ylabel("keys per peer")
        axes.set_title("Load balance under consistent hashing")
        inset = figure.add_axes((0.6, 0.2, 0.28, 0.25))
        inset.plot([r["virtual_nodes"] for r in virtual], [r["p99"] for r in virtual], "s-")
        inset.set_xscale("log")
        inset.set_title("99th pct vs virtual peers", fontsize=8)
        inset.tick_params(labelsize=7)
    else:
        _lookup_outcomes(axes, rows, "rate")
        axes.set_xlabel("join and leave rate (per second)")
        axes.set_title("Lookups under churn")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left")
    figure.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(figure)


def _lookup_outcomes(axes: Any, rows: list[Row], x_key: str) -> None:
    """Mean path length, mean timeouts and failed lookups (%) against ``x_key``: the
    shared shape of the failures and churn figures."""
    x = [r[x_key] for r in rows]
    axes.plot(x, [r["mean_path"] for r in rows], "o-", label="mean path length")
    axes.plot(x, [r["mean_timeouts"] for r in rows], "s-", label="mean timeouts")
    axes.plot(x, [100 * r["failed"] / r["lookups"] for r in rows], "^-", label="failed (%)")
