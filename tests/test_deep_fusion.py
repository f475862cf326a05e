"""Fusion of the deep biomarker (issue 19): early / intermediate / late forward shapes, the clinical
encoder's gradients, stacking on out-of-fold predictions only, the survival network's baseline and
its refusal of too few events, and the old spelling of `late`. Tiny networks (ResNet10 on 16-voxel
crops, 1-2 epochs, CPU)."""
import copy

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from acceflow.deep import stacking  # noqa: E402
from acceflow.deep.cox import breslow_baseline, risk_at  # noqa: E402
from acceflow.deep.networks import build_network  # noqa: E402
from acceflow.deep.train import (  # noqa: E402
    DeepTrainingError,
    check_events_per_batch,
    cross_validate,
    fit,
    load_model,
    predict,
    save_model,
)
from acceflow.study.settings import ConfigError, section_settings, validate_config  # noqa: E402
from acceflow.study.settings import check_config as _check  # noqa: E402


def check_config(config):
    """Validate (defaults filled, in place, on a copy) and check, as the workflow does."""
    config = copy.deepcopy(config)
    validate_config(config)
    _check(config)

torch.set_num_threads(1)
TINY = section_settings("deep", {"network": "resnet10", "epochs": 1, "batch_size": 4, "patience": 5,
                                 "learning_rate": 1e-3, "validation_fraction": 0.25, "augmentation": False,
                                 "cv_folds": 2, "device": "cpu", "dropout": 0.0})
QUIET = {"log": lambda line: None}


def _crops(n=12, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2, size, size, size)).astype(np.float32)


def test_each_fusion_has_the_stated_shapes():
    x = torch.randn(3, 2, 16, 16, 16)
    c = torch.randn(3, 4)
    early = build_network("resnet10", 2, "early").eval()
    inter = build_network("resnet10", 2, "intermediate", n_clinical=4, clinical_dim=8).eval()
    with torch.no_grad():
        assert early(x).shape == (3, 1) and early.embed(x).shape == (3, 512)
        # two image encoders (512 each) and the clinical MLP's 8-value latent vector, one head
        assert len(inter.branches) == 2 and inter.embed(x, c).shape == (3, 2 * 512 + 8) and inter(x, c).shape == (3, 1)
    with pytest.raises(ValueError, match="expects 4 clinical covariates"):
        inter(x)
    with pytest.raises(ValueError, match="not one network"):
        build_network("resnet10", 2, "late")
    with pytest.raises(ValueError, match="intermediate fusion only"):
        build_network("resnet10", 2, "early", n_clinical=2)
    # late fusion: one single-channel network per modality, combined by the meta-learner
    late = stacking.apply_meta(stacking.fit_meta(np.array([[0.0, 1.0], [1.0, 0.2], [2.0, 2.1], [0.5, 1.5]]), False,
                                                 y=np.array([0, 0, 1, 1])), np.zeros((5, 2)), False)
    assert late.shape == (5,) and ((late > 0) & (late < 1)).all()


def test_the_clinical_branch_receives_gradients_end_to_end():
    torch.manual_seed(0)
    net = build_network("resnet10", 2, "intermediate", n_clinical=3)
    out = net(torch.randn(4, 2, 16, 16, 16), torch.randn(4, 3))
    torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], torch.tensor([0.0, 1.0, 0.0, 1.0])).backward()
    grads = [p.grad for p in net.clinical.parameters()]
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads)
    assert all(p.grad is not None for p in net.branches[1].parameters() if p.requires_grad)


