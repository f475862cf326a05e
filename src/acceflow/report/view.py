"""What every dossier section reads: :class:`ResultsView`, one results folder read through the
results contract's names (:mod:`acceflow.study.results`), each file read once, and :class:`Section`,
what a section returns.

Every section has the signature ``section(view: ResultsView) -> Section | None``; ``None`` means
it has nothing to show and the renderer leaves it out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from acceflow.report.html import with_integer_counts
from acceflow.study.results import Results, comparator, fill
from acceflow.study.task import task_for

__all__ = ["ResultsView", "Section", "Results"]


@dataclass(frozen=True)
class Section:
    """One part of the dossier: its anchor and its HTML (built with :mod:`acceflow.report.html`)."""

    id: str
    html: str


@dataclass
class ResultsView:
    """A results folder as the dossier sees it.

    Parameters
    ----------
    root : the results folder
    config : the configuration as run
    cohorts : ``train`` and the external cohorts, in report order
    provenance, rulegraph_svg : the run's provenance record and rule graph (appendix)

    Files are named by a :class:`~acceflow.study.results.Results` template and its wildcards
    (``view.tsv(Results.PREDICTIONS, cohort="train")``; a comparator's with ``model=``); a missing
    or unreadable file reads as ``None``. Counts (``n``, ``n_events``, ...) are read as integers
    (:func:`acceflow.report.html.with_integer_counts`). Each file is read once and cached, so hand out copies
    before changing a table. ``summary`` and ``icc`` hold the dossier's computed summary once
    :func:`acceflow.report.dossier.build_dossier` has made it.
    """

    root: Path
    config: Mapping
    cohorts: Sequence[str]
    provenance: Mapping | None = None
    rulegraph_svg: str | None = None
    summary: dict = field(default_factory=dict)
    icc: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.root = Path(self.root)
        self.cohorts = list(self.cohorts)

    # ---------------------------------------------------------------------------- files
    def relative(self, template: str, model: str | None = None, **wildcards) -> str:
        """The file's path relative to the results folder (as the dossier names it to the reader)."""
        if model is not None:
            template = comparator(template, model)
        return fill(template, **wildcards)

    def path(self, template: str, model: str | None = None, **wildcards) -> Path:
        return self.root / self.relative(template, model, **wildcards)

    def exists(self, template: str, model: str | None = None, **wildcards) -> bool:
        return self.path(template, model, **wildcards).is_file()

    def tsv(self, template: str, model: str | None = None, dtype=None, keep_default_na: bool = True,
            **wildcards) -> pd.DataFrame | None:
        """A TSV of the contract (``None`` when missing or empty of columns)."""
        path = self.path(template, model, **wildcards)
        key = ("tsv", path, repr(dtype), keep_default_na)
        if key not in self._cache:
            try:
                self._cache[key] = with_integer_counts(
                    pd.read_csv(path, sep="\t", dtype=dtype, keep_default_na=keep_default_na))
            except (OSError, ValueError, pd.errors.EmptyDataError):
                self._cache[key] = None
        return self._cache[key]

    def json(self, template: str, model: str | None = None, **wildcards) -> dict | list | None:
        """A JSON file of the contract (``None`` when missing or unreadable)."""
        path = self.path(template, model, **wildcards)
        key = ("json", path)
        if key not in self._cache:
            try:
                with open(path, encoding="utf-8") as fh:
                    self._cache[key] = with_integer_counts(json.load(fh))
            except (OSError, ValueError):
                self._cache[key] = None
        return self._cache[key]

    def read_file(self, path: str | os.PathLike, dtype=None) -> pd.DataFrame | None:
        """A TSV outside the results folder (a study's own repeat table, ``input.repeats``)."""
        key = ("file", Path(path), repr(dtype))
        if key not in self._cache:
            p = Path(path)
            self._cache[key] = with_integer_counts(pd.read_csv(p, sep="\t", dtype=dtype)) if p.is_file() else None
        return self._cache[key]

    # ---------------------------------------------------------------------- shorthands
    @property
    def card(self) -> dict:
        """The primary model's card (``{}`` when missing)."""
        return self.json(Results.MODEL_CARD) or {}

    @property
    def survival(self) -> bool:
        return task_for(self.card).time_to_event

    def metrics(self, cohort: str, model: str | None = None) -> dict:
        return self.json(Results.METRICS, model, cohort=cohort) or {}

    def calibration(self, cohort: str, model: str | None = None) -> dict:
        return self.json(Results.CALIBRATION, model, cohort=cohort) or {}

    def predictions(self, cohort: str, model: str | None = None) -> pd.DataFrame | None:
        return self.tsv(Results.PREDICTIONS, model, dtype={"case_id": str}, cohort=cohort)

    def decision_curve(self, cohort: str, model: str | None = None) -> pd.DataFrame | None:
        return self.tsv(Results.DECISION_CURVE, model, cohort=cohort)

    def comparators(self, cohort: str) -> list[str]:
        """Comparator models with results on one cohort (folder names under ``comparators/``)."""
        folder = self.path(Results.PREDICTIONS, cohort=cohort).parent / "comparators"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    @property
    def reproducibility_threshold(self) -> float:
        return float((self.config.get("reproducibility") or {}).get("threshold", 0.75))
