"""Write the built-in synthetic demo cohort (acceflow.demo)."""
import os

from acceflow.demo import make_demo_cohort
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    s = snakemake.params.settings
    written = make_demo_cohort(os.path.dirname(snakemake.output.manifest), n_train=s["n_train"],
                               n_external=tuple(s["n_external"]), n_retest=s["n_retest"],
                               n_reader=s["n_reader"], seed=snakemake.params.seed)
    print(written)
