"""Deep biomarker library (acceflow.deep): crops, fusion shapes, Cox loss, tiny CPU training,
embeddings and Grad-CAM. Tiny networks and crops: the whole file runs in well under a minute."""
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")
import SimpleITK as sitk  # noqa: E402

from acceflow.deep.cox import cox_partial_likelihood_loss  # noqa: E402
from acceflow.deep.crops import CropError, lesion_centre, load_crop, make_crop, save_crop  # noqa: E402
from acceflow.deep.gradcam import gradcam_maps, overlay_png  # noqa: E402
from acceflow.deep.networks import build_network, gradcam_layer  # noqa: E402
from acceflow.deep.train import (  # noqa: E402
    TRAINING_KEYS,
    DeepTrainingError,
    cross_validate,
    fit,
    load_model,
    predict,
    save_model,
)
from acceflow.study.settings import section_settings  # noqa: E402

torch.set_num_threads(1)
# the complete deep section: the schema's defaults, these keys overridden
TINY = section_settings("deep", {"network": "resnet10", "epochs": 4, "batch_size": 4, "patience": 10,
                                 "learning_rate": 1e-3, "validation_fraction": 0.25, "augmentation": True,
                                 "cv_folds": 2, "device": "cpu", "dropout": 0.0})


def _image(size, spacing, origin, value=0.0):
    img = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img + value


def _write_case(folder, centre_mm=(10.0, -4.0, 6.0)):
    """MR-like (1 mm) and PET-like (4 mm, other origin) images of one physical frame with a cube lesion."""
    mr = _image((60, 60, 40), (1.0, 1.0, 1.5), (-20.0, -30.0, -20.0))
    pet = _image((20, 20, 12), (4.0, 4.0, 5.0), (-22.0, -34.0, -24.0))
    mask = sitk.Image(mr.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(mr)
    for img, val in ((mr, 100.0), (pet, 7.0)):
        arr = sitk.GetArrayFromImage(img)
        zz, yy, xx = np.indices(arr.shape)
        pts = np.stack([xx, yy, zz], -1).reshape(-1, 3) * np.array(img.GetSpacing()) + np.array(img.GetOrigin())
        inside = (np.abs(pts - np.array(centre_mm)) <= 5).all(1).reshape(arr.shape)
        arr[inside] = val
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(folder / f"{'MR' if val == 100 else 'PET'}.nii.gz"))
        if val == 100:
            m = sitk.GetImageFromArray(inside.astype(np.uint8))
            m.CopyInformation(mr)
            sitk.WriteImage(m, str(folder / "mask.nii.gz"))
    return {"MR": str(folder / "MR.nii.gz"), "PET": str(folder / "PET.nii.gz")}, str(folder / "mask.nii.gz")


def test_crop_centres_the_lesion_and_puts_modalities_on_one_grid(tmp_path):
    images, mask = _write_case(tmp_path)
    centre = lesion_centre(mask)
    assert np.allclose(centre, (10.0, -4.0, 6.0), atol=0.8)
    crop = make_crop(images, mask, size=16, spacing=2.0, case="c1")
    assert crop["image"].shape == (2, 16, 16, 16) and crop["mask"].shape == (16, 16, 16)
    assert list(crop["modalities"]) == ["MR", "PET"]
    # the lesion (10 mm cube) sits in the middle of the 32 mm crop, in both channels
    assert crop["mask"][7:9, 7:9, 7:9].all() and crop["mask"][:2].sum() == 0
    assert crop["image"][0, 8, 8, 8] == pytest.approx(100.0) and crop["image"][1, 8, 8, 8] == pytest.approx(7.0)
    assert crop["image"][0, 0, 0, 0] == pytest.approx(0.0)
    assert crop["lesion_fraction_in_crop"] > 0.95
    save_crop(crop, tmp_path / "c1.npz")
    back = load_crop(tmp_path / "c1.npz")
    assert np.array_equal(back["image"], crop["image"])


def test_crop_errors_name_the_case_and_file(tmp_path):
    images, mask = _write_case(tmp_path)
    with pytest.raises(CropError, match="case c2.*missing.nii.gz"):
        make_crop({"MR": str(tmp_path / "missing.nii.gz")}, mask, 16, 2.0, case="c2")
    empty = sitk.Image([8, 8, 8], sitk.sitkUInt8)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    with pytest.raises(CropError, match="no lesion voxel"):
        make_crop(images, str(tmp_path / "empty.nii.gz"), 16, 2.0, case="c3")


