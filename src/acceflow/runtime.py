"""Plumbing every layer may use: logging a workflow step to its log file, atomic writes, JSON of
numpy values, SHA-256 of files. No statistics, no settings, no imports from the rest of acceflow."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path



@contextlib.contextmanager
def log_to(path: str | None):
    """Send stdout, stderr and Python logging of a workflow step to ``path`` (append).

    Log records carry a time stamp (``HH:MM:SS``), so that a long step's progress can be timed from
    its log. When the step raises, the full traceback goes to the log and a short summary (one line
    per cause of the exception chain, and the log's path) to the console's stderr as well, so that
    Snakemake's console shows why a job failed without opening its log.
    """
    if not path:
        yield
        return
    console = sys.stderr
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        try:
            yield
        except BaseException as exc:
            traceback.print_exc(file=fh)
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)) or (isinstance(exc, SystemExit) and exc.code):
                with contextlib.suppress(Exception):
                    console.write(failure_summary(exc, path) + "\n")
                    console.flush()
            raise
        finally:
            logging.getLogger().removeHandler(handler)
            sys.stdout.flush()


def failure_summary(exc: BaseException, log: str | None = None, limit: int = 300, detail: int = 2) -> str:
    """A short account of a failed step: one line per exception of the chain (``raise ... from``
    and exceptions raised while handling another), outermost first, then where the full log is.

    Each cause is ``error: <type>: <message>`` (its first line, at most ``limit`` characters: a
    longer one keeps its start and its end, where acceflow's messages say the fix, around " ... "); a
    message of several lines (a list of bad rows) adds its next ``detail`` lines, indented, and
    says how many more the log holds. The messages of acceflow's errors name the case, file or
    column and the fix.
    """
    def cut(text: str) -> str:
        if len(text) <= limit:
            return text
        head = (limit - 5) // 2
        return text[:head] + " ... " + text[len(text) - (limit - 5 - head):]

    lines, seen = [], set()
    while exc is not None and id(exc) not in seen and len(seen) < 5:
        seen.add(id(exc))
        message = [m.strip() for m in str(exc).strip().splitlines() if m.strip()]
        head = f"{'error' if not lines else '  caused by'}: {type(exc).__name__}"
        lines.append(head + (f": {cut(message[0])}" if message else ""))
        lines.extend(f"    {cut(m)}" for m in message[1: 1 + detail])
        if len(message) > 1 + detail:
            lines.append(f"    (+{len(message) - 1 - detail} more lines in the log)")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if log:
        lines.append(f"  full log: {log}")
    return "\n".join(lines)


def put_on_pythonpath(folder: str) -> None:
    """Prepend ``folder`` to ``PYTHONPATH`` so that the jobs a workflow starts import this checkout."""
    folder = os.path.abspath(folder)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != folder]
    os.environ["PYTHONPATH"] = os.pathsep.join([folder, *parts])


def require_keys(given: Mapping | None, keys, what: str, hint: str = "") -> Mapping:
    """``given`` itself when it holds every key of ``keys``; else a ValueError naming the missing ones.

    For functions that take a complete settings section and hold no defaults of their own
    (``what`` names the section in the message, ``hint`` says how to build a complete one).
    """
    given = {} if given is None else given
    missing = [k for k in keys if k not in given]
    if missing:
        raise ValueError(f"{what} lacks {', '.join(missing)}: pass the complete section"
                         + (f" ({hint})" if hint else ""))
    return given


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, or of a folder's files (sorted by relative path)."""
    h = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(chunk), b""):
                h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_verified(path: str | os.PathLike, sha256: str | None, rule: str = "the training rule",
                  error: type[Exception] = ValueError) -> bytes:
    """The bytes of a model file, read once, after their SHA-256 matched the one recorded at training.

    Deserialise the returned bytes (never the path again), so the file cannot be swapped between
    the check and the load.

    Parameters
    ----------
    path : path-like
    sha256 : str
        The hex digest recorded in the model card; empty or None is refused.
    rule : str
        The rule whose re-run rewrites the file (named in the message).
    error : exception class
        Raised on a missing file or a differing hash (a ``ValueError`` subclass of the caller's).
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise error(f"{path}: cannot read the model file ({exc}); re-run {rule}") from exc
    digest = sha256_bytes(data)
    if not sha256 or digest != sha256:
        raise error(f"{path}: SHA-256 {digest} differs from the model card's {sha256 or '(none recorded)'}; the model "
                    f"file was changed after training: delete it and re-run {rule}")
    return data


def to_jsonable(obj):
    """Plain JSON types: numpy scalars/arrays to Python, paths to str, NaN/±inf to None."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalar / array
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    pd = sys.modules.get("pandas")  # pandas.NA / NaT exist only where pandas is loaded: never import it here
    try:
        if pd is not None and pd.isna(obj):
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json(obj, path: str | os.PathLike) -> Path:
    """Write ``obj`` as JSON (sorted keys, indent 2, NaN as null) atomically; return the path."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    return atomic_write_bytes(text.encode("utf-8"), path)
