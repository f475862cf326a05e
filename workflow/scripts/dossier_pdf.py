"""The dossier printed to PDF by headless Chromium (acceflow.report.browser.print_pdf)."""
from acceflow.report.browser import print_pdf
from acceflow.runtime import log_to

with log_to(snakemake.log[0]):
    pdf = print_pdf(snakemake.input.html, snakemake.output.pdf)
    print(f"printed {snakemake.input.html} to {pdf} ({pdf.stat().st_size} bytes)")
