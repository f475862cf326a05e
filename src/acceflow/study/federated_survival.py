"""Federated Cox regression as a study: the survival steps of the workflow's federated rules.

``outcome.type: survival`` with ``federated`` as the primary model or a comparator runs the
site-stratified penalised Cox learner (:mod:`acceflow.models.federated_cox`) through the same
unrolled rules as the logistic learner (:mod:`acceflow.study.federated` dispatches here): a site's
table carries ``case_id, time, event`` and the features; its jobs read only that table and the
server's files.

What a site shares, and when
----------------------------
* before training: counts, sums, sums of squares, column minima and maxima and its case / event
  counts (:func:`acceflow.models.federated_cox.survival_site_moments`; the pooled standardisation
  and the common step size);
* each round: its coefficients after the local step and its row count (Flower ``NumPyClient.fit``);
* once, after the last round (rule ``federated_site_baseline``): its **event-time table** (distinct
  follow-up times, events, risk-set sums; the pooled Breslow baseline, as WebDISCO shares every
  iteration) and its **training risk scores** (the final model's linear predictor of each of its
  cases, sorted, without case id, time or event).

Privacy trade-off of the risk scores: they are one number per patient (a known linear projection
of its features), though unlinked from any identifier or outcome. In return the model card's
training facts are exact and mean what the central Cox model's mean: ``risk_train`` (the
Kaplan–Meier risk groups are cut at its median), ``risk_sd_train`` (hazard ratio per SD). Sharing
only quantiles (e.g. deciles) would disclose less but make the median cut and the SD approximate;
a consortium that cannot share the scores should not use the KM risk groups of this model.

The evaluation (:func:`compare_federated_cox`, the apparent predictions) reads the pooled table,
as an evaluation on simulated sites can; the federated model never does.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter

from acceflow.metrics.survival import c_index_ci, c_index_difference, check_survival
from acceflow.models.federated import (OBJECTIVE_GAP_TOLERANCE, FederationError, fit_config, make_strategy,
                                       pooled_standardisation, relative_gap, standardise)
from acceflow.models.federated_cox import (CoxSiteClient, FederatedCox, cox_lipschitz, pooled_breslow,
                                           site_event_table, stratified_cox_objective, survival_site_moments)
from acceflow.study.card import ModelCard
from acceflow.study.settings import FEDERATED_KIND, model_names, section_settings
from acceflow.study.survival_training import default_horizons

#: the outcome columns of a survival site table (the rest are the model's inputs)
SURVIVAL_COLUMNS = ("case_id", "time", "event")
LEARNER = "cox"


def cox_settings(config: dict) -> dict:
    """The ``federated`` section with defaults, plus the Cox penalty: ``penalizer``
    (``federated.cox_penalizer``) and ``l1_ratio`` (1 for ``federated.penalty: l1``, 0 for l2)."""
    s = section_settings("federated", config.get("federated"))
    return {**s, "penalizer": float(s["cox_penalizer"]), "l1_ratio": 1.0 if s["penalty"] == "l1" else 0.0}


def is_survival_table(site_table: pd.DataFrame) -> bool:
    """Whether a site table is a survival one (``time`` and ``event`` columns, no ``outcome``)."""
    return "time" in site_table.columns and "event" in site_table.columns and "outcome" not in site_table.columns


def split_survival_sites(table: pd.DataFrame, config: dict, features: list[str]) -> dict[str, pd.DataFrame]:
    """One table per training site: ``case_id``, ``time`` (days), ``event`` (0/1), the features.

    Raises
    ------
    ValueError
        When a training cohort has no row, or a site's times / events are invalid (the site named).
    """
    o = config["outcome"]
    sites = {}
    for site in config["cohorts"]["train"]:
        rows = table[table["cohort"] == site]
        if rows.empty:
            raise ValueError(f"site {site}: no case in the feature table (cohorts.train names it; see ingest/qc.tsv)")
        try:
            time, event = check_survival(rows[o["time"]], rows[o["event"]])
        except ValueError as err:
            raise ValueError(f"site {site}: {err}") from None
        out = pd.DataFrame({"case_id": rows["case_id"].to_numpy(), "time": time, "event": event.astype(int)})
        values = rows[features].apply(pd.to_numeric, errors="coerce").reset_index(drop=True)
        sites[site] = pd.concat([out, values], axis=1)
    return sites


def site_arrays(site_table: pd.DataFrame):
    """``(features, X (n, p), time (n,), event (n,))`` of a survival site table."""
    features = [c for c in site_table.columns if c not in SURVIVAL_COLUMNS]
    return (features, site_table[features].to_numpy(dtype=float), site_table["time"].to_numpy(dtype=float),
            site_table["event"].to_numpy(dtype=float))


def moments_step(site_table: pd.DataFrame, site: str) -> dict:
    """A site's shared summary before training (:func:`survival_site_moments`) with its feature names.

    Raises
    ------
    acceflow.models.federated.FederationError
        When the site has no event, or invalid times / events (named).
    """
    features, X, time, event = site_arrays(site_table)
    return {**survival_site_moments(X, time, event, site), "features": features, "learner": LEARNER}


def standardisation(moments: list[dict], features: list[str]) -> dict:
    """Pooled mean / SD and the common Lipschitz bound of the Cox sites (:func:`cox_lipschitz`)."""
    std = {**pooled_standardisation(moments, features), "features": features, "learner": LEARNER}
    std["lipschitz"] = cox_lipschitz(moments, std)
    return std


def site_round(site_table: pd.DataFrame, site: str, std: dict, previous: dict, config: dict) -> dict:
    """One site's local step of one round (:class:`CoxSiteClient`'s ``fit``), as JSON (no intercept)."""
    s = cox_settings(config)
    features, X, time, event = site_arrays(site_table)
    if features != std["features"]:
        raise ValueError(f"site {site}: its table's columns differ from the standardisation's features")
    client = CoxSiteClient(standardise(X, std["mean"], std["scale"]), time, event, site, s["penalizer"],
                           s["l1_ratio"], s["local_epochs"], std["lipschitz"])
    params, n, metrics = client.fit([np.asarray(previous["coef"], dtype=float)],
                                    fit_config(make_strategy(s["strategy"], s["proximal_mu"]), s["local_epochs"]))
    return {"site": site, "round": int(previous["round"]) + 1, "n": int(n), "loss": metrics["loss"],
            "coef": params[0].tolist()}


def site_baseline(site_table: pd.DataFrame, site: str, std: dict, last: dict) -> dict:
    """What a site shares once after the last round: its event-time table and its sorted risk scores.

    Returns
    -------
    dict
        ``site``, ``round`` (the global model's), ``n``, ``n_events``, ``event_table`` (``time``,
        ``events``, ``s0`` lists: :func:`site_event_table`), ``risk`` (the linear predictor of each
        case, sorted ascending; no case id, time or event).
    """
    features, X, time, event = site_arrays(site_table)
    if features != std["features"]:
        raise ValueError(f"site {site}: its table's columns differ from the standardisation's features")
    beta = np.asarray(last["coef"], dtype=float)
    Z = standardise(X, std["mean"], std["scale"])
    if not np.all(np.isfinite(beta)):
        raise FederationError(f"round {last['round']}: the global model holds NaN; site {site} cannot share its "
                              f"baseline (re-run the rounds)")
    events = site_event_table(Z, time, event, beta)
    return {"site": site, "round": int(last["round"]), "n": int(len(time)), "n_events": int(event.sum()),
            "event_table": {c: events[c].astype(float).tolist() for c in ("time", "events", "s0")},
            "risk": np.sort(Z @ beta).tolist()}


def final_cox_model(std: dict, globals_: list[dict], baselines: list[dict], config: dict):
    """The frozen federated Cox model, its card and ``rounds.tsv`` from the server's files.

    Parameters
    ----------
    std : dict
        :func:`standardisation`.
    globals_ : list of dict
        The global model of every round 1..R, in order.
    baselines : list of dict
        Every site's :func:`site_baseline` at round R.

    Returns
    -------
    model : FederatedCox
    card : ModelCard
        Survival card fields as the central Cox model writes them: ``horizons_days`` (``outcome.horizons``,
        or the quartiles of the pooled event times read from the event tables), ``horizon_days``,
        ``risk_train`` / ``risk_sd_train`` (the sites' shared risk scores, pooled), ``coefficients``.
    rounds : pandas.DataFrame
    """
    from acceflow.study.federated import ROUND_COLUMNS
    s = cox_settings(config)
    last = globals_[-1]
    for b in baselines:
        if int(b["round"]) != int(last["round"]):
            raise ValueError(f"site {b['site']}: its baseline is of round {b['round']}, the last global model of "
                             f"round {last['round']} (re-run rule federated_site_baseline)")
    tables = [pd.DataFrame(b["event_table"]) for b in baselines]
    times, cumhaz = pooled_breslow(tables)
    max_time = float(max(tb["time"].max() for tb in tables))
    settings = {k: s[k] for k in ("rounds", "local_epochs", "strategy", "proximal_mu")}
    model = FederatedCox.from_parameters(std["features"], std, last["coef"], (times, cumhaz), max_time,
                                         penalizer=s["penalizer"], l1_ratio=s["l1_ratio"], **settings)
    rounds = pd.DataFrame([row for g in globals_ for row in g["sites"]], columns=ROUND_COLUMNS)
    event_times = np.concatenate([np.repeat(tb["time"].to_numpy(), tb["events"].to_numpy().astype(int))
                                  for tb in tables])
    o = config["outcome"]
    horizons = [float(h) for h in (o.get("horizons") or default_horizons(event_times, np.ones(len(event_times))))]
    horizon = float((config.get("utility") or {}).get("horizon") or horizons[len(horizons) // 2])
    risk = np.concatenate([np.asarray(b["risk"], dtype=float) for b in baselines])
    coefs = dict(zip(std["features"], map(float, last["coef"])))
    final = rounds[rounds["round"] == rounds["round"].max()]
    primary, _ = model_names(config)
    card = ModelCard.from_dict({
        "model": FEDERATED_KIND, "role": "primary" if primary == FEDERATED_KIND else "comparator",
        "outcome": dict(o), "features": list(std["features"]),
        "learner": f"penalised_cox (federated, site-stratified, {s['strategy']})",
        "hyperparameters": {**{k: v for k, v in s.items() if k != "deep"}, "ties": "breslow"},
        "training_cohorts": list(config["cohorts"]["train"]), "external_cohorts": list(config["cohorts"]["external"]),
        "seed": int(config["seed"]), "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": ("none: federated training is not cross-validated; the training-cohort figures are "
                                "apparent (the final model on the rows it was trained on)"),
        "n_train": int(std["n"]), "n_events_train": int(std["n_events"]), "threshold": None,
        "sites": std["sites"], "rounds": len(globals_), "coefficients": coefs, "intercept": None,
        "n_nonzero": int(sum(abs(c) > 1e-8 for c in coefs.values())),
        "coefficient_scale": "log hazard ratio per pooled standard deviation of the training sites",
        "standardisation": "pooled mean and SD from the sites' counts, sums and sums of squares",
        "likelihood": ("site-stratified Cox partial likelihood (each site its own baseline hazard and risk sets, "
                       "shared log hazard ratios; Breslow ties)"),
        "baseline": ("pooled Breslow estimator from the sites' event-time tables (distinct follow-up times, "
                     "events, risk-set sums), shared once after the last round"),
        "horizons_days": horizons, "horizon_days": horizon,
        "risk_sd_train": float(np.std(risk, ddof=1)), "risk_train": [float(v) for v in risk],
        "risk_train_shared": ("each site's risk scores (the final model's linear predictor of its cases), sorted, "
                              "without case id, time or event, shared once after the last round: one number per "
                              "patient leaves the site, in return the median cut of the risk groups and the SD of "
                              "the hazard ratio per SD are exact"),
        "final_round_loss": float(np.average(final["loss"], weights=final["n"])),
    })
    return model, card, rounds


def _cox_arrays(table: pd.DataFrame, config: dict, features: list[str], cohorts: list[str]):
    o = config["outcome"]
    rows = table[table["cohort"].isin(cohorts)].reset_index(drop=True)
    time, event = check_survival(rows[o["time"]], rows[o["event"]])
    return rows, rows[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float), time, event


def reference_cox(Z, time, event, penalizer: float, l1_ratio: float, strata=None) -> np.ndarray:
    """A central penalised Cox fit (lifelines) with the federated learner's penalty, on standardised ``Z``.

    lifelines penalises each coefficient times its own (ddof 1) SD of the column; the penalty is
    divided by that SD squared per column so that the objective is the federated one
    (``penalizer * (l1_ratio |b|_1 + (1 - l1_ratio)/2 |b|^2)`` on ``Z``), as
    ``tests/test_federated_cox.py`` maps them (exact for ridge; lifelines smooths |b| for l1).
    Missing values are at the mean (0 after standardisation), as the federated model predicts.
    ``strata``: the site of each row (site-stratified partial likelihood), or None. Newton's method
    is run to a step below 1e-10 (a reference, not a screening fit).

    Returns
    -------
    array (p,)
        Log hazard ratios per SD of ``Z``'s standardisation.
    """
    Z = np.where(np.isnan(Z), 0.0, Z)
    cols = [f"x{j}" for j in range(Z.shape[1])]
    d = pd.DataFrame(Z, columns=cols).assign(T=time, E=event)
    sd = d[cols].std().to_numpy()
    sd = np.where(sd > 0, sd, 1.0)
    kw = {}
    if strata is not None:
        d["site"] = np.asarray(strata)
        kw["strata"] = ["site"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' convergence chatter on small sites
        fit = CoxPHFitter(penalizer=penalizer / sd ** 2, l1_ratio=l1_ratio, **kw).fit(
            d, "T", "E", fit_options={"precision": 1e-10, "r_precision": 1e-14, "max_steps": 500})
    return fit.params_.reindex(cols).to_numpy(dtype=float)


def compare_federated_cox(table: pd.DataFrame, model, card: dict, config: dict, alpha: float = 0.05,
                          n_boot: int = 1000, seed: int = 0):
    """Federated vs central (pooled) vs local-only Cox models on every external cohort, by Harrell's C.

    Central: the **site-stratified** penalised Cox model on the pooled training rows (lifelines'
    ``CoxPHFitter(strata=["site"])``, :func:`reference_cox`), with the federated learner's penalty
    on the same pooled standardisation: the federated learner's own objective fitted centrally, so
    a difference is the federation's (optimisation) error, not a change of model. Local-only: the
    same penalised Cox model on one site's rows alone, standardised by that site. Each external
    cohort: Harrell's C of each model with its bootstrap CI, and the paired bootstrap of the
    difference against the federated model (:func:`acceflow.metrics.survival.c_index_difference`,
    the cases resampled once for both models).

    Returns
    -------
    comparison : pandas.DataFrame
        ``cohort``, ``model`` (federated, central, local_<site>), ``reference`` (federated), ``n``,
        ``n_events``, ``c_index``, ``c_index_ci_low``, ``c_index_ci_high`` (percentile bootstrap),
        ``c_difference`` (model − federated), ``c_difference_ci_low``, ``c_difference_ci_high``,
        ``p_value`` (paired bootstrap; empty on the federated row), ``n_boot``.
    coefficients : pandas.DataFrame
        ``feature``, ``federated``, ``central``, ``local_<site>`` ..., ``difference`` (federated − central).
    summary : dict
        ``max_abs_coefficient_difference``, its ``feature``, settings, ``sites``, ``central``,
        ``comparison_method``.
    """
    s = cox_settings(config)
    features = list(card["features"])
    train = list(config["cohorts"]["train"])
    rows, X, time, event = _cox_arrays(table, config, features, train)
    mean, scale = model.mean_, model.scale_
    betas = {"central": reference_cox(standardise(X, mean, scale), time, event, s["penalizer"], s["l1_ratio"],
                                      strata=rows["cohort"].astype(str).to_numpy())}
    local_std = {}
    for site in train:
        mask = (rows["cohort"] == site).to_numpy()
        Xs = X[mask]
        m = np.nanmean(Xs, axis=0)
        sd = np.nanstd(np.where(np.isnan(Xs), m, Xs), axis=0)
        local_std[site] = (np.where(np.isnan(m), 0.0, m), np.where(sd > 0, sd, 1.0))
        betas[f"local_{site}"] = reference_cox(standardise(Xs, *local_std[site]), time[mask], event[mask],
                                               s["penalizer"], s["l1_ratio"])
    Z = standardise(X, mean, scale)
    sites = rows["cohort"].astype(str).to_numpy()
    J = lambda beta: stratified_cox_objective(Z, time, event, sites, beta, s["penalizer"], s["l1_ratio"])  # noqa: E731
    objective = {FEDERATED_KIND: J(model.coef_), "central": J(betas["central"])}
    gap = relative_gap(objective[FEDERATED_KIND], objective["central"])
    coefficients = pd.DataFrame({"feature": features, "federated": model.coef_, **betas})
    coefficients["difference"] = coefficients["federated"] - coefficients["central"]
    worst = int(np.argmax(np.abs(coefficients["difference"].to_numpy())))
    out = []
    for cohort in config["cohorts"]["external"]:
        _, Xe, te, ee = _cox_arrays(table, config, features, [cohort])
        risks = {FEDERATED_KIND: model.predict(Xe), "central": standardise(Xe, mean, scale) @ betas["central"],
                 **{f"local_{site}": standardise(Xe, *local_std[site]) @ betas[f"local_{site}"] for site in train}}
        base = {"cohort": cohort, "reference": FEDERATED_KIND, "n": int(len(te)), "n_events": int(ee.sum())}
        for name, risk in risks.items():
            c, lo, hi = c_index_ci(te, ee, risk, "harrell", n_boot=n_boot, alpha=alpha, seed=seed)
            row = {**base, "model": name, "c_index": c, "c_index_ci_low": lo, "c_index_ci_high": hi}
            if name != FEDERATED_KIND:
                d = c_index_difference(te, ee, risk, risks[FEDERATED_KIND], n_boot=n_boot, alpha=alpha, seed=seed)
                row.update(c_difference=d["difference"], c_difference_ci_low=d["ci_low"],
                           c_difference_ci_high=d["ci_high"], p_value=d["p_value"], n_boot=d["n_boot"])
            out.append(row)
    columns = ["cohort", "model", "reference", "n", "n_events", "c_index", "c_index_ci_low", "c_index_ci_high",
               "c_difference", "c_difference_ci_low", "c_difference_ci_high", "p_value", "n_boot"]
    comparison = pd.DataFrame(out, columns=columns)
    comparison["n_features"] = len(features)
    comparison["penalty"] = f"{s['penalty']}, penalizer {s['penalizer']:g}"
    comparison["standardisation"] = comparison["model"].map(
        lambda m: "pooled from the sites' moments" if m == FEDERATED_KIND else "pooled rows" if m == "central"
        else f"{m[len('local_'):]} rows")
    strategy = {"fedavg": "FedAvg", "fedprox": f"FedProx (mu = {s['proximal_mu']:g})"}[s["strategy"]]
    comparison["fit"] = comparison["model"].map(
        lambda m: f"{strategy}, {int(s['rounds'])} rounds x {int(s['local_epochs'])} local steps, {len(train)} sites"
        if m == FEDERATED_KIND else "to the optimum (lifelines Newton, step < 1e-10)")
    comparison["objective_gap"] = comparison["model"].map({FEDERATED_KIND: gap, "central": 0.0})
    summary = {"max_abs_coefficient_difference": float(abs(coefficients["difference"].iloc[worst])),
               "feature": features[worst], "coefficient_scale": "log hazard ratio per pooled standard deviation",
               "learner": (f"site-stratified penalised Cox regression (penalizer {s['penalizer']:g}, l1_ratio "
                           f"{s['l1_ratio']:g})"),
               "rounds": int(s["rounds"]), "strategy": s["strategy"], "local_epochs": int(s["local_epochs"]),
               "penalty": s["penalty"], "penalizer": s["penalizer"], "l1_ratio": s["l1_ratio"], "sites": train,
               "central": ("lifelines CoxPHFitter stratified by site on the pooled training rows, same penalty, "
                           "features and pooled standardisation (the federated objective fitted centrally)"),
               "comparison_method": (f"Harrell's C; paired percentile bootstrap of the difference against the "
                                     f"federated model ({n_boot} replicates, cases resampled once for both models)"),
               "method_note": ("Cox: site-stratified partial likelihood (each site its own baseline hazard); after "
                               "the last round each site shared its event-time table (pooled Breslow baseline) "
                               "and its sorted risk scores (the card's training risk distribution)."),
               "n_features": len(features),
               "objective": ("J = -(1/N) sum over sites of the Breslow partial log-likelihood + penalty, on the "
                             "pooled standardisation (lifelines' CoxPHFitter(strata=site) objective)"),
               "objective_start": J(np.zeros(len(features))), "objective_federated": objective[FEDERATED_KIND],
               "objective_central": objective["central"], "objective_gap": gap,
               "objective_gap_tolerance": OBJECTIVE_GAP_TOLERANCE, "converged": bool(gap <= OBJECTIVE_GAP_TOLERANCE),
               "convergence": "converged" if gap <= OBJECTIVE_GAP_TOLERANCE else "not_converged"}
    return comparison, coefficients, summary


def apparent_survival(table: pd.DataFrame, model, card: dict, config: dict) -> pd.DataFrame:
    """The federated Cox model on the training cohorts' rows (apparent):
    ``case_id, time, event, risk, risk_at_horizon`` (as the central Cox model's training predictions)."""
    rows, X, time, event = _cox_arrays(table, config, list(card["features"]), list(config["cohorts"]["train"]))
    t = min(float(card["horizon_days"]), model.max_time_)
    return pd.DataFrame({"case_id": rows["case_id"], "time": time, "event": event, "risk": model.predict(X),
                         "risk_at_horizon": model.predict_risk_at(X, t)})


__all__ = ["SURVIVAL_COLUMNS", "cox_settings", "is_survival_table", "split_survival_sites", "moments_step",
           "standardisation", "site_round", "site_baseline", "final_cox_model", "reference_cox",
           "compare_federated_cox", "apparent_survival"]
