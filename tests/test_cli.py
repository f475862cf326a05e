"""The acceflow command."""
import pandas as pd

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
