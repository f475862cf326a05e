"""Federated training of the deep network (acceflow.deep.federated): known answers on tiny crops, CPU.

* FedAvg of one site for R rounds of E local epochs is central training for R*E epochs (same seed,
  batch order, dropout masks and augmentation): every tensor equal, bit for bit.
* Averaging identical state dicts returns them; a NaN update stops the round naming the site.
* The pooled channel statistics from the sites' sums equal those of the pooled crops.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from acceflow.deep.federated import (FederationError, aggregate_states, central_network_fit, crop_moments,  # noqa: E402
                                     federated_network_fit, initial_state, pooled_crop_statistics)
from acceflow.deep.train import channel_stats  # noqa: E402
from acceflow.models.federated import make_strategy  # noqa: E402
from acceflow.study.settings import section_settings  # noqa: E402

torch.set_num_threads(1)
# dropout and augmentation on: their randomness must also be cut by epoch, not by round
TINY = section_settings("deep", {"network": "resnet10", "batch_size": 4, "learning_rate": 1e-3, "dropout": 0.3,
                                 "augmentation": True, "device": "cpu", "crop_size": 16})


def _toy(n=8, size=8, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    X = rng.normal(size=(n, 1, size, size, size)).astype(np.float32) + shift
    X[y == 1, :, 2:6, 2:6, 2:6] += 2.0
    return X, y


def test_fedavg_of_one_site_is_central_training_for_rounds_times_local_epochs():
    X, y = _toy()
    _, central = central_network_fit(X, y, TINY, epochs=4, seed=7, site="pool")
    _, federated, rows = federated_network_fit({"pool": (X, y)}, TINY, rounds=2, local_epochs=2, seed=7)
    assert list(federated) == list(central)
    unequal = [k for k in central if not torch.equal(central[k], federated[k])]
    assert not unequal, unequal[:5]
    # and training moved the network (the identity is not that of an untouched network)
    start = initial_state(TINY, 1, 7)
    assert any(not torch.equal(start[k], central[k]) for k in start if start[k].is_floating_point())
    # rounds.tsv rows: one site, so the new global model is the site's update (drift 0)
    assert [r["round"] for r in rows] == [1, 2] and all(r["drift"] == 0.0 and r["update_norm"] > 0 for r in rows)
    # cut into other rounds (4 x 1), the same network: batch order does not depend on the rounds
    _, four, _ = federated_network_fit({"pool": (X, y)}, TINY, rounds=4, local_epochs=1, seed=7)
    assert all(torch.equal(central[k], four[k]) for k in central)


def test_averaging_identical_state_dicts_returns_them_and_weights_by_cases():
    state = initial_state(TINY, 1, 3)
    for strategy in ("fedavg", "fedprox"):
        new, rows = aggregate_states(make_strategy(strategy, 0.1), 1, [("a", state, 3), ("b", state, 7)], state)
        assert list(new) == list(state)
        assert all(torch.equal(new[k], state[k]) and new[k].dtype == state[k].dtype for k in state)
        assert [r["drift"] for r in rows] == [0.0, 0.0]
    # two different networks: the case-weighted mean (3/10 and 7/10) of every floating tensor
    other = initial_state(TINY, 1, 4)
    new, rows = aggregate_states(make_strategy("fedavg"), 1, [("a", state, 3), ("b", other, 7)], state)
    key = next(k for k in state if k.endswith("conv1.weight"))
    expected = (0.3 * state[key].double() + 0.7 * other[key].double()).float()
    assert torch.allclose(new[key], expected, rtol=0, atol=1e-7)
    assert rows[0]["update_norm"] == 0.0 and rows[1]["update_norm"] > 0


def test_a_nan_update_stops_the_round_naming_the_site():
    state = initial_state(TINY, 1, 3)
    bad = {k: v.clone() for k, v in state.items()}
    key = next(k for k in state if k.endswith("conv1.weight"))
    bad[key][0] = float("nan")
    with pytest.raises(FederationError, match="round 2: the update of site hospital_B holds NaN"):
        aggregate_states(make_strategy("fedavg"), 2, [("hospital_A", state, 5), ("hospital_B", bad, 5)], state)


def test_pooled_crop_statistics_equal_the_pooled_crops_and_a_one_class_site_is_refused():
    a, ya = _toy(6, seed=1)
    b, yb = _toy(8, seed=2, shift=3.0)
    stats = pooled_crop_statistics([crop_moments(a, ya, "a"), crop_moments(b, yb, "b")])
    mean, sd = channel_stats(np.concatenate([a, b]).astype(np.float64))
    assert stats["mean"] == pytest.approx(mean.tolist(), rel=1e-6) and stats["sd"] == pytest.approx(sd.tolist(), rel=1e-6)
    assert stats["n"] == 14 and stats["n_events"] == 7 and stats["pos_weight"] == 1.0
    with pytest.raises(FederationError, match="site c: 0 positive and 4 negative"):
        crop_moments(a[:4], np.zeros(4), "c")


@pytest.mark.integration
def test_a_site_job_reads_only_its_own_files_and_the_servers(tmp_path):
    """The DAG (a dry run: no job runs, ~10 s): every per-site job of the federated network reads only
    its own site's files and the server's; the server's jobs read no crop, no feature table."""
    import re

    from conftest import demo_config, run_snakemake, write_config

    results = tmp_path / "results"
    cfg = write_config(tmp_path / "config.yaml", demo_config(results, "config/studies/demo_across_sites.yaml"))
    fed = results / "clinical" / "federated_deep"
    run = run_snakemake(tmp_path, cfg, "--dry-run", str(fed / "rounds.tsv"))
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    jobs = re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", run.stdout, re.M)
    seen = {}
    for rule, body in jobs:
        fields = dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
        inputs = [f.strip() for f in fields.get("input", "").split(",") if f.strip()]
        seen[rule] = seen.get(rule, 0) + 1
        if rule in ("federated_deep_site_round", "federated_deep_moments"):
            site = re.search(r"sites/([^/]+)/", fields["output"]).group(1)
            assert inputs and all(f"federated_deep/sites/{site}/" in f or "federated_deep/server/" in f
                                  for f in inputs), (rule, site, inputs)
        if rule in ("federated_deep_standardise", "federated_deep_aggregate", "federated_deep_train"):
            assert all("/server/" in f or f.endswith("moments.json") or re.search(r"sites/[^/]+/round_\d+\.pt$", f)
                       for f in inputs), (rule, inputs)
    # demo_across_sites: 2 sites x 4 rounds, one aggregation per round
    assert seen["federated_deep_site_round"] == 8 and seen["federated_deep_aggregate"] == 4, seen


