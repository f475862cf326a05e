"""Internal–external cross-validation: each site held out in turn, the whole pipeline refitted.

With ``validation.internal_external: true`` every site (a cohort of ``cohorts.train`` +
``cohorts.external``; the study's ``cohorts.column``) is held out in turn; the primary model's
training procedure — the same :meth:`acceflow.study.task.Task.train` the frozen model comes from:
nested cross-validation, ComBat, feature selection, threshold — is refitted on the other sites
and the refitted model is validated on the held-out one (:func:`hold_out_site`, one Snakemake job
per site). The per-site discrimination (AUC with its DeLong SE, or Harrell's C with a bootstrap
SE) and calibration (intercept and slope) are then pooled by random-effects meta-analysis
(:func:`pool_sites`, :mod:`acceflow.metrics.meta_analysis`): how well, and how *consistently*, the
modelling procedure transports to a site it has not seen.

A held-out site needs at least ``validation.internal_external_min_events`` events and as many
non-events (default 5; survival: events); a smaller site, or one whose remaining sites cannot
train a model (too few events for ``model.min_events``), is skipped with the reason in its row
rather than stopping the others.

References
----------
Steyerberg EW, Harrell FE (2016). Prediction models need appropriate internal, internal-external,
and external validation. J Clin Epidemiol 69:245-247.
Debray TPA, Vergouwe Y, Koffijberg H, Nieboer D, Steyerberg EW, Moons KGM (2015). A new framework to
enhance the interpretation of external validation studies of clinical prediction models. J Clin
Epidemiol 68:279-289.
Royston P, Parmar MKB, Sylvester R (2004). Construction and validation of a prognostic model across
several studies, with an application in superficial bladder cancer. Stat Med 23:907-926.
"""

from __future__ import annotations

import copy
import logging
import math
from time import perf_counter

import pandas as pd
from scipy import stats

from acceflow.io.manifest import binary_outcome
from acceflow.study.settings import internal_external_sites
from acceflow.study.task import task_for
from acceflow.study.training import CohortError

log = logging.getLogger(__name__)

__all__ = ["SITE_COLUMNS", "internal_external_sites", "site_config", "hold_out_site", "pool_sites"]

#: columns of ``clinical/internal_external/site_metrics.tsv``, in order (binary; survival replaces the
#: AUC columns by ``c_index``, ``c_index_se``, ``c_index_ci_low``, ``c_index_ci_high``)
SITE_COLUMNS = ["site", "status", "reason", "training_sites", "n_train", "n_events_train", "n", "n_events",
                "auc", "auc_se", "auc_ci_low", "auc_ci_high",
                "calibration_intercept", "calibration_intercept_se", "calibration_intercept_ci_low",
                "calibration_intercept_ci_high", "calibration_slope", "calibration_slope_se",
                "calibration_slope_ci_low", "calibration_slope_ci_high", "calibration_note", "pooled", "seconds"]
_SURVIVAL = {"auc": "c_index", "auc_se": "c_index_se", "auc_ci_low": "c_index_ci_low", "auc_ci_high": "c_index_ci_high"}


def site_columns(task_name: str) -> list[str]:
    """The columns of ``site_metrics.tsv`` for an outcome type (``binary`` or ``survival``)."""
    return [_SURVIVAL.get(c, c) for c in SITE_COLUMNS] if task_for(task_name).time_to_event else list(SITE_COLUMNS)


def site_config(config: dict, site: str) -> dict:
    """A copy of ``config`` whose training cohorts are every site but ``site``, and whose only external
    cohort is ``site``.

    Raises
    ------
    ConfigError
        As :func:`acceflow.study.settings.internal_external_sites`.
    ValueError
        When ``site`` is not one of the study's sites.
    """
    sites = internal_external_sites(config)
    if site not in sites:
        raise ValueError(f"site {site!r} is not a cohort of cohorts.train + cohorts.external ({', '.join(sites)})")
    out = copy.deepcopy(config)
    out["cohorts"] = {**out["cohorts"], "train": [s for s in sites if s != site], "external": [site]}
    return out


