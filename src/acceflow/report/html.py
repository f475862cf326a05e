"""The HTML kit of the dossier: escaping, numbers, CIs, tables, key-value tables, figures.

Every dossier section builds its HTML with these helpers (never by hand-escaping), so numbers
look the same everywhere: 3 decimals, integers as such, tiny values in scientific notation,
``—`` for none. A :class:`Html` string is already HTML and is not escaped again; any other cell
is formatted (numbers) or escaped (text).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import html as _html
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from acceflow.report import figures as F

__all__ = ["Html", "e", "isnum", "num", "count", "is_count_name", "with_integer_counts", "ci", "cell", "table", "kv_table", "p", "heading", "figure",
           "png_figure", "png_file_figure", "svg_figure", "f", "join", "cohort_name", "figures_to"]

#: (folder, names written so far) while :func:`figures_to` is active: where :func:`figure` saves its files
_FIGURES: contextvars.ContextVar[tuple[Path, list[str]] | None] = contextvars.ContextVar("acceflow_figures",
                                                                                        default=None)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@contextlib.contextmanager
def figures_to(folder: str | Path):
    """While active, every :func:`figure` given a ``name`` is also saved as ``folder/{name}.png`` (the bytes
    embedded in the page) and ``folder/{name}.svg``. Yields the list of names written, in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    token = _FIGURES.set((folder, names))
    try:
        yield names
    finally:
        _FIGURES.reset(token)


class Html(str):
    """A string that is already HTML (not escaped again by the table helpers)."""


def e(x) -> str:
    """HTML-escape ``str(x)`` (quotes too)."""
    return _html.escape(str(x), quote=True)


