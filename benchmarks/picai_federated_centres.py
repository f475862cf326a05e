"""PI-CAI per held-out centre: federated vs central vs local-only models (issue 18's closing figures).

1. **PI-CAI** (binary csPCa; `config/studies/picai_federated.yaml`): each of the three centres
   (RUMC, PCNN, ZGT) is held out in turn; the other two are Flower clients of the federated
   L2 logistic regression (FedAvg, the config's ``federated`` settings), the central model is the
   same penalised logistic regression on their pooled rows, and each is also fitted alone
   (local-only). All are validated on the held-out centre: AUC with DeLong 95% CI, paired DeLong
   p against the federated model, and the largest |federated - central| coefficient (per pooled
   SD). One in-process call of ``acceflow.study.federated.held_out_centres`` (the library the
   DAG's rules call), not three DAG runs.
2. **Cox**: PI-CAI has no time-to-event outcome, so the federated Cox is shown on STS (51
   soft-tissue-sarcoma patients, overall survival: death = Status D, time = diagnosis to last
   follow-up in days; covariates age, grade (low 0 / intermediate 1 / high 2), male sex). STS is
   one centre: its cases are split at random (seeded, stratified by event) into two
   pseudo-sites, which tests the method, not a real federation. Reported: the federated
   site-stratified Cox (``acceflow.models.federated_cox``) against lifelines'
   ``CoxPHFitter(strata=["site"])`` (Efron ties; the federated fit uses Breslow's) and the
   unstratified central fit, with apparent Harrell's C.

    PYTHONPATH=src .venv/bin/python benchmarks/picai_federated_centres.py [--shared ../shared] [--rounds R]

Prints tables and, last, one line of the headline figures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from lifelines import CoxPHFitter

from acceflow.metrics.survival import harrell_c
from acceflow.models.federated import standardise
from acceflow.models.federated_cox import federated_cox_fit
from acceflow.study.federated import held_out_centres
from acceflow.study.settings import with_defaults
from acceflow.study.tables import ingest_feature_table

ROOT = Path(__file__).resolve().parents[1]


def picai(shared: Path, rounds: int | None = None) -> pd.DataFrame:
    config = yaml.safe_load((ROOT / "config/studies/picai_federated.yaml").read_text())
    if rounds:
        config["federated"]["rounds"] = rounds
    config["input"]["features"] = str(shared / "data/picai/marksheet.csv")
    config = with_defaults(config)
    _, table = ingest_feature_table(config["input"]["features"], config)
    start = time.perf_counter()
    out = held_out_centres(table, config)
    print(f"PI-CAI: {len(table)} cases, features {config['clinical'] + config['features']}, "
          f"federated {config['federated']['strategy']} {config['federated']['rounds']} rounds x "
          f"{config['federated']['local_epochs']} local epochs, L2 C={config['federated']['C']}; "
          f"{time.perf_counter() - start:.1f} s")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.round(4).to_string(index=False))
    return out


def sts(shared: Path, penalizer: float = 0.1, seed: int = 42):
    d = pd.read_csv(shared / "data/sts/clinical/INFOclinical_STS_merged.csv")
    X = pd.DataFrame({"age": d["Age"], "grade": d["Grade"].map({"Low": 0, "Intermediate": 1, "High": 2}),
                      "male": (d["Sex"] == "Male").astype(float)})
    t = d["Time – diagnosis to last follow-up (days)"].to_numpy(float)
    e = (d["Status (NED, AWD, D)"] == "D").to_numpy(float)
    rng = np.random.default_rng(seed)
    site = np.empty(len(e), dtype=object)
    for ev in (0.0, 1.0):  # stratified by event: both pseudo-sites have events
        idx = rng.permutation(np.flatnonzero(e == ev))
        site[idx[: len(idx) // 2]], site[idx[len(idx) // 2:]] = "A", "B"
    sites = {s: (X.to_numpy(float)[site == s], t[site == s], e[site == s]) for s in ("A", "B")}
    start = time.perf_counter()
    std, beta, history, _ = federated_cox_fit(sites, penalizer=penalizer, rounds=3000, local_epochs=1)
    seconds = time.perf_counter() - start
    _, beta_fast, _, _ = federated_cox_fit(sites, penalizer=penalizer, rounds=50, local_epochs=5)
    Z = pd.DataFrame(standardise(X.to_numpy(float), std["mean"], std["scale"]), columns=X.columns)
    frame = Z.assign(T=t, E=e, site=site)
    sd = Z.std().to_numpy()  # lifelines penalises its ddof-1 rescaled coefficients: same penalty on beta
    strat = CoxPHFitter(penalizer=penalizer / sd ** 2, strata=["site"]).fit(frame, "T", "E")
    central = CoxPHFitter(penalizer=penalizer / sd ** 2).fit(frame.drop(columns="site"), "T", "E")
    _, beta_one, _, _ = federated_cox_fit({"all": (X.to_numpy(float), t, e)}, penalizer=penalizer, rounds=1,
                                          local_epochs=3000)
    table = pd.DataFrame({"feature": X.columns, "federated_2_sites": beta, "federated_50x5": beta_fast,
                          "lifelines_stratified": strat.params_.to_numpy(), "federated_1_site": beta_one,
                          "lifelines_central": central.params_.to_numpy()})
    c = {name: harrell_c(t, e, Z.to_numpy() @ table[name].to_numpy()) for name in table.columns[1:]}
    print(f"\nSTS overall survival: {len(e)} patients, {int(e.sum())} deaths, pseudo-sites A/B "
          f"({int((site == 'A').sum())}/{int((site == 'B').sum())} cases, "
          f"{int(e[site == 'A'].sum())}/{int(e[site == 'B'].sum())} deaths); ridge penalizer {penalizer}; "
          f"log HR per pooled SD; tied death times: {int(len(t[e == 1]) - len(np.unique(t[e == 1])))}; "
          f"3000 rounds in {seconds:.1f} s")
    print(table.round(5).to_string(index=False))
    print("apparent Harrell's C: " + ", ".join(f"{k} {v:.4f}" for k, v in c.items()))
    diff_strat = float(np.abs(table["federated_2_sites"] - table["lifelines_stratified"]).max())
    diff_one = float(np.abs(table["federated_1_site"] - table["lifelines_central"]).max())
    print(f"max |federated - lifelines stratified| {diff_strat:.2e}; one site: max |federated - lifelines "
          f"central| {diff_one:.2e}; max |50x5 - 3000x1| {np.abs(beta_fast - beta).max():.2e}")
    return diff_strat, diff_one, c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--rounds", type=int, default=None, help="override federated.rounds of the config")
    args = parser.parse_args()
    out = picai(args.shared, args.rounds)
    diff_strat, diff_one, _ = sts(args.shared)
    auc = out.pivot_table(index="held_out", columns="model", values="auc", aggfunc="first")
    parts = []
    for held in out["held_out"].unique():
        rows = out[out["held_out"] == held]
        local = ", ".join(f"{m[6:]} {a:.3f}" for m, a in zip(rows["model"], rows["auc"]) if m.startswith("local_"))
        parts.append(f"{held}: fed {auc.loc[held, 'federated']:.3f} / central {auc.loc[held, 'central']:.3f} / "
                     f"local {local} / max|dcoef| {rows['max_abs_coefficient_difference'].iloc[0]:.2e}")
    print("PI-CAI held-out AUC " + "; ".join(parts) + f" | STS Cox max|fed-stratified| {diff_strat:.1e}, "
          f"one site vs central {diff_one:.1e}")


if __name__ == "__main__":
    main()
