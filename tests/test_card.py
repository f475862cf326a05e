"""acceflow.study.card: one ModelCard for every model kind, validated against its schema."""
import json

import pytest

from acceflow.study.card import ModelCard, ModelCardError, validate_card


def _card(**changes):
    data = {"model": "imaging", "role": "primary", "outcome": {"type": "binary", "column": "y", "positive": "pos"},
            "features": ["f0", "f1"], "learner": "l1_logistic", "hyperparameters": {"C": 0.1},
            "training_cohorts": ["A"], "external_cohorts": ["B"], "seed": 1, "validation": "external",
            "internal_validation": "repeated stratified 3-fold cross-validation", "n_train": 80,
            "n_events_train": 30, "threshold": {"method": "youden", "value": 0.4},
            "coefficients": {"f0": 1.2, "f1": 0.0}, "apparent_auc": 0.8}
    data.update(changes)
    return ModelCard.from_dict(data)


def test_round_trip_keeps_every_key(tmp_path):
    card = _card()
    card.model_file, card.model_sha256 = "model.skops", "a" * 64
    card.write(tmp_path / "model_card.json")
    back = ModelCard.read(tmp_path / "model_card.json")
    assert back == card and back.extra == {"coefficients": {"f0": 1.2, "f1": 0.0}, "apparent_auc": 0.8}
    on_disk = json.loads((tmp_path / "model_card.json").read_text())
    assert on_disk["coefficients"] == {"f0": 1.2, "f1": 0.0} and on_disk["model_sha256"] == "a" * 64
    # readers index the card as the JSON object it is written as
    assert card["features"] == ["f0", "f1"] and card["apparent_auc"] == 0.8 and card.get("intercept") is None


def test_survival_card_has_no_threshold():
    card = _card(outcome={"type": "survival", "time": "t", "event": "e"}, threshold=None, horizon_days=365.0)
    assert card["threshold"] is None and card["horizon_days"] == 365.0


@pytest.mark.parametrize("change, field", [
    ({"n_train": "eighty"}, "n_train"),
    ({"role": "main"}, "role"),
    ({"outcome": {"type": "ordinal"}}, "outcome.type"),
    ({"threshold": {"method": "youden"}}, "threshold"),
])
def test_schema_rejects_a_bad_card_naming_the_field(change, field):
    with pytest.raises(ModelCardError, match=rf"model card field {field}\b"):
        _card(**change)


def test_missing_field_is_named(tmp_path):
    data = _card().to_dict()
    del data["seed"]
    with pytest.raises(ModelCardError, match="model card field seed"):
        ModelCard.from_dict(data)
    (tmp_path / "card.json").write_text(json.dumps({**data, "seed": 1, "model_sha256": "not-a-hash"}))
    with pytest.raises(ModelCardError, match="card.json: model card field model_sha256"):
        ModelCard.read(tmp_path / "card.json")


def test_write_refuses_an_invalid_card(tmp_path):
    card = _card()
    card.seed = 1.5
    with pytest.raises(ModelCardError, match="field seed"):
        card.write(tmp_path / "c.json")
    assert not (tmp_path / "c.json").exists()
    with pytest.raises(ModelCardError, match="field learner"):
        validate_card({**_card().to_dict(), "learner": 3})