def isnum(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def num(x, nd: int = 3) -> str:
    """A number to ``nd`` decimals (integers as such, tiny values in scientific notation, — for none)."""
    if isinstance(x, (bool, str)):
        return e(x)
    if not isnum(x) or not math.isfinite(float(x)):
        return "—"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    x = float(x)
    if x != 0 and abs(x) < 0.5 * 10**-nd:
        return f"{x:.2e}"
    return f"{x:.{nd}f}"


#: Names of count fields in the results contract besides ``n_*``: cases, events, scans, features,
#: subjects, repeats, benchmark jobs ... (``n``, ``n_events``, ``n_train``, ``n_events_train``, ``jobs``).
_COUNT_NAMES = {"n", "jobs", "cases", "events", "scans", "features", "subjects", "repeats", "entries"}


def is_count_name(name) -> bool:
    """Whether a column or JSON key of the results contract holds a count (``n``, ``n_*``, ``*_n``,
    ``jobs``, ...): such values print as integers in the dossier."""
    name = str(name).lower()
    return name in _COUNT_NAMES or name.startswith("n_") or name.endswith("_n")


def count(x):
    """A count as an ``int`` (``51.0`` -> ``51``); ``None`` for a missing value; a value that is not a
    whole number is returned unchanged (it is not a count, and is shown as a number)."""
    if x is None or isinstance(x, bool):
        return x
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        return x
    if isnum(x) and math.isfinite(float(x)) and float(x) == int(float(x)):
        return int(float(x))
    return x


def with_integer_counts(obj):
    """Counts as integers, at read: a table's count columns (:func:`is_count_name`) whose values are
    whole numbers become pandas' nullable ``Int64`` (pandas reads an integer column with a missing
    value as float, which would print ``51.000``); in a JSON object (dicts and lists, nested), the
    count keys' whole-number values become ``int``. Anything else is returned unchanged."""
    if isinstance(obj, pd.DataFrame):
        out = obj
        for col in obj.columns:
            if not is_count_name(col) or not pd.api.types.is_float_dtype(obj[col]):
                continue
            v = obj[col].dropna()
            if len(v) and np.isfinite(v).all() and (v == np.round(v)).all():
                out = out.copy() if out is obj else out
                out[col] = obj[col].astype("Int64")
        return out
    if isinstance(obj, dict):
        return {k: (count(v) if is_count_name(k) and isnum(v) else with_integer_counts(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [with_integer_counts(v) for v in obj]
    return obj


def ci(est, lo, hi) -> Html:
    """``est [lo, hi]``; the estimate alone without both bounds; ``—`` without an estimate."""
    if est is None or not isnum(est):
        return Html("—")
    if lo is None or hi is None or not (isnum(lo) and isnum(hi)):
        return Html(num(est))
    return Html(f"{num(est)} [{num(lo)}, {num(hi)}]")


def cell(v) -> str:
    """A table cell: :class:`Html` as is, anything else through :func:`num` (text is escaped)."""
    if isinstance(v, Html):
        return v
    return num(v)


def table(headers: Sequence[str], rows: Iterable[Sequence], cls: str = "") -> Html:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    c = f' class="{cls}"' if cls else ""
    return Html(f"<table{c}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def kv_table(pairs: Iterable[tuple[str, object]]) -> Html:
    body = "".join(f"<tr><th scope=\"row\">{e(k)}</th><td>{cell(v)}</td></tr>" for k, v in pairs)
    return Html(f'<table class="kv"><tbody>{body}</tbody></table>')


def p(text: str, cls: str = "") -> Html:
    """A paragraph of HTML ``text`` (escape data in it with :func:`e`)."""
    c = f' class="{cls}"' if cls else ""
    return Html(f"<p{c}>{text}</p>")


def heading(level: int, text: str, anchor: str | None = None) -> Html:
    """``<hN id=anchor>text</hN>`` (``text`` is escaped)."""
    a = f' id="{e(anchor)}"' if anchor else ""
    return Html(f"<h{level}{a}>{e(text)}</h{level}>")


def png_figure(data_b64: str, caption: str, alt: str) -> Html:
    """A figure of a base64 PNG with its (HTML) caption."""
    return Html(f'<figure><img src="data:image/png;base64,{data_b64}" alt="{e(alt)}">'
                f"<figcaption>{caption}</figcaption></figure>")


def png_file_figure(path: Path, caption: str, alt: str) -> Html | None:
    """A PNG file a rule wrote, embedded; ``None`` when the file is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    return png_figure(base64.b64encode(path.read_bytes()).decode("ascii"), caption, alt)


def svg_figure(svg: str, caption: str, alt: str) -> Html:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Html(f'<figure><img src="data:image/svg+xml;base64,{data}" alt="{e(alt)}">'
                f"<figcaption>{caption}</figcaption></figure>")


def figure(make: Callable, caption: str, alt: str, name: str | None = None) -> Html:
    """Draw a matplotlib figure with ``make()`` once and embed it as PNG; a failure is shown in place of the image.

    With a ``name`` (a stable file name: letters, digits, ``_ . -``; other characters become ``_``) and inside :func:`figures_to`, the
    figure is also written as ``{name}.png`` (the bytes embedded) and ``{name}.svg`` there
    (``report/figures/``, :data:`acceflow.study.results.Results.REPORT_FIGURE`) and the caption names the files.
    """
    try:
        fig = make()
    except Exception as exc:  # noqa: BLE001 - the dossier shows the failure instead of dying
        return p(f"Figure not drawn ({e(alt)}): {e(type(exc).__name__)}: {e(exc)}", "warn")
    sink = _FIGURES.get()
    try:
        if name is None or sink is None:
            data = F.figure_to_base64_png(fig)
        else:
            if not _NAME.fullmatch(name):  # a cohort name with spaces or slashes: a safe file name
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("._-") or "figure"
            folder, names = sink
            if name in names:
                logging.getLogger(__name__).warning("figure %s drawn twice in one dossier; the file keeps the last", name)
            else:
                names.append(name)
            png, _svg = F.save_figure(fig, folder / name, dpi=110)
            data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
            shown = f"{folder.parent.name}/{folder.name}/{name}"
            caption += f" (Also <code>{e(shown)}.png</code> and <code>{e(shown)}.svg</code>.)"
    finally:
        F.plt.close(fig)
    return png_figure(data, caption, alt)


def f(x):
    """A JSON value as float (None and non-numbers -> nan)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def join(items) -> str:
    items = [str(i) for i in items or []]
    return ", ".join(items) if items else "none"


def cohort_name(c: str) -> str:
    return "train — internal validation (out-of-fold)" if c == "train" else f"{c} — external validation"
