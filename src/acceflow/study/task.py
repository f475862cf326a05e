"""The outcome type, switched in one place: a :class:`Task` per ``outcome.type``.

A task trains a frozen model on the training cohorts, applies it to a cohort, and computes the
cohort's discrimination, calibration and decision curve, delegating to the study trainers
(:mod:`acceflow.study.training`, :mod:`acceflow.study.survival_training`) and the statistics of
:mod:`acceflow.metrics`. Rule scripts call ``task_for(card_or_config)`` and the task's methods;
they do not branch on the outcome type.

>>> task_for({"outcome": {"type": "survival"}}).name
'survival'
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
import pandas as pd

from acceflow.io.manifest import ManifestError, binary_outcome

# the metrics and training modules (statsmodels, scikit-learn, lifelines: seconds of imports) are
# imported in the methods that use them, so that a job needing only a Task's columns starts fast


class Task(ABC):
    """What differs between outcome types. Subclasses: :class:`BinaryTask`, :class:`SurvivalTask`."""

    #: ``outcome.type`` this task handles
    name: str = ""
    #: the prediction column of ``predictions.tsv`` (``probability`` or ``risk``)
    score: str = ""
    #: survival (time, event) rather than one binary outcome column
    time_to_event: bool = False
    #: whether the calibration has a smoothed curve with a bootstrap band (else grouped, at the horizon)
    smooth_calibration: bool = True
    #: whether optimism correction, coefficient CIs and permutation importance apply
    explanations: bool = True
    #: whether the frozen model's recalibration on external cohorts applies
    recalibration: bool = True

    @abstractmethod
    def outcome_columns(self, outcome: Mapping) -> list[str]:
        """The table columns that hold this outcome."""

    @abstractmethod
    def outcome_known(self, table: pd.DataFrame, outcome: Mapping) -> pd.Series:
        """Per row of ``table``: whether its outcome is known (usable)."""

    @abstractmethod
    def train(self, table: pd.DataFrame, config: dict, stable: list[str] | None = None, kind: str | None = None):
        """Train the frozen model: ``(model, card, predictions, folds)``; the card is a ModelCard."""

    @abstractmethod
    def predict(self, model, card, table: pd.DataFrame, cohort: str) -> pd.DataFrame:
        """Apply the frozen model to one cohort (the ``predictions.tsv`` table)."""

    @abstractmethod
    def discrimination(self, predictions: pd.DataFrame, card, alpha: float = 0.05, n_bootstrap: int = 2000,
                       seed: int = 0) -> dict:
        """Discrimination of one cohort's predictions (the ``metrics.json`` entries)."""

    @abstractmethod
    def discrimination_curve(self, predictions: pd.DataFrame, card) -> pd.DataFrame:
        """The curve the dossier draws for discrimination (``discrimination_curve.tsv``): the
        empirical ROC curve (binary) or the Kaplan–Meier curves of the risk groups (survival)."""

    @abstractmethod
    def calibration(self, predictions: pd.DataFrame, card, bins: int = 10, n_boot: int = 200,
                    seed: int = 0) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
        """``(summary, bins, curve)``: ``calibration.json``, ``calibration_bins.tsv``, ``calibration_curve.tsv``."""

    @abstractmethod
    def decision_curve(self, predictions: pd.DataFrame, card, thresholds, n_boot: int = 200,
                       seed: int = 0) -> pd.DataFrame:
        """Net benefit of the model, treat-all and treat-none at each threshold (``decision_curve.tsv``)."""

    def metrics(self, predictions: pd.DataFrame, card, cohort: str, alpha: float = 0.05, n_bootstrap: int = 2000,
                seed: int = 0) -> dict:
        """``metrics.json`` of one cohort: :meth:`discrimination` plus the model, cohort and validation labels."""
        out = self.discrimination(predictions, card, alpha=alpha, n_bootstrap=n_bootstrap, seed=seed)
        out["model"] = card["model"]
        out["cohort"] = cohort
        out["validation"] = ("internal (out-of-fold): " + card["internal_validation"] if cohort == "train"
                             else "external (frozen model)")
        if cohort == "train":
            out[self.apparent_key] = card.get(self.apparent_key)
        return out

    apparent_key: str = ""

    @staticmethod
    def thresholds(start: float, stop: float, step: float) -> np.ndarray:
        """The decision-curve thresholds of ``utility.thresholds`` ``[start, stop, step]``, stop included."""
        return np.round(np.arange(start, stop + step / 2, step), 10)


