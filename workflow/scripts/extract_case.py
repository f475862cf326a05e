"""pyradiomics extraction of every scan of one case, in one process (acceflow.imaging.extract.extract_scan).

Run by the ``extract_case`` rule as a plain program (``shell:``, not ``script:``)::

    python extract_case.py SPEC LOG

``SPEC`` is one JSON object (written by ``case_extraction_spec`` in ``workflow/rules/common.smk``):
``{"scans": {scan_id: {"image", "mask", "params", "label", "overrides"}}, "on_error": "exclude" |
"stop", "threads": n, "features": path, "diagnostics": path}``; ``LOG`` the job's log file. Without Snakemake's
script preamble the job does not import Snakemake to unpickle its ``snakemake`` object: ~60 ms of
every case's start-up, with the interpreter and the SimpleITK / numpy / pyradiomics imports
(~0.2 s) paid once per case, not once per scan (issue 21), while adding a case still re-runs only
that case's job.

One row per scan (in the scans table's order) is written to the case's feature file, pyradiomics'
diagnostics to its diagnostics file. A failure, or a feature that comes out NaN/inf, makes that scan
(not the case) a failed extraction: with on_case_error: exclude its reason is written instead of
features and the case's other scans and the rest of the cohort continue (the scan is listed in
features/extraction_qc.tsv); with stop the job fails. The rows are written with the csv module (not
pandas): its import would be part of every case's start-up.
"""
import csv
import json
import logging
import sys
from time import perf_counter

import SimpleITK as sitk

from acceflow.imaging.extract import extract_scan
from acceflow.runtime import log_to

log = logging.getLogger("acceflow.extract")


def write_rows(path, rows):
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, delimiter="\t", lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows)


def main(spec: dict, log_path: str) -> None:
    # ITK's filters (pyradiomics' resampling, cropping) use a thread per core by default; Snakemake
    # already runs one job per core, so more threads only contend (the values do not depend on it)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, int(spec["threads"])))
    with log_to(log_path):
        rows, diags = [], []
        for scan, s in spec["scans"].items():
            start = perf_counter()
            try:
                features, diagnostics = extract_scan(s["image"], s["mask"], s["params"], s["label"], s["overrides"])
                rows.append({"scan_id": scan, "error": "", **features})
                diags.append({"scan_id": scan, **diagnostics})
                log.info("scan %s: %d features extracted with %s in %.1f s", scan, len(features), s["params"],
                         perf_counter() - start)
            except Exception as exc:  # noqa: BLE001 - any failure of one scan is reported, not fatal
                if spec["on_error"] == "stop":
                    raise
                log.warning("scan %s: extraction failed: %r", scan, exc)
                rows.append({"scan_id": scan, "error": f"feature extraction failed: {exc}"})
                diags.append({"scan_id": scan})
        write_rows(spec["features"], rows)
        write_rows(spec["diagnostics"], diags)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]), sys.argv[2])