def _wald_se(low, high, alpha):
    """The SE behind a symmetric Wald interval est ± z·SE."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return float("nan")
    return (high - low) / (2 * stats.norm.isf(alpha / 2))


def _site_counts(task, table: pd.DataFrame, config: dict, site: str) -> tuple[int, int]:
    """(events, non-events) of a site's rows with a known outcome."""
    rows = table[table["cohort"].astype(str) == str(site)]
    outcome = config["outcome"]
    rows = rows[task.outcome_known(rows, outcome).to_numpy()]
    if task.time_to_event:
        events = int(pd.to_numeric(rows[outcome["event"]], errors="coerce").fillna(0).astype(bool).sum())
    else:
        events = int(binary_outcome(rows[outcome["column"]], outcome["positive"]).sum())
    return events, len(rows) - events


def hold_out_site(table: pd.DataFrame, config: dict, stable: list[str] | None, site: str) -> tuple[dict, pd.DataFrame]:
    """Refit the primary model without ``site`` and validate it on ``site``.

    Parameters
    ----------
    table : pandas.DataFrame
        ``features/features.tsv`` (``case_id``, ``cohort``, outcome and feature columns).
    config : dict
        The validated configuration (``validation.internal_external`` need not be on).
    stable : list of str, optional
        Stable features from the reproducibility stage (as for the frozen model).
    site : str
        The held-out site (a cohort of ``cohorts.train`` + ``cohorts.external``).

    Returns
    -------
    row : dict
        One row of ``site_metrics.tsv`` (:func:`site_columns`): ``status`` ``validated`` or
        ``skipped`` with the ``reason``; the training sites and their cases / events; the site's
        ``n``, ``n_events``; binary: ``auc`` with its DeLong ``auc_se`` and CI (Sun & Xu 2014);
        survival: Harrell's ``c_index`` with its bootstrap SE and percentile CI (``n_bootstrap``
        replicates, at most 1000); ``calibration_intercept`` (binary) and ``calibration_slope``
        with Wald SE and CI (logistic recalibration; survival: Cox regression on the linear
        predictor); ``seconds`` of the refit.
    predictions : pandas.DataFrame
        The refitted model's predictions on the site (``predictions.tsv`` columns; no row when skipped).

    Raises
    ------
    ConfigError
        Fewer than two sites, or ComBat with ``model.harmonisation_unseen: error``.
    """
    task = task_for(config)
    cfg = site_config(config, site)
    v, alpha = config["validation"], config["validation"]["alpha"]
    minimum = int(v.get("internal_external_min_events", 5))
    row = {c: float("nan") for c in site_columns(task.name)}
    row.update(site=site, status="skipped", reason="", training_sites="+".join(cfg["cohorts"]["train"]),
               calibration_note="", pooled="no")
    events, non_events = _site_counts(task, table, config, site)
    row.update(n=events + non_events, n_events=events)
    empty = pd.DataFrame(columns=["case_id", *task.outcome_columns(config["outcome"]), task.score])
    if events < minimum or (not task.time_to_event and non_events < minimum):
        need = f"{minimum} events" + ("" if task.time_to_event else f" and {minimum} non-events")
        row["reason"] = (f"too few to hold out: {events} events and {non_events} non-events; a held-out site needs "
                         f"at least {need} (validation.internal_external_min_events)")
        log.warning("internal-external: site %s skipped: %s", site, row["reason"])
        return row, empty
    start = perf_counter()
    try:
        model, card, _, _ = task.train(table, cfg, stable)
        predictions = task.predict(model, card, table, site)
    except (CohortError, ValueError) as exc:  # this site's refit is impossible; the other sites go on
        row["reason"] = f"refit without {site} failed: {exc}"
        log.warning("internal-external: site %s skipped: %s", site, exc)
        return row, empty
    row.update(status="validated", n_train=card["n_train"], n_events_train=card.get("n_events_train"),
               seconds=round(perf_counter() - start, 2))
    if task.time_to_event:
        row.update(_survival_site_metrics(predictions, card, alpha, min(int(v["n_bootstrap"]), 1000), config["seed"]))
    else:
        row.update(_binary_site_metrics(predictions, alpha))
    row["n"], row["n_events"] = len(predictions), events
    log.info("internal-external: site %s validated (trained on %s, %s s): %s", site, row["training_sites"],
             row["seconds"], {k: row[k] for k in ("auc", "c_index", "calibration_slope") if k in row})
    return row, predictions


