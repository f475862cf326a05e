"""The model card: one dataclass for every model kind, validated against a JSON schema.

Every trainer (radiomics / imaging, clinical and fusion comparators, penalised Cox for survival
outcomes, the deep network) returns a :class:`ModelCard`. The fields every card holds are typed
attributes; what only some kinds have (coefficients, horizons, network, crop, training history,
...) sits in :attr:`ModelCard.extra`. On disk (``model_card.json``) the card is one flat JSON
object: the common fields, then the kind-specific ones, so readers index it as before
(``card["features"]``, ``card["horizon_days"]``). The schema is
``workflow/schemas/model_card.schema.yaml``; :meth:`ModelCard.write` and :meth:`ModelCard.read`
validate against it and name the offending field when a card does not conform.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields

import jsonschema

from acceflow.runtime import to_jsonable, write_json
from acceflow.study.settings import load_schema

SCHEMA = "model_card.schema.yaml"


class ModelCardError(ValueError):
    """A model card does not conform to ``workflow/schemas/model_card.schema.yaml``."""


@dataclass
class ModelCard(Mapping):
    """What a frozen model is and how it was made; reads like the card's JSON dict (``card["features"]``).

    Attributes
    ----------
    model : str
        The model's name (kind): ``imaging``, ``clinical``, ``combined_early``, ``combined_late``, ``deep``.
    role : str
        ``primary`` or ``comparator``.
    outcome : dict
        The config's ``outcome`` section (``type`` and its columns).
    features : list of str
        Model inputs (columns, or a description of the image input for the deep model).
    learner : str or list of str
        The learner (or learners searched).
    hyperparameters : dict
        Chosen and searched hyper-parameters.
    training_cohorts, external_cohorts : list of str
    seed : int
    validation : str
        ``external`` or ``internal``.
    internal_validation : str
        How the model was validated internally (one sentence).
    n_train, n_events_train : int
    threshold : dict or None
        The decision threshold fixed on the training data (binary outcomes; None for survival).
    model_file, model_sha256 : str or None
        The frozen model's file name (next to the card) and its SHA-256; set when the model is saved.
    extra : dict
        Kind-specific entries, written as further top-level keys of the JSON.
    """

    model: str
    role: str
    outcome: dict
    features: list
    learner: object
    hyperparameters: dict
    training_cohorts: list
    external_cohorts: list
    seed: int
    validation: str
    internal_validation: str
    n_train: int
    n_events_train: int
    threshold: dict | None = None
    model_file: str | None = None
    model_sha256: str | None = None
    extra: dict = field(default_factory=dict)

    # --- the dict view (readers index the card as the JSON object it is written as) ---
    def to_dict(self) -> dict:
        """The card as the flat JSON object written to ``model_card.json``."""
        common = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        clash = sorted(set(common) & set(self.extra))
        if clash:
            raise ModelCardError(f"model card: extra entries {clash} shadow common fields; set the fields instead")
        return {**common, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ModelCard":
        """A card from its JSON object (validated); keys that are not common fields go to ``extra``."""
        data = dict(data)
        names = {f.name for f in fields(cls)} - {"extra"}
        missing = sorted(f.name for f in fields(cls) if f.name in names and f.name not in data
                         and f.default is MISSING)
        if missing:
            raise ModelCardError(f"model card field {missing[0]}: required, missing (missing: {missing})")
        card = cls(**{k: data[k] for k in names if k in data},
                   extra={k: v for k, v in data.items() if k not in names})
        validate_card(card.to_dict())
        return card

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(self.to_dict())

    # --- files ---
    def write(self, path) -> None:
        """Validate and write the card as JSON (atomically)."""
        data = self.to_dict()
        validate_card(data)
        write_json(data, path)

    @classmethod
    def read(cls, path) -> "ModelCard":
        """Read and validate a ``model_card.json``."""
        with open(path) as fh:
            data = json.load(fh)
        try:
            return cls.from_dict(data)
        except ModelCardError as exc:
            raise ModelCardError(f"{path}: {exc}") from None


def validate_card(data: Mapping) -> None:
    """Raise :class:`ModelCardError` naming the field when ``data`` does not conform to the card schema."""
    validator = jsonschema.Draft202012Validator(_card_schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(_plain(data)))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        if not where and error.validator == "required":
            where = str(error.message).split("'")[1] if "'" in error.message else "(card)"
        raise ModelCardError(f"model card field {where}: {error.message}")


_SCHEMA_CACHE: dict = {}


def _card_schema() -> dict:
    if "card" not in _SCHEMA_CACHE:
        _SCHEMA_CACHE["card"] = load_schema(SCHEMA)
    return _SCHEMA_CACHE["card"]


def _plain(value):
    """JSON types only (tuples -> lists, numpy scalars -> Python, NaN -> null), as the card is written."""
    return json.loads(json.dumps(to_jsonable(value)))