@pytest.mark.parametrize("network,size,dim", [("resnet10", 16, 512), ("densenet121", 32, 1024)])
def test_fusion_output_and_embedding_shapes(network, size, dim):
    x = torch.randn(3, 2, size, size, size)
    early = build_network(network, 2, "early").eval()
    late = build_network(network, 2, "intermediate").eval()  # one encoder per modality
    assert len(early.branches) == 1 and len(late.branches) == 2
    assert early.branches[0](x).shape == (3, dim)
    with torch.no_grad():
        assert early(x).shape == (3, 1) and early.embed(x).shape == (3, dim)
        assert late(x).shape == (3, 1) and late.embed(x).shape == (3, 2 * dim)
    with pytest.raises(ValueError, match="channels"):
        late.embed(x[:, :1])
    with pytest.raises(ValueError, match="unknown deep.network"):
        build_network("vit", 1)


def test_cox_loss_matches_lifelines_partial_likelihood():
    lifelines = pytest.importorskip("lifelines")
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 40
    x = rng.normal(size=n)
    time = rng.exponential(np.exp(-0.8 * x)) * 100 + rng.uniform(0, 1e-3, n)  # no tied times
    event = (rng.uniform(size=n) < 0.7).astype(int)
    cph = lifelines.CoxPHFitter().fit(pd.DataFrame({"x": x, "t": time, "e": event}), "t", "e")
    beta = float(cph.params_["x"])
    loss = cox_partial_likelihood_loss(torch.tensor(beta * x), torch.tensor(time), torch.tensor(event), "sum")
    # lifelines' log-likelihood is the partial log-likelihood of the centred covariate (same value)
    assert float(loss) == pytest.approx(-cph.log_likelihood_, rel=1e-6)
    # Breslow ties by hand: times (1, 1, 2), events (1, 1, 0), risks (0, log 2, 0)
    r = torch.tensor([0.0, np.log(2.0), 0.0])
    ties = cox_partial_likelihood_loss(r, torch.tensor([1.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0]), "sum")
    assert float(ties) == pytest.approx(2 * np.log(4.0) - np.log(2.0))
    assert float(cox_partial_likelihood_loss(r, torch.ones(3), torch.zeros(3))) == 0.0