def test_intermediate_fusion_imputes_missing_covariates_by_the_training_median(tmp_path):
    X = _crops()
    y = np.array([0, 1] * 6)
    C = np.column_stack([np.arange(12.0), np.r_[np.nan, np.ones(11)]])
    C[3, 0] = np.nan
    settings = {**TINY, "fusion": "intermediate"}
    f = fit(X, y, settings, seed=1, clinical=C, **QUIET)
    median, mean, sd = (np.asarray(v) for v in f["clinical"])
    assert np.isfinite(median).all() and median[1] == 1.0  # fitted on the training part only
    p, _ = predict(f, X, clinical=C)
    assert np.isfinite(p).all()
    sha = save_model(f, tmp_path / "m.pt")
    g = load_model(tmp_path / "m.pt", sha)
    assert np.array_equal(predict(g, X, clinical=C)[0], p)
    with pytest.raises(ValueError, match="clinical encoder"):
        predict(f, X)


def test_stacking_meta_learner_sees_out_of_fold_predictions_only():
    """Each source output encodes (call, case); every row the meta-learner is fitted on must come from a
    call whose training cases exclude that case, and the meta-learner predicting fold k must see no row
    of fold k."""
    n = 12
    y = np.array([0, 1] * 6)
    folds = [(np.arange(n)[np.arange(n) % 3 != k], np.arange(n)[np.arange(n) % 3 == k]) for k in range(3)]
    calls = []

    def source(tr, te):
        calls.append((set(tr.tolist()), set(te.tolist())))
        return np.array([(len(calls) * 100 + i) / 10000.0 for i in te])  # a probability in (0, 1)

    seen = []
    real_fit = stacking.fit_meta

    def spy(Z, survival, **outcome):
        seen.append(np.round(1 / (1 + np.exp(-Z)) * 10000).astype(int))  # back from the logits
        return real_fit(Z, survival, **outcome)

    mp = pytest.MonkeyPatch()
    mp.setattr(stacking, "fit_meta", spy)
    try:
        out = stacking.stack({"a": source, "b": source}, folds, False, y=y, log=lambda line: None)
    finally:
        mp.undo()
    assert len(seen) == 4  # one per fold (cross-fitted) and the final one
    for rows in seen:
        for code in rows.ravel():
            call, case = divmod(int(code), 100)
            train, test = calls[call - 1]
            assert case in test and case not in train
    for (_, te), rows in zip(folds, seen[:3]):
        assert not set(int(c) % 100 for c in rows.ravel()) & set(te.tolist())
    assert len(seen[3]) == n and out["oof"].shape == (n,) and np.isfinite(out["oof"]).all()


@pytest.mark.parametrize("covariates", [["age"], []])
def test_late_fusion_of_two_networks_and_a_clinical_model_through_the_study(tmp_path, covariates):
    from acceflow.deep.crops import save_crop
    from acceflow.study.deep import predict_study, train_study

    X = _crops(n=12)
    crops = {}
    for i in range(12):
        path = tmp_path / f"c{i}.npz"
        save_crop({"image": X[i], "modalities": np.array(["MR", "PET"])}, path)
        crops[f"c{i}"] = str(path)
    table = pd.DataFrame({"case_id": [f"c{i}" for i in range(12)], "cohort": ["A"] * 12,
                          "outcome": [0, 1] * 6, "age": np.linspace(40, 80, 12)})
    config = {"seed": 1, "cohorts": {"train": ["A"], "external": []},
              "outcome": {"type": "binary", "column": "outcome", "positive": 1}, "model": {},
              "deep": {**TINY, "fusion": "late", "meta_learner": "auto", "clinical_covariates": covariates}}
    fitted, card, preds, folds, history = train_study(table, crops, config, **QUIET)
    sources = ["network_MR", "network_PET"] + (["clinical"] if covariates else [])
    assert fitted["names"] == sources and card["stacking"]["sources"] == sources
    assert (card["stacking"]["clinical_model"] is None) == (not covariates)
    assert preds["probability"].between(0, 1).all() and len(preds) == 12 and set(history["source"]) == {
        "network_MR", "network_PET"}
    sha = save_model(fitted, tmp_path / "late.pt")
    again = load_model(tmp_path / "late.pt", sha)
    a = predict_study(fitted, card, table, crops, "A", **QUIET)
    b = predict_study(again, card, table, crops, "A", **QUIET)
    assert np.allclose(a["probability"], b["probability"])


