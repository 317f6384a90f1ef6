"""The one-line error of a command or a grid point names the error that started it."""

from __future__ import annotations

import pytest

from experiments.training.errors import error_line


def caught(fn) -> BaseException:
    with pytest.raises(BaseException) as info:
        fn()
    return info.value


def teardown_after_a_failed_start():
    """What Lightning does when a DataLoader worker cannot start: its teardown fails in turn."""
    try:
        try:
            raise AssertionError("daemonic processes are not allowed to have children\nsecond line")
        except AssertionError:
            raise OSError("cleaning up")  # noqa: B904
    except OSError:
        raise RuntimeError("Please call `iter(combined_loader)` first.")  # noqa: B904


def test_an_error_raised_while_handling_another_names_the_first():
    assert error_line(caught(teardown_after_a_failed_start), with_type=True) == (
        "RuntimeError: Please call `iter(combined_loader)` first. "
        "(raised while handling AssertionError: daemonic processes are not allowed to have children)"
    )


def test_a_deliberate_message_stays_as_written():
    def explicit():
        try:
            {}["width"]
        except KeyError as err:
            raise ValueError("width: missing") from err

    def suppressed():
        try:
            {}["width"]
        except KeyError:
            raise ValueError("width: missing") from None

    assert error_line(caught(explicit)) == error_line(caught(suppressed)) == "width: missing"
    assert error_line(KeyError("store: no such key")) == "store: no such key"  # not repr-quoted
    assert error_line(ValueError("one\ntwo"), with_type=True) == "ValueError: one\ntwo"  # a list stays whole
