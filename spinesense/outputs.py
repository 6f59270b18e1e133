"""Safe output files: written to a temporary file beside the target and renamed on success.

Every command that writes a file (simulate, record export, report, tune, calibration,
recommended.toml) goes through :func:`atomic_output`, so that

* Ctrl-C or an error never leaves a valid-looking truncated file behind;
* nothing is overwritten without ``force`` (the CLI's ``--force``);
* a missing parent folder is an error naming it (it is created only when the folder is
  itself the output, see :func:`output_folder`);
* ``-`` means standard output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from spinesense.cli import CliError

STDOUT = "-"


def check_output_path(path: str | Path, *, force: bool = False) -> Path | None:
    """Fail early (before any work is done) if ``path`` cannot be written.

    Returns the path, or None for ``-`` (standard output)."""
    if str(path) == STDOUT:
        return None
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{p}: is a folder; give a file name (for example {p / 'out'})", 2)
    if p.exists() and not force:
        raise CliError(f"{p}: already exists; pass --force to overwrite it", 2)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise CliError(f"{p}: folder {parent} does not exist; create it first", 2)
    if not os.access(parent, os.W_OK):
        raise CliError(f"{p}: folder {parent} is not writable", 2)
    return p


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False, binary: bool = False,
                  encoding: str = "utf-8", newline: str | None = None) -> Iterator[IO[Any]]:
    """Open ``path`` for writing through a temporary file, renamed into place on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and the
    target is left as it was."""
    p = check_output_path(path, force=force)
    if p is None:
        if binary:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        else:
            yield sys.stdout
            sys.stdout.flush()
        return
    # The name is chosen before the file exists, so that a Ctrl-C at any moment, even
    # right after the file is created, finds it in the cleanup below.
    tmp: Path | None = (p.parent or Path(".")) / f".{p.name}.{secrets.token_hex(4)}.part"
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            tmp = None  # someone else's file: never ours to remove
            raise
        mode = "wb" if binary else "w"
        kwargs: dict[str, Any] = {} if binary else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if p.exists() and not force:  # appeared while we worked
            raise CliError(f"{p}: already exists; pass --force to overwrite it", 2)
        os.replace(tmp, p)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str, *, force: bool = False) -> None:
    """Write a whole text file atomically (see :func:`atomic_output`)."""
    with atomic_output(path, force=force) as fh:
        fh.write(text)


def output_folder(path: str | Path, *, force: bool = False) -> Path:
    """A folder that is itself the output (``tune --out DIR``): created if missing (with its
    parents' existence checked), refused if it exists and is not empty unless ``force``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{p}: exists and is not a folder; choose another --out", 2)
    if p.is_dir() and any(p.iterdir()) and not force:
        raise CliError(f"{p}: folder is not empty; pass --force to overwrite its files", 2)
    if not p.parent.is_dir():
        raise CliError(f"{p}: folder {p.parent} does not exist; create it first", 2)
    p.mkdir(exist_ok=True)
    return p