def test_survival_network_centres_risks_and_keeps_a_breslow_baseline():
    X = _crops(n=16)
    rng = np.random.default_rng(4)
    time, event = rng.uniform(100, 1000, 16), np.array([1, 0, 1, 1] * 4)
    f = fit(X, None, {**TINY, "batch_size": 8}, seed=2, time=time, event=event, **QUIET)
    risk, _ = predict(f, X)
    assert abs(risk.mean()) < 1e-5  # centred on the training cases
    (oof, at_h), folds = cross_validate(X, None, {**TINY, "batch_size": 8}, seed=2, time=time, event=event,
                                        horizon=500.0, **QUIET)
    assert np.isfinite(oof).all() and ((at_h >= 0) & (at_h <= 1)).all() and "c_index" in folds
    # Breslow by hand: times 1, 2 (events), 3 (censored), risks 0, log 2, 0: H0(1) = 1/4, H0(2) = 1/4 + 1/3
    t, h = breslow_baseline([1.0, 2.0, 3.0], [1, 1, 0], [0.0, np.log(2.0), 0.0])
    assert list(t) == [1.0, 2.0] and np.allclose(h, [0.25, 0.25 + 1 / 3])
    assert risk_at(t, h, [0.0], 2.5)[0] == pytest.approx(1 - np.exp(-(0.25 + 1 / 3)))
    assert risk_at(t, h, [0.0], 0.5)[0] == 0.0


def test_survival_cohort_with_too_few_events_for_the_batches_is_refused():
    X = _crops(n=16)
    time, event = np.linspace(100, 1000, 16), np.r_[np.ones(2), np.zeros(14)]
    with pytest.raises(DeepTrainingError, match=r"2 event\(s\) in 16 cases.*deep.batch_size to at least 8"):
        fit(X, None, TINY, seed=1, time=time, event=event, **QUIET)
    check_events_per_batch(np.r_[np.ones(4), np.zeros(12)], 4)  # one event per batch on average: accepted


def test_config_tells_the_old_late_spelling_and_covariate_errors():
    import yaml
    from conftest import REPO

    config = yaml.safe_load((REPO / "config/studies/demo_deep.yaml").read_text())
    old = copy.deepcopy(config)
    old["deep"]["fusion"] = "late"
    with pytest.raises(ConfigError, match="is intermediate fusion: write deep.fusion: intermediate"):
        check_config(old)
    old["deep"]["meta_learner"] = "auto"
    check_config(old)
    cov = copy.deepcopy(config)
    cov["deep"]["clinical_covariates"] = ["age"]
    with pytest.raises(ConfigError, match="early fusion stacks image channels only"):
        check_config(cov)
    cov["deep"]["fusion"] = "intermediate"
    check_config(cov)
    cov["deep"]["clinical_covariates"] = ["bmi"]
    with pytest.raises(ConfigError, match=r"\['bmi'\].*list them there too"):
        check_config(cov)


def test_clinical_covariates_bad_input_names_the_case_and_the_fix():
    from acceflow.study.deep import clinical_matrix

    rows = pd.DataFrame({"case_id": ["a", "b", "c"], "age": [61, None, 70], "sex": ["M", "F", "M"]})
    logged = []
    C = clinical_matrix(rows, ["age"], log=logged.append)
    assert np.isnan(C[1, 0]) and C[2, 0] == 70 and "['b']: imputed by the training median" in logged[0]
    with pytest.raises(ValueError, match=r"'sex' has the non-numeric value 'M' for case a .*encode the column"):
        clinical_matrix(rows, ["sex"])
    with pytest.raises(ValueError, match=r"\['bmi'\].*list them under `clinical` too"):
        clinical_matrix(rows, ["bmi"])
    assert clinical_matrix(rows, []) is None