def _toy(n=16, seed=0, size=16):
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * (n // 2))
    X = rng.normal(size=(n, 2, size, size, size)).astype(np.float32)
    X[y == 1, :, 5:11, 5:11, 5:11] += 2.0  # a bright lesion for the positives
    return X, y


def test_tiny_training_inference_is_deterministic_and_survives_save_load(tmp_path):
    X, y = _toy()
    a = fit(X, y, TINY, seed=7, log=lambda s: None)
    b = fit(X, y, TINY, seed=7, log=lambda s: None)
    pa, emb = predict(a, X, embed=True)
    pb, _ = predict(b, X)
    assert np.array_equal(pa, pb)  # same data, settings and seed -> identical predictions on CPU
    assert pa.shape == (16,) and ((pa > 0) & (pa < 1)).all() and emb.shape == (16, 512)
    assert len(a["history"]) == 4 and {"train_loss", "val_loss", "val_auc"} <= set(a["history"][0])
    assert 1 <= a["best_epoch"] <= a["stopped_epoch"] == 4 and a["n_train"] == 12 and a["n_validation"] == 4
    assert a["pos_weight"] == 1.0
    sha = save_model(a, tmp_path / "model.pt")
    c = load_model(tmp_path / "model.pt", sha)
    assert np.array_equal(predict(c, X)[0], pa)  # the loaded network predicts exactly as the fitted one
    assert c["mean"].dtype == a["mean"].dtype and np.array_equal(c["mean"], a["mean"])
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(tmp_path / "model.pt", "0" * 64)


def test_intermediate_fusion_sampler_and_early_stopping():
    X, y = _toy(n=12)
    y = np.array([1, 0, 0, 0] * 3)
    f = fit(X, y, {**TINY, "fusion": "intermediate", "balance": "sampler", "patience": 1, "epochs": 6,
                   "augmentation": False}, seed=1, log=lambda s: None)
    assert f["stopped_epoch"] <= 6 and f["best_epoch"] == f["stopped_epoch"] - 1 or f["stopped_epoch"] == 6
    assert predict(f, X, embed=True)[1].shape == (12, 1024)
    with pytest.raises(DeepTrainingError, match="2 of each class"):
        fit(X[:5], np.array([1, 0, 0, 0, 0]), TINY, seed=1)


def test_training_takes_the_complete_section_and_names_missing_keys():
    X, y = _toy(n=8, size=8)
    partial = {k: v for k, v in TINY.items() if k not in ("epochs", "weight_decay")}
    with pytest.raises(ValueError, match="deep settings lacks epochs, weight_decay.*section_settings"):
        fit(X, y, partial, seed=1)
    with pytest.raises(ValueError, match="lacks network"):
        cross_validate(X, y, None, seed=1)
    assert set(TRAINING_KEYS) <= set(section_settings("deep"))


def test_cross_validation_gives_out_of_fold_predictions():
    X, y = _toy(n=12)
    oof, folds = cross_validate(X, y, {**TINY, "epochs": 2, "augmentation": False}, seed=3, log=lambda s: None)
    assert oof.shape == (12,) and np.isfinite(oof).all()
    assert list(folds["fold"]) == [1, 2] and folds["n"].sum() == 12 and {"auc", "best_epoch"} <= set(folds)


def test_survival_training_uses_cox_loss():
    X, _ = _toy(n=12)
    rng = np.random.default_rng(1)
    time, event = rng.uniform(100, 1000, 12), np.array([1, 0] * 6)
    f = fit(X, None, {**TINY, "epochs": 2}, seed=2, time=time, event=event, log=lambda s: None)
    risk, _ = predict(f, X)
    assert f["survival"] and risk.shape == (12,) and "val_c_index" in f["history"][0]


def test_gradcam_map_shape_and_overlay(tmp_path):
    X, y = _toy(n=8)
    f = fit(X, y, {**TINY, "epochs": 1}, seed=1, log=lambda s: None)
    assert gradcam_layer("resnet10", "early") == "branches.0.layer4"
    assert gradcam_layer("resnet10", "late", "auto", 32) == "branches.0.layer2"  # 32 / 8 = 4 voxels
    assert gradcam_layer("densenet121", "early", None, 64) == "branches.0.features.denseblock3"
    g = gradcam_maps(f, X[:3], gradcam_layer("resnet10", "early", "auto", 16))  # layer1: 16 / 4 = 4 voxels
    assert g["maps"].shape == (3, 16, 16, 16) and g["layer_shape"] == (4, 4, 4)
    assert np.nanmin(g["maps"]) >= 0 and np.nanmax(g["maps"]) <= 1
    g2 = gradcam_maps(f, X[:2], "branches.0.layer2")  # a deeper layer: 16 / 8 = 2 voxels per axis
    assert g2["layer_shape"] == (2, 2, 2) and g2["maps"].shape == (2, 16, 16, 16)
    with pytest.raises(ValueError, match="not a module"):
        gradcam_maps(f, X[:1], "branches.0.nope")
    crop = {"image": X[0], "mask": (X[0, 0] > 1).astype(np.uint8)}
    overlay_png(crop, g2["maps"][0], str(tmp_path / "cam.png"), "case 1")
    assert (tmp_path / "cam.png").read_bytes()[:4] == b"\x89PNG"


def test_config_allows_deep_as_primary_or_comparator_of_image_studies_only():
    import copy

    import yaml
    from conftest import REPO
    from snakemake.utils import validate

    from acceflow.study.settings import ConfigError, check_config, model_names

    config = yaml.safe_load((REPO / "config/studies/demo_deep.yaml").read_text())
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    check_config(config)
    assert model_names(config) == ("imaging", ["clinical", "combined_early", "deep"])
    assert config["deep"]["gradcam"] == {"layer": "auto", "cases": 2} and config["deep"]["gpus"] == 1
    auto = copy.deepcopy(config)
    auto["model"]["comparators"] = "auto"
    assert "deep" not in model_names(auto)[1]  # never added by auto
    primary = copy.deepcopy(config)
    primary["model"]["primary"] = "deep"
    check_config(primary)
    assert model_names(primary) == ("deep", ["clinical", "combined_early"])  # radiomics only when listed
    table = copy.deepcopy(config)
    table["demo"]["enabled"] = False
    table["input"].update(images=None, features="features.tsv")
    with pytest.raises(ConfigError, match="needs images"):
        check_config(table)
    survival = copy.deepcopy(config)
    survival["outcome"] = {"type": "survival", "time": "time", "event": "event"}
    with pytest.raises(ConfigError, match=r"survival outcomes build .* name \['clinical', 'combined_early'\]"):
        check_config(survival)  # refused by name, not skipped silently
    survival["model"]["comparators"] = ["deep"]
    check_config(survival)
    assert model_names(survival) == ("imaging", ["deep"])


def test_training_logs_its_progress_per_epoch():
    X, y = _toy(n=8)
    lines = []
    f = fit(X, y, {**TINY, "epochs": 2, "augmentation": False}, seed=1, log=lines.append)
    assert lines[0].startswith("training resnet10 on ") and "batches of 4 per epoch, up to 2 epochs" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch=")]
    assert len(epochs) == len(f["history"]) == 2
    n_train = int(lines[0].split(" on ")[1].split()[0])
    for e, line in enumerate(epochs, 1):
        # every training case is seen once per epoch: ceil(n_train / batch) iterations per epoch
        assert f"iterations={e * -(-n_train // 4)} " in line and re.search(r"elapsed=[\d.]+s$", line), line
