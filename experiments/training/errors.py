"""One line for an error that ends a command or a grid point, with the error that started it.

Lightning tears a run down inside its own exception handler, and a teardown that fails hides the
first error: a DataLoader worker that could not start surfaced only as "Please call
`iter(combined_loader)` first". The line therefore names the first error of the chain as well.
"""

from __future__ import annotations


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)  # KeyError: unquoted


def error_line(err: BaseException, with_type: bool = False) -> str:
    """`err`'s message (with its type if `with_type`), and, where it was raised while another error
    was being handled (not `raise ... from`), that first error's type and message."""
    line = f"{type(err).__name__}: {_message(err)}" if with_type else _message(err)
    if err.__cause__ is not None or err.__suppress_context__ or err.__context__ is None:
        return line
    first = err.__context__
    while first.__context__ is not None and first.__cause__ is None and not first.__suppress_context__:
        first = first.__context__
    first_line = (_message(first).splitlines() or [""])[0]
    return f"{line} (raised while handling {type(first).__name__}: {first_line})"
