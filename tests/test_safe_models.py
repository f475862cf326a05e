"""Model files cannot run code when loaded (issue 16): for each model kind a crafted file whose
recorded SHA-256 matches (the attacker replaced the model and its card) is refused, and the payload
it carries does not run. A control shows each payload does run under an unsafe loader."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest

from acceflow.models.persistence import TRUSTED_TYPES, UntrustedModelError, load_model, model_bytes, save_model
from acceflow.runtime import sha256_bytes


class Payload:
    """Unpickling this creates ``marker`` (``open(marker, "w")``): a stand-in for any code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, data: bytes) -> str:
    path.write_bytes(data)
    return sha256_bytes(data)  # the attacker also rewrote the recorded hash


def _marker(tmp_path):
    marker = tmp_path / "PWNED"
    assert not marker.exists()
    return marker


def test_payload_control_runs_under_plain_pickle(tmp_path):
    """The payload is live: plain unpickling runs it (what joblib.load did before)."""
    marker = _marker(tmp_path)
    pickle.loads(pickle.dumps({"model": Payload(marker)}))
    assert marker.exists()


# ------------------------------------------------------------------------------ scikit-learn


def test_sklearn_loader_refuses_a_pickle_and_does_not_run_it(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "model.skops"
    sha = _plant(path, pickle.dumps(Payload(marker)))
    with pytest.raises(UntrustedModelError, match="not a skops model file"):
        load_model(path, sha)
    assert not marker.exists()


def test_sklearn_loader_refuses_a_skops_file_with_untrusted_types_and_names_them(tmp_path):
    """A skops file that names a callable outside the allow-list (here os.system inside a
    FunctionTransformer, and an unknown class) is refused before anything is constructed."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    path = tmp_path / "model.skops"
    sha = _plant(path, sio.dumps(FunctionTransformer(func=os.system)))
    with pytest.raises(UntrustedModelError, match=r"does not trust: .*system"):
        load_model(path, sha)
    marker = _marker(tmp_path)
    data = sio.dumps({"x": Payload(marker)})
    assert not marker.exists()
    sha = _plant(path, data)
    with pytest.raises(UntrustedModelError, match=r"test_safe_models\.Payload"):
        load_model(path, sha)
    assert not marker.exists()


def test_sklearn_loader_refuses_a_changed_file(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.arange(20.0)[:, None], np.arange(20) % 2)
    sha = save_model(model, tmp_path / "model.skops")
    assert load_model(tmp_path / "model.skops", sha).coef_ == pytest.approx(model.coef_)
    for recorded in ("0" * 64, None, ""):
        with pytest.raises(UntrustedModelError, match="differs from the model card"):
            load_model(tmp_path / "model.skops", recorded)


def test_skops_file_is_canonical(tmp_path):
    """No object ids, UUIDs or timestamps in the file: members are numbered, dates fixed."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(np.arange(20.0)[:, None], np.arange(20) % 2)
    data = model_bytes(model)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        assert names[-1] == "schema.json" and all(n.split(".")[0].isdigit() for n in names[:-1])
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        ids = []

        def walk(node):
            if isinstance(node, dict):
                if "__id__" in node:
                    ids.append(node["__id__"])
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(json.loads(z.read("schema.json")))
    assert max(ids) <= len(ids)
    import copy

    assert model_bytes(copy.deepcopy(model)) == data  # another object, the same bytes


def _variants():
    """One fitted model per kind of pipeline acceflow builds (learners, selections, ComBat,
    late fusion, penalised Cox): what save_model is asked to write."""
    from acceflow.models.cox import survival_y
    from acceflow.models.pipeline import build_late_fusion, build_model
    from acceflow.study.survival_training import build_survival_search

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(90, 6)), columns=[f"f{i}" for i in range(6)])
    y = (X["f0"] + rng.normal(size=90) > 0).astype(int).to_numpy()
    yield "all learners", build_model(Cs=[0.1, 1.0], inner_folds=2, learners=(
        "l1_logistic", "elasticnet_logistic", "random_forest", "svm", "gradient_boosting")).fit(X, y)
    for sel in ("univariate", "lasso", "mrmr"):
        yield sel, build_model(Cs=[0.1, 1.0], inner_folds=2, selection=sel, n_select=3,
                               correlation_threshold=0.9).fit(X, y)
    Xc = X.copy()
    Xc.insert(0, "cohort", np.repeat(["a", "b", "c"], 30))
    yield "combat", build_model(Cs=[0.1, 1.0], inner_folds=2, harmonisation="combat", batch_column="cohort").fit(Xc, y)
    yield "late fusion", build_late_fusion(["f0", "f1", "f2"], ["f3"], seed=0, inner_folds=2,
                                           Cs=[0.1, 1.0]).fit(X, y)
    t = np.ceil(rng.exponential(500, 90))
    e = (rng.random(90) < 0.6).astype(int)
    yield "cox", build_survival_search((0.1,), 0.0, 2, 0).fit(X[["f0", "f1"]], survival_y(t, e))


