"""Federated training as a study: the steps the workflow's federated rules run, one call each.

Each training cohort is a site. :func:`split_sites` writes one table per site (in a real
consortium, each hospital's own export); from then on a site's jobs read only its own table
and the server's files (pooled standardisation, global model), and the server's jobs read only
what the sites wrote (counts, sums, parameters) — never a row. The learner and the Flower
pieces are :mod:`acceflow.models.federated`.

Central (pooled) and local-only reference fits, made with scikit-learn's
``LogisticRegression`` with the same penalty and C on the same features, are the evaluation's
yardsticks (:func:`compare_federated`): they read the pooled table, as an evaluation on
simulated sites can; the federated model never does.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from acceflow.io.manifest import binary_outcome
from acceflow.metrics.compare import compare_models
from acceflow.models.federated import (OBJECTIVE_GAP_TOLERANCE, FederatedLogisticRegression, LogisticSiteClient,
                                       aggregate_round, fit_config, logistic_objective, make_strategy,
                                       pooled_standardisation, relative_gap, round_rows, site_moments, standardise)
from acceflow.study import federated_survival as fs
from acceflow.study.card import ModelCard
from acceflow.study.settings import FEDERATED_KIND, model_names, section_settings
from acceflow.study.task import task_for
from acceflow.study.training import model_spec

log = logging.getLogger(__name__)

ROUND_COLUMNS = ["round", "site", "n", "loss", "update_norm", "drift"]


def federated_settings(config: dict) -> dict:
    """The config's ``federated`` section with the schema's defaults."""
    return section_settings("federated", config.get("federated"))


def split_sites(table: pd.DataFrame, config: dict, stable: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """One table per training site: ``case_id``, ``outcome`` (0/1) and the inputs of the model kind
    ``federated.model`` (imaging features, clinical covariates, or both: ``combined_early``).
    Survival studies: ``case_id``, ``time`` (days), ``event`` (0/1) and the inputs
    (:func:`acceflow.study.federated_survival.split_survival_sites`).

    Raises
    ------
    ValueError
        When a training cohort has no row in the table.
    """
    features, _, _ = model_spec(federated_settings(config)["model"], table, config, stable)
    if task_for(config).time_to_event:
        return fs.split_survival_sites(table, config, features)
    o = config["outcome"]
    sites = {}
    for site in config["cohorts"]["train"]:
        rows = table[table["cohort"] == site]
        if rows.empty:
            raise ValueError(f"site {site}: no case in the feature table (cohorts.train names it; see ingest/qc.tsv)")
        out = pd.DataFrame({"case_id": rows["case_id"].to_numpy(),
                            "outcome": np.asarray(binary_outcome(rows[o["column"]], o["positive"])).astype(int)})
        values = rows[features].apply(pd.to_numeric, errors="coerce").reset_index(drop=True)
        sites[site] = pd.concat([out, values], axis=1)
    return sites


def _site_arrays(site_table: pd.DataFrame):
    features = [c for c in site_table.columns if c not in ("case_id", "outcome")]
    return features, site_table[features].to_numpy(dtype=float), site_table["outcome"].to_numpy(dtype=float)


def site_moments_step(site_table: pd.DataFrame, site: str) -> dict:
    """A site's shared summary (:func:`acceflow.models.federated.site_moments`) with its feature names;
    a survival table's: :func:`acceflow.study.federated_survival.moments_step`."""
    if fs.is_survival_table(site_table):
        return fs.moments_step(site_table, site)
    features, X, y = _site_arrays(site_table)
    return {**site_moments(X, y, site), "features": features}


