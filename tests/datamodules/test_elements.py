import numpy as np
import pytest

from datamodules.elements import MAX_Z, group_period, onehot_table, unrepresentable


@pytest.mark.parametrize(
    "z,group,period",
    [
        (1, 1, 1),
        (2, 18, 1),
        (3, 1, 2),
        (5, 13, 2),
        (10, 18, 2),
        (13, 13, 3),
        (26, 8, 4),
        (29, 11, 4),
        (42, 6, 5),
        (55, 1, 6),
        (57, 3, 6),
        (71, 3, 6),
        (72, 4, 6),
        (79, 11, 6),
        (86, 18, 6),
    ],
)
def test_group_period_known_elements(z, group, period):
    assert group_period(z) == (group, period)


def test_matches_pymatgen_outside_f_block():
    from pymatgen.core import Element

    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        if el.is_lanthanoid:
            continue
        assert group_period(z) == (el.group, el.row), el.symbol


def test_onehot_rows_have_one_group_and_one_period():
    t = onehot_table()
    assert t.shape == (MAX_Z + 1, 24)
    assert np.all(t[1:, :18].sum(1) == 1) and np.all(t[1:, 18:].sum(1) == 1)
    assert t[0].sum() == 0


def test_beyond_radon_is_not_representable():
    assert unrepresentable(np.array([26, 92, 87, 26])) == [87, 92]
    with pytest.raises(ValueError, match="Z=92"):
        group_period(92)
