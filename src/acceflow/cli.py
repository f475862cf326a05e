"""The ``acceflow`` command: small helpers around the workflow.

``acceflow demo OUT_DIR``  write the synthetic demo cohort (manifest, images, truth).
``acceflow manifest CONFIG``  build a study's manifest from its ``input.layout`` section.
``acceflow verify RESULTS_DIR``  re-hash the files named in the run's provenance; say what changed.
``acceflow version``  print versions.
The workflow itself runs with ``snakemake`` (see README.md).
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

import acceflow
from acceflow.demo import make_demo_cohort
from acceflow.io.manifest import build_manifest_from_layout
from acceflow.report.provenance import package_versions
from acceflow.report.verify import format_verification, verify


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="acceflow", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic demo cohort")
    demo.add_argument("out_dir")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--n-train", type=int, default=100)
    demo.add_argument("--n-external", type=int, nargs="+", default=[60, 60])
    demo.add_argument("--n-retest", type=int, default=20)
    demo.add_argument("--n-reader", type=int, default=20)
    man = sub.add_parser("manifest", help="build a manifest from a config's input.layout")
    man.add_argument("config")
    man.add_argument("--out", help="default: the config's input.images")
    ver = sub.add_parser("verify", help="re-hash the inputs and outputs named in a run's provenance.json")
    ver.add_argument("results_dir", help="the results folder (holding report/provenance.json)")
    ver.add_argument("--json", action="store_true", help="print the full check as JSON")
    sub.add_parser("version", help="print versions")
    args = parser.parse_args(argv)
    if args.command == "demo":
        written = make_demo_cohort(args.out_dir, n_train=args.n_train, n_external=tuple(args.n_external),
                                   n_retest=min(args.n_retest, args.n_train), n_reader=min(args.n_reader, args.n_train),
                                   seed=args.seed)
        print(written["manifest"])
    elif args.command == "manifest":
        cfg = yaml.safe_load(open(args.config))
        lay = cfg["input"]["layout"]
        out = args.out or cfg["input"]["images"]
        df = build_manifest_from_layout(lay["root"], lay["images"], lay["masks"], cases=lay.get("cases", "*"),
                                        clinical=lay.get("clinical"), clinical_id=lay.get("clinical_id", "case_id"),
                                        cohort=lay.get("cohort", "site"))
        df.to_csv(out, sep="\t", index=False)
        print(f"{out}: {len(df)} rows")
    elif args.command == "verify":
        result = verify(args.results_dir)
        print(json.dumps(result.to_dict(), indent=2) if args.json else format_verification(result))
        return result.exit_code
    else:
        print(f"acceflow {acceflow.__version__}")
        for name, version in package_versions().items():
            print(f"{name} {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