class BinaryTask(Task):
    """``outcome.type: binary``: probabilities; AUC, calibration curve, net benefit."""

    name, score, apparent_key = "binary", "probability", "apparent_auc"
    smooth_calibration = explanations = recalibration = True

    def outcome_columns(self, outcome):
        return [outcome["column"]]

    def outcome_known(self, table, outcome):
        if outcome["column"] not in table:
            raise ManifestError(f"outcome column '{outcome['column']}' is not in the table; set outcome.column")
        return binary_outcome(table[outcome["column"]], outcome["positive"]).notna()

    def train(self, table, config, stable=None, kind=None):
        from acceflow.study.training import train
        return train(table, config, stable, kind=kind)

    def predict(self, model, card, table, cohort):
        from acceflow.study.training import predict_cohort
        return predict_cohort(model, card, table, cohort)

    def discrimination(self, predictions, card, alpha=0.05, n_bootstrap=2000, seed=0):
        from acceflow.metrics.discrimination import bootstrap_auc_ci, cohort_metrics
        from acceflow.metrics.validation import threshold_metrics
        y, prob = predictions["outcome"].to_numpy(), predictions["probability"].to_numpy()
        metrics = cohort_metrics(y, prob, alpha=alpha)
        _, low, high = bootstrap_auc_ci(y, prob, n_boot=n_bootstrap, alpha=alpha, seed=seed, stratified=True)
        metrics.update(auc_bootstrap_ci_low=low, auc_bootstrap_ci_high=high,
                       auc_bootstrap_method=f"stratified percentile bootstrap, {n_bootstrap} replicates")
        at = threshold_metrics(y, prob, card["threshold"]["value"], alpha=alpha)
        metrics.update({f"at_threshold_{k}": v for k, v in at.items()})
        metrics["threshold_method"] = card["threshold"]["method"]
        return metrics

    def discrimination_curve(self, predictions, card):
        """Columns ``fpr``, ``tpr``, ``threshold`` (:func:`acceflow.metrics.discrimination.roc_curve_points`);
        no row when the cohort has a single outcome class (no ROC curve exists)."""
        from acceflow.metrics.discrimination import roc_curve_points
        d = predictions[["outcome", "probability"]].apply(pd.to_numeric, errors="coerce").dropna()
        if d["outcome"].nunique() < 2:
            return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
        return roc_curve_points(d["outcome"].to_numpy(dtype=int), d["probability"].to_numpy(dtype=float))

    def calibration(self, predictions, card, bins=10, n_boot=200, seed=0):
        from acceflow.metrics.calibration import (binned_calibration, calibration_curve_band, calibration_level,
                                                  calibration_summary)
        y, prob = predictions["outcome"].to_numpy(), predictions["probability"].to_numpy()
        summary = calibration_summary(y, prob)
        band = calibration_curve_band(y, prob, n_boot=n_boot, seed=seed)
        summary["calibration_level"], summary["calibration_level_evidence"] = calibration_level(summary, band)
        return summary, binned_calibration(y, prob, n_bins=bins), band

    def decision_curve(self, predictions, card, thresholds, n_boot=200, seed=0):
        from acceflow.metrics.decision_curve import decision_curve, decision_curve_ci
        y, prob = predictions["outcome"].to_numpy(), predictions["probability"].to_numpy()
        curve = decision_curve(y, prob, thresholds)
        band = decision_curve_ci(y, prob, thresholds, n_boot=n_boot, seed=seed)
        return curve.merge(band, on="threshold", validate="one_to_one")


