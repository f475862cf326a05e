"""acceflow.study.task: one Task per outcome type gives what the per-type functions give."""
import pandas as pd
import pytest
from test_model import CONFIG as BINARY_CONFIG
from test_model import _table
from test_survival_model import CONFIG as SURVIVAL_CONFIG
from test_survival_model import _cohort

from acceflow.metrics.calibration import (
    binned_calibration,
    calibration_curve_band,
    calibration_level,
    calibration_summary,
)
from acceflow.metrics.decision_curve import decision_curve, decision_curve_ci
from acceflow.metrics.survival_utility import calibration_at, grouped_calibration_at, survival_decision_curve
from acceflow.study.card import ModelCard
from acceflow.study.survival_training import predict_survival_cohort, survival_cohort_metrics, train_survival
from acceflow.study.task import BinaryTask, SurvivalTask, task_for
from acceflow.study.training import predict_cohort, train

THRESHOLDS = BinaryTask.thresholds(0.05, 0.5, 0.05)


def test_task_for_reads_config_card_outcome_or_name():
    assert isinstance(task_for(BINARY_CONFIG), BinaryTask)
    assert isinstance(task_for(SURVIVAL_CONFIG["outcome"]), SurvivalTask)
    assert isinstance(task_for("survival"), SurvivalTask) and task_for({"outcome": {}}).name == "binary"
    with pytest.raises(ValueError, match="outcome.type 'ordinal' unknown"):
        task_for("ordinal")


def test_binary_task_equals_the_binary_functions():
    df, task = _table(), task_for(BINARY_CONFIG)
    model, card, preds, folds = task.train(df, BINARY_CONFIG, stable=["f0", "f1", "f2"])
    _, card0, preds0, folds0 = train(df, BINARY_CONFIG, stable=["f0", "f1", "f2"])
    assert isinstance(card, ModelCard) and card.to_dict() == card0.to_dict()
    pd.testing.assert_frame_equal(preds, preds0)
    pd.testing.assert_frame_equal(folds, folds0)
    ext = task.predict(model, card, df, "B")
    pd.testing.assert_frame_equal(ext, predict_cohort(model, card, df, "B"))

    y, p = ext["outcome"].to_numpy(), ext["probability"].to_numpy()
    summary, bins, curve = task.calibration(ext, card, bins=5, n_boot=50, seed=3)
    band = calibration_curve_band(y, p, n_boot=50, seed=3)
    expected = calibration_summary(y, p)
    expected["calibration_level"], expected["calibration_level_evidence"] = calibration_level(expected, band)
    assert summary == expected
    pd.testing.assert_frame_equal(curve, band)
    pd.testing.assert_frame_equal(bins, binned_calibration(y, p, n_bins=5))

    dc = task.decision_curve(ext, card, THRESHOLDS, n_boot=50, seed=3)
    pd.testing.assert_frame_equal(dc, decision_curve(y, p, THRESHOLDS).merge(
        decision_curve_ci(y, p, THRESHOLDS, n_boot=50, seed=3), on="threshold", validate="one_to_one"))

    m = task.metrics(ext, card, "B", n_bootstrap=200, seed=1)
    assert m["model"] == "imaging" and m["validation"] == "external (frozen model)" and 0 < m["auc"] < 1
    assert m["threshold_method"] == card["threshold"]["method"] and "at_threshold_sensitivity" in m
    internal = task.metrics(preds, card, "train", n_bootstrap=200, seed=1)
    assert internal["apparent_auc"] == card["apparent_auc"] and internal["validation"].startswith("internal")


def test_survival_task_equals_the_survival_functions():
    df, task = _cohort(), task_for(SURVIVAL_CONFIG)
    config = {**SURVIVAL_CONFIG, "features": None, "clinical": [], "reproducibility": {"filter_model_features": True}}
    model, card, preds, folds = task.train(df, config, stable=None)
    _, card0, preds0, _ = train_survival(df, config, ["f0", "f1", "f2", "f3"], "4 features")
    assert card["features"] == card0["features"] and card["coefficients"] == card0["coefficients"]
    pd.testing.assert_frame_equal(preds, preds0)
    ext = task.predict(model, card, df, "B")
    pd.testing.assert_frame_equal(ext, predict_survival_cohort(model, card, df, "B"))

    m = task.discrimination(ext, card, n_bootstrap=200, seed=2)
    assert m == survival_cohort_metrics(ext, card, n_boot=200, seed=2)
    assert task.metrics(preds, card, "train", n_bootstrap=200)["apparent_c_index"] == card["apparent_c_index"]

    t = card["horizon_days"]
    args = ext["time"].to_numpy(), ext["event"].to_numpy(), ext["risk_at_horizon"].to_numpy()
    summary, bins, curve = task.calibration(ext, card, bins=10)
    assert summary == calibration_at(*args, ext["risk"].to_numpy(), t)
    pd.testing.assert_frame_equal(bins, grouped_calibration_at(*args, t, n_groups=5))
    assert curve.empty and list(curve.columns) == ["predicted", "observed", "observed_ci_low", "observed_ci_high"]
    pd.testing.assert_frame_equal(task.decision_curve(ext, card, THRESHOLDS),
                                  survival_decision_curve(ext["time"], ext["event"], ext["risk_at_horizon"], t,
                                                          THRESHOLDS))
    assert not task.smooth_calibration and not task.explanations and card["threshold"] is None


def test_outcome_known_per_task():
    df = pd.DataFrame({"y": ["pos", "neg", None], "time": [10, -1, 5], "event": [1, 0, None]})
    assert task_for("binary").outcome_known(df, {"column": "y", "positive": "pos"}).tolist() == [True, True, False]
    assert task_for("survival").outcome_known(df, {"time": "time", "event": "event"}).tolist() == [True, False, False]
