"""Data safety and user-facing errors: secrets masked, inputs never written, one line per error.

- :func:`mask_secrets` hides credentials written into URLs or options (``http://user:PASS@host``,
  ``?api_key=...``, ``token=...``, ``Bearer ...``) in any text, and :func:`mask_obj` in any JSON-able
  value; :class:`SecretFilter` applies it to every log record.
- :func:`check_output` refuses an output path that is an input, a file of the dataset, a folder, or
  that cannot be created; :func:`check_output_dir` does the same for an output folder.
- :func:`check_model` refuses a model that is neither a packaged name, a model folder, nor (offline) a
  hub id in the local cache.
- :func:`describe_error` turns any exception into ``(exit code, one line)`` for the CLI: 2 for what a
  user can cause (bad input, config, path, model), 1 for anything else.

>>> mask_secrets("http://user:PASS@host/v1/completions?api_key=abc&x=1")
'http://***@host/v1/completions?api_key=***&x=1'
>>> mask_obj({"backend_options": {"base_url": "https://u:p@h/v1"}})
{'backend_options': {'base_url': 'https://***@h/v1'}}
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inpars.errors import ConfigError, InparsError

__all__ = [
    "SecretFilter", "check_model", "check_output", "check_output_dir", "dataset_root", "describe_error",
    "mask_obj", "mask_secrets",
]

# userinfo runs to the last '@' of the address (a password may hold '@', '/', '#' unencoded): masking too much
# of a URL is the safe error
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s\"'<>]*@")
# the same without a scheme: user:password@host
_BARE_USERINFO = re.compile(r"(?<![\w.%+/-])[\w.%+-]+:(?!//)[^\s\"'<>]*@(?=[A-Za-z0-9\[])")
_SECRET_KEYS = (
    r"api[_-]?key|apikey|token|access[_-]?token|auth[_-]?token|password|passwd|pwd|secret|"
    r"client[_-]?secret|sig|signature"
)
_PARAM = re.compile(rf"(?P<key>(?:^|[?&;\s,{{(\"'])(?:{_SECRET_KEYS})=[\"']?)[^&\s#\"',;)}}]+", re.IGNORECASE)
_SECRET_NAME = re.compile(rf"^(?:{_SECRET_KEYS}|authorization|headers?)$", re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def mask_secrets(text: Any) -> str:
    """``text`` (converted to ``str``) with credentials in URLs, ``key=value`` secrets and bearer tokens
    replaced by ``***``.

    >>> mask_secrets("retry https://me:s3cret@example.org/v1 token=XYZ")
    'retry https://***@example.org/v1 token=***'
    >>> mask_secrets("http://u:p@ss/w#rd@host:8000/v1 and u:pw@host:8000")
    'http://***@host:8000/v1 and ***@host:8000'
    >>> mask_secrets("nothing to hide")
    'nothing to hide'
    """
    text = str(text)
    if "@" in text:
        text = _USERINFO.sub(lambda m: m.group("scheme") + "***@", text)
        text = _BARE_USERINFO.sub("***@", text)
    text = _PARAM.sub(lambda m: m.group("key") + "***", text)
    return _BEARER.sub(lambda m: m.group("key") + "***", text)


def mask_obj(obj: Any) -> Any:
    """A copy of a JSON-able value with :func:`mask_secrets` applied to every string in it, and the value of
    a key named like a secret (``api_key``, ``token``, ``password``, ``headers``...) replaced by ``***``."""
    if isinstance(obj, str):
        return mask_secrets(obj)
    if isinstance(obj, dict):
        return {k: "***" if isinstance(k, str) and _SECRET_NAME.match(k) and v else mask_obj(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask_obj(v) for v in obj]
    return obj


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in each record's formatted message (and exception text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# -- output paths ---------------------------------------------------------------------------------------

def dataset_root(name: str | Path | None) -> Path | None:
    """The folder of a dataset named as ``load_dataset`` takes it (a folder or a name under
    ``$INPARS_DATA_HOME``), or ``None`` (an ``irds:`` id, a download not yet made, no dataset)."""
    if not name:
        return None
    spec = str(name)
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    home = os.environ.get("INPARS_DATA_HOME")
    if home and ":" not in spec and (Path(home) / spec).is_dir():
        return Path(home) / spec
    return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _creatable(path: Path, flag: str, folder: bool) -> None:
    """The first existing ancestor of ``path`` must be a writable folder."""
    parent = path.parent if not folder else path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"{flag} {path}: {parent} is a file, so nothing can be created under it "
                          "(choose another path)")
    if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: the folder {parent} is not writable (choose another path or fix "
                          "its permissions)")


def _not_an_input(path: Path, flag: str, inputs: Iterable[str | Path | None], dataset: str | Path | None) -> None:
    resolved = path.resolve()
    for inp in inputs:
        if inp is None or str(inp) == "":
            continue
        p = Path(inp).expanduser()
        if resolved == p.resolve() or _same(path, p):
            raise ConfigError(f"{flag} {path} is also an input ({inp}); inputs are never overwritten "
                              "(write to another file)")
    root = dataset_root(dataset)
    if root is not None and path.exists():
        r = root.resolve()
        if resolved == r or resolved.is_relative_to(r):
            raise ConfigError(f"{flag} {path} is a file of the dataset {root}; inputs are never overwritten "
                              "(write to another file)")


def _no_tilde(out: str | Path, flag: str) -> None:
    """A ``~`` the shell did not expand (the path was quoted) would be checked as the home folder and
    written as a folder named ``~``: refused."""
    if str(out).startswith("~"):
        raise ConfigError(f"{flag} {out}: '~' was not expanded (a quoted path?); write the home folder's path "
                          "out, or leave '~' unquoted")


def check_output(
    out: str | Path, inputs: Iterable[str | Path | None] = (), dataset: str | Path | None = None,
    *, flag: str = "--out",
) -> Path:
    """Refuse (:class:`~inpars.errors.ConfigError`) an output file that resolves to one of ``inputs`` or to
    a file of ``dataset``'s folder, that is a folder, or that cannot be created; returns it as a Path."""
    _no_tilde(out, flag)
    path = Path(out).expanduser()
    _not_an_input(path, flag, inputs, dataset)
    from inpars.io import special_kind

    kind = special_kind(path)
    if kind:
        raise ConfigError(f"{flag} {path} is {kind}: outputs are written to regular files or new paths only, "
                          "never through or over a link or a special file (choose another path)")
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give a file path")
    _creatable(path, flag, folder=False)
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path} is not writable (choose another path or fix its permissions)")
    return path


