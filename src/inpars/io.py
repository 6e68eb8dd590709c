"""File helpers shared by every stage: atomic writes, JSONL that survives a crash, hashes.

- :func:`atomic_write` writes to a temporary file beside the target and renames it into place, so a
  reader never sees half a file; the file gets the permissions the umask gives a new file. A temporary
  file names its writer (host and process id); one left by a killed writer on this host is removed by
  the next write of the same target (:func:`remove_stale_temps`).
- :class:`JsonlAppender` appends one record per line and flushes each line; after a SIGKILL at most the
  line being written is incomplete, and :func:`repair_jsonl` cuts it off before the file is resumed.
- :func:`read_jsonl` names the file and line of any malformed record.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from inpars.errors import InputError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write(os.path.join(d, "x.txt")) as f:
    ...     _ = f.write("hello")
    >>> open(os.path.join(d, "x.txt")).read()
    'hello'
    """
    path = Path(path)
    kind = special_kind(path)
    if kind:  # renaming over it would replace a device, a FIFO or a link with a regular file
        from inpars.errors import ConfigError

        raise ConfigError(f"{path} is {kind}: outputs are written to regular files or new paths only "
                          "(choose another path)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a written file honours the umask
        kwargs: dict[str, Any] = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _name_it(exc, path)
        raise


def _name_it(exc: BaseException, path: Path) -> None:
    """Give an OSError raised while writing ``path`` (a full disk, a quota) the file's name, which a failed
    ``write`` or ``fsync`` does not carry, so that the error line names what could not be written."""
    if isinstance(exc, OSError) and exc.filename is None:
        exc.filename = str(path)


@contextlib.contextmanager
def exclusive(path: str | Path, what: str) -> Iterator[None]:
    """Hold an OS lock (``flock``) on ``path``'s lock file, ``.<name>.lock`` beside it, while the block runs:
    a second writer of ``what`` gets one :class:`~inpars.errors.ConfigError` instead of writing every record
    twice. The lock dies with its process, so one left by a killed run never blocks; the empty lock file
    stays (a dot file: never a stage output).

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "out.jsonl"
    >>> with exclusive(p, "the output"):
    ...     with exclusive(p, "the output"):
    ...         pass
    Traceback (most recent call last):
    ...
    inpars.errors.ConfigError: the output is being written by another inpars process (lock ...); wait for it to finish, or write elsewhere
    """
    try:
        import fcntl
    except ImportError:  # no flock on this platform: unlocked, as before
        yield
        return
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            from inpars.errors import ConfigError

            raise ConfigError(f"{what} is being written by another inpars process (lock {lock}); wait for it "
                              "to finish, or write elsewhere") from None
        yield
    finally:
        os.close(fd)


def special_kind(path: Path) -> str | None:
    """What ``path`` is when it is neither absent nor a regular file nor a folder: ``a symbolic link``,
    ``a FIFO``, ``a device``, ``a socket``; None otherwise.

    >>> special_kind(Path("/dev/null")), special_kind(Path("/no/such/file"))
    ('a device', None)
    """
    import stat

    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname()) or "host"


def temp_prefix(path: Path) -> str:
    """The name start of a temporary file or folder written for ``path``: ``.<name>.<host>-<pid>-``
    (``tempfile`` adds random characters and the ``.tmp`` suffix)."""
    return f".{path.name}.{_HOST}-{os.getpid()}-"


def make_temp(path: Path, *, directory: bool = False) -> Path:
    """A new empty temporary file (or folder) beside ``path``, named by :func:`temp_prefix`, after removing
    those a killed writer of ``path`` left (:func:`remove_stale_temps`). The caller renames it over
    ``path`` or removes it."""
    remove_stale_temps(path)
    if directory:
        return Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(path: str | Path) -> int:
    """Remove the temporary files or folders of ``path`` that a killed writer on this host left behind
    (named by :func:`temp_prefix`, their process gone); returns how many. Temporaries of live processes,
    of other hosts (a shared file system) and of unknown names are left alone."""
    path = Path(path)
    start = f".{path.name}."
    n = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(path.parent):
            name = entry.name
            if not (name.startswith(start) and name.endswith(".tmp")):
                continue
            parts = name[len(start):-len(".tmp")].rsplit("-", 2)
            if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit() or _alive(int(parts[1])):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                n += 1
                log.info("removed %s, left by a killed writer", entry.path)
    return n


@functools.cache
def _umask() -> int:
    """The process umask, read once (reading it means setting it: not done again while threads write)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False, default=str)
        f.write("\n")


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSON lines, atomically; returns how many were written.

    A record holding NaN or an infinity (which :func:`read_jsonl` refuses) is an :class:`InputError`, and
    nothing is written."""
    n = 0
    with atomic_write(path) as f:
        for rec in records:
            f.write(_json_line(rec, path, n + 1))
            n += 1
    return n


def _json_line(record: dict[str, Any], path: str | Path, n: int) -> str:
    """``record`` as one line of JSON; NaN and infinities, which no reader here accepts, are refused."""
    try:
        return json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
    except ValueError as exc:
        raise InputError(f"record {n} for {path} cannot be written ({exc}): NaN and infinities are not JSON "
                         "numbers, and the readers refuse them") from None