def test_deep_federated_config_is_checked():
    from acceflow.study.settings import ConfigError, model_names

    base = {"cohorts": {"train": ["a", "b"], "external": ["c"]}, "outcome": {"type": "binary"}, "clinical": [],
            "input": {"images": "manifest.tsv"}, "model": {"primary": "imaging", "comparators": ["deep_federated"]}}
    assert model_names(base) == ("imaging", ["deep_federated"])
    one_site = {**base, "cohorts": {"train": ["a"], "external": ["c"]}}
    with pytest.raises(ConfigError, match=r"cohorts.train has 1 \(\['a'\]\): name at least two training cohorts"):
        model_names(one_site)
    with pytest.raises(ConfigError, match="needs images"):
        model_names({**base, "input": {"images": None, "features": "table.csv"}})
    with pytest.raises(ConfigError, match="one image network"):
        model_names({**base, "clinical": ["age"], "deep": {"fusion": "intermediate", "clinical_covariates": ["age"]}})


def test_deep_federated_as_the_primary_model_is_accepted_and_its_limits_are_named():
    from acceflow.study.settings import ConfigError, model_names, validate_config

    base = {"cohorts": {"train": ["a", "b"], "external": ["c"]}, "outcome": {"type": "binary"}, "clinical": [],
            "input": {"images": "manifest.tsv"}, "model": {"primary": "deep_federated", "comparators": ["imaging"]}}
    assert model_names(base) == ("deep_federated", ["imaging"])
    with pytest.raises(ConfigError, match="model.primary: deep_federated with validation.internal_external: true is "
                                          "not supported.*set validation.internal_external: false"):
        model_names({**base, "validation": {"internal_external": True}})
    with pytest.raises(ConfigError, match=r"cohorts.train has 1 \(\['a'\]\): name at least two training cohorts"):
        model_names({**base, "cohorts": {"train": ["a"], "external": ["c"]}})
    with pytest.raises(ConfigError, match="binary outcomes only"):
        model_names({**base, "outcome": {"type": "survival"}})
    # the schema takes it as a primary model (the demo study with it as primary validates)
    import yaml
    from conftest import REPO

    config = yaml.safe_load((REPO / "config/studies/demo_across_sites.yaml").read_text())
    config["model"] = {"primary": "deep_federated", "comparators": ["imaging", "deep"]}
    config["validation"]["internal_external"] = False
    validate_config(config)
    assert model_names(config) == ("deep_federated", ["imaging", "deep", "deep_dann"])


