"""The federated network as a study (model.primary is ``deep_federated``, or model.comparators lists
it): the steps the rules of ``workflow/rules/federated_deep.smk`` run, one call each. The learner is
:mod:`acceflow.deep.federated`.

Each training cohort is a site. :func:`split_sites` writes one file per site with its crops and
outcomes (in a real consortium, each hospital's own data); from then on a site's jobs read only
that file, their own previous private state and the server's files (pooled channel statistics,
global network), and the server's jobs read only what the sites wrote (counts, sums, state
dicts). The frozen network is written like the ``deep`` model's (``model.pt``, weights only, and
its card: the comparator's paths, or the primary ones with model.primary: deep_federated), so the
deep prediction rule validates it on each external cohort.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from acceflow.deep.federated import (FederationError, NetworkSiteClient, aggregate_states, arrays_state, crop_moments,
                                     fitted_network, initial_state, pooled_crop_statistics, state_arrays)
from acceflow.io.manifest import binary_outcome
from acceflow.models.federated import fit_config, make_strategy
from acceflow.study.card import ModelCard
from acceflow.study.deep import load_stack, predict_study
from acceflow.study.settings import DEEP_FEDERATED_KIND, section_settings
from acceflow.study.training import CohortError

ROUND_COLUMNS = ["round", "site", "n", "loss", "update_norm", "drift"]


def settings_of(config: dict) -> tuple[dict, dict]:
    """``(deep, federated)``: the ``deep`` section and the ``federated`` section (its ``deep`` part
    holding rounds, local_epochs, batch_norm) with the schema's defaults."""
    return section_settings("deep", config.get("deep")), section_settings("federated", config.get("federated"))


def split_sites(table: pd.DataFrame, crops: dict[str, str], config: dict, log=print) -> dict[str, dict]:
    """One dataset per training site: ``case_id`` (n,), ``X`` crops (n, C, D, H, W) float32, ``y`` (n,) 0/1.

    A case without a usable crop is left out (logged with the reason), as the central network does.

    Raises
    ------
    CohortError
        A training cohort with no case with a crop (named).
    """
    o = config["outcome"]
    sites = {}
    for site in config["cohorts"]["train"]:
        rows = table[table["cohort"].astype(str) == str(site)].reset_index(drop=True)
        missing = sorted(set(rows["case_id"]) - set(crops))
        for case in missing:
            log(f"site {site}: case {case} left out: no crop (no reference-modality scan)")
        rows = rows[rows["case_id"].isin(crops)].reset_index(drop=True)
        X, ok, errors = load_stack([crops[c] for c in rows["case_id"]])
        for i, why in errors.items():
            log(f"site {site}: case {rows['case_id'][i]} left out: {why}")
        rows = rows.iloc[ok].reset_index(drop=True)
        if rows.empty:
            raise CohortError(f"site {site}: no case with a usable crop (cohorts.train names it; see the deep_crop "
                              f"logs and ingest/qc.tsv)")
        y = np.asarray(binary_outcome(rows[o["column"]], o["positive"])).astype(np.int64)
        sites[site] = {"case_id": rows["case_id"].astype(str).to_numpy(), "X": X.astype(np.float32), "y": y}
    return sites


def save_site(data: dict, path) -> None:
    """A site's crops file (``numpy.savez``: arrays only, read back with ``allow_pickle=False``)."""
    with open(path, "wb") as f:
        np.savez(f, case_id=data["case_id"].astype(str), X=data["X"], y=data["y"])


