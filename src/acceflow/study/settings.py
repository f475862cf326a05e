"""Checks of a study configuration beyond its JSON schema (workflow/schemas/config.schema.yaml).

The schema checks types and fills defaults (:func:`validate_config`, which names an unknown or
misspelt key at any depth with its nearest valid spelling, and any other schema error in one
line); :func:`check_config` checks what a schema cannot express (one input and only one, at least
one training cohort, cohorts not both train and external) and says how to fix it.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import jsonschema
import yaml

MODEL_KINDS = ("imaging", "clinical", "combined_early", "combined_late")
#: The deep-learning model (acceflow.deep, workflow/rules/deep.smk): the primary model
#: (model.primary: deep) or a comparator named in model.comparators, never added by ``auto``.
DEEP_KIND = "deep"
#: The same network trained with domain-adversarial adaptation (``deep.domain_adaptation: dann``): a
#: comparator added beside ``deep`` so that both are validated and compared on every cohort.
DANN_KIND = "deep_dann"
#: Federated penalised logistic regression (acceflow.models.federated, workflow/rules/federated.smk):
#: the primary model (model.primary: federated) or a comparator named in model.comparators, never
#: added by ``auto``.
FEDERATED_KIND = "federated"
#: The synthetic-data comparators (synthetic.enabled and synthetic.comparators; acceflow.study.synthetic,
#: workflow/rules/synthetic.smk): trained on synthetic cases only (TSTR), on real + synthetic, on real +
#: SMOTE fitted inside each training fold; compared with the real-only imaging model (TRTR).
SYNTHETIC_KINDS = ("synthetic_tstr", "synthetic_augmented", "smote_augmented")
#: The deep network of the ``deep`` section trained federated (acceflow.deep.federated,
#: workflow/rules/federated_deep.smk): the primary model (model.primary: deep_federated) or a comparator
#: named in model.comparators, never added by ``auto``.
DEEP_FEDERATED_KIND = "deep_federated"

#: Where the JSON schemas (YAML) live: ``workflow/schemas`` of the source checkout this package is
#: imported from (acceflow is a workflow, run from its repository; the schemas are the workflow's
#: public interface and are not copied into the package). ``ACCEFLOW_SCHEMAS`` overrides it.
SCHEMA_DIR = Path(os.environ.get("ACCEFLOW_SCHEMAS") or Path(__file__).resolve().parents[3] / "workflow" / "schemas")


@functools.lru_cache(maxsize=8)
def _schema_text(name: str) -> str:
    path = SCHEMA_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"schema {path} not found: acceflow reads its schemas from the repository's "
                                f"workflow/schemas (set ACCEFLOW_SCHEMAS to that folder)")
    return path.read_text()


@functools.lru_cache(maxsize=8)
def _parsed_schema(name: str) -> dict:
    # libyaml's loader where PyYAML was built with it (the same documents, ~10x faster): every
    # Snakemake start-up validates the config against this schema (issue 21)
    return yaml.load(_schema_text(name), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_schema(name: str = "config.schema.yaml") -> dict:
    """A JSON schema (YAML) of ``workflow/schemas``, as a fresh dict (parsed once per process)."""
    return copy.deepcopy(_parsed_schema(name))


def _default_filling_validator():
    """A jsonschema validator class that fills ``default`` values in as it validates (as snakemake.utils.validate)."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})


def with_defaults(config: dict | None = None, schema: str = "config.schema.yaml") -> dict:
    """A copy of ``config`` validated against the schema, with every default the schema gives filled in.

    Library callers (notebooks, tests) may pass a partial config; the defaults come from the schema
    itself, never from a second copy in code.

    Raises
    ------
    ConfigError
        When the config does not conform to the schema (the message names the key).
    """
    filled = copy.deepcopy(dict(config or {}))
    validate_config(filled, schema)
    return filled


