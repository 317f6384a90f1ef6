"""Element encoding: the 24-dim one-hot of periodic-table group (18) and period (6).

Elements of periods 1-6 (H to Rn, Z = 1..86) are representable; lanthanides share group 3.
"""

from __future__ import annotations

import numpy as np

MAX_Z = 86
N_GROUPS = 18
N_PERIODS = 6
N_FEATURES = N_GROUPS + N_PERIODS
_PERIOD_ENDS = (2, 10, 18, 36, 54, 86)  # noble gases close each period


def group_period(z: int) -> tuple[int, int]:
    """(group 1..18, period 1..6) of atomic number z; ValueError if not representable."""
    if not 1 <= z <= MAX_Z:
        raise ValueError(f"element Z={z} is outside the encodable range 1..{MAX_Z} (H..Rn)")
    period = next(p for p, end in enumerate(_PERIOD_ENDS, start=1) if z <= end)
    start = (0,) + _PERIOD_ENDS
    pos = z - start[period - 1]  # 1-based position within the period
    if period == 1:
        group = 1 if pos == 1 else 18
    elif period in (2, 3):
        group = pos if pos <= 2 else pos + 10
    elif period in (4, 5):
        group = pos
    else:  # period 6: Cs, Ba, La..Lu (group 3), Hf..Rn
        group = pos if pos <= 2 else (3 if pos <= 17 else pos - 14)
    return group, period


def onehot_table() -> np.ndarray:
    """(MAX_Z + 1, 24) float32 table; row z is the encoding of element z (row 0 unused, zero)."""
    table = np.zeros((MAX_Z + 1, N_FEATURES), dtype=np.float32)
    for z in range(1, MAX_Z + 1):
        g, p = group_period(z)
        table[z, g - 1] = 1.0
        table[z, N_GROUPS + p - 1] = 1.0
    return table


def unrepresentable(numbers: np.ndarray) -> list[int]:
    """Sorted distinct atomic numbers the encoding cannot represent."""
    numbers = np.asarray(numbers)
    return sorted({int(z) for z in numbers[(numbers < 1) | (numbers > MAX_Z)]})
