"""The audit of the synthetic cases against the real ones (acceflow.study.synthetic.audit)."""
import pandas as pd

from acceflow.runtime import log_to, write_json
from acceflow.study.synthetic import audit

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    split = pd.read_csv(snakemake.input.split, sep="\t", dtype={"case_id": str})
    synthetic = pd.read_csv(snakemake.input.synthetic, sep="\t", dtype={"case_id": str})
    out = audit(table, split, synthetic, snakemake.params.config)
    for key in ("fidelity", "correlations", "distances"):
        out[key].to_csv(snakemake.output[key], sep="\t", index=False, float_format="%.10g")
    write_json(out["summary"], snakemake.output.summary)