@pytest.mark.integration
def test_deep_federated_as_primary_writes_the_primary_paths_in_the_plan(tmp_path):
    """Dry run (no job executed, ~10 s): the federated network's rules write the primary model, its card, the
    training (apparent) predictions and the external cohort's; rules train / predict do not run."""
    import re

    from conftest import demo_config, run_snakemake, write_config

    results = tmp_path / "results"
    config = demo_config(results, "config/studies/demo_across_sites.yaml")
    config["model"] = {"primary": "deep_federated", "comparators": ["imaging"]}
    config["validation"]["internal_external"] = False
    config["deep"].update(domain_adaptation="none", target_cohorts=[])
    cfg = write_config(tmp_path / "config.yaml", config)
    run = run_snakemake(tmp_path, cfg, "--dry-run", str(results / "clinical/model/model_card.json"),
                        str(results / "clinical/train/predictions.tsv"), str(results / "clinical/site_C/predictions.tsv"))
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    jobs = {rule: dict(re.findall(r"^    (\w+): (.*)$", body, re.M))
            for rule, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n)+)", run.stdout, re.M)}
    assert not {"train", "deep_train", "predict", "deep_predict"} & set(jobs), sorted(jobs)
    train = jobs["federated_deep_train"]["output"]
    assert re.search(r"results/clinical/model/model\.pt, \S*results/clinical/model/model_card\.json", train), train
    assert jobs["federated_deep_apparent"]["output"].endswith("results/clinical/train/predictions.tsv")
    assert "results/clinical/model/model.pt" in jobs["federated_deep_apparent"]["input"]
    external = jobs["deep_federated_predict"]  # the frozen federated network on the external cohort
    assert external["output"].endswith("results/clinical/site_C/predictions.tsv"), external
    assert "results/clinical/model/model.pt" in external["input"]


def test_the_federated_networks_card_says_primary_when_it_is_the_primary_model():
    """The card written by rule federated_deep_train: role primary with model.primary: deep_federated,
    comparator otherwise (the server's files of one aggregated round on tiny crops)."""
    from acceflow.study import federated_deep as fd

    deep = {"network": "resnet10", "batch_size": 4, "learning_rate": 1e-3, "device": "cpu", "crop_size": 16}
    config = {"seed": 5, "cohorts": {"train": ["a", "b"], "external": ["c"]},
              "outcome": {"type": "binary", "column": "y", "positive": 1}, "deep": deep,
              "federated": {"deep": {"rounds": 1, "local_epochs": 1}}}
    sites = {s: {"X": X, "y": y} for s, (X, y) in (("a", _toy(seed=1)), ("b", _toy(seed=2, shift=0.5)))}
    stats, start = fd.standardisation_step([fd.moments_step(d, s) for s, d in sites.items()], config)
    # two sites' updates (the start network each: a training step is not what this test is about)
    updates = [{"site": s, "round": 1, "n": len(d["y"]), "loss": 0.7, "state_dict": start["state_dict"]}
               for s, d in sites.items()]
    last = fd.aggregate_step(updates, start, config)
    roles = {}
    for primary in ("deep_federated", "imaging"):
        _, card, rounds = fd.final_model(stats, [last], {**config, "model": {"primary": primary}})
        c = card.to_dict()
        roles[primary] = c["role"]
        assert c["model"] == "deep_federated" and "federated" in c["learner"] and c["n_train"] == 16
        assert list(rounds["site"]) == ["a", "b"]
    assert roles == {"deep_federated": "primary", "imaging": "comparator"}
