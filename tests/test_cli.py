"""The acceflow command."""
import pandas as pd
import pytest
import yaml

from acceflow.cli import main


def test_cli_demo_writes_a_manifest(tmp_path, capsys):
    assert main(["demo", str(tmp_path), "--n-train", "12", "--n-external", "6", "6"]) == 0
    manifest = pd.read_csv(tmp_path / "manifest.tsv", sep="\t")
    assert set(manifest["cohort"]) == {"site_A", "site_B", "site_C"}
    assert (tmp_path / manifest.loc[0, "image"]).is_file()


def test_cli_version(capsys):
    assert main(["version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("acceflow ") and "pyradiomics" in out


# --------------------------------------------------------------- bad input: one line, never a traceback

def _fails(capsys, argv, *expected, code=2):
    """``acceflow argv`` exits with ``code`` and one stderr line ``acceflow <cmd>: error: ...`` holding ``expected``."""
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"acceflow {argv[0]}: error: "), err
    for text in expected:
        assert text in err[0], err[0]
    return err[0]


def _layout_config(tmp_path, **layout):
    lay = {"root": str(tmp_path / "data"), "images": {"CT": "image.nii.gz"}, "masks": {"CT": "mask.nii.gz"}, **layout}
    config = {"input": {"images": str(tmp_path / "manifest.tsv"), "layout": lay},
              "cohorts": {"train": ["site"]}, "outcome": {"column": "y"}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_manifest_bad_input_ends_with_one_line(tmp_path, capsys):
    _fails(capsys, ["manifest", str(tmp_path / "nope.yaml")], "nope.yaml: config file not found")
    (tmp_path / "broken.yaml").write_text("input: [unclosed\n")
    _fails(capsys, ["manifest", str(tmp_path / "broken.yaml")], "while parsing")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    _fails(capsys, ["manifest", str(tmp_path / "list.yaml")], "not a config")
    (tmp_path / "nolayout.yaml").write_text("input: {images: m.tsv}\n")
    _fails(capsys, ["manifest", str(tmp_path / "nolayout.yaml")], "input.layout is not set")
    _fails(capsys, ["manifest", str(_layout_config(tmp_path))], f"input.layout.root {tmp_path / 'data'}: folder not found")
    (tmp_path / "data").mkdir()
    _fails(capsys, ["manifest", str(_layout_config(tmp_path, imags={"CT": "x"}))],
           "unknown config key 'input.layout.imags'; did you mean 'images'?")
    _fails(capsys, ["manifest", str(_layout_config(tmp_path))], str(tmp_path / "data"))  # no case folder in it
    (tmp_path / "data" / "case_1").mkdir()
    _fails(capsys, ["manifest", str(_layout_config(tmp_path, clinical=str(tmp_path / "clin.csv")))], "clin.csv")
    _fails(capsys, ["manifest", str(_layout_config(tmp_path)), "--out", str(tmp_path / "no" / "m.tsv")],
           "does not exist")


def test_cli_demo_and_verify_bad_input_end_with_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _fails(capsys, ["demo", str(tmp_path / "file")], "is a file, not a folder")
    _fails(capsys, ["demo", str(tmp_path / "out"), "--n-train", "3"], "--n-train must be at least 10")
    _fails(capsys, ["verify", str(tmp_path / "missing")], "results folder not found")
    (tmp_path / "run" / "report").mkdir(parents=True)
    (tmp_path / "run" / "report" / "provenance.json").write_text("{not json")
    _fails(capsys, ["verify", str(tmp_path / "run")], "cannot read")


def test_cli_wrong_option_value_is_argparses_usage_error(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["demo", "out", "--n-train", "many"])
    assert stop.value.code == 2 and "invalid int value: 'many'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["nonsense"])
    assert stop.value.code == 2 and "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_cli_unexpected_failure_is_one_line_with_exit_1(monkeypatch, capsys):
    import acceflow.cli as cli

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")
    monkeypatch.setattr(cli, "package_versions", broken)
    _fails(capsys, ["version"], "unexpected RuntimeError: something inside broke", code=1)
