"""Domain-adversarial training (acceflow.deep.dann): the gradient reversal layer, the lambda
schedule, a tiny DANN fit on CPU, and a study whose target cohort has no labels. Tiny crops, two
epochs: the file runs in about half a minute."""
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from acceflow.deep.crops import save_crop  # noqa: E402
from acceflow.deep.dann import DannSetup, dann_lambda, grad_reverse, site_discriminator  # noqa: E402
from acceflow.deep.train import fit, predict  # noqa: E402
from acceflow.study.deep import train_study  # noqa: E402
from acceflow.study.settings import ConfigError, model_names, section_settings  # noqa: E402

torch.set_num_threads(1)
TINY = section_settings("deep", {"network": "resnet10", "epochs": 2, "batch_size": 4, "patience": 10,
                                 "learning_rate": 1e-3, "validation_fraction": 0.25, "augmentation": False,
                                 "cv_folds": 2, "device": "cpu", "dropout": 0.0, "crop_size": 16})


def test_gradient_reversal_flips_the_gradient_times_lambda():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 3, dtype=torch.float64)
    (x * w).sum().backward()
    plain = x.grad.clone()
    for lam in (0.0, 0.3, 1.0):
        x.grad = None
        y = grad_reverse(x, lam)
        assert torch.equal(y, x)  # identity forward
        (y * w).sum().backward()
        assert torch.equal(x.grad, -lam * plain)  # exactly -lambda times the gradient
    # through a layer: the encoder's gradient from the discriminator is reversed, the discriminator's own is not
    torch.manual_seed(0)
    disc = site_discriminator(3, 2, hidden=4).double()
    target = torch.tensor([0, 1, 0, 1, 1])
    grads = []
    for reverse in (False, True):
        x.grad = None
        disc.zero_grad()
        h = grad_reverse(x, 1.0) if reverse else x
        torch.nn.functional.cross_entropy(disc(h), target).backward()
        grads.append((x.grad.clone(), disc[0].weight.grad.clone()))
    assert torch.allclose(grads[1][0], -grads[0][0]) and torch.equal(grads[1][1], grads[0][1])


def test_lambda_schedule_of_ganin():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert all(np.diff([dann_lambda(p) for p in np.linspace(0, 1, 11)]) > 0)


def _toy(n=16, size=16, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    X = rng.normal(size=(n, 1, size, size, size)).astype(np.float32) + shift
    X[y == 1, :, 5:11, 5:11, 5:11] += 2.0
    return X, y


def test_dann_fit_runs_on_cpu_and_records_the_adversarial_terms():
    X, y = _toy()
    Xt, _ = _toy(n=10, seed=1, shift=1.5)  # a shifted, unlabelled target site
    domain = DannSetup(Xt, ["site_T"] * 10, ["site_S"] * 16)
    f = fit(X, y, TINY, seed=3, log=lambda s: None, domain=domain)
    h = f["history"]
    assert len(h) == 2 and {"lambda", "domain_loss", "domain_accuracy"} <= set(h[0])
    assert 0 < h[0]["lambda"] < h[1]["lambda"] < 1 and np.isfinite(h[1]["domain_loss"])
    assert f["domain_adaptation"]["sites"] == ["site_S", "site_T"]
    p, emb = predict(f, Xt, embed=True)
    assert p.shape == (10,) and np.isfinite(p).all() and emb.shape == (10, 512)
    # the same seed without adaptation gives another network (the discriminator did change the encoder)
    plain = fit(X, y, TINY, seed=3, log=lambda s: None)
    assert not np.allclose(predict(plain, Xt)[0], p)
    with pytest.raises(ValueError, match="both training and target"):
        DannSetup(Xt, ["site_S"] * 10, ["site_S"] * 16)


def test_study_with_dann_never_reads_the_target_labels(tmp_path):
    X, y = _toy(n=16)
    Xt, _ = _toy(n=8, seed=2, shift=1.0)
    crops, rows = {}, []
    for i, (img, label, cohort) in enumerate([*zip(X, y, ["site_A"] * 16), *zip(Xt, [np.nan] * 8, ["site_T"] * 8)]):
        path = tmp_path / f"c{i}.npz"
        save_crop({"image": img, "modalities": np.array(["CT"])}, path)
        crops[f"c{i}"] = str(path)
        rows.append({"case_id": f"c{i}", "cohort": cohort, "outcome": label})
    table = pd.DataFrame(rows)  # the target cohort's outcomes are all missing
    config = {"seed": 1, "cohorts": {"train": ["site_A"], "external": ["site_T"]},
              "outcome": {"type": "binary", "column": "outcome", "positive": 1},
              "model": {"threshold": "youden", "threshold_target": None},
              "deep": {**TINY, "epochs": 1, "domain_adaptation": "dann", "target_cohorts": ["site_T"]}}
    lines = []
    fitted, card, preds, folds, history = train_study(table, crops, config, log=lines.append)
    assert card["model"] == "deep_dann" and "DANN" in card["learner"]
    da = card["domain_adaptation"]
    assert da["target_cohorts"] == ["site_T"] and da["target_cases"] == {"site_T": 8}
    assert da["target_outcomes_used"] is False and len(preds) == 16 and len(folds) == 2
    assert "lambda" in history and any("images only, no outcome" in line for line in lines)


def test_config_adds_the_dann_comparator_and_checks_the_target_cohorts():
    base = {"outcome": {"type": "binary"}, "clinical": [], "input": {"images": "m.tsv"},
            "cohorts": {"train": ["site_A"], "external": ["site_B"]},
            "model": {"primary": "imaging", "comparators": ["deep"]}}
    assert model_names({**base, "deep": {"domain_adaptation": "dann", "target_cohorts": ["site_B"]}}) == \
        ("imaging", ["deep", "deep_dann"])
    assert model_names({**base, "deep": {"domain_adaptation": "none"}}) == ("imaging", ["deep"])
    with pytest.raises(ConfigError, match="deep.target_cohorts"):
        model_names({**base, "deep": {"domain_adaptation": "dann", "target_cohorts": []}})
    with pytest.raises(ConfigError, match="training cohort"):
        model_names({**base, "deep": {"domain_adaptation": "dann", "target_cohorts": ["site_A"]}})
    with pytest.raises(ConfigError, match="add deep to model.comparators"):
        model_names({**base, "model": {"primary": "imaging", "comparators": []},
                     "deep": {"domain_adaptation": "dann", "target_cohorts": ["site_B"]}})


def test_the_dann_demo_config_validates_and_adds_the_comparator():
    import yaml
    from conftest import REPO

    from acceflow.study.settings import validate_config

    config = yaml.safe_load((REPO / "config/studies/demo_dann.yaml").read_text())
    validate_config(config)
    assert model_names(config) == ("imaging", ["clinical", "deep", "deep_dann"])
    assert config["deep"]["target_cohorts"] == config["cohorts"]["external"]
