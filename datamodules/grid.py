"""The frequency grid of the targets: checked against the reference, never assumed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REF_START, REF_STOP, REF_POINTS = 0.0, 20.0, 2001  # eV; step 0.01 eV
GRID_TOL = 1e-3  # eV; the published w column carries float noise of ~1e-5 eV


@dataclass(frozen=True)
class Grid:
    start: float = REF_START
    stop: float = REF_STOP
    points: int = REF_POINTS

    @property
    def omega(self) -> np.ndarray:
        return np.linspace(self.start, self.stop, self.points)

    def as_dict(self) -> dict:
        return {"start": self.start, "stop": self.stop, "points": self.points}


REFERENCE_GRID = Grid()


def check_grid(omega: np.ndarray, expected: Grid = REFERENCE_GRID, tol: float = GRID_TOL) -> None:
    """Raise ValueError unless `omega` is the expected grid within `tol` eV."""
    omega = np.asarray(omega, dtype=np.float64)
    if omega.shape != (expected.points,):
        raise ValueError(f"frequency grid has {omega.size} points, expected {expected.points}")
    dev = np.abs(omega - expected.omega)
    if not np.all(np.isfinite(dev)) or dev.max() > tol:
        i = int(np.nanargmax(np.where(np.isfinite(dev), dev, np.inf)))
        raise ValueError(
            f"frequency grid does not match {expected.start}-{expected.stop} eV in "
            f"{expected.points} points: w[{i}] = {omega[i]:.6g} eV, expected "
            f"{expected.omega[i]:.6g} eV (tolerance {tol} eV)"
        )


def resample(values: np.ndarray, target: Grid, source: Grid = REFERENCE_GRID) -> np.ndarray:
    """Linear interpolation of values on `source` (last axis) onto `target`."""
    if target == source:
        return values
    if target.start < source.start or target.stop > source.stop:
        raise ValueError(f"grid {target} extends beyond the data grid {source}")
    xs, xt = source.omega, target.omega
    if np.iscomplexobj(values):
        return np.interp(xt, xs, values.real) + 1j * np.interp(xt, xs, values.imag)
    return np.interp(xt, xs, values)