class _NotANumber(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotANumber(name)


def _finite_float(text: str) -> float:
    """A JSON number, refused when beyond the range of a double (``1e400`` would read as infinity)."""
    value = float(text)
    if not math.isfinite(value):
        raise _NotANumber(text if len(text) <= 24 else text[:20] + "...")
    return value


def read_jsonl(path: str | Path, *, skip_truncated_tail: bool = False) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-empty line of a JSONL file.

    Raises :class:`InputError` naming the file and line for invalid UTF-8, invalid JSON (``NaN`` and
    ``Infinity``, which Python's JSON would accept, included, and so are a number beyond the range of a
    double, an integer beyond Python's digit limit and nesting beyond its recursion limit) or a line that is
    not a JSON object. A UTF-8 byte-order mark at the start of the file is accepted, as in every other
    reader. With ``skip_truncated_tail`` a last line without its newline that does not parse (what a killed
    writer leaves) is skipped with a warning instead. The file is streamed: one line is held at a time.
    """
    for i, _offset, obj in read_jsonl_offsets(path, skip_truncated_tail=skip_truncated_tail):
        yield i, obj


def read_jsonl_offsets(
    path: str | Path, *, skip_truncated_tail: bool = False
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """:func:`read_jsonl` that also gives each line's byte offset: ``(line_number, offset, object)``
    (:func:`parse_jsonl_line` reads the line at an offset back)."""
    path = Path(path)
    offset = 0
    with open(path, "rb") as f:
        for i, raw in enumerate(f, start=1):
            start, offset = offset, offset + len(raw)
            # only the last line of a file can lack its newline
            obj = _parse_line(raw, path, i, skip_truncated_tail and not raw.endswith(b"\n"))
            if obj is _TORN:
                return
            if obj is not None:
                yield i, start, obj


def parse_jsonl_line(raw: bytes, path: str | Path, line: int = 0) -> dict[str, Any] | None:
    """The JSON object of one raw JSONL line (None for a blank line), checked as :func:`read_jsonl` does."""
    obj = _parse_line(raw, Path(path), line, False)
    return None if obj is _TORN else obj


_TORN: Any = object()


def _parse_line(raw: bytes, path: Path, i: int, torn_ok: bool) -> Any:
    try:
        text = raw.decode("utf-8-sig" if i == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"invalid UTF-8 at byte {exc.start}", path=path, line=i or None) from None
    if not text.strip():
        return None
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotANumber as exc:
        raise InputError(f"{exc.args[0]} is not a number (a score or log-prob must be finite)",
                         path=path, line=i or None) from None
    except json.JSONDecodeError as exc:
        if torn_ok:
            log.warning("%s:%d: ignoring an incomplete last line (interrupted write)", path, i)
            return _TORN
        raise InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", path=path, line=i or None) from None
    except ValueError as exc:  # an integer beyond sys.get_int_max_str_digits()
        raise InputError(f"invalid JSON number ({exc})", path=path, line=i or None) from None
    except RecursionError:
        raise InputError("invalid JSON (nested too deeply)", path=path, line=i or None) from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}", path=path, line=i or None)
    return obj


def repair_jsonl(path: str | Path) -> int:
    """Cut off an incomplete last line (no trailing newline) left by a killed writer.

    Returns the number of bytes removed. A complete last line whose newline is missing but which parses is
    kept and given its newline.
    """
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        if not data or data.endswith(b"\n"):
            return 0
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail.decode("utf-8-sig" if cut == 0 else "utf-8"))  # a BOM may start the file
        except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            f.truncate(cut)
            log.warning("%s: removed an incomplete last line of %d bytes", path, len(tail))
            return len(tail)
        f.write(b"\n")
        return 0


class JsonlAppender:
    """Append JSON records to a file, one flushed line each; safe to kill at any moment.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "out.jsonl")
    >>> with JsonlAppender(p) as out:
    ...     out.write({"a": 1})
    >>> [obj for _, obj in read_jsonl(p)]
    [{'a': 1}]
    """

    def __init__(self, path: str | Path, fsync_every: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(self.path)
        self._f: IO[str] = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._fsync_every = max(1, fsync_every)
        self._pending = 0
        self._written = 0

    def write(self, record: dict[str, Any]) -> None:
        # One write call per complete line: a kill leaves at most this line incomplete.
        line = _json_line(record, self.path, self._written + 1)
        try:
            self._f.write(line)
            self._f.flush()
            self._pending += 1
            if self._pending >= self._fsync_every:
                os.fsync(self._f.fileno())
                self._pending = 0
        except OSError as exc:
            _name_it(exc, self.path)
            raise
        self._written += 1

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.flush()
                os.fsync(self._f.fileno())
            except OSError as exc:
                _name_it(exc, self.path)
                raise
            finally:
                self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_path(path: str | Path) -> str:
    """SHA-256 of a file, or of a folder's files (relative names and contents, in sorted order)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(path)).encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()
