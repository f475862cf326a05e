"""METRICS and RQS scored from the run's results and the config's study: section (acceflow.study.quality)."""
from acceflow.runtime import log_to, write_json
from acceflow.study.quality import quality_scores

with log_to(snakemake.log[0]):
    scores = quality_scores(snakemake.params.results, snakemake.params.config)
    m, r = scores["metrics"], scores["rqs"]
    print(f"METRICS {m['score_percent']:.1f}% ({m['n_met']} of {m['n_applicable']} applicable items met, "
          f"{m['n_author']} author to answer); RQS {r['total']} of {r['max_total']} ({r['percent']:.1f}%)")
    write_json(scores, snakemake.output.scores)
