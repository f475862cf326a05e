"""2D / 2.5D / 3D deep models and multi-task learning (issue 19 parts 4-5): known answers by hand.

Slices and their order, the mean of slice logits, the empty-slice message, MONAI's Dice + CE on a
known mask, PCGrad's published projection; two tiny CPU fits (multi-task with PCGrad; 2.5D Cox).
"""
import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from acceflow.deep.multitask import cosine, dice, pcgrad, segmentation_loss  # noqa: E402
from acceflow.deep.networks import build_network  # noqa: E402
from acceflow.deep.slices import (  # noqa: E402
    SliceError,
    case_slices,
    lesion_slices,
    mean_of_logits,
    slice_input,
)
from acceflow.deep.train import fit, load_model, predict, save_model, segment_dice  # noqa: E402
from acceflow.study.settings import ConfigError, section_settings, validate_config  # noqa: E402
from acceflow.study.settings import check_config as _check  # noqa: E402

torch.set_num_threads(1)
QUIET = {"log": lambda line: None}


def tiny(**given):
    return section_settings("deep", {"network": "resnet10", "epochs": 1, "batch_size": 4, "patience": 5,
                                     "learning_rate": 1e-3, "validation_fraction": 0.25, "augmentation": True,
                                     "cv_folds": 2, "device": "cpu", "dropout": 0.0, "crop_size": 16, **given})


def test_lesion_slices_are_the_k_largest_sections_in_ascending_order():
    mask = np.zeros((6, 4, 4), np.uint8)
    mask[1, :1, :1] = 1      # area 1
    mask[2, :2, :2] = 1      # area 4
    mask[3, :3, :3] = 1      # area 9
    mask[4, :2, :1] = 1      # area 2
    assert lesion_slices(mask, 2).tolist() == [2, 3]
    assert lesion_slices(mask, 3).tolist() == [2, 3, 4]
    assert lesion_slices(mask, 10).tolist() == [1, 2, 3, 4]  # fewer lesion slices than k: all of them


def test_2_5d_channels_are_the_neighbouring_slices_in_order():
    # image[c, z] is the constant 100 c + z: every channel says which modality and slice it holds
    image = (100 * np.arange(2)[:, None, None, None] + np.arange(5)[None, :, None, None]
             + np.zeros((2, 5, 3, 3))).astype(np.float32)
    mask = np.zeros((5, 3, 3), np.uint8)
    mask[[0, 2]] = 1
    got = case_slices(image, mask, [0, 2], neighbours=3)
    # slice 0: edge repeated; modality-major: [m0 z-1, m0 z, m0 z+1, m1 z-1, m1 z, m1 z+1]
    assert got[:, 0, 0].tolist() == [0, 0, 1, 100, 100, 101, 1, 2, 3, 101, 102, 103]
    two_d = case_slices(image, mask, [2], neighbours=1)
    assert two_d[:, 0, 0].tolist() == [2, 102]
    X = slice_input(image[None], mask[None], "2.5d", k=3, neighbours=3)
    assert X.shape == (1, 3 * 6, 3, 3)
    assert np.isnan(X[0, 12:]).all() and not np.isnan(X[0, :12]).any()  # 2 lesion slices: the third is padding


def test_an_empty_slice_is_refused_naming_the_case():
    image = np.zeros((1, 4, 3, 3), np.float32)
    mask = np.zeros((4, 3, 3), np.uint8)
    mask[1] = 1
    with pytest.raises(SliceError, match=r"case P07: axial slice z=2 of the crop holds no lesion voxel"):
        case_slices(image, mask, [2], case="P07")
    with pytest.raises(SliceError, match=r"case P08: the crop's mask has no lesion voxel.*exclude the case"):
        slice_input(image[None], np.zeros((1, 4, 3, 3)), "2d", k=2, cases=["P08"])


def test_study_leaves_out_a_case_without_lesion_slice(tmp_path):
    from acceflow.deep.crops import save_crop
    from acceflow.study.deep import load_stack

    good = {"image": np.ones((1, 4, 3, 3), np.float32), "mask": np.ones((4, 3, 3), np.uint8)}
    empty = {"image": np.ones((1, 4, 3, 3), np.float32), "mask": np.zeros((4, 3, 3), np.uint8)}
    save_crop(good, tmp_path / "a.npz")
    save_crop(empty, tmp_path / "b.npz")
    masks = []
    X, ok, errors = load_stack([tmp_path / "a.npz", tmp_path / "b.npz"], masks, slices=True, names=["A", "B"])
    assert ok == [0] and len(masks) == 1 and X.shape == (1, 1, 4, 3, 3)
    assert errors[1].startswith("case B: the crop's mask has no lesion voxel")