def standardisation_step(moments: list[dict]) -> tuple[dict, dict]:
    """The server's pooled standardisation and the round-0 global model (zeros).

    Raises
    ------
    ValueError
        When the sites do not share the same features in the same order.
    """
    features = moments[0]["features"]
    for m in moments[1:]:
        if m["features"] != features:
            raise ValueError(f"site {m['site']} has other features than site {moments[0]['site']}: every site must "
                             f"export the same columns (re-run the split)")
    if any(m.get("learner") == fs.LEARNER for m in moments):
        if not all(m.get("learner") == fs.LEARNER for m in moments):
            raise ValueError("the sites' moments mix survival and binary tables: re-run the split")
        return fs.standardisation(moments, features), {"round": 0, "coef": [0.0] * len(features), "sites": []}
    std = {**pooled_standardisation(moments, features), "features": features}
    start = {"round": 0, "coef": [0.0] * len(features), "intercept": [0.0], "sites": []}
    return std, start


def site_baseline_step(site_table: pd.DataFrame, site: str, standardisation: dict, last: dict) -> dict:
    """Survival only: what a site shares once after the last round
    (:func:`acceflow.study.federated_survival.site_baseline`: event-time table, sorted risk scores)."""
    return fs.site_baseline(site_table, site, standardisation, last)


def site_round_step(site_table: pd.DataFrame, site: str, standardisation: dict, previous: dict, config: dict) -> dict:
    """One site's local step of one round (the Flower NumPyClient's ``fit``), as JSON."""
    if standardisation.get("learner") == fs.LEARNER:
        return fs.site_round(site_table, site, standardisation, previous, config)
    s = federated_settings(config)
    features, X, y = _site_arrays(site_table)
    if features != standardisation["features"]:
        raise ValueError(f"site {site}: its table's columns differ from the standardisation's features")
    client = LogisticSiteClient(standardise(X, standardisation["mean"], standardisation["scale"]), y, site,
                                s["penalty"], s["C"], standardisation["n"], s["local_epochs"],
                                standardisation["lipschitz"])
    config_in = fit_config(make_strategy(s["strategy"], s["proximal_mu"]), s["local_epochs"])
    params, n, metrics = client.fit([np.asarray(previous["coef"]), np.asarray(previous["intercept"])], config_in)
    return {"site": site, "round": int(previous["round"]) + 1, "n": int(n), "loss": metrics["loss"],
            "coef": params[0].tolist(), "intercept": params[1].tolist()}


def aggregate_step(updates: list[dict], previous: dict, config: dict) -> dict:
    """The server's aggregation of one round with the configured Flower strategy, as JSON.

    Raises
    ------
    acceflow.models.federated.FederationError
        When a site's update holds NaN (named, with the round).
    """
    s = federated_settings(config)
    server_round = int(previous["round"]) + 1
    for u in updates:
        if int(u["round"]) != server_round:
            raise ValueError(f"site {u['site']}: an update of round {u['round']} given to the aggregation of round "
                             f"{server_round}")
    keys = ["coef", "intercept"] if "intercept" in previous else ["coef"]  # the Cox learner has no intercept
    sites = [(u["site"], [np.asarray(u[k], dtype=float) for k in keys], u["n"]) for u in updates]
    prev = [np.asarray(previous[k], dtype=float) for k in keys]
    new = aggregate_round(make_strategy(s["strategy"], s["proximal_mu"]), server_round, sites,
                          {u["site"]: u["loss"] for u in updates})
    rows = round_rows(server_round, prev, new, sites, {u["site"]: u["loss"] for u in updates})
    return {"round": server_round, **{k: a.tolist() for k, a in zip(keys, new)}, "sites": rows}


