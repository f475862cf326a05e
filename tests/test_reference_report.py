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


class _Snakemake:
    """The attributes of Snakemake's ``snakemake`` object that workflow/scripts/icc.py reads."""

    def __init__(self, **sections):
        for name, value in sections.items():
            setattr(self, name, value)


def _run_icc_script(tmp_path, design, icc_form):
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from test_icc import SF

    rng = np.random.default_rng(0)  # each of the 6 subjects read by 4 of 12 readers
    long = pd.DataFrame([{"case_id": f"c{i + 1}", "repeat": f"R{r:02d}", "score": SF[i, j]}
                         for i in range(6) for j, r in enumerate(rng.choice(12, 4, replace=False))])
    long.to_csv(tmp_path / "repeats.tsv", sep="\t", index=False)
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("icc", "agreement", "dropped")}
    out["stable"] = str(tmp_path / "stable.txt")
    snakemake = _Snakemake(
        input=SimpleNamespace(repeats=str(tmp_path / "repeats.tsv")), output=SimpleNamespace(**out),
        params=SimpleNamespace(settings={"design": design, "icc_form": icc_form, "threshold": 0.75, "max_wcv": None},
                               features=None, alpha=0.05),
        log=[str(tmp_path / "icc.log")])
    script = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "icc.py"
    runpy.run_path(str(script), init_globals={"snakemake": snakemake})
    return pd.read_csv(out["icc"], sep="\t", keep_default_na=False), (tmp_path / "icc.log").read_text()


def test_unlinked_readers_auto_is_icc11_without_warning(tmp_path):
    table, log = _run_icc_script(tmp_path, "inter-reader-unlinked", "auto")
    row = table.iloc[0]
    assert row["icc_form"] == "ICC(1,1)" and row["n_subjects"] == 6 and round(row["icc"], 2) == 0.17
    assert row["icc_form_warning"] == "" and "WARNING" not in log


def test_two_way_form_for_unlinked_readers_warns_in_log_and_dossier(tmp_path):
    (tmp_path / "run").mkdir()
    table, log = _run_icc_script(tmp_path / "run", "inter-reader-unlinked", "ICC(2,1)")
    assert table.iloc[0]["icc_form"] == "ICC(2,1)"  # computed as asked ...
    assert "WARNING: ICC(2,1) was asked for, but the readers are not the same people" in log  # ... and flagged
    assert "not the same people" in table.iloc[0]["icc_form_warning"]
    # the dossier shows the note in its reproducibility part (it reads icc.tsv, computes nothing)
    config = make_results(tmp_path)
    icc = pd.read_csv(tmp_path / "analytical" / "icc.tsv", sep="\t")
    icc["design"], icc["icc_form_warning"] = "inter-reader-unlinked", table.iloc[0]["icc_form_warning"]
    icc.to_csv(tmp_path / "analytical" / "icc.tsv", sep="\t", index=False)
    build_dossier(tmp_path, config, ["train", "site_B"], tmp_path / "d.html", tmp_path / "s.json")
    html = (tmp_path / "d.html").read_text()
    section = html[html.index('id="analytical"'):html.index('id="clinical"')]
    assert "ICC form not valid for this design" in section and "not the same people across subjects" in section
    # linked readers: no such note
    (tmp_path / "linked").mkdir()
    _, log_linked = _run_icc_script(tmp_path / "linked", "inter-reader", "ICC(2,1)")
    assert "WARNING" not in log_linked
