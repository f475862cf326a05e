"""Model files: skops format (no pickle), written atomically and byte-reproducibly, loaded only from
one read of the bytes after their SHA-256 matches the recorded one and every type in them is on
acceflow's allow-list.

Why skops and not joblib / pickle: unpickling runs whatever code the file names, so a hash
recorded beside the file (in ``model_card.json``, in the same writable folder) does not protect
it: whoever can replace the model can replace the card too. A skops file is a zip of JSON and
``.npy`` arrays (read with ``allow_pickle=False``); loading it constructs only types that skops
trusts by default (scikit-learn estimators, builtins) or that the caller names. acceflow names
exactly the types its own pipelines hold (:data:`TRUSTED_TYPES`), and refuses a file holding any
other type, naming it. The SHA-256 is checked on the same bytes that are deserialised, so the file
cannot be swapped between the check and the load.
"""

from __future__ import annotations

import copy
import io
import json
import os
import zipfile

import skops.io as sio

from acceflow.runtime import atomic_write_bytes, read_verified, sha256_bytes

__all__ = ["TRUSTED_TYPES", "UntrustedModelError", "without_timings", "model_bytes", "save_model", "load_model"]

#: The types, beyond skops' defaults (scikit-learn estimators, builtins), that acceflow's own
#: pipelines hold (:mod:`acceflow.models.pipeline`, :mod:`acceflow.study.survival_training`):
#: our estimators and splitters, scikit-learn's scorers and splitters, numpy dtypes.
#: tests/test_safe_models.py saves every pipeline variant and checks that this list covers it.
TRUSTED_TYPES = frozenset({
    # acceflow's own estimators, splitters and scorers
    "acceflow.models.pipeline.CorrelationFilter",
    "acceflow.models.pipeline.MRMRSelector",
    "acceflow.models.harmonisation.ComBat",
    "acceflow.models.cox.PenalizedCox",
    "acceflow.models.federated.FederatedLogisticRegression",
    "acceflow.models.federated_cox.FederatedCox",
    "acceflow.study.survival_training.EventStratifiedKFold",
    "acceflow.study.survival_training._cox_scorer",
    # numpy
    "numpy.dtype",
    # scikit-learn: the inner-CV splitter, the scorer object and its metric, univariate selection
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.model_selection._split.KFold",
    "sklearn.utils._bunch.Bunch",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.metrics._ranking.roc_auc_score",
    "sklearn.metrics._ranking.average_precision_score",
    "sklearn.metrics._classification.log_loss",
    "sklearn.metrics._classification.brier_score_loss",
    "sklearn.metrics._classification.accuracy_score",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "sklearn.metrics._classification.f1_score",
})

# a fixed timestamp for every zip member: the file must not depend on when it was written
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class UntrustedModelError(ValueError):
    """A model file that acceflow will not load: wrong hash, not a skops file, or untrusted types."""


def without_timings(model):
    """A shallow copy of a fitted search without its fit/score times (``*_time`` in ``cv_results_``,
    ``refit_time_``), the only part of a fitted model that differs between identical runs."""
    if not hasattr(model, "cv_results_"):
        return model
    model = copy.copy(model)
    model.cv_results_ = {k: v for k, v in model.cv_results_.items() if not k.endswith("_time")}
    if hasattr(model, "refit_time_"):
        model.refit_time_ = 0.0
    return model


def _canonical(data: bytes) -> bytes:
    """The skops zip ``data`` rewritten so that it depends only on the model.

    skops names array members by ``id()`` of the array, bytes members by a random UUID, records
    ``id()`` values as ``__id__`` in ``schema.json`` and stamps members with the current time.
    Here every ``__id__`` becomes its rank of first appearance in the schema, members are renamed
    to match, and each member gets a fixed timestamp; the structure skops reads is unchanged.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zin:
        schema = json.loads(zin.read("schema.json"))
        members = {name: zin.read(name) for name in zin.namelist() if name != "schema.json"}
    ids: dict[int, int] = {}
    renamed: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            if "__id__" in node and isinstance(node["__id__"], int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
            if isinstance(node.get("file"), str) and node["file"] in members:
                old = node["file"]
                suffix = old.rsplit(".", 1)[-1]
                node["file"] = renamed.setdefault(old, f"{len(renamed) + 1}.{suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    if set(renamed) != set(members):
        raise RuntimeError(f"skops file members not referenced by its schema: {sorted(set(members) - set(renamed))}")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zout:
        for old, new in sorted(renamed.items(), key=lambda kv: int(kv[1].split(".")[0])):
            zout.writestr(zipfile.ZipInfo(new, date_time=_ZIP_TIME), members[old])
        zout.writestr(zipfile.ZipInfo("schema.json", date_time=_ZIP_TIME), json.dumps(schema, indent=2))
    return out.getvalue()


def _untrusted(data: bytes, path) -> list[str]:
    """The types in skops ``data`` that neither skops nor :data:`TRUSTED_TYPES` trusts."""
    try:
        found = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise UntrustedModelError(f"{path}: not a skops model file ({type(exc).__name__}: {exc}); acceflow "
                                  f"loads only models in the skops format: re-run the training rule") from exc
    return sorted(set(found) - TRUSTED_TYPES)


def model_bytes(model) -> bytes:
    """A fitted model as the bytes of a skops file (byte-reproducible; see :func:`save_model`).

    Raises
    ------
    UntrustedModelError
        When the model holds a type that :func:`load_model` would refuse (not on
        :data:`TRUSTED_TYPES`), so that training fails rather than prediction.
    """
    data = _canonical(sio.dumps(without_timings(model)))
    extra = _untrusted(data, "the model")
    if extra:
        raise UntrustedModelError(f"the model holds types acceflow does not load: {', '.join(extra)}; add them to "
                                  "acceflow.models.persistence.TRUSTED_TYPES only if they cannot run code when loaded")
    return data


def save_model(model, path: str | os.PathLike) -> str:
    """Write a fitted model in the skops format, atomically; return its SHA-256 (record it in the
    model card and the provenance).

    Fit and score times are left out (:func:`without_timings`) and the zip is canonical (no ids,
    UUIDs or timestamps), so the same data, config and seed give a byte-identical file and hash.
    """
    data = model_bytes(model)
    atomic_write_bytes(data, path)
    return sha256_bytes(data)


def load_model(path: str | os.PathLike, sha256: str):
    """Load a model written by :func:`save_model`, from one read of the file.

    The bytes are read once; their SHA-256 must equal ``sha256`` (the model card's), and every type
    they name must be trusted by skops or on :data:`TRUSTED_TYPES`; only then are the same bytes
    deserialised. No pickle is involved, so a replaced file (even with a matching recorded hash)
    cannot run code.

    Raises
    ------
    UntrustedModelError (a ValueError)
        When the hash differs, the file is not a skops file, or it holds untrusted types (named).
    """
    data = read_verified(path, sha256, error=UntrustedModelError)
    extra = _untrusted(data, path)
    if extra:
        raise UntrustedModelError(f"{path}: refused: the file holds types acceflow does not trust: {', '.join(extra)}")
    return sio.loads(data, trusted=sorted(TRUSTED_TYPES))
