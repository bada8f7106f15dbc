"""Output files: check a path before the work, then write it atomically and carefully.

Every writer option of the CLI (``-o``, ``--out``, ``--csv``, ``--plot``) goes through here:

- :func:`check_output_file` (and :func:`check_output_dir` for a folder of outputs) runs
  *before* any compute, so an unwritable location costs nothing and gives one line naming
  the user's path (an :class:`~advisor.errors.AdvisorError`, exit 2);
- :func:`atomic_write_text` / :func:`atomic_write_bytes` / :func:`atomic_output` write to a
  temporary file beside the target and rename it over the target, so a reader never sees a
  half-written file.

Rules: a symlink is written *through* (its target is replaced, the link stays); a path that
exists and is not a regular file (a directory, a FIFO, a device, a socket) is refused rather
than replaced; the CLI's check of a file refuses a missing folder (a typo in a path must
not create folders: create it first), while a folder of outputs (:func:`check_output_dir`)
is created with its parents when written into; a new file gets the mode a shell redirect
would give (0666 minus the umask), a replaced file keeps its mode.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from advisor.errors import AdvisorError


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _nearest_existing(p: Path) -> Path:
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_folder_usable(folder: Path, shown, what: str) -> None:
    """``folder`` is (or can be created as) a writable directory; else one AdvisorError."""
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise AdvisorError(f"cannot write {what} {shown}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise AdvisorError(f"cannot write {what} {shown}: {base} is not writable")


def resolve_target(path) -> Path:
    """The file a write to ``path`` lands in: symlinks followed (a dangling one too)."""
    return Path(os.path.realpath(os.fspath(path)))


def check_output_file(path, what: str = "output file",
                      folder_may_be_missing: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written; return the file to write.

    Refuses (AdvisorError) a path that exists and is not a regular file, a path whose folder
    is a file or is not writable, and (unless ``folder_may_be_missing``: a file inside a
    folder of outputs the command creates) a path whose folder does not exist, also through
    a dangling symlink. Creates nothing.
    """
    if path is None or str(path) == "":
        raise AdvisorError(f"{what}: empty path")
    target = resolve_target(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise AdvisorError(f"cannot write {what} {path}: {exc.strerror}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise AdvisorError(f"refusing to write {what} {path}: it exists and is "
                               f"{_kind(st.st_mode)}, not a regular file")
        if not os.access(target, os.W_OK):
            raise AdvisorError(f"cannot write {what} {path}: permission denied")
    if not folder_may_be_missing and not os.path.lexists(target.parent):
        via = f" (through the symlink {path})" if target != Path(os.path.abspath(path)) else ""
        raise AdvisorError(f"cannot write {what} {path}: its folder {target.parent} does not "
                           f"exist{via}; create it first")
    _check_folder_usable(target.parent, path, what)
    return target


def check_output_dir(path, what: str = "output folder") -> Path:
    """Check, before any work, that ``path`` is or can become a writable folder."""
    if path is None or str(path) == "":
        raise AdvisorError(f"{what}: empty path")
    p = resolve_target(path)
    if os.path.lexists(p) and not p.is_dir():
        raise AdvisorError(f"cannot use {what} {path}: it exists and is not a directory")
    _check_folder_usable(p, path, what)
    return p


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path, what: str = "output file", suffix: str | None = None):
    """Yield a temporary path beside ``path``'s target; on success rename it over the target.

    For writers that want a file name (``matplotlib``'s ``savefig``): the temporary name ends
    in ``suffix`` (default: the target's), so format detection still works. On an exception
    the temporary file
    is removed and the target is untouched. OS errors become one-line AdvisorErrors naming
    ``path``.
    """
    target = check_output_file(path, what, folder_may_be_missing=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                   suffix=f".tmp{target.suffix if suffix is None else suffix}")
        os.close(fd)
    except OSError as exc:
        raise AdvisorError(f"cannot write {what} {path}: {exc.strerror}") from None
    try:
        yield tmp
        try:
            old = os.stat(target)
            mode = stat.S_IMODE(old.st_mode) if stat.S_ISREG(old.st_mode) else None
        except FileNotFoundError:
            mode = _new_file_mode()
        if mode is None:  # it became something else since the check: still refuse
            check_output_file(path, what, folder_may_be_missing=True)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as exc:
        raise AdvisorError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_bytes(path, data: bytes, what: str = "output file") -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, what) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path, text: str, what: str = "output file") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    atomic_write_bytes(path, text.encode("utf-8"), what)


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: ``header`` then one line per row (cells as ``str``; a ``|`` in a
    cell is escaped, a newline becomes a space)."""
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(out) + "\n"