def validate_config(config: dict, schema: str = "config.schema.yaml") -> None:
    """Check ``config`` against the schema and fill in the schema's defaults, in place.

    This is what the workflow runs on the config (``workflow/rules/common.smk``) in place of
    ``snakemake.utils.validate``, whose error prints the whole schema: an unknown key at any depth
    is named with the nearest valid key (:func:`check_known_keys`), and a value the schema refuses
    is named with its path, the value and what is allowed, in one line.

    Raises
    ------
    ConfigError
        One line naming the key, e.g. ``unknown config key 'model.comparatrs'; did you mean
        'comparators'?`` or ``config key model.learner: 'rf' is not allowed; choose one of ...``.
    """
    check_known_keys(config, schema)
    validator = _default_filling_validator()(load_schema(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(describe_schema_error(error))


def _dotted(path) -> str:
    """``model.comparators[0]`` for the path ('model', 'comparators', 0)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _allowed(schema) -> str:
    """What a (sub)schema accepts, in a few words: its enum values or its type(s)."""
    if not isinstance(schema, dict):
        return "?"
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return " or ".join(_allowed(a) for a in alternatives)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"a list of ({_allowed(schema['items'])})"
    return str(kind) if kind else "?"


def describe_schema_error(error: jsonschema.ValidationError) -> str:
    """One line for a JSON-schema error: the key's path, the value given and what is allowed."""
    parent = error.parent
    if parent is not None and parent.validator in ("oneOf", "anyOf") and parent.absolute_path == error.absolute_path:
        error = parent  # a value none of the alternatives takes: name them all
    where = _dotted(error.absolute_path)
    value, validator, schema = error.instance, error.validator, error.schema
    if validator == "enum":
        near = difflib.get_close_matches(str(value), [str(v) for v in error.validator_value], n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return (f"config key {where}: {_short(value)} is not allowed; choose one of "
                f"{', '.join(str(v) for v in error.validator_value)}{hint}")
    if validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return f"config key {where}: {_short(value)} is not of type {' or '.join(repr(k) for k in kinds)}"
    if validator in ("oneOf", "anyOf"):
        return f"config key {where}: {_short(value)} is not allowed; give {_allowed(schema)}"
    message = error.message.splitlines()[0] if error.message else validator
    if len(message) > 200:
        message = message[:197] + "..."
    return f"config key {where}: {message}"


@functools.lru_cache(maxsize=1)
def _all_defaults() -> dict:
    return with_defaults({})


def schema_defaults(section: str | None = None) -> dict:
    """The schema's defaults (of one top-level section, or of the whole config), as a fresh dict."""
    full = _all_defaults()
    return copy.deepcopy(full[section] if section else full)


def section_settings(section: str, given: Mapping | None = None) -> dict:
    """One top-level config section, complete: ``given`` with the schema's defaults for the keys it
    leaves out (nested sections merged key by key, e.g. ``deep.gradcam``).

    This is how library callers (notebooks, tests, benchmarks) build the settings that the
    functions of :mod:`acceflow.deep` and :mod:`acceflow.imaging` take: those layers may not
    import :mod:`acceflow.study`, so they take the complete section and hold no defaults of their
    own. The workflow passes its schema-validated sections, which are complete already.

    Parameters
    ----------
    section : str
        A top-level key of the config schema (``deep``, ``segmentation``, ``reproducibility``, ...).
    given : mapping, optional
        The keys the caller sets (a partial section); not modified.

    Returns
    -------
    dict
        A fresh dict (``with_defaults({section: given})[section]``), its keys in the schema's order
        (nested sections too) followed by any others, so that equal settings serialise equally.

    Raises
    ------
    ConfigError
        When ``section`` is not in the schema, or ``given`` does not conform to it.
    """
    properties = load_schema()["properties"]
    if section not in properties:
        raise ConfigError(f"config section {section!r} is not in the schema; choose from {sorted(properties)}")
    filled = with_defaults({section: copy.deepcopy(dict(given or {}))})[section]
    return _schema_ordered(filled, properties[section])


def _schema_ordered(value, schema: dict):
    """``value`` with the keys of its mappings in the order of the schema's ``properties``."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(value, dict) or not props:
        return value
    keys = [k for k in props if k in value] + [k for k in value if k not in props]
    return {k: _schema_ordered(value[k], props.get(k, {})) for k in keys}


@dataclass(frozen=True)
class ModelSettings:
    """The ``model`` section, typed; built from a schema-validated config (:meth:`from_config`)."""

    learner: str
    learners: list | None
    include_clinical: bool
    Cs: list
    inner_folds: int
    scoring: str
    selection: str
    n_select: int
    correlation_threshold: float | None
    primary: str
    comparators: object
    threshold: str
    threshold_target: float | None
    harmonisation: str
    harmonisation_unseen: str
    min_events: int
    cox_penalizers: list
    cox_l1_ratio: float

    @classmethod
    def from_config(cls, config: dict) -> "ModelSettings":
        """Settings of ``config['model']``, schema defaults filled for the keys it does not give."""
        section = dict(config.get("model") or {})
        defaults = schema_defaults("model")
        merged = {**defaults, **section}
        names = {f.name for f in fields(cls)}
        return cls(**{k: merged[k] for k in names})

    def as_dict(self) -> dict:
        return asdict(self)


def model_settings(config: dict) -> dict:
    """The config's ``model`` section with the schema's defaults for the keys it does not give."""
    return {**schema_defaults("model"), **(config.get("model") or {})}


class ConfigError(ValueError):
    """The configuration cannot be run; the message names the key and the fix."""


def check_known_keys(config: dict, schema: str = "config.schema.yaml") -> None:
    """Refuse config keys the schema does not define, at any depth (a misspelt key would be ignored).

    Walks the schema's ``properties`` (and ``additionalProperties`` schemas, list ``items``,
    ``oneOf`` / ``anyOf`` alternatives) alongside the config; wherever the schema closes a mapping
    (``additionalProperties: false``), a key it does not list is refused.

    Raises
    ------
    ConfigError
        Naming the unknown key by its full path (``model.comparatrs``, ``deep.gradcam.cass``,
        ``input.derived.pirads.colum``) and the nearest valid key of that section (difflib), or
        the section's valid keys when none is near.
    """
    if not isinstance(config, dict):
        raise ConfigError(f"the config must be a mapping of keys to values, got {type(config).__name__}")
    unknown = list(_unknown_keys(config, load_schema(schema), ()))
    if unknown:
        path, near, known = unknown[0]
        key = ".".join(path)
        hint = f"did you mean '{near}'?" if near else f"valid keys{' of ' + '.'.join(path[:-1]) if len(path) > 1 else ''}: {', '.join(known)}"
        more = (f" (and {len(unknown) - 1} more: {', '.join('.'.join(u[0]) for u in unknown[1:4])})"
                if len(unknown) > 1 else "")
        raise ConfigError(f"unknown config key '{key}'{more}; {hint}")


def _unknown_keys(value, schema, path: tuple):
    """(path, nearest valid key or None, valid keys) for every key of ``value`` that ``schema`` does not allow."""
    if not isinstance(schema, dict):
        return
    for alternatives in (schema.get("oneOf"), schema.get("anyOf")):
        for alt in alternatives or ():  # the first alternative whose type fits the value
            if _type_fits(value, alt):
                yield from _unknown_keys(value, alt, path)
                break
    if isinstance(value, dict) and _type_fits(value, schema):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            key = str(key)
            if key in props:
                yield from _unknown_keys(item, props[key], (*path, key))
            elif extra is False:
                near = difflib.get_close_matches(key, list(props), n=1, cutoff=0.6)
                yield (*path, key), (near[0] if near else None), list(props)
            elif isinstance(extra, dict):
                yield from _unknown_keys(item, extra, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            yield from _unknown_keys(item, schema["items"], (*path[:-1], f"{path[-1] if path else ''}[{i}]"))


def _type_fits(value, schema: dict) -> bool:
    kind = schema.get("type")
    if kind is None:
        return True
    kinds = kind if isinstance(kind, list) else [kind]
    return (isinstance(value, dict) and "object" in kinds) or (isinstance(value, list) and "array" in kinds) or \
        not isinstance(value, (dict, list))


def command_line_values(given: Mapping, schema: str = "config.schema.yaml") -> dict:
    """``snakemake --config`` values typed as the schema wants them (a copy).

    Snakemake parses a nested ``--config 'validation={cv_folds: 3}'`` with YAML's BaseLoader,
    which leaves every scalar a string (``'3'``). A string leaf where the schema does not take a
    string is read as a YAML scalar (``3``, ``true``, ``null``, ``0.5``); where the schema takes a
    string (a cohort named ``2019``) it stays a string. Top-level values, which Snakemake already
    types, are kept as they are.
    """
    root = load_schema(schema)

    def typed(value, sub):
        if isinstance(value, dict):
            return {k: typed(v, _child(sub, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [typed(v, (sub or {}).get("items") if isinstance(sub, dict) else None) for v in value]
        if isinstance(value, str) and sub is not None and not _takes_string(sub):
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                return value
            return value if isinstance(parsed, (dict, list)) else parsed
        return value

    return {k: typed(v, _child(root, k)) if isinstance(v, (dict, list)) else v for k, v in (given or {}).items()}


def _child(schema, key):
    """The schema of ``key`` inside a mapping described by ``schema`` (None when unknown)."""
    if not isinstance(schema, dict):
        return None
    for alt in schema.get("oneOf") or schema.get("anyOf") or ():
        if isinstance(alt, dict) and ("properties" in alt or "additionalProperties" in alt):
            schema = alt
            break
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def _takes_string(schema) -> bool:
    if not isinstance(schema, dict):
        return True
    alternatives = schema.get("oneOf") or schema.get("anyOf")
    if alternatives:
        return any(_takes_string(a) for a in alternatives)
    if "enum" in schema:
        return any(isinstance(v, str) for v in schema["enum"])
    kind = schema.get("type")
    if kind is None:
        return True
    return "string" in (kind if isinstance(kind, list) else [kind])


def check_config(config: dict) -> None:
    """Raise :class:`ConfigError` when a validated config cannot be run.

    Parameters
    ----------
    config : dict
        The configuration after schema validation (defaults filled in).
    """
    check_known_keys(config)
    seg = config.get("segmentation") or {}
    if seg.get("source") == "nnunet" and ((seg.get("uncertainty") or {}).get("method") or "none") != "none":
        raise ConfigError("segmentation.uncertainty is implemented for segmentation.source: model (MONAI) only; "
                          "set segmentation.uncertainty.method: none with source: nnunet")
    inp = config["input"]
    if bool(inp.get("images")) == bool(inp.get("features")):
        raise ConfigError("give exactly one of input.images (an image manifest) and input.features "
                          "(a feature table); a study config must set the other to null")
    if config["demo"]["enabled"] and not inp.get("images"):
        raise ConfigError("demo.enabled needs input.images: the path where the demo manifest is written "
                          "(e.g. results/demo/manifest.tsv)")
    if config["demo"]["enabled"] and inp.get("layout"):
        raise ConfigError("demo.enabled and input.layout both produce the manifest; set one of them")
    cohorts = config["cohorts"]
    if not cohorts["train"]:
        raise ConfigError("cohorts.train is empty: name the cohort(s) the model is trained on")
    both = set(cohorts["train"]) & set(cohorts["external"])
    if both:
        raise ConfigError(f"cohort(s) {sorted(both)} are in both cohorts.train and cohorts.external")
    if "train" in cohorts["external"]:
        raise ConfigError("an external cohort may not be called 'train' (the name of the internal results)")
    outcome = config["outcome"]
    if outcome["type"] == "binary" and not outcome.get("column"):
        raise ConfigError("outcome.type binary needs outcome.column and outcome.positive")
    if outcome["type"] == "survival" and not (outcome.get("time") and outcome.get("event")):
        raise ConfigError("outcome.type survival needs outcome.time (days) and outcome.event (1 = event)")
    model_names(config)
    if (config.get("validation") or {}).get("internal_external"):
        internal_external_sites(config)
    _check_preprocessing(config.get("preprocessing") or {}, config.get("extraction") or {})
    lo, hi, step = config["utility"]["thresholds"]
    if not (0 < lo < hi < 1 and step > 0):
        raise ConfigError(f"utility.thresholds [start, stop, step] must satisfy 0 < start < stop < 1 and "
                          f"step > 0, got {config['utility']['thresholds']}")


def _check_preprocessing(pre: dict, extraction: dict) -> None:
    """Per-modality preprocessing / extraction settings that contradict each other (IBSI chapter 1)."""
    norm = pre.get("normalisation") or {}
    ref_label = pre.get("reference_label")
    by_reference = sorted(m for m, v in norm.items() if v in ("reference", "reference_zscore"))
    if by_reference and ref_label is None:
        raise ConfigError(f"preprocessing.normalisation uses reference-tissue normalisation for {by_reference} "
                          f"but preprocessing.reference_label is null: name the reference tissue's label in "
                          f"the masks")
    if ref_label is not None and ref_label == extraction.get("label", 1):
        raise ConfigError(f"preprocessing.reference_label ({ref_label}) is the region of interest's label "
                          f"(extraction.label); draw the reference tissue with another label")
    rounded = sorted(m for m, on in (pre.get("round_intensities") or {}).items()
                     if on and norm.get(m, "none") != "none")
    if rounded:
        raise ConfigError(f"preprocessing.round_intensities is on for {rounded}, whose normalisation is not none; "
                          f"rounding is meant for CT in HU (IBSI) and would destroy normalised intensities")
    for modality, (lo, hi) in (extraction.get("resegment") or {}).items():
        if lo is None and hi is None or lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"extraction.resegment.{modality} = [{lo}, {hi}] is not a range: give "
                              f"[lower, upper] with lower <= upper (null for one open end)")


def internal_external_sites(config: dict) -> list[str]:
    """The sites of the internal-external cross-validation: every cohort of ``cohorts.train`` and
    ``cohorts.external``, in that order (a site is a cohort: the ``cohorts.column`` of the study).

    Raises
    ------
    ConfigError
        With fewer than two sites (naming ``validation.internal_external`` and the fix), or when
        the model harmonises with ComBat and ``model.harmonisation_unseen`` is ``error`` (the
        held-out site is, by design, a site ComBat never saw).
    """
    cohorts = config["cohorts"]
    sites = list(dict.fromkeys([*cohorts["train"], *cohorts["external"]]))
    if len(sites) < 2:
        raise ConfigError(f"validation.internal_external needs at least two sites across cohorts.train + "
                          f"cohorts.external; this study has {len(sites)} ({', '.join(sites) or 'none'}): name "
                          f"another cohort (site) in cohorts.external or cohorts.train, or set "
                          f"validation.internal_external: false")
    m = model_settings(config)
    if m["harmonisation"] != "none" and m["harmonisation_unseen"] == "error":
        raise ConfigError("validation.internal_external holds out each site, which ComBat (model.harmonisation: "
                          f"{m['harmonisation']}) then never saw; set model.harmonisation_unseen: self (the held-out "
                          "site's location and scale estimated on its own cases) or validation.internal_external: "
                          "false")
    return sites


def outcome_columns(config: dict) -> list[str]:
    """The outcome columns a study carries into its tables (binary column, survival time/event)."""
    o = config["outcome"]
    return [c for c in (o.get("column"), o.get("time"), o.get("event")) if c]


def model_names(config: dict) -> tuple[str, list[str]]:
    """The primary model's name and the comparators' names for a config.

    ``model.comparators: auto`` gives, when clinical covariates are configured, every other kind
    of :data:`MODEL_KINDS` (clinical-only baseline, early and late fusion); without covariates,
    none. With ``model.primary: deep`` the radiomics model (``imaging``) is a comparator only when
    listed (or given by ``auto``). Survival outcomes: the penalised Cox model (``imaging``) and
    the deep network (``deep``) are the models built; ``auto`` adds none.

    Raises
    ------
    ConfigError
        When a model needs clinical covariates and none are configured, or a survival study names
        a model that survival outcomes do not build.
    """
    m = model_settings(config)
    primary = m["primary"]
    comparators = m["comparators"]
    _check_deep(config, primary, comparators)
    _check_federated(config, primary, comparators)
    _check_synthetic(config)
    _check_deep_federated(config, primary, comparators)
    if config["outcome"]["type"] == "survival":
        named = [primary, *([] if comparators == "auto" else comparators)]
        unbuilt = [k for k in named if k not in ("imaging", DEEP_KIND, FEDERATED_KIND)]
        if unbuilt:
            raise ConfigError(f"survival outcomes build the penalised Cox model (imaging), the deep network (deep) "
                              f"and the federated Cox model (federated) only; model.primary / model.comparators name "
                              f"{unbuilt}: remove them (or use "
                              f"comparators: auto)")
        comparators = [] if comparators == "auto" else [c for c in comparators if c != primary]
        return primary, list(comparators)
    if comparators == "auto":
        comparators = [k for k in MODEL_KINDS if k != primary] if config["clinical"] else []
    comparators = [c for c in comparators if c != primary]
    if not config["clinical"] and any(k not in ("imaging", DEEP_KIND, FEDERATED_KIND, DEEP_FEDERATED_KIND) for k in [primary, *comparators]):
        raise ConfigError("models clinical / combined_* need clinical covariates: list them under 'clinical'")
    if DEEP_KIND in comparators and _domain_adaptation(config) == "dann":
        comparators = [*comparators, DANN_KIND]
    if _synthetic_comparators(config):  # TRTR is the imaging model: built as a comparator when not primary
        comparators = [*comparators, *(["imaging"] if "imaging" not in (primary, *comparators) else []),
                       *SYNTHETIC_KINDS]
    return primary, list(comparators)


def _synthetic_comparators(config: dict) -> bool:
    syn = config.get("synthetic") or {}
    return bool(syn.get("enabled")) and bool(syn.get("comparators", True))


def _check_synthetic(config: dict) -> None:
    """The synthetic stage: binary outcomes; its comparators train the imaging model's inputs without
    ComBat (synthetic cases have no site) or clinical covariates (not generated)."""
    syn = config.get("synthetic") or {}
    if not syn.get("enabled"):
        return
    if config["outcome"]["type"] != "binary":
        raise ConfigError("synthetic.enabled: the synthetic-data stage is for binary outcomes in this version "
                          "(its generators and audit are per outcome class); set synthetic.enabled: false")
    # a rule's config subset without the input section (e.g. train_synthetic's) was checked whole at load
    if syn.get("generator", "smote") != "smote" and "input" in config and not (config["input"] or {}).get("images"):
        raise ConfigError(f"synthetic.generator {syn['generator']} trains on lesion crops of images; this study has "
                          f"a feature table only (input.features): use synthetic.generator: smote")
    m = model_settings(config)
    if syn.get("comparators", True) and m.get("harmonisation", "none") != "none":
        raise ConfigError("synthetic.comparators with model.harmonisation: synthetic cases belong to no site, so "
                          "ComBat cannot place them; set model.harmonisation: none or synthetic.comparators: false")
    if syn.get("comparators", True) and m.get("include_clinical"):
        raise ConfigError("synthetic.comparators with model.include_clinical: the generators make imaging features "
                          "only; set model.include_clinical: false or synthetic.comparators: false")


def _domain_adaptation(config: dict) -> str:
    return str(((config.get("deep") or {}).get("domain_adaptation")) or "none")


def _check_dann(config: dict, named) -> None:
    """``deep.domain_adaptation: dann`` needs the deep comparator and named target cohorts that are not training cohorts."""
    if _domain_adaptation(config) != "dann":
        return
    deep = config.get("deep") or {}
    targets = [str(t) for t in (deep.get("target_cohorts") or [])]
    if DEEP_KIND not in named:
        raise ConfigError("deep.domain_adaptation: dann adapts the deep model, which model.comparators does not list: "
                          "add deep to model.comparators or set deep.domain_adaptation: none")
    if not targets:
        raise ConfigError("deep.domain_adaptation: dann needs the cohorts whose unlabelled images the site "
                          "discriminator sees: list them in deep.target_cohorts (e.g. the external cohorts)")
    if deep.get("fusion") == "late" or deep.get("clinical_covariates"):
        raise ConfigError("deep.domain_adaptation: dann trains one image network adversarially; it is not built for "
                          "late fusion (a network per modality) or clinical covariates (the target cohorts' images "
                          "come without them): use deep.fusion: early or intermediate without "
                          "deep.clinical_covariates, or set deep.domain_adaptation: none")
    train = [str(t) for t in (config.get("cohorts") or {}).get("train") or []]
    overlap = [t for t in targets if t in train]
    if overlap:
        raise ConfigError(f"deep.target_cohorts lists training cohort(s) {overlap}: a target domain is a cohort the "
                          "network is not trained on; remove them from deep.target_cohorts")


def _check_federated(config: dict, primary: str, comparators) -> None:
    """Federated training (``federated``): the primary model or a comparator of binary studies (penalised
    logistic regression) and survival studies (site-stratified penalised Cox regression) with two or
    more training sites; as the primary model, not refitted by internal–external cross-validation."""
    named = [primary, *([] if comparators == "auto" else comparators)]
    if FEDERATED_KIND not in named:
        return
    if primary == FEDERATED_KIND and (config.get("validation") or {}).get("internal_external"):
        raise ConfigError("model.primary: federated with validation.internal_external: true is not supported in "
                          "this version (internal–external cross-validation refits a centrally trained model); "
                          "set validation.internal_external: false, or make federated a comparator of a central "
                          "primary model (its held-out-centre figures: benchmarks/picai_federated_centres.py)")
    if config["outcome"]["type"] not in ("binary", "survival"):
        raise ConfigError(f"model.primary / model.comparators name federated, which trains a logistic regression "
                          f"(binary) or a Cox model (survival), not an outcome of type "
                          f"{config['outcome']['type']!r}: remove federated")
    train = list((config.get("cohorts") or {}).get("train") or [])
    if len(train) < 2:
        raise ConfigError(f"model.primary / model.comparators name federated, which treats each training cohort as a "
                          f"site, but "
                          f"cohorts.train has {len(train)} ({train}): name at least two training cohorts")


def _check_deep_federated(config: dict, primary: str, comparators) -> None:
    """The federated network (``deep_federated``): the primary model or a comparator of binary image
    studies with two or more training sites, one image network (early or intermediate fusion, no
    clinical covariates); as the primary model, not refitted by internal–external cross-validation."""
    named = [primary, *([] if comparators == "auto" else comparators)]
    if DEEP_FEDERATED_KIND not in named:
        return
    if primary == DEEP_FEDERATED_KIND and (config.get("validation") or {}).get("internal_external"):
        raise ConfigError("model.primary: deep_federated with validation.internal_external: true is not supported in "
                          "this version (internal–external cross-validation refits a centrally trained model); "
                          "set validation.internal_external: false, or make deep_federated a comparator of a "
                          "central primary model")
    if config["outcome"]["type"] != "binary":
        raise ConfigError("model.primary / model.comparators name deep_federated, which trains the network with a "
                          "binary cross-entropy loss (binary outcomes only in this version): remove deep_federated")
    train = list((config.get("cohorts") or {}).get("train") or [])
    if len(train) < 2:
        raise ConfigError(f"model.primary / model.comparators name deep_federated, which treats each training cohort "
                          f"as a site, but cohorts.train has {len(train)} ({train}): name at least two training "
                          f"cohorts")
    if "input" in config and not (config["input"] or {}).get("images"):
        raise ConfigError("model.primary / model.comparators name deep_federated, which needs images (input.images); "
                          "a feature-table study has no crops to train a network on: remove deep_federated")
    deep = dict(config.get("deep") or {})
    if deep.get("fusion") == "late" or deep.get("clinical_covariates"):
        raise ConfigError("model.primary / model.comparators name deep_federated, which federates one image network: "
                          "use deep.fusion: early or intermediate without deep.clinical_covariates, or remove "
                          "deep_federated")


def _check_deep(config: dict, primary: str, comparators) -> None:
    """The deep model (``deep``) needs images; its fusion and clinical covariates must agree."""
    named = [primary, *([] if comparators == "auto" else comparators)]
    _check_dann(config, named)
    deep = dict(config.get("deep") or {})
    if deep.get("fusion") == "late" and not deep.get("meta_learner"):
        raise ConfigError("deep.fusion: late now means late fusion as the literature names it: a separate model per "
                          "source (each modality's network, a clinical model) stacked by a meta-learner fitted on "
                          "out-of-fold predictions. What `late` meant before (one network branch per modality, "
                          "embeddings concatenated before one head) is intermediate fusion: write deep.fusion: "
                          "intermediate for it, or add deep.meta_learner: auto to confirm stacking")
    if deep.get("multitask") and deep.get("fusion", "early") != "early":
        raise ConfigError(f"deep.multitask shares one image encoder between the segmentation decoder and the head; "
                          f"deep.fusion: {deep.get('fusion')} has one encoder per modality (or separate models): set "
                          f"deep.fusion: early, or deep.multitask: false")
    if deep.get("pcgrad") and not deep.get("multitask"):
        raise ConfigError("deep.pcgrad projects conflicting gradients of two tasks: it needs deep.multitask: true")
    if int(deep.get("slices_2_5d", 3)) % 2 == 0:
        raise ConfigError(f"deep.slices_2_5d = {deep.get('slices_2_5d')}: the slice and as many neighbours each side "
                          f"make an odd number; use 3, 5, ...")
    if deep.get("multitask") and deep.get("domain_adaptation", "none") == "dann":
        raise ConfigError("deep.multitask and deep.domain_adaptation: dann are not combined (one adversarial and one "
                          "segmentation objective on one encoder): set one of them off")
    if deep.get("dimensions", "3d") != "3d" and deep.get("domain_adaptation", "none") == "dann":
        raise ConfigError(f"deep.domain_adaptation: dann is built for 3D networks; with deep.dimensions: "
                          f"{deep.get('dimensions')} set deep.domain_adaptation: none (or deep.dimensions: 3d)")
    covariates = list(deep.get("clinical_covariates") or [])
    if covariates:
        if deep.get("fusion", "early") == "early":
            raise ConfigError("deep.clinical_covariates enter the deep model under deep.fusion: intermediate (an MLP "
                              "encoder beside the image encoders) or late (a clinical model stacked with the "
                              "networks); early fusion stacks image channels only: set deep.fusion")
        absent = [c for c in covariates if c not in (config.get("clinical") or [])]
        if absent and "clinical" in config:
            raise ConfigError(f"deep.clinical_covariates names {absent}, which the top-level `clinical` list lacks: "
                              f"list them there too (the feature table carries only those columns)")
    if DEEP_KIND not in named:
        return
    if "input" in config and not (config["input"] or {}).get("images"):  # (model stages get no input section)
        raise ConfigError("model.primary / model.comparators name deep, which needs images (input.images); a "
                          "feature-table study (input.features) has no images to train a network on: remove deep")
