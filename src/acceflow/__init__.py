"""acceflow: validate an imaging biomarker along the ACCE hierarchy.

Analytical validity, clinical validity and clinical utility, from images (or a feature table)
to an audit-ready evidence dossier. The library never imports snakemake; the workflow under
``workflow/`` wires its functions to files.
"""

__version__ = "0.1.0"