def final_model(standardisation: dict, globals_: list[dict], config: dict, baselines: list[dict] | None = None):
    """The frozen federated model, its card and ``rounds.tsv`` from the server's files.

    Parameters
    ----------
    standardisation : dict
        :func:`standardisation_step`'s first output.
    globals_ : list of dict
        The global model of every round 1..R (:func:`aggregate_step`), in order.
    baselines : list of dict, optional
        Survival only: every site's :func:`acceflow.study.federated_survival.site_baseline`
        (:func:`acceflow.study.federated_survival.final_cox_model`).
    """
    if standardisation.get("learner") == fs.LEARNER:
        if not baselines:
            raise ValueError("the federated Cox model needs every site's baseline (rule federated_site_baseline)")
        return fs.final_cox_model(standardisation, globals_, baselines, config)
    s = federated_settings(config)
    last = globals_[-1]
    model = FederatedLogisticRegression.from_parameters(
        standardisation["features"], standardisation, [last["coef"], last["intercept"]],
        penalty=s["penalty"], C=s["C"], rounds=s["rounds"], local_epochs=s["local_epochs"],
        strategy=s["strategy"], proximal_mu=s["proximal_mu"])
    rounds = pd.DataFrame([row for g in globals_ for row in g["sites"]], columns=ROUND_COLUMNS)
    prevalence = standardisation["n_events"] / standardisation["n"]
    coefs = dict(zip(standardisation["features"], map(float, last["coef"])))
    primary, _ = model_names(config)
    card = ModelCard.from_dict({
        "model": FEDERATED_KIND, "role": "primary" if primary == FEDERATED_KIND else "comparator",
        "outcome": dict(config["outcome"]), "features": list(standardisation["features"]),
        "learner": f"{s['penalty']}_logistic (federated, {s['strategy']})",
        "hyperparameters": dict(s), "training_cohorts": list(config["cohorts"]["train"]),
        "external_cohorts": list(config["cohorts"]["external"]), "seed": int(config["seed"]),
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": ("none: federated training is not cross-validated; the training-cohort figures are "
                                "apparent (the final model on the rows it was trained on)"),
        "n_train": int(standardisation["n"]), "n_events_train": int(standardisation["n_events"]),
        "threshold": {"method": "value", "target": prevalence, "value": prevalence,
                      "fixed_on": "pooled training prevalence (the sites' shared event counts)"},
        **{"sites": standardisation["sites"], "rounds": len(globals_), "coefficients": coefs,
                  "intercept": float(last["intercept"][0]),
                  "coefficient_scale": "per pooled standard deviation of the training sites",
                  "standardisation": "pooled mean and SD from the sites' counts, sums and sums of squares",
                  "final_round_loss": float(np.average(rounds[rounds["round"] == rounds["round"].max()]["loss"],
                                                       weights=rounds[rounds["round"] == rounds["round"].max()]["n"]))},
    })
    return model, card, rounds


def _reference_fit(X, y, penalty: str, C: float):
    kw = dict(l1_ratio=0) if penalty == "l2" else dict(l1_ratio=1, solver="saga")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # saga's convergence warning at tight tolerance
        return make_pipeline(SimpleImputer(), StandardScaler(),
                             LogisticRegression(C=C, tol=1e-8, max_iter=20000, **kw)).fit(X, y)