def test_case_logit_is_the_mean_of_its_slice_logits():
    assert mean_of_logits([1.0, 3.0, -2.0, 0.5], [0, 0, 1, 1], 3).tolist()[:2] == [2.0, -0.75]
    assert np.isnan(mean_of_logits([1.0], [0], 2)[1])
    torch.manual_seed(0)
    net = build_network("resnet10", 1, dimensions="2d", slices=3).eval()
    x = torch.randn(2, 3, 16, 16)
    x[1, 2] = float("nan")  # case 1 has two lesion slices: the third is padding
    with torch.no_grad():
        case = net(x)[:, 0]
        b = net.branches[0]
        per_slice = net.head(b(torch.cat([x[0, :, None], x[1, :2, None]])))[:, 0]  # each slice alone
    expected = mean_of_logits(per_slice.numpy(), [0, 0, 0, 1, 1], 2)
    np.testing.assert_allclose(case.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_dice_ce_loss_on_a_known_mask():
    # logits 0 everywhere: softmax 1/2 per class. 8 voxels, 2 lesion:
    # Dice(lesion) = 2 * 0.5 * 2 / (0.5 * 8 + 2) = 1/3, Dice(background) = 2 * 0.5 * 6 / (4 + 6) = 0.6,
    # Dice loss = 1 - (1/3 + 0.6) / 2 = 0.5333; cross-entropy = ln 2
    target = torch.zeros(1, 1, 2, 2, 2)
    target[0, 0, 0, 0, :] = 1
    loss = segmentation_loss()(torch.zeros(1, 2, 2, 2, 2), target)
    assert float(loss) == pytest.approx(1 - (1 / 3 + 0.6) / 2 + math.log(2), abs=1e-4)
    sure = torch.cat([(1 - target) * 20 - 10, target * 20 - 10], dim=1)  # right class by a margin of 20
    assert float(segmentation_loss()(sure, target)) < 1e-3
    assert dice(target[0, 0].numpy(), target[0, 0].numpy()) == 1.0
    assert dice(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == pytest.approx(2 / 3)


def test_pcgrad_gives_the_published_projection():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1, p2 = pcgrad(g1, g2)  # g1.g2 = -1 < 0: g1 - (g1.g2/|g2|^2) g2 = (1, 0) + (-1, 1)/2
    assert p1.tolist() == [0.5, 0.5] and p2.tolist() == [0.0, 1.0]  # g2 - (g2.g1/|g1|^2) g1 = (-1, 1) + (1, 0)
    assert float(p1 @ g2) == 0.0 and float(p2 @ g1) == 0.0  # each on the other's normal plane
    q1, q2 = pcgrad(g1, torch.tensor([1.0, 1.0]))  # no conflict: unchanged
    assert q1.tolist() == [1.0, 0.0] and q2.tolist() == [1.0, 1.0]
    assert cosine(g1, g2) == pytest.approx(-1 / math.sqrt(2))


def _crops(n=8, size=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, size, size, size)).astype(np.float32)
    M = np.zeros((n, size, size, size), np.uint8)
    for i in range(n):
        M[i, 6:9 + i % 3, 5:10, 5:10] = 1
    y = np.array([0, 1] * (n // 2))
    X[:, 0] += 2.0 * M * y[:, None, None, None]
    return X, M, y


def test_multitask_with_pcgrad_records_the_gradient_cosine_and_dice(tmp_path):
    X, M, y = _crops()
    s = tiny(multitask=True, pcgrad=True, multitask_weight=0.5)
    f = fit(X, y, s, seed=3, masks=M, **QUIET)
    row = f["history"][0]
    assert -1.0 <= row["grad_cosine"] <= 1.0 and row["seg_loss"] > 0 and 0.0 <= row["val_dice"] <= 1.0
    d = segment_dice(f, X, M)
    assert d.shape == (8,) and ((0 <= d) & (d <= 1)).all()
    sha = save_model(f, tmp_path / "m.pt")
    g = load_model(tmp_path / "m.pt", sha)
    np.testing.assert_allclose(predict(g, X, masks=M)[0], predict(f, X, masks=M)[0], rtol=1e-6)
    with pytest.raises(ValueError, match="multitask learns the lesion mask: pass the crops' masks"):
        fit(X, y, s, seed=3, **QUIET)


def test_2_5d_cox_network_trains_predicts_and_round_trips(tmp_path):
    X, M, _ = _crops()
    time = np.arange(8, 0, -1) * 100.0
    event = np.array([1, 1, 0, 1, 1, 0, 1, 1])
    s = tiny(dimensions="2.5d", slices_2d=3, batch_size=8, validation_fraction=0.0)
    f = fit(X, None, s, seed=3, time=time, event=event, masks=M, **QUIET)
    risk, emb = predict(f, X, masks=M, embed=True)
    assert risk.shape == (8,) and emb.shape == (8, 512) and abs(risk.mean()) < 1e-4  # centred on training cases
    sha = save_model(f, tmp_path / "m.pt")
    np.testing.assert_allclose(predict(load_model(tmp_path / "m.pt", sha), X, masks=M)[0], risk, rtol=1e-5, atol=1e-6)


def test_config_refuses_multitask_outside_early_fusion_and_pcgrad_alone():
    import yaml
    from conftest import REPO

    config = yaml.safe_load((REPO / "config/studies/demo_deep.yaml").read_text())

    def check(**deep):
        c = copy.deepcopy(config)
        c["deep"].update(deep)
        validate_config(c)
        _check(c)

    check(dimensions="2.5d", multitask=True, pcgrad=True)
    with pytest.raises(ConfigError, match="deep.multitask shares one image encoder.*set deep.fusion: early"):
        check(multitask=True, fusion="intermediate")
    with pytest.raises(ConfigError, match="deep.pcgrad .* needs deep.multitask: true"):
        check(pcgrad=True)
    with pytest.raises(ConfigError, match="slices_2_5d = 4"):
        check(slices_2_5d=4)


def test_dossier_states_the_dimensions_multitask_and_c_index_side_by_side(tmp_path):
    import json

    from fake_results import make_results

    from acceflow.report.deep_section import deep_section
    from acceflow.report.view import ResultsView
    from acceflow.runtime import write_json

    config = make_results(tmp_path, comparators=("deep",))
    card_path = tmp_path / "clinical/model/comparators/deep/model_card.json"
    card = json.loads(card_path.read_text())
    s = tiny(dimensions="2d", slices_2d=4)
    from acceflow.study.deep import dimensions_description

    card["dimensions_description"] = dimensions_description(s)
    card["multitask"] = {"loss": "task loss + 0.5 x (Dice + cross-entropy)", "pcgrad_description": "PCGrad",
                         "cv_auc_mean": 0.71, "cv_dice_mean": 0.62, "cv_dice_sd": 0.05, "grad_cosine_mean": -0.12,
                         "grad_cosine_by_epoch": [0.3, -0.2]}
    card["training_history"] = [{"epoch": 1, "train_loss": 1.2, "grad_cosine": 0.3},
                                {"epoch": 2, "train_loss": 1.0, "grad_cosine": -0.2}]
    write_json(card, card_path)
    for i, folder in enumerate([tmp_path / "clinical/site_B", tmp_path / "clinical/site_B/comparators/deep"]):
        m = json.loads((folder / "metrics.json").read_text())
        m.update(c_index=0.70 + i / 10, c_index_ci_low=0.61, c_index_ci_high=0.79 + i / 10, uno_c=0.68)
        write_json(m, folder / "metrics.json")
    html = deep_section(ResultsView(tmp_path, config, ["train", "site_B"])).html
    assert "the 4 axial slices of the crop with the largest lesion area" in html
    assert "mean of its slices&#x27; logits" in html or "mean of its slices' logits" in html
    assert "decoder Dice 0.620" in html and "(epoch 1: 0.300, last epoch: -0.200)" in html
    assert "Harrell&#x27;s C [95% CI]" in html or "Harrell's C [95% CI]" in html
    assert "0.700 [0.610, 0.790]" in html and "0.800 [0.610, 0.890]" in html  # primary and deep comparator
    assert "gradient cosine" in html