def check_output_dir(
    out: str | Path, inputs: Iterable[str | Path | None] = (), dataset: str | Path | None = None,
    *, flag: str = "--out",
) -> Path:
    """Like :func:`check_output` for an output folder: refused when it is a file, an input, the dataset
    folder or inside it, or cannot be created."""
    _no_tilde(out, flag)
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file; give a folder path")
    _not_an_input(path, flag, inputs, None)
    root = dataset_root(dataset)
    if root is not None:
        r, resolved = root.resolve(), path.resolve()
        if resolved == r or resolved.is_relative_to(r):
            raise ConfigError(f"{flag} {path} is inside the dataset folder {root}; choose a folder outside it")
    _creatable(path, flag, folder=True)
    return path


# -- models ---------------------------------------------------------------------------------------------

def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return True  # cannot tell; let the loader decide
    try:
        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub client refuses (bad characters): not in the cache
        return False
    return isinstance(found, str)


def check_model(name: str | None, what: str) -> None:
    """Refuse a model that cannot load: a missing path, a folder without ``config.json``, or (offline) a
    hub id that is not in the local cache. ``what`` names the key path or flag (e.g. ``train.model``).
    Packaged names (:mod:`inpars.models`) and, online, any hub id pass."""
    if not name:
        return
    from inpars.models import PACKAGED_MODELS

    if name in PACKAGED_MODELS.names():
        return
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and not (path / "config.json").is_file() and not any(path.glob("*.onnx")):
            raise ConfigError(f"{what}: {name} is a folder but not a model (no config.json in it); give a "
                              "checkpoint folder, a packaged name or a hub id")
        tokenizer = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                     "tokenizer.model", "sentencepiece.bpe.model")
        if path.is_dir() and (path / "config.json").is_file() and not any((path / f).is_file() for f in tokenizer):
            raise ConfigError(f"{what}: {name} has no tokenizer files (tokenizer.json, vocab.txt, ...): it would "
                              "read every text as unknown tokens; save the tokenizer beside the model")
        if path.is_file() and path.suffix not in (".gguf", ".onnx"):
            raise ConfigError(f"{what}: {name} is a file, not a model folder; give a checkpoint folder")
        return
    packaged = ", ".join(PACKAGED_MODELS.names())
    looks_like_path = name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
    if looks_like_path:
        raise ConfigError(f"{what}: {name} does not exist (give a checkpoint folder, a packaged name: "
                          f"{packaged}, or a hub id)")
    if _offline() and not _in_hub_cache(name):
        raise ConfigError(f"{what}: '{name}' is not a packaged model ({packaged}), not a local folder, and not "
                          "in the Hugging Face cache while offline (HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); give "
                          "a checkpoint folder or a packaged name")


