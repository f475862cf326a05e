"""pyradiomics extraction of every scan of one case, in one process (acceflow.imaging.extract.extract_scan).

One row per scan (in the scans table's order) is written to the case's feature file, pyradiomics'
diagnostics to its diagnostics file. One process per case (not per scan) pays the interpreter and
the SimpleITK / numpy / pyradiomics imports once for all the case's scans and modalities (issue 21),
while adding a case still re-runs only that case's job.

A failure, or a feature that comes out NaN/inf, makes that scan (not the case) a failed extraction:
with on_case_error: exclude its reason is written instead of features and the case's other scans
and the rest of the cohort continue (the scan is listed in features/extraction_qc.tsv); with stop
the job fails. The rows are written with the csv module (not pandas): its import would be part of
every case's start-up.
"""
import csv
import logging
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


# ITK's filters (pyradiomics' resampling, cropping) use a thread per core by default; Snakemake
# already runs one job per core, so more threads only contend (the values do not depend on it)
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(max(1, snakemake.threads))

with log_to(snakemake.log[0]):
    rows, diags = [], []
    for scan, s in snakemake.params.scans.items():
        start = perf_counter()
        try:
            features, diagnostics = extract_scan(snakemake.input[f"image__{scan}"], snakemake.input[f"mask__{scan}"],
                                                 snakemake.input[f"params__{scan}"], s["label"], s["overrides"])
            rows.append({"scan_id": scan, "error": "", **features})
            diags.append({"scan_id": scan, **diagnostics})
            log.info("scan %s: %d features extracted with %s in %.1f s", scan, len(features),
                     snakemake.input[f"params__{scan}"], perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - any failure of one scan is reported, not fatal
            if snakemake.params.on_error == "stop":
                raise
            log.warning("scan %s: extraction failed: %r", scan, exc)
            rows.append({"scan_id": scan, "error": f"feature extraction failed: {exc}"})
            diags.append({"scan_id": scan})
    write_rows(snakemake.output.features, rows)
    write_rows(snakemake.output.diagnostics, diags)
