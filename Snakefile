# acceflow: validate an imaging biomarker along the ACCE hierarchy.
#   snakemake --cores 2                              # the built-in demo cohort
#   snakemake --cores 8 --configfile config/studies/picai.yaml
# The default config (config/config.yaml) is applied by profiles/default; a --configfile given on
# the command line replaces it. See README.md and docs/architecture.md.
from snakemake.utils import min_version

min_version("9.0")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/imaging.smk"
include: "workflow/rules/segmentation.smk"
include: "workflow/rules/analytical.smk"
include: "workflow/rules/clinical.smk"
include: "workflow/rules/internal_external.smk"
include: "workflow/rules/utility.smk"
include: "workflow/rules/deep.smk"
include: "workflow/rules/federated.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/federated_deep.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        R("report/dossier.html"),
        R("report/summary.json"),
        R("report/provenance.json"),
        R("report/rulegraph.svg"),
        R(Results.REPORT_FIGURES),
        R(Results.DOSSIER_PDF) if PDF else [],
        R("report/quality_scores.json"),
    default_target: True
