"""Provenance records, and `acceflow verify` re-checks, every table, JSON, model file and figure of
the results contract (issue 16, part 3), and names what changed."""

from __future__ import annotations

import numpy as np
from fake_results import make_results

from acceflow.cli import main
from acceflow.models.persistence import save_model
from acceflow.report.provenance import collect_provenance
from acceflow.report.verify import format_verification, verify
from acceflow.runtime import write_json
from acceflow.study.results import Results, comparator, contract_files, fill

MODEL_FILES = [Results.MODEL, comparator(Results.NETWORK, "deep"),
               fill(Results.SEGMENTER, modality="t2w", fold="final")]


def _results(tmp_path):
    from sklearn.linear_model import LogisticRegression

    root = tmp_path / "results"
    root.mkdir()
    config = make_results(root)
    save_model(LogisticRegression().fit(np.arange(20.0)[:, None], np.arange(20) % 2), root / Results.MODEL)
    for rel in MODEL_FILES[1:]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"PK\x03\x04 weights " + rel.encode())
    (root / Results.SCANS).write_text("scan_id\tcase_id\timage\tmask\ns1\tc1\ta.nii.gz\t\n")
    # not recorded: the report's own files, logs, temporary files, images
    for rel in ("report/figures/x.png", "logs/train.log", "clinical/model/.model.skops.tmp",
                "preprocessed/s1/image.nii.gz"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return root, config


def test_contract_files_cover_models_tables_json_and_figures(tmp_path):
    root, _ = _results(tmp_path)
    files = contract_files(root)
    for rel in [*MODEL_FILES, Results.SCANS, Results.QC, Results.FEATURES, Results.ICC, Results.MODEL_CARD,
                fill(Results.METRICS, cohort="site_B"), fill(Results.CALIBRATION_FIGURE, cohort="train", ext="png")]:
        assert rel in files, rel
    assert not any(f.startswith(("report/", "logs/", "preprocessed/")) or "/." in f for f in files)


def test_verify_names_a_changed_model_file_and_table(tmp_path, capsys):
    root, config = _results(tmp_path)
    prov = collect_provenance(config, [], [root / rel for rel in contract_files(root)], results_dir=root)
    assert set(prov["outputs"]) == set(contract_files(root)) and all(prov["outputs"].values())
    write_json(prov, root / "report" / "provenance.json")
    assert verify(root).ok
    for rel in (Results.MODEL, Results.SCANS, MODEL_FILES[2]):
        data = bytearray((root / rel).read_bytes())
        data[len(data) // 2] ^= 0x01  # flip one bit
        (root / rel).write_bytes(bytes(data))
    v = verify(root)
    assert v.exit_code == 1
    assert sorted((c.kind, c.path, c.status) for c in v.changes) == sorted(
        ("output", rel, "changed") for rel in (Results.MODEL, Results.SCANS, MODEL_FILES[2]))
    text = format_verification(v)
    assert f"CHANGED output: {Results.MODEL}" in text and f"CHANGED output: {Results.SCANS}" in text
    assert main(["verify", str(root)]) == 1
    assert "clinical/model/model.skops" in capsys.readouterr().out