def compare_federated(table: pd.DataFrame, model, card: dict, config: dict, alpha: float = 0.05):
    """Federated vs central (pooled) vs local-only models on every external cohort.

    Central: the same penalised logistic regression (scikit-learn, same penalty and C, same
    features, the pooled rows standardised by their mean and SD: the federated objective J, run
    to its optimum J*); ``central_same_steps``: the federated learner itself with the pooled rows
    as its only site, for the same rounds and local steps (what the training schedule does without
    federation: with few rounds, FedAvg stops short of J* and shrinks the coefficients towards zero
    like early stopping); local-only: the same penalty and C on one site's rows alone (standardised
    by that site). Each external cohort: AUCs with DeLong CIs and paired DeLong tests against the
    federated model (:func:`acceflow.metrics.compare.compare_models`).

    Convergence: J at the federated model's parameters against J* (``objective_gap``, relative,
    :func:`acceflow.models.federated.relative_gap`). A gap above
    :data:`acceflow.models.federated.OBJECTIVE_GAP_TOLERANCE`
    means the federated model has not reached the central optimum, and a federated-vs-central
    difference is one of regularisation (how far the optimiser went), not of federation.

    Returns
    -------
    comparison : pandas.DataFrame
        ``cohort``, compare_models' columns (``model``: federated, central, central_same_steps,
        local_<site>), and what each model is: ``n_features``, ``penalty`` (e.g. ``l2, C = 1``),
        ``standardisation``, ``fit`` (optimiser and its rounds), ``objective_gap`` (relative gap of J
        to J*; empty for local-only models, whose objective is another one).
    coefficients : pandas.DataFrame
        ``feature``, ``federated``, ``central``, ``central_same_steps``, ``local_<site>`` ... (per
        pooled SD, per site SD for local fits), ``difference`` (federated − central).
    summary : dict
        ``max_abs_coefficient_difference``, its ``feature``, ``rounds``, ``strategy``, sites;
        ``objective_start`` (J at round 0), ``objective_federated``, ``objective_central`` (J*),
        ``objective_gap``, ``objective_gap_same_steps``, ``objective_gap_tolerance``, ``converged``,
        ``convergence`` (:func:`convergence`: converged, stopped_early or client_drift).
    """
    if task_for(config).time_to_event:
        n_boot = min(int(((config.get("validation") or {}).get("n_bootstrap")) or 1000), 1000)
        return fs.compare_federated_cox(table, model, card, config, alpha, n_boot=n_boot, seed=int(config["seed"]))
    s = federated_settings(config)
    features = list(card["features"])
    o = config["outcome"]
    train = table[table["cohort"].isin(config["cohorts"]["train"])]
    y_train = binary_outcome(train[o["column"]], o["positive"]).astype(int)
    X_train = train[features].apply(pd.to_numeric, errors="coerce")
    central = _reference_fit(X_train, y_train, s["penalty"], s["C"])
    same_steps = FederatedLogisticRegression(s["penalty"], s["C"], s["rounds"], s["local_epochs"], s["strategy"],
                                             s["proximal_mu"]).fit(X_train, y_train, np.zeros(len(y_train)))
    fits = {"central": central, "central_same_steps": same_steps}
    for site in config["cohorts"]["train"]:
        mask = (train["cohort"] == site).to_numpy()
        fits[f"local_{site}"] = _reference_fit(X_train[mask], y_train[mask], s["penalty"], s["C"])
    coef = lambda fit: fit.coef_[0] if hasattr(fit, "coef_") else fit[-1].coef_[0]  # noqa: E731
    intercept = lambda fit: fit.intercept_[0] if hasattr(fit, "intercept_") else fit[-1].intercept_[0]  # noqa: E731
    coefficients = pd.DataFrame({"feature": features, "federated": model.coef_[0],
                                 **{name: coef(fit) for name, fit in fits.items()}})
    coefficients["difference"] = coefficients["federated"] - coefficients["central"]
    worst = int(np.argmax(np.abs(coefficients["difference"].to_numpy())))
    # the federated objective J on the pooled rows (pooled standardisation = the central scaler's)
    Z = standardise(X_train.to_numpy(dtype=float), model.mean_, model.scale_)
    J = lambda c, b: logistic_objective(Z, y_train, c, b, s["penalty"], s["C"])  # noqa: E731
    objective = {FEDERATED_KIND: J(model.coef_[0], model.intercept_[0]),
                 **{k: J(coef(fits[k]), intercept(fits[k])) for k in ("central", "central_same_steps")}}
    gaps = {k: relative_gap(v, objective["central"]) for k, v in objective.items()}
    penalty = f"{s['penalty']}, C = {s['C']:g}"
    schedule = f"{int(s['rounds'])} rounds x {int(s['local_epochs'])} local steps"
    strategy = {"fedavg": "FedAvg", "fedprox": f"FedProx (mu = {s['proximal_mu']:g})"}[s["strategy"]]
    described = {
        FEDERATED_KIND: ("pooled from the sites' moments", f"{strategy}, {schedule}, {len(config['cohorts']['train'])} "
                                                           f"sites"),
        "central": ("pooled rows", "to the optimum (scikit-learn lbfgs, tol 1e-8)"),
        "central_same_steps": ("pooled rows", f"the federated learner with the pooled rows as one site, {schedule}"),
        **{f"local_{site}": (f"{site} rows", "to the optimum (scikit-learn lbfgs, tol 1e-8)")
           for site in config["cohorts"]["train"]}}
    rows = []
    for cohort in config["cohorts"]["external"]:
        ext = table[table["cohort"] == cohort].reset_index(drop=True)
        y = binary_outcome(ext[o["column"]], o["positive"]).astype(int)
        X = ext[features].apply(pd.to_numeric, errors="coerce")
        preds = {FEDERATED_KIND: model.predict_proba(X)[:, 1], **{k: f.predict_proba(X)[:, 1] for k, f in fits.items()}}
        frames = {k: pd.DataFrame({"case_id": ext["case_id"], "outcome": y, "probability": p}) for k, p in preds.items()}
        rows.append(compare_models(frames, reference=FEDERATED_KIND, alpha=alpha).assign(cohort=cohort))
    comparison = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if len(comparison):
        comparison = comparison[["cohort", *[c for c in comparison.columns if c != "cohort"]]]
        comparison["n_features"] = len(features)
        comparison["penalty"] = penalty
        comparison["standardisation"] = comparison["model"].map(lambda m: described[m][0])
        comparison["fit"] = comparison["model"].map(lambda m: described[m][1])
        comparison["objective_gap"] = comparison["model"].map(gaps)
    summary = {"max_abs_coefficient_difference": float(abs(coefficients["difference"].iloc[worst])),
               "feature": features[worst], "coefficient_scale": "per pooled standard deviation",
               "rounds": int(s["rounds"]), "strategy": s["strategy"], "local_epochs": int(s["local_epochs"]),
               "penalty": s["penalty"], "C": float(s["C"]), "sites": list(config["cohorts"]["train"]),
               "n_features": len(features),
               "central": "scikit-learn LogisticRegression on the pooled training rows, same penalty, C and features",
               "objective": ("J = mean log-loss on the pooled training rows + penalty / (C N) (scikit-learn's "
                             "LogisticRegression objective divided by C N), on the pooled standardisation"),
               "objective_start": J(np.zeros(len(features)), 0.0),
               "objective_federated": objective[FEDERATED_KIND], "objective_central": objective["central"],
               "objective_same_steps": objective["central_same_steps"],
               "objective_gap": gaps[FEDERATED_KIND], "objective_gap_same_steps": gaps["central_same_steps"],
               "objective_gap_tolerance": OBJECTIVE_GAP_TOLERANCE,
               "converged": bool(gaps[FEDERATED_KIND] <= OBJECTIVE_GAP_TOLERANCE),
               "convergence": convergence(gaps[FEDERATED_KIND], gaps["central_same_steps"])}
    return comparison, coefficients, summary


