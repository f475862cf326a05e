"""What the dossier shows for the reference-exact edge cases of issue 15: probabilities at 0 / 1, estimates
that do not exist (NaN with the reason, never a printed 1e15), the isotonic map's steps, unlinked readers."""
import json

import numpy as np
import pandas as pd

from fake_results import make_results

from acceflow.report.dossier import build_dossier


def _edit_json(path, **changes):
    d = json.loads(path.read_text())
    d.update(changes)
    path.write_text(json.dumps(d))


def test_calibration_flags_and_isotonic_recalibration_in_the_dossier(tmp_path):
    config = make_results(tmp_path)
    _edit_json(tmp_path / "utility" / "site_B" / "calibration.json", n_prob_at_bounds=2.0,
               calibration_slope=None, calibration_slope_ci_low=None, calibration_slope_ci_high=None,
               calibration_note="calibration slope not estimable: the predictions separate the outcomes")
    nan = float("nan")
    recal = pd.DataFrame([
        {"method": "original", "evaluation": "as predicted", "calibration_intercept": 0.04,
         "calibration_intercept_ci_low": -0.6, "calibration_intercept_ci_high": 0.7, "calibration_slope": 1.23,
         "calibration_slope_ci_low": 0.5, "calibration_slope_ci_high": 2.0, "ici": 0.0547, "brier": 0.1448,
         "recalibrated_low": 0.0153, "recalibrated_high": 0.7365, "n_steps_min": nan, "n_steps_max": nan,
         "note": ""},
        {"method": "isotonic", "evaluation": "out-of-fold, 5-fold CV within the cohort",
         "calibration_intercept": nan, "calibration_intercept_ci_low": nan, "calibration_intercept_ci_high": nan,
         "calibration_slope": nan, "calibration_slope_ci_low": nan, "calibration_slope_ci_high": nan,
         "ici": 0.1244, "brier": 0.1967, "recalibrated_low": 1e-6, "recalibrated_high": 1 - 1e-6,
         "n_steps_min": 4.0, "n_steps_max": 6.0, "note": "calibration intercept and slope not applicable"},
    ])
    recal.to_csv(tmp_path / "utility" / "site_B" / "recalibration.tsv", sep="\t", index=False)
    build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    html = (tmp_path / "d.html").read_text()
    assert "2 predicted probabilities of exactly 0 or 1" in html
    assert "calibration slope not estimable: the predictions separate the outcomes" in html
    assert "not applicable (step function, 4–6 steps per fold)" in html
    assert "0.124" in html and "0.197" in html  # the isotonic map's ICI and Brier are still shown
    assert "e+15" not in html and "e+14" not in html
    # a cohort without any of this gets no warning
    assert "train — internal validation (out-of-fold): 2 predicted" not in html