class SurvivalTask(Task):
    """``outcome.type: survival``: penalised Cox risks; C-index, calibration and net benefit at the horizon."""

    name, score, apparent_key = "survival", "risk", "apparent_c_index"
    smooth_calibration = explanations = recalibration = False
    time_to_event = True

    def outcome_columns(self, outcome):
        return [outcome["time"], outcome["event"]]

    def outcome_known(self, table, outcome):
        t = pd.to_numeric(table[outcome["time"]], errors="coerce")
        return (t > 0) & table[outcome["event"]].notna()

    def train(self, table, config, stable=None, kind=None):
        from acceflow.study.survival_training import train_survival
        from acceflow.study.training import model_features
        features, note = model_features(table, config, stable)
        return train_survival(table, config, features, note)

    def predict(self, model, card, table, cohort):
        from acceflow.study.survival_training import predict_survival_cohort
        return predict_survival_cohort(model, card, table, cohort)

    def discrimination(self, predictions, card, alpha=0.05, n_bootstrap=2000, seed=0):
        from acceflow.study.survival_training import survival_cohort_metrics
        return survival_cohort_metrics(predictions, card, alpha=alpha, n_boot=min(n_bootstrap, 1000), seed=seed)

    def discrimination_curve(self, predictions, card, alpha=0.05):
        """Kaplan–Meier curves (:func:`acceflow.metrics.survival.km_by_group`) of the risk groups cut at
        the training cohort's median risk (:func:`acceflow.metrics.survival.risk_groups`), long format:
        ``group`` (0 = low, 1 = high risk), ``n``, ``time`` (days), ``survival``, ``ci_lower``, ``ci_upper``
        (95% exponential Greenwood), and lifelines' event table at each time: ``at_risk``, ``events``,
        ``censored`` (the dossier's number-at-risk table under the Kaplan–Meier curves)."""
        from acceflow.metrics.survival import km_by_group, risk_groups
        time, event = predictions["time"].to_numpy(dtype=float), predictions["event"].to_numpy(dtype=int)
        groups = risk_groups(np.asarray(card["risk_train"], dtype=float), predictions["risk"].to_numpy(dtype=float),
                             quantiles=(0.5,))
        columns = ["group", "n", "time", "survival", "ci_lower", "ci_upper", "at_risk", "events", "censored"]
        parts = [info["table"][columns[2:]].assign(group=g, n=info["n"])
                 for g, info in km_by_group(time, event, groups, alpha=alpha).items()]
        return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)

    def calibration(self, predictions, card, bins=10, n_boot=200, seed=0):
        from acceflow.metrics.survival_utility import calibration_at, grouped_calibration_at
        t = card["horizon_days"]
        args = (predictions["time"].to_numpy(), predictions["event"].to_numpy(),
                predictions["risk_at_horizon"].to_numpy())
        summary = calibration_at(*args, predictions["risk"].to_numpy(), t)
        grouped = grouped_calibration_at(*args, t, n_groups=min(bins, 5))
        # the smoothed curve is summarised by ICI/E50/E90 at the horizon; no band
        curve = pd.DataFrame(columns=["predicted", "observed", "observed_ci_low", "observed_ci_high"])
        return summary, grouped, curve

    def decision_curve(self, predictions, card, thresholds, n_boot=200, seed=0):
        from acceflow.metrics.survival_utility import survival_decision_curve
        return survival_decision_curve(predictions["time"], predictions["event"], predictions["risk_at_horizon"],
                                       card["horizon_days"], thresholds)


TASKS = {task.name: task for task in (BinaryTask(), SurvivalTask())}


def task_for(source) -> Task:
    """The task of a config, a model card (either with an ``outcome`` section), an outcome section, or a type name.

    Raises
    ------
    ValueError
        When the outcome type is unknown.
    """
    if isinstance(source, str):
        name = source
    else:
        outcome = source.get("outcome", source) if isinstance(source, Mapping) else source
        name = (outcome or {}).get("type", "binary") if isinstance(outcome, Mapping) else outcome
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"outcome.type {name!r} unknown; use one of {sorted(TASKS)}") from None