def convergence(gap: float, gap_same_steps: float | None = None, tolerance: float = OBJECTIVE_GAP_TOLERANCE) -> str:
    """Why the federated model is (not) at the central optimum, from the two relative objective gaps.

    ``converged``: its gap is within ``tolerance``. ``stopped_early``: above it, and the same
    learner and rounds on the pooled rows (``central_same_steps``) stop short too: the training
    schedule (rounds x local steps) ends before the optimum and shrinks the coefficients as early
    stopping does. ``client_drift``: above it while the same schedule on the pooled rows reaches
    the optimum: the sites' heterogeneity moves FedAvg's fixed point (FedProx, or fewer local
    steps and more rounds, bring it back). ``not_converged``: above it, no same-steps fit to tell.
    """
    if gap <= tolerance:
        return "converged"
    if gap_same_steps is None:
        return "not_converged"
    return "stopped_early" if gap_same_steps > tolerance else "client_drift"


def apparent_predictions(table: pd.DataFrame, model, card: dict, config: dict) -> pd.DataFrame:
    """The federated model on the training cohorts' rows (apparent; ``case_id, outcome, probability``;
    survival: ``case_id, time, event, risk, risk_at_horizon``)."""
    if task_for(config).time_to_event:
        return fs.apparent_survival(table, model, card, config)
    o = config["outcome"]
    train = table[table["cohort"].isin(config["cohorts"]["train"])].reset_index(drop=True)
    X = train[list(card["features"])].apply(pd.to_numeric, errors="coerce")
    return pd.DataFrame({"case_id": train["case_id"], "outcome": binary_outcome(train[o["column"]], o["positive"])
                         .astype(int), "probability": model.predict_proba(X)[:, 1]})


