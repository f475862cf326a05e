"""Paired model comparison."""
import numpy as np
import pandas as pd
import pytest

from acceflow.metrics.compare import compare_models
from acceflow.metrics.discrimination import delong_test


def test_compare_models_against_the_clinical_baseline():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    strong = y + rng.normal(0, 0.8, 200)
    weak = y + rng.normal(0, 3.0, 200)
    ids = [f"c{i}" for i in range(200)]
    preds = {"imaging": pd.DataFrame({"case_id": ids, "outcome": y, "probability": strong}),
             "clinical": pd.DataFrame({"case_id": ids[::-1], "outcome": y[::-1], "probability": weak[::-1]})}
    table = compare_models(preds).set_index("model")
    assert table.loc["imaging", "reference"] == "clinical"
    expected = delong_test(y, strong, weak)
    assert table.loc["imaging", "auc_difference"] == pytest.approx(expected["diff"])
    assert table.loc["imaging", "p_value"] == pytest.approx(expected["p_value"]) and expected["p_value"] < 0.01
    assert np.isnan(table.loc["clinical", "p_value"])


def test_compare_models_refuses_other_cases():
    a = pd.DataFrame({"case_id": ["1", "2", "3", "4"], "outcome": [0, 1, 0, 1], "probability": [.1, .9, .2, .8]})
    b = a.assign(case_id=["1", "2", "3", "5"])
    with pytest.raises(ValueError, match="other cases"):
        compare_models({"imaging": a, "clinical": b})
