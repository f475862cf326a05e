"""acceflow.study.settings: defaults come from the config schema only."""
import pytest

from acceflow.study.settings import (
    ConfigError,
    ModelSettings,
    load_schema,
    model_settings,
    schema_defaults,
    section_settings,
    with_defaults,
)


def test_model_defaults_are_the_schemas():
    props = load_schema()["properties"]["model"]["properties"]
    expected = {k: v["default"] for k, v in props.items() if "default" in v}
    assert schema_defaults("model") == expected
    assert model_settings({}) == expected
    assert ModelSettings.from_config({}).as_dict() == {k: expected[k] for k in ModelSettings.__dataclass_fields__}


def test_partial_config_gets_the_schema_defaults_and_keeps_its_own():
    config = {"model": {"learner": "random_forest"}, "validation": {"cv_folds": 3}}
    filled = with_defaults(config)
    assert filled["model"]["learner"] == "random_forest" and filled["model"]["inner_folds"] == 5
    assert filled["validation"]["cv_folds"] == 3 and filled["validation"]["cv_repeats"] == 5
    assert filled["seed"] == 42 and config == {"model": {"learner": "random_forest"}, "validation": {"cv_folds": 3}}
    assert model_settings(config)["learner"] == "random_forest" and model_settings(config)["min_events"] == 10
    assert ModelSettings.from_config(filled).Cs == [0.01, 0.0316, 0.1, 0.316, 1.0, 3.16, 10.0]


def test_defaults_are_not_shared_between_calls():
    a = schema_defaults("model")
    a["Cs"].append(99.0)
    assert 99.0 not in schema_defaults("model")["Cs"]


def test_schema_violation_names_the_key():
    with pytest.raises(ConfigError, match=r"config key validation.cv_folds"):
        with_defaults({"validation": {"cv_folds": 1}})


def test_section_settings_fills_the_schemas_defaults_and_merges_nested_sections():
    given = {"epochs": 3, "gradcam": {"cases": 5}, "network": "resnet10"}
    s = section_settings("deep", given)
    assert s == {**schema_defaults("deep"), "epochs": 3, "network": "resnet10",
                 "gradcam": {**schema_defaults("deep")["gradcam"], "cases": 5}}
    assert given == {"epochs": 3, "gradcam": {"cases": 5}, "network": "resnet10"}  # not modified
    # keys in the schema's order, whatever the order given (equal settings serialise equally)
    assert list(s) == list(schema_defaults("deep")) and list(s["gradcam"]) == ["layer", "cases"]
    assert section_settings("deep") == section_settings("deep", None) == schema_defaults("deep")
    pert = section_settings("reproducibility", {"perturbation": {"n": 3}})["perturbation"]
    assert pert["n"] == 3 and pert["rotation_deg"] == schema_defaults("reproducibility")["perturbation"]["rotation_deg"]
    s["gradcam"]["cases"] = 99
    assert section_settings("deep")["gradcam"]["cases"] != 99  # a fresh dict each call


def test_section_settings_validates_against_the_schema():
    with pytest.raises(ConfigError, match=r"config key deep.epochs"):
        section_settings("deep", {"epochs": "many"})
    with pytest.raises(ConfigError, match="not in the schema"):
        section_settings("no_such_section")