def usable_cores() -> int:
    """CPU cores this process may run on (its CPU affinity where the OS has one): the default thread
    budget of llama.cpp and of a local Ray cluster."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


#: the most threads per usable core a command accepts: more only thrashes (and very many crash torch)
THREADS_PER_CORE = 4


def check_threads(threads: int | None, flag: str = "--threads") -> None:
    """Refuse a negative thread count (0 or unset: the default) and one above :data:`THREADS_PER_CORE`
    times the usable cores."""
    if threads is not None and threads < 0:
        raise ConfigError(f"{flag} {threads}: expected a positive number of threads (or leave it unset)")
    most = THREADS_PER_CORE * usable_cores()
    if threads is not None and threads > most:
        raise ConfigError(f"{flag} {threads}: more than {most} threads ({THREADS_PER_CORE} per usable core) only "
                          "slows the machine down; give at most that, or leave it unset")


def check_range(value: int, flag: str, low: int, high: int | None = None) -> int:
    """``value`` when within ``low``..``high`` (no upper bound when None), else a ConfigError naming ``flag``."""
    if value < low or high is not None and value > high:
        span = f"at least {low}" if high is None else f"{low}..{high}"
        raise ConfigError(f"{flag} {value}: expected {span}")
    return value


_DEVICE = re.compile(r"(cpu|mps|cuda)(:\d+)?")


def check_device(device: str | None, flag: str = "device", *, present: bool = True) -> None:
    """Refuse a device that is not ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; with ``present``, also a CUDA
    device this machine does not have (torch is imported only then)."""
    if device is None:
        return
    if not isinstance(device, str) or not _DEVICE.fullmatch(device):
        raise ConfigError(f"{flag} {device!r}: expected cpu, cuda, cuda:N or mps")
    if present and device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            have = "no CUDA device" if count == 0 else f"CUDA devices 0..{count - 1} only"
            raise ConfigError(f"{flag} {device}: this machine has {have}; give cpu or a device it has")


# -- errors ---------------------------------------------------------------------------------------------

def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not lines:
        return ""
    first, rest = lines[0], lines[1:]
    return first + (" " + "; ".join(rest) if rest else "")


def _os_error(exc: OSError) -> str:
    name = exc.filename
    where = f"{name}" if name is not None else ""
    if exc.filename2 is not None:
        where = f"{exc.filename2}"
    if isinstance(exc, IsADirectoryError):
        return f"{where} is a folder, not a file (give a file path)"
    if isinstance(exc, NotADirectoryError):
        return f"{where}: a part of this path is a file, not a folder (choose another path)"
    if isinstance(exc, FileExistsError):
        return f"{where}: a file is in the way where a folder is needed (choose another path)"
    if isinstance(exc, PermissionError):
        return f"{where}: permission denied (fix its permissions or choose another path)"
    if isinstance(exc, FileNotFoundError):
        if name is None:
            return _one_line(str(exc))
        return f"{where}: no such file or folder (check the path)"
    if exc.errno == errno.ENOSPC:
        return f"{where or 'a file'}: no space left on the device (free some space, then run again to resume)"
    if exc.errno == errno.EROFS:
        return f"{where}: read-only file system (choose another path)"
    if name is None:
        return _one_line(str(exc))
    return f"{where}: {exc.strerror or exc} (check the path)"


def _is_corrupt_input(exc: BaseException) -> bool:
    """A compressed file whose body is damaged (zlib, gzip, bz2, lzma), or a weights file safetensors cannot
    read (truncated download): bad input, not a bug."""
    import zlib

    return isinstance(exc, (zlib.error, EOFError)) or type(exc).__name__ in (
        "BadGzipFile", "LZMAError", "SafetensorError", "HeaderTooLarge", "HeaderTooSmall")


def describe_error(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for an exception reaching the CLI, secrets masked.

    >>> describe_error(IsADirectoryError(21, "Is a directory", "out"))
    (2, 'out is a folder, not a file (give a file path)')
    >>> describe_error(KeyError("x"))[0]
    1
    """
    if isinstance(exc, InparsError):
        code, line = 2, _one_line(str(exc))
    elif isinstance(exc, OSError):
        code, line = 2, _os_error(exc)
    elif isinstance(exc, UnicodeDecodeError):
        code, line = 2, f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}; save it as UTF-8)"
    elif isinstance(exc, ValueError):
        code, line = 2, _one_line(str(exc)) or type(exc).__name__
    elif _is_corrupt_input(exc):
        code, line = 2, f"an input is corrupt or truncated ({type(exc).__name__}: {_one_line(str(exc))}); check the files given"
    elif isinstance(exc, RecursionError):
        code, line = 2, "an input nests too deeply to read (a JSON value nested thousands of levels?); check the files given"
    else:
        detail = _one_line(str(exc))
        code, line = 1, (f"internal error {type(exc).__name__}{': ' + detail if detail else ''} "
                         "(run again with -vv for the traceback, and please report it)")
    return code, mask_secrets(line)
