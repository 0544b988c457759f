"""Write output files atomically: a failed run leaves no file and no half file.

Devices, FIFOs, sockets and descriptors such as /dev/stdout are written in
place, because a rename would replace them, and a symbolic link is followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterator
from typing import TextIO

from custan.errors import RunError, UsageError

# The mode open() gives a new file before the umask clears bits from it.
NEW_FILE_MODE = 0o666
# Linux's limit on symbolic links followed while resolving one path.
MAX_LINKS = 40


@contextlib.contextmanager
def open_output(path: str | None) -> Iterator[TextIO]:
    """Yield a stream for ``path`` (standard output when None or ``-``).

    A regular file is written under a temporary name in the same folder and
    renamed over ``path`` only when the block finishes without an exception.
    Raises UsageError when the path cannot be opened or replaced, and RunError
    when writing to it fails part way.
    """
    if path is None or path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    existing = _stat_target(path)
    in_place = existing is not None and not stat.S_ISREG(existing.st_mode)
    if in_place or _names_descriptor(path):
        with _open_in_place(path) as stream:
            yield stream
        return
    with _open_replacement(path, existing) as stream:
        yield stream


def _names_descriptor(path: str) -> bool:
    """Tell whether ``path`` or a symbolic link on its way names an open descriptor.

    /dev/stdout links to /proc/self/fd/1. Standard output redirected to a file
    (``>> log``) must be appended to through it, not replaced by a rename.
    """
    current = os.path.abspath(path)
    for _ in range(MAX_LINKS):
        if current.startswith(("/proc/", "/dev/fd/")):
            return True
        if not os.path.islink(current):
            return False
        target = os.path.join(os.path.dirname(current), os.readlink(current))
        current = os.path.abspath(target)
    return False


def _stat_target(path: str) -> os.stat_result | None:
    """Return the status of what ``path`` points at, or None when nothing is there."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _open_error(path, error) from None


@contextlib.contextmanager
def _open_in_place(path: str) -> Iterator[TextIO]:
    # Open the given path, not its resolved one, because /dev/stdout resolves
    # to names such as "pipe:[123]" that cannot be opened. Appending keeps
    # what came before in a file that standard output was redirected to.
    try:
        stream = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as error:
        raise _open_error(path, error) from None
    with _write_errors(path), stream:
        yield stream


@contextlib.contextmanager
def _open_replacement(path: str, existing: os.stat_result | None) -> Iterator[TextIO]:
    target = os.path.realpath(path)
    try:
        descriptor, temporary = _create_temporary(os.path.dirname(target))
        if existing is not None:
            # An overwritten file keeps its mode, as it would with open(path, "w").
            os.fchmod(descriptor, stat.S_IMODE(existing.st_mode))
    except OSError as error:
        raise _open_error(path, error) from None
    try:
        stream = open(descriptor, "w", encoding="utf-8", newline="")  # noqa: SIM115
        # Closing flushes the last buffer, which can fail as any write can.
        with _write_errors(path), stream:
            yield stream
        _replace(temporary, target, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_temporary(folder: str) -> tuple[int, str]:
    """Create a new file in ``folder`` whose mode the umask sets, as for any file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = os.path.join(folder, f".custan-{secrets.token_hex(4)}.tmp")
        try:
            return os.open(name, flags, NEW_FILE_MODE), name
        except FileExistsError:
            continue


def _replace(temporary: str, target: str, path: str) -> None:
    try:
        os.replace(temporary, target)
    except OSError as error:
        raise _open_error(path, error) from None


@contextlib.contextmanager
def _write_errors(path: str) -> Iterator[None]:
    """Turn a failed write, such as a full disk, into a RunError naming ``path``.

    A closed pipe stays a BrokenPipeError, which the command line ends quietly.
    """
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        raise RunError(f"cannot write {path}: {_reason(error)}") from None


def _open_error(path: str, error: OSError) -> UsageError:
    return UsageError(f"cannot write the output file {path}: {_reason(error)}")


def _reason(error: OSError) -> str:
    return error.strerror or str(error)
