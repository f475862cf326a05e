"""Split the training cases and generate the synthetic cases (acceflow.study.synthetic.generate)."""
import pandas as pd

from acceflow.runtime import log_to
from acceflow.study.synthetic import generate

with log_to(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.features, sep="\t", dtype={"case_id": str})
    split, synthetic = generate(table, snakemake.params.config)
    split.to_csv(snakemake.output.split, sep="\t", index=False)
    synthetic.to_csv(snakemake.output.synthetic, sep="\t", index=False, float_format="%.10g")