def load_site(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def moments_step(data: dict, site: str) -> dict:
    """What a site shares once: counts, and per channel the voxel count, sum and sum of squares."""
    return crop_moments(data["X"], data["y"], site)


def standardisation_step(moments: list[dict], config: dict) -> tuple[dict, dict]:
    """The server's pooled channel statistics and the round-0 global network (seeded)."""
    s, _ = settings_of(config)
    stats = pooled_crop_statistics(moments)
    start = {"format": "acceflow.federated_deep.global/1", "round": 0, "rows": [],
             "state_dict": initial_state(s, stats["in_channels"], int(config["seed"]))}
    return stats, start


def site_round_step(data: dict, site: str, statistics: dict, previous: dict, local: dict | None,
                    config: dict) -> tuple[dict, dict]:
    """One site's local training of one round (the Flower NumPyClient's ``fit``).

    Parameters
    ----------
    data : dict
        The site's own crops file (:func:`load_site`).
    statistics : dict
        The server's pooled channel statistics.
    previous : dict
        The global network file of the previous round.
    local : dict or None
        The site's private state file of its previous round (None in round 1).

    Returns
    -------
    (update, local) : dicts for :func:`acceflow.deep.federated.save_blob`
        The update (state dict, n, loss) the server reads, and the state the site keeps.
    """
    s, f = settings_of(config)
    d = f["deep"]
    server_round = int(previous["round"]) + 1
    if local is not None and int(local["round"]) != server_round - 1:
        raise FederationError(f"site {site}: its private state is of round {local['round']}, not {server_round - 1}")
    template = previous["state_dict"]
    client = NetworkSiteClient(data["X"], data["y"], site, s, template, statistics["mean"], statistics["sd"],
                               statistics["pos_weight"], int(config["seed"]), d["batch_norm"],
                               None if local is None else {"optimizer": local["optimizer"],
                                                           "batch_norm": local["batch_norm"]})
    fit_in = {**fit_config(make_strategy(f["strategy"], f["proximal_mu"]), d["local_epochs"]),
              "epoch_offset": (server_round - 1) * int(d["local_epochs"])}
    arrays, n, metrics = client.fit(state_arrays(template), fit_in)
    update = {"format": "acceflow.federated_deep.update/1", "site": site, "round": server_round, "n": int(n),
              "loss": float(metrics["loss"]), "state_dict": arrays_state(arrays, template)}
    kept = {"format": "acceflow.federated_deep.local/1", "site": site, "round": server_round, **client.local}
    return update, kept


def aggregate_step(updates: list[dict], previous: dict, config: dict) -> dict:
    """The server's aggregation of one round (Flower ``FedAvg`` / ``FedProx`` ``aggregate_fit``).

    Raises
    ------
    FederationError
        An update of another round, or with NaN values (the site and round named).
    """
    _, f = settings_of(config)
    server_round = int(previous["round"]) + 1
    for u in updates:
        if int(u["round"]) != server_round:
            raise FederationError(f"site {u['site']}: an update of round {u['round']} given to the aggregation of "
                                  f"round {server_round}")
    new, rows = aggregate_states(make_strategy(f["strategy"], f["proximal_mu"]), server_round,
                                 [(u["site"], u["state_dict"], int(u["n"])) for u in updates], previous["state_dict"],
                                 {u["site"]: float(u["loss"]) for u in updates})
    return {"format": "acceflow.federated_deep.global/1", "round": server_round, "rows": rows, "state_dict": new}


def final_model(statistics: dict, globals_: list[dict], config: dict):
    """The frozen federated network (as :func:`acceflow.deep.train.save_model` takes it), its card and
    ``rounds.tsv``, from the server's files only."""
    s, f = settings_of(config)
    d = f["deep"]
    last = globals_[-1]
    fitted = fitted_network(last["state_dict"], statistics, s)
    rounds = pd.DataFrame([row for g in globals_ for row in g["rows"]], columns=ROUND_COLUMNS)
    final = rounds[rounds["round"] == rounds["round"].max()]
    bn = {"average": "averaged with every other tensor by case count (FedAvg)",
          "local": "kept local at each site while training (FedBN, Li et al. 2021); the frozen network's batch-"
                   "normalisation layers are the case-weighted average of the sites' last ones"}[d["batch_norm"]]
    card = ModelCard.from_dict({
        "model": DEEP_FEDERATED_KIND,
        "role": "primary" if section_settings("model", config.get("model"))["primary"] == DEEP_FEDERATED_KIND
        else "comparator",
        "outcome": dict(config["outcome"]),
        "features": ["crop of " + ", ".join(f"channel {i}" for i in range(statistics["in_channels"]))],
        "learner": f"MONAI {s['network']} ({s['fusion']} fusion), federated ({f['strategy']})",
        "network": s["network"], "fusion": s["fusion"], "clinical_covariates": [],
        "crop": {"size_voxels": int(s["crop_size"]), "spacing_mm": float(s["crop_spacing"]),
                 "field_of_view_mm": float(s["crop_size"]) * float(s["crop_spacing"])},
        "hyperparameters": {**{k: s[k] for k in ("batch_size", "learning_rate", "weight_decay", "dropout",
                                                 "augmentation")},
                            "rounds": int(d["rounds"]), "local_epochs": int(d["local_epochs"]),
                            "batch_norm": d["batch_norm"], "strategy": f["strategy"],
                            "proximal_mu": float(f["proximal_mu"]) if f["strategy"] == "fedprox" else None},
        "training_cohorts": list(config["cohorts"]["train"]),
        "external_cohorts": list(config["cohorts"]["external"]),
        "seed": int(config["seed"]),
        "validation": "external" if config["cohorts"]["external"] else "internal",
        "internal_validation": ("none: federated training is not cross-validated; the training-cohort figures are "
                                "apparent (the final network on the cases it was trained on)"),
        "n_train": int(statistics["n"]), "n_events_train": int(statistics["n_events"]),
        "threshold": {"method": "value", "target": 0.5, "value": 0.5,
                      "fixed_on": "the class-weighted loss (positives weighted by the pooled n_negative / "
                                  "n_positive), whose probabilities are those of a balanced prevalence"},
        "loss": "binary cross-entropy, positive class weight pooled n_neg/n_pos",
        "pos_weight": float(statistics["pos_weight"]),
        "sites": statistics["sites"], "rounds": len(globals_),
        "final_round_loss": float(np.average(final["loss"], weights=final["n"])) if len(final) else float("nan"),
        "normalisation": "pooled channel mean and SD from the sites' voxel counts, sums and sums of squares",
        "batch_norm": bn,
        "optimiser": ("AdamW at each site; its moment estimates stay at the site between rounds (never sent), so "
                      "one site is central training"),
        "early_stopping": "none: a fixed number of rounds; the last round's global network is the model",
        "method": "Federated averaging of the network's state dict with Flower (FedAvg, McMahan et al. 2017; "
                  "FedProx, Li et al. 2020" + ("; FedBN, Li et al. 2021" if d["batch_norm"] == "local" else "")
                  + "); MONAI 3D network on a lesion-centred crop",
        "excluded_cases": {},
    })
    return fitted, card, rounds


def apparent_predictions(fitted: dict, card: dict, table: pd.DataFrame, crops: dict[str, str], config: dict,
                         log=print) -> pd.DataFrame:
    """The frozen network on every training cohort's cases (apparent; ``case_id, outcome, probability``).

    An evaluation step (it reads the pooled feature table and crops, as an evaluation of simulated sites
    can); the federated training never did.
    """
    return pd.concat([predict_study(fitted, card, table, crops, site, log=log)
                      for site in config["cohorts"]["train"]], ignore_index=True)