def _binary_site_metrics(predictions: pd.DataFrame, alpha: float) -> dict:
    from acceflow.metrics.calibration import calibration_intercept_slope
    from acceflow.metrics.discrimination import cohort_metrics
    y, p = predictions["outcome"].to_numpy(dtype=float), predictions["probability"].to_numpy(dtype=float)
    m = cohort_metrics(y, p, alpha=alpha)
    out = {k: m[k] for k in ("auc", "auc_se", "auc_ci_low", "auc_ci_high")}
    cal = calibration_intercept_slope(y, p, alpha=alpha)
    for k in ("calibration_intercept", "calibration_slope"):
        out.update({k: cal[k], f"{k}_ci_low": cal[f"{k}_ci_low"], f"{k}_ci_high": cal[f"{k}_ci_high"],
                    f"{k}_se": _wald_se(cal[f"{k}_ci_low"], cal[f"{k}_ci_high"], alpha)})
    out["calibration_note"] = cal["calibration_note"]
    return out


def _survival_site_metrics(predictions: pd.DataFrame, card, alpha: float, n_boot: int, seed: int) -> dict:
    from acceflow.metrics.survival import c_index_ci
    from acceflow.metrics.survival_utility import calibration_at
    t, e, r = (predictions[c].to_numpy(dtype=float) for c in ("time", "event", "risk"))
    c, low, high, se = c_index_ci(t, e, r, "harrell", n_boot=n_boot, alpha=alpha, seed=seed, return_se=True)
    out = {"c_index": c, "c_index_se": se, "c_index_ci_low": low, "c_index_ci_high": high}
    try:  # the slope of a Cox regression on the linear predictor (95% CI, lifelines)
        cal = calibration_at(t, e, predictions["risk_at_horizon"].to_numpy(dtype=float), r, card["horizon_days"])
        out.update(calibration_slope=cal["calibration_slope"], calibration_slope_ci_low=cal["calibration_slope_ci_low"],
                   calibration_slope_ci_high=cal["calibration_slope_ci_high"],
                   calibration_slope_se=_wald_se(cal["calibration_slope_ci_low"], cal["calibration_slope_ci_high"], 0.05))
    except Exception as exc:  # noqa: BLE001 - the C-index stands without the slope
        out["calibration_note"] = f"calibration slope not estimable: {exc}"
    return out


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def pool_sites(rows: list[dict], task_name: str = "binary", alpha: float = 0.05) -> tuple[pd.DataFrame, dict]:
    """``site_metrics.tsv`` and ``pooled.json`` from the per-site rows of :func:`hold_out_site`.

    Discrimination (AUC, or Harrell's C) is pooled on the logit scale with the delta-method
    variance and back-transformed (:func:`acceflow.metrics.meta_analysis.pool_auc`); the calibration
    slope and intercept untransformed (:func:`~acceflow.metrics.meta_analysis.random_effects`).
    A validated site enters a pooling when its estimate and SE are finite and positive (an AUC of
    exactly 0 or 1 has no logit); the ``pooled`` column says which poolings it entered or why not.

    Returns
    -------
    sites : pandas.DataFrame
        One row per site, :func:`site_columns`.
    pooled : dict
        Flat: ``method`` ("DerSimonian-Laird"), ``alpha``, ``discrimination`` (``auc`` or ``c_index``),
        ``sites``, ``sites_validated``, ``sites_skipped`` ({site: reason}); per measure ``m``
        (``auc`` / ``c_index``, ``calibration_slope``, ``calibration_intercept``): ``pooled_{m}``,
        ``pooled_{m}_ci_low``, ``pooled_{m}_ci_high``, ``pooled_{m}_pi_low``, ``pooled_{m}_pi_high``
        (95% prediction interval for a new site, Higgins et al. 2009; null when k < 3), ``{m}_pi_note``,
        ``{m}_tau2``, ``{m}_i2`` (fraction), ``{m}_q``, ``{m}_q_p_value``, ``{m}_k``, ``{m}_sites``,
        ``{m}_scale`` (``logit`` or ``identity``; τ² and Q are on that scale), ``{m}_note`` (why a
        measure was not pooled); and the discrimination measure's ``tau2``, ``i2``, ``q``, ``k``
        unprefixed.
    """
    from acceflow.metrics.meta_analysis import METHOD, pool_auc, random_effects
    disc = "c_index" if task_for(task_name).time_to_event else "auc"
    columns = site_columns(task_name)
    sites = pd.DataFrame(rows).reindex(columns=columns)
    validated = sites["status"] == "validated"
    pooled = {"method": METHOD, "alpha": alpha, "discrimination": disc, "sites": sites["site"].tolist(),
              "sites_validated": sites.loc[validated, "site"].tolist(),
              "sites_skipped": dict(zip(sites.loc[~validated, "site"], sites.loc[~validated, "reason"]))}
    entered = {s: [] for s in sites["site"]}
    for m, scale in ((disc, "logit"), ("calibration_slope", "identity"), ("calibration_intercept", "identity")):
        if m not in sites:
            continue
        est, se = sites[m], sites[f"{m}_se"]
        ok = validated & est.map(_finite) & se.map(_finite) & (pd.to_numeric(se, errors="coerce") > 0)
        if scale == "logit":
            ok &= (est > 0) & (est < 1)
        use = sites[ok]
        keys = dict.fromkeys([f"pooled_{m}", f"pooled_{m}_ci_low", f"pooled_{m}_ci_high", f"pooled_{m}_pi_low",
                              f"pooled_{m}_pi_high", f"{m}_tau2", f"{m}_i2", f"{m}_q", f"{m}_q_p_value"], float("nan"))
        pooled.update(keys, **{f"{m}_k": int(len(use)), f"{m}_sites": use["site"].tolist(), f"{m}_scale": scale,
                               f"{m}_pi_note": "", f"{m}_note": ""})
        if use.empty:
            pooled[f"{m}_note"] = "no validated site with an estimate and a standard error"
            continue
        for s in use["site"]:
            entered[s].append(m)
        if scale == "logit":
            r = pool_auc(use[m].to_numpy(float), use[f"{m}_se"].to_numpy(float), alpha=alpha)
            values = (r["pooled"], r["pooled_ci_low"], r["pooled_ci_high"], r["pooled_pi_low"], r["pooled_pi_high"])
        else:
            r = random_effects(use[m].to_numpy(float), use[f"{m}_se"].to_numpy(float) ** 2, alpha=alpha)
            values = (r["estimate"], r["ci_low"], r["ci_high"], r["pi_low"], r["pi_high"])
        pooled.update(dict(zip(list(keys)[:5], values)))
        pooled.update({f"{m}_tau2": r["tau2"], f"{m}_i2": r["i2"], f"{m}_q": r["q"], f"{m}_q_p_value": r["q_p_value"],
                       f"{m}_pi_note": r["pi_note"]})
        if len(use) == 1:
            pooled[f"{m}_note"] = "one validated site: its own estimate, nothing pooled"
    for k in ("tau2", "i2", "q", "k"):
        pooled[k] = pooled.get(f"{disc}_{k}")
    sites["pooled"] = [", ".join(entered[s]) if entered[s] else
                       ("no: skipped" if st != "validated" else "no: no finite estimate with a standard error")
                       for s, st in zip(sites["site"], sites["status"])]
    return sites, pooled
