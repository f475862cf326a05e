"""Config as users write it: misspelt keys at any depth, wrong values, survival without the binary
defaults, and ``--config key=value`` overrides, each refused or accepted by a real ``snakemake -n``
(dry runs: the DAG is built, nothing runs) with one short message."""
import subprocess

import pytest
import yaml

from acceflow.study.settings import ConfigError, command_line_values, with_defaults
from conftest import REPO, SNAKEMAKE

BINARY = {"input": {"features": "t.csv"}, "cohorts": {"train": ["A"]}}


@pytest.mark.parametrize("section, message", [
    ({"model": {"comparatrs": ["clinical"]}}, "unknown config key 'model.comparatrs'; did you mean 'comparators'?"),
    ({"outcome": {"type": "survival", "horizns": [365]}},
     "unknown config key 'outcome.horizns'; did you mean 'horizons'?"),
    ({"deep": {"gradcam": {"cass": 3}}}, "unknown config key 'deep.gradcam.cass'; did you mean 'cases'?"),
    ({"input": {"features": "t.csv", "derived": {"pirads": {"colum": "x"}}}},
     "unknown config key 'input.derived.pirads.colum'; did you mean 'column'?"),
    ({"extraction": {"discretisation": {"PET": {"bin_widht": 0.5}}}},
     "unknown config key 'extraction.discretisation.PET.bin_widht'; did you mean 'bin_width'?"),
    ({"model": {"learner": "random_forrest"}},
     "config key model.learner: 'random_forrest' is not allowed; choose one of l1_logistic, elasticnet_logistic, "
     "random_forest, svm, gradient_boosting; did you mean 'random_forest'?"),
    ({"model": {"comparators": ["clincal"]}},
     "config key model.comparators[0]: 'clincal' is not allowed; choose one of imaging, clinical, combined_early, "
     "combined_late, deep, federated, deep_federated; did you mean 'clinical'?"),
    ({"validation": {"cv_folds": "five"}}, "config key validation.cv_folds: 'five' is not of type 'integer'"),
])
def test_a_misspelt_key_or_wrong_value_at_any_depth_is_named_in_one_line(section, message):
    with pytest.raises(ConfigError) as raised:
        with_defaults({**BINARY, **section})
    assert str(raised.value) == message


def test_a_key_far_from_any_valid_one_lists_the_sections_keys():
    with pytest.raises(ConfigError, match=r"^unknown config key 'validation.zzz'; valid keys of validation: "
                                          r"cv_folds, cv_repeats"):
        with_defaults({**BINARY, "validation": {"zzz": 1}})


def test_outcome_defaults_depend_on_the_outcome_type():
    assert with_defaults(BINARY)["outcome"] | {} == {"type": "binary", "column": "outcome", "positive": 1,
                                                     "time": None, "event": None, "horizons": None}
    survival = with_defaults({**BINARY, "outcome": {"type": "survival", "time": "t", "event": "e"}})["outcome"]
    assert survival["column"] is None and survival["positive"] is None  # no need to write column: null
    assert with_defaults({**BINARY, "outcome": {"column": "y", "positive": "yes"}})["outcome"]["column"] == "y"


def test_command_line_values_are_typed_as_the_schema_wants():
    # what snakemake's --config 'validation={cv_folds: 3}' hands over (YAML BaseLoader: all strings)
    given = {"seed": 7, "results": "out", "validation": {"cv_folds": "3", "cv_repeats": "2"},
             "utility": {"thresholds": ["0.1", "0.9", "0.01"], "horizon": "null"},
             "model": {"learner": "svm", "include_clinical": "false", "correlation_threshold": "0.9"},
             "cohorts": {"train": ["2019"], "external": ["2020"]}, "deep": {"gradcam": {"cases": "4"}}}
    assert command_line_values(given) == {
        "seed": 7, "results": "out", "validation": {"cv_folds": 3, "cv_repeats": 2},
        "utility": {"thresholds": [0.1, 0.9, 0.01], "horizon": None},
        "model": {"learner": "svm", "include_clinical": False, "correlation_threshold": 0.9},
        "cohorts": {"train": ["2019"], "external": ["2020"]},  # cohort names are strings: kept
        "deep": {"gradcam": {"cases": 4}}}


def _dry_run(workdir, *args):
    (workdir / "config").symlink_to(REPO / "config")  # the demo config, as in a checkout
    return subprocess.run([*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                           "-n", *args], capture_output=True, text=True, timeout=300, cwd=workdir)


def _message_lines(run):
    """stderr without snakemake's own notes about the profile and config files."""
    return [line for line in run.stderr.splitlines()
            if line.strip() and not line.startswith(("Using workflow specific profile", "Config file "))]


@pytest.mark.integration
@pytest.mark.parametrize("change, message", [
    ({"model": {"learner": "l1_logistic", "comparatrs": ["clinical"]}},
     "acceflow: config error: unknown config key 'model.comparatrs'; did you mean 'comparators'?"),
    ({"model": {"learner": "random_forrest"}},
     "acceflow: config error: config key model.learner: 'random_forrest' is not allowed; choose one of "
     "l1_logistic, elasticnet_logistic, random_forest, svm, gradient_boosting; did you mean 'random_forest'?"),
])
def test_snakemake_stops_on_a_bad_config_with_one_short_message(tmp_path, change, message):
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    for section, values in change.items():
        config[section] = {**config.get(section, {}), **values}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    run = _dry_run(tmp_path, "--configfile", "study.yaml")
    assert run.returncode != 0
    assert _message_lines(run) == [message], run.stderr  # one line: no traceback, no schema dump
    assert len(run.stderr.splitlines()) < 5


@pytest.mark.integration
def test_survival_study_without_outcome_column_builds_its_dag(tmp_path):
    study = yaml.safe_load((REPO / "config/studies/demo_survival.yaml").read_text())
    assert "column" not in study["outcome"]
    run = _dry_run(tmp_path, "--configfile", "config/studies/demo_survival.yaml")
    assert run.returncode == 0, run.stderr
    assert "results/demo_survival/clinical/site_B/metrics.json" in run.stdout


@pytest.mark.integration
def test_command_line_config_overrides_single_keys_of_the_demo_config(tmp_path):
    run = _dry_run(tmp_path, "--config", "seed=7", "cohorts={external: [site_B]}", "validation={cv_folds: 3}")
    assert run.returncode == 0, run.stderr
    outputs = [line for line in run.stdout.splitlines() if line.strip().startswith("output:")]
    assert any("clinical/site_B/metrics.json" in line for line in outputs)
    assert not any("site_C" in line for line in outputs)  # the override replaced the list of external cohorts
    assert any("results/clinical/train/" in line for line in outputs)  # the demo config's other keys still apply


def test_unknown_keys_inside_list_items_are_named_by_index():
    from acceflow.study.settings import _unknown_keys

    schema = {"type": "object", "additionalProperties": False, "properties": {
        "readers": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                                               "properties": {"name": {"type": "string"}, "mask": {"type": "string"}}}}}}
    found = list(_unknown_keys({"readers": [{"name": "a", "mask": "m"}, {"name": "b", "msk": "m"}]}, schema, ()))
    assert found == [(("readers[1]", "msk"), "mask", ["name", "mask"])]
