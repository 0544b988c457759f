"""Write output files atomically: a failed run leaves no file and no half file."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO, cast


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[TextIO]:
    """Yield a stream for ``path`` (standard output when None).

    A file is written under a temporary name in the same folder and renamed
    over ``path`` only when the block finishes without an exception.
    """
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    folder = os.path.dirname(os.path.abspath(path))
    # delete=False: the file must outlive the handle until it is renamed.
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
        "w",
        encoding="utf-8",
        newline="",
        dir=folder,
        prefix=".custan-",
        suffix=".tmp",
        delete=False,
    )
    try:
        with handle:
            yield cast(TextIO, handle)
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise
