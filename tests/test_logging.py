"""acceflow.runtime.log_to: the log file gets everything, the console a short account of a failure."""
import logging
import sys

import pytest

from acceflow.runtime import failure_summary, log_to


def test_failure_goes_to_the_log_in_full_and_to_the_console_in_one_line_per_cause(tmp_path, capsys):
    log = tmp_path / "logs" / "extract" / "case_7.log"
    with pytest.raises(ValueError):
        with log_to(str(log)):
            logging.getLogger("acceflow.test").info("reading %s", "case_7.nii.gz")
            try:
                raise OSError("case_7.nii.gz: not a gzip file")
            except OSError as exc:
                raise ValueError("case case_7: image case_7.nii.gz cannot be read; re-export it") from exc
    console = capsys.readouterr().err.splitlines()
    assert console == ["error: ValueError: case case_7: image case_7.nii.gz cannot be read; re-export it",
                       "  caused by: OSError: case_7.nii.gz: not a gzip file",
                       f"  full log: {log}"]
    text = log.read_text()
    assert "INFO acceflow.test: reading case_7.nii.gz" in text and "Traceback" in text and "not a gzip" in text


def test_a_step_that_succeeds_prints_nothing_on_the_console(tmp_path, capsys):
    with log_to(str(tmp_path / "ok.log")):
        print("done")
    assert capsys.readouterr().err == "" and "done" in (tmp_path / "ok.log").read_text()


def test_summary_shortens_long_messages_and_shows_the_first_lines_of_a_list():
    assert failure_summary(RuntimeError("a" * 500 + "b" * 500), None, limit=50) == (
        "error: RuntimeError: " + "a" * 22 + " ... " + "b" * 23)  # the start and the end (the fix) kept
    rows = "t.csv: rows that do not match the schema:\n" + "\n".join(f"  line {i}: bad" for i in range(2, 12))
    assert failure_summary(ValueError(rows), "logs/ingest_table.log").splitlines() == [
        "error: ValueError: t.csv: rows that do not match the schema:", "    line 2: bad", "    line 3: bad",
        "    (+8 more lines in the log)", "  full log: logs/ingest_table.log"]
    assert sys.exc_info() == (None, None, None)


def test_nested_cross_validation_logs_fold_k_of_k_with_elapsed_seconds(caplog):
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from acceflow.models.pipeline import internal_validation

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    y = (X["a"] + rng.normal(size=40) > 0).astype(int).to_numpy()
    with caplog.at_level(logging.INFO, logger="acceflow.models.pipeline"):
        _, folds = internal_validation(X, y, LogisticRegression, folds=4, repeats=2, seed=1)
    messages = [r.getMessage() for r in caplog.records if r.name == "acceflow.models.pipeline"]
    assert messages[0] == "internal validation: 2 repeats x 4 outer folds (8 fits of the whole procedure) on 40 cases, 3 features"
    assert len(messages) == 9
    for i, (row, message) in enumerate(zip(folds.itertuples(), messages[1:]), 1):
        assert message.startswith(f"repeat {row.repeat}/2, fold {row.fold}/4 (fit {i} of 8): {row.n} test cases, "
                                  f"AUC {row.auc:.3f}, ") and message.endswith(" s elapsed")
