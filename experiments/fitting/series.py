"""Runs grouped into the series that are fitted.

Along D: one series per (model, N), x = D. Along N: one per (model, D), x = N. ND: one per model
over all its (N, D) points. A "cell" is one x (or one (N, D) pair); its runs are the seeds.
A group with a single distinct x (or, for ND, a single N or a single D) is not a series: it is
returned in `skipped` with the reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

AXES = ("D", "N", "ND")


@dataclass
class Series:
    model: str
    axis: str
    fixed: dict  # {"N": n} along D, {"D": d} along N, {} for ND
    x: np.ndarray  # (n_runs,) or (2, n_runs) = (N, D)
    y: np.ndarray  # (n_runs,) val_loss
    cells: np.ndarray  # (n_runs,) index of the run's cell
    cell_x: np.ndarray  # (n_cells,) or (2, n_cells)

    @property
    def n_cells(self) -> int:
        return self.cell_x.shape[-1]

    @property
    def n_runs(self) -> int:
        return len(self.y)

    @property
    def label(self) -> str:
        fixed = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return f"{self.model} along {self.axis}" + (f" ({fixed})" if fixed else "")

    def stats(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per cell: mean, standard deviation (ddof 0) and number of runs."""
        mean = np.array([self.y[self.cells == c].mean() for c in range(self.n_cells)])
        std = np.array([self.y[self.cells == c].std(ddof=0) for c in range(self.n_cells)])
        count = np.bincount(self.cells, minlength=self.n_cells)
        return mean, std, count

    def subset(self, keep_cells: np.ndarray) -> Series:
        """The series restricted to the cells where keep_cells is True (cells renumbered)."""
        new_index = np.cumsum(keep_cells) - 1
        mask = keep_cells[self.cells]
        return Series(
            self.model,
            self.axis,
            self.fixed,
            self.x[..., mask],
            self.y[mask],
            new_index[self.cells[mask]],
            self.cell_x[..., keep_cells],
        )

    def resample(self, rng: np.random.Generator) -> Series:
        """A bootstrap replicate: within every cell, its runs drawn with replacement."""
        idx = np.concatenate(
            [rng.choice(np.flatnonzero(self.cells == c), size=int(n)) for c, n in enumerate(np.bincount(self.cells))]
        )
        return Series(self.model, self.axis, self.fixed, self.x[..., idx], self.y[idx], self.cells[idx], self.cell_x)


def _make(model, axis, fixed, keys, ys) -> Series:
    uniq = sorted(set(keys))
    pos = {k: i for i, k in enumerate(uniq)}
    cells = np.array([pos[k] for k in keys])
    if axis == "ND":
        x = np.array(keys, float).T
        cell_x = np.array(uniq, float).T
    else:
        x, cell_x = np.array(keys, float), np.array(uniq, float)
    return Series(model, axis, fixed, x, np.array(ys, float), cells, cell_x)


def build_series(runs: list[dict], axes=AXES) -> tuple[list[Series], list[dict]]:
    """The series of `runs` along each axis in `axes` -> (series, skipped groups)."""
    bad = [a for a in axes if a not in AXES]
    if bad:
        raise ValueError(f"unknown axis {bad[0]!r}: choose from {', '.join(AXES)}")
    out, skipped = [], []
    for axis in axes:
        groups: dict[tuple, list] = defaultdict(list)
        for r in runs:
            if axis == "D":
                groups[(r["model"], ("N", r["N"]))].append((r["D"], r["val_loss"]))
            elif axis == "N":
                groups[(r["model"], ("D", r["D"]))].append((r["N"], r["val_loss"]))
            else:
                groups[(r["model"], None)].append(((r["N"], r["D"]), r["val_loss"]))
        for (model, fixed), pts in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ())):
            keys, ys = [p[0] for p in pts], [p[1] for p in pts]
            fixed_d = {fixed[0]: fixed[1]} if fixed else {}
            if axis == "ND":
                nN, nD = len({k[0] for k in keys}), len({k[1] for k in keys})
                if nN < 2 or nD < 2:
                    skipped.append(
                        dict(model=model, axis=axis, fixed=fixed_d, reason=f"{nN} distinct N and {nD} distinct D")
                    )
                    continue
            elif len(set(keys)) < 2:
                skipped.append(dict(model=model, axis=axis, fixed=fixed_d, reason=f"a single {axis} = {keys[0]}"))
                continue
            out.append(_make(model, axis, fixed_d, keys, ys))
    return out, skipped