def test_every_pipeline_kind_saves_within_the_allow_list_and_loads_identically(tmp_path):
    import skops.io as sio

    for name, model in _variants():
        data = model_bytes(model)
        assert set(sio.get_untrusted_types(data=data)) <= TRUSTED_TYPES, name
        sha = save_model(model, tmp_path / f"{name}.skops")
        loaded = load_model(tmp_path / f"{name}.skops", sha)
        X = pd.DataFrame(np.random.default_rng(1).normal(size=(10, 6)), columns=[f"f{i}" for i in range(6)])
        if name == "combat":
            X.insert(0, "cohort", ["a"] * 10)
        if name == "cox":
            assert np.array_equal(loaded.predict(X[["f0", "f1"]]), model.predict(X[["f0", "f1"]])), name
        else:
            assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X)), name


# ------------------------------------------------------------------------------- torch models


def test_segmentation_loader_refuses_a_pickle_payload(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from acceflow.imaging.segment_model import SegmentationError, load_model as load_segmenter

    marker = _marker(tmp_path)
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "card": {"settings": {}}, "x": Payload(marker)}, buf)
    path = tmp_path / "model.pt"
    sha = _plant(path, buf.getvalue())
    with pytest.raises(SegmentationError, match="refused: not a weights-only"):
        load_segmenter(path, sha)
    assert not marker.exists()
    with pytest.raises(SegmentationError, match="differs from the model card"):
        load_segmenter(path, None)  # the hash check is mandatory
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)  # control: the unsafe load runs it
    assert marker.exists()


def test_deep_loader_refuses_a_pickle_payload(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from acceflow.deep.train import load_model as load_deep

    marker = _marker(tmp_path)
    buf = io.BytesIO()
    torch.save({"state_dict": {}, "settings": Payload(marker)}, buf)
    path = tmp_path / "model.pt"
    sha = _plant(path, buf.getvalue())
    with pytest.raises(ValueError, match="refused: not a weights-only"):
        load_deep(path, sha)
    assert not marker.exists()
    with pytest.raises(ValueError, match="differs from the model card"):
        load_deep(path, None)
    torch.load(io.BytesIO(buf.getvalue()), weights_only=False)  # control: the unsafe load runs it
    assert marker.exists()


def test_segmentation_model_round_trip_is_weights_only(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("monai")
    from acceflow.imaging.segment_model import build_network, load_model as load_segmenter, save_model as save_segmenter

    torch.manual_seed(0)
    net = build_network("unet", [4, 8], 0.1).eval()
    card = {"settings": {"network": "unet", "channels": [4, 8], "dropout": 0.1}, "history": [{"iteration": 1}]}
    sha = save_segmenter(net, card, tmp_path / "model.pt")
    torch.load(tmp_path / "model.pt", weights_only=True)  # plain content only
    loaded, card2 = load_segmenter(tmp_path / "model.pt", sha)
    assert card2 == card
    for a, b in zip(net.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
