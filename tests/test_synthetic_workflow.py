"""The synthetic stage in the DAG (workflow/rules/synthetic.smk) on a small hand-made feature table (no
image stages: the test is about the split, the audit and the comparators): the generator never sees
the external cohort, synthetic cases are no external or out-of-fold case, the comparators are
validated on the external cohort and compared with the real-only model."""
import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake, small_statistics, write_config

pytestmark = [pytest.mark.integration]


def test_smote_audit_and_comparators_run_on_a_feature_table(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for cohort, n in (("A", 60), ("B", 40)):
        y = np.tile([0, 1, 1], n // 3 + 1)[:n]
        X = rng.normal(size=(n, 4)) + y[:, None] * np.array([1.0, 0.6, 0, 0])
        d = pd.DataFrame(X * [1, 10, 100, 1000], columns=["f0", "f1", "f2", "f3"])
        d.insert(0, "outcome", np.where(y == 1, "YES", "NO"))
        d.insert(0, "cohort", cohort)
        d.insert(0, "case_id", [f"{cohort}_{i}" for i in range(n)])
        rows.append(d)
    pd.concat(rows).to_csv(tmp_path / "table.tsv", sep="\t", index=False)
    results = tmp_path / "results"
    config = {"results": str(results), "input": {"images": None, "features": str(tmp_path / "table.tsv")},
              "cohorts": {"column": "cohort", "train": ["A"], "external": ["B"]},
              "outcome": {"type": "binary", "column": "outcome", "positive": "YES"},
              "model": {"Cs": [1.0], "inner_folds": 3}, "validation": {"cv_folds": 3, "cv_repeats": 1},
              "synthetic": {"enabled": True}, "report": {"pdf": False}}
    cfg = write_config(tmp_path / "config.yaml", small_statistics(config))
    targets = [str(results / "clinical/B/synthetic_comparison.tsv"), str(results / "analytical/synthetic_summary.json")]
    run = run_snakemake(tmp_path, cfg, *targets)
    assert run.returncode == 0, run.stderr[-3000:]
    split = pd.read_csv(results / "synthetic/split.tsv", sep="\t")
    assert split["case_id"].str.startswith("A_").all() and (split["role"] == "holdout").sum() == 12
    synthetic = pd.read_csv(results / "synthetic/features.tsv", sep="\t")
    assert len(synthetic) == 48 and list(synthetic.columns) == ["case_id", "label", "f0", "f1", "f2", "f3"]
    fidelity = pd.read_csv(results / "analytical/synthetic_fidelity.tsv", sep="\t")
    assert set(fidelity["stratum"].astype(str)) == {"all", "0", "1"} and fidelity["ks_qvalue"].between(0, 1).all()
    summary = json.loads((results / "analytical/synthetic_summary.json").read_text())
    assert summary["n_generator_train"] == 48 and summary["n_holdout"] == 12 and 0 <= summary["detection_auc"] <= 1
    comparison = pd.read_csv(results / "clinical/B/synthetic_comparison.tsv", sep="\t")
    assert list(comparison["model"]) == ["imaging", "synthetic_tstr", "synthetic_augmented", "smote_augmented"]
    assert (comparison["n"] == 40).all() and comparison["p_value"].iloc[1:].between(0, 1).all()
    for arm in ("synthetic_tstr", "synthetic_augmented", "smote_augmented"):  # no synthetic case is predicted
        for cohort, n in (("train", 60), ("B", 40)):
            preds = pd.read_csv(results / f"clinical/{cohort}/comparators/{arm}/predictions.tsv", sep="\t")
            assert len(preds) == n and not preds["case_id"].str.startswith("syn_").any()
        card = json.loads((results / f"clinical/model/comparators/{arm}/model_card.json").read_text())
        assert card["model"] == arm and card["n_train"] == 60 and "synthetic" in card