def held_out_centres(table: pd.DataFrame, config: dict, alpha: float = 0.05) -> pd.DataFrame:
    """Each site in turn held out: federated (the other sites as clients) vs central vs local-only.

    The sites are the cohorts of ``cohorts.train`` and ``cohorts.external``. For each held-out
    site, the federated model (:class:`~acceflow.models.federated.FederatedLogisticRegression`,
    the ``federated`` section's settings, the other sites as clients, trained in one process with
    the same Flower client and strategy as the DAG's jobs), the central fit (pooled rows of the
    other sites) and each other site's local-only fit are validated on the held-out site
    (:func:`compare_federated`: AUC with DeLong CI, paired DeLong test against the federated model).

    Returns
    -------
    pandas.DataFrame
        One row per held-out site and model: ``held_out``, ``clients`` (the training sites),
        ``model`` (federated, central, central_same_steps, local_<site>), ``n``, ``n_events``, ``auc``,
        ``auc_ci_low``, ``auc_ci_high``, ``p_value`` (paired DeLong vs federated; empty on the
        federated row), ``objective_gap`` (the relative gap of the model's objective to the central
        optimum; empty for local-only models), ``max_abs_coefficient_difference`` and its ``feature``
        (federated vs central, per pooled SD of the clients; the same on every row of a held-out site).

    Raises
    ------
    ValueError
        When fewer than three sites are named (two clients are needed when one is held out).
    """
    sites = list(config["cohorts"]["train"]) + list(config["cohorts"]["external"])
    if len(sites) < 3:
        raise ValueError(f"held-out-centre comparison needs at least three sites (two clients and one held out); "
                         f"cohorts.train + cohorts.external name {sites}")
    s = federated_settings(config)
    rows = []
    for held in sites:
        clients = [c for c in sites if c != held]
        cfg = {**config, "cohorts": {**config["cohorts"], "train": clients, "external": [held]}}
        split = split_sites(table, cfg)
        features = [c for c in split[clients[0]].columns if c not in ("case_id", "outcome")]
        X = pd.concat([split[c][features] for c in clients], ignore_index=True)
        y = np.concatenate([split[c]["outcome"].to_numpy() for c in clients])
        groups = np.concatenate([[c] * len(split[c]) for c in clients])
        model = FederatedLogisticRegression(s["penalty"], s["C"], s["rounds"], s["local_epochs"], s["strategy"],
                                            s["proximal_mu"]).fit(X, y, groups)
        comparison, _, summary = compare_federated(table, model, {"features": features}, cfg, alpha)
        rows.append(comparison.assign(held_out=held, clients=",".join(clients),
                                      max_abs_coefficient_difference=summary["max_abs_coefficient_difference"],
                                      feature=summary["feature"]))
    out = pd.concat(rows, ignore_index=True)
    keep = ["held_out", "clients", "model", "n", "n_events", "auc", "auc_ci_low", "auc_ci_high", "p_value",
            "objective_gap", "max_abs_coefficient_difference", "feature"]
    return out[keep]
