"""The ``acceflow`` command: small helpers around the workflow.

``acceflow demo OUT_DIR``  write the synthetic demo cohort (manifest, images, truth).
``acceflow manifest CONFIG``  build a study's manifest from its ``input.layout`` section.
``acceflow verify RESULTS_DIR``  re-hash the files named in the run's provenance; say what changed.
``acceflow version``  print versions.
The workflow itself runs with ``snakemake`` (see README.md).

Bad input (a missing folder or file, an unreadable table, a config the schema refuses, a wrong
option value) ends with one line ``acceflow <command>: error: ...`` on stderr and exit status 2,
never a traceback; an unexpected failure says so in one line and exits 1 (set ``ACCEFLOW_DEBUG=1``
for its traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

import acceflow
from acceflow.demo import make_demo_cohort
from acceflow.io.manifest import build_manifest_from_layout
from acceflow.report.provenance import package_versions
from acceflow.report.verify import format_verification, verify
from acceflow.study.settings import ConfigError, section_settings

#: what bad input raises in the library: the project's errors are ValueError subclasses (ManifestError,
#: ConfigError, ImageError, ...), files and folders raise OSError, a YAML file that does not parse YAMLError
EXPECTED_ERRORS = (ValueError, OSError, KeyError, yaml.YAMLError)


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
    try:
        return _run(args)
    except EXPECTED_ERRORS as exc:
        return _fail(args.command, _message(exc), 2)
    except Exception as exc:  # noqa: BLE001 - the command line shows one line, never a traceback
        if os.environ.get("ACCEFLOW_DEBUG"):
            raise
        return _fail(args.command, f"unexpected {type(exc).__name__}: {_message(exc)} (a bug: please report it; "
                                   f"ACCEFLOW_DEBUG=1 shows the traceback)", 1)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}" if exc.args else "missing key"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(command: str, message: str, code: int) -> int:
    print(f"acceflow {command}: error: {message}", file=sys.stderr)
    return code


def _run(args) -> int:
    if args.command == "demo":
        if Path(args.out_dir).exists() and not Path(args.out_dir).is_dir():
            raise ValueError(f"{args.out_dir} is a file, not a folder: give a folder for the demo cohort")
        if args.n_train < 10 or any(n < 5 for n in args.n_external) or args.n_retest < 0 or args.n_reader < 0:
            raise ValueError("--n-train must be at least 10, each --n-external at least 5, --n-retest and "
                             "--n-reader at least 0 (as demo.* in the config schema)")
        written = make_demo_cohort(args.out_dir, n_train=args.n_train, n_external=tuple(args.n_external),
                                   n_retest=min(args.n_retest, args.n_train), n_reader=min(args.n_reader, args.n_train),
                                   seed=args.seed)
        print(written["manifest"])
    elif args.command == "manifest":
        path = Path(args.config)
        if not path.is_file():
            raise ValueError(f"{path}: config file not found")
        cfg = yaml.safe_load(path.read_text())
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: not a config (a YAML mapping of keys to values)")
        inp = section_settings("input", cfg.get("input"))
        lay = inp["layout"]
        if not lay:
            raise ConfigError(f"{path}: input.layout is not set: give input.layout (root, images, masks) to build "
                              f"a manifest from a folder layout (see config/README.md)")
        out = args.out or inp["images"]
        if not out:
            raise ConfigError(f"{path}: input.images is not set: give --out or input.images (where the manifest goes)")
        if not Path(lay["root"]).is_dir():
            raise ValueError(f"input.layout.root {lay['root']}: folder not found")
        df = build_manifest_from_layout(lay["root"], lay["images"], lay["masks"], cases=lay.get("cases", "*"),
                                        clinical=lay.get("clinical"), clinical_id=lay.get("clinical_id", "case_id"),
                                        cohort=lay.get("cohort", "site"))
        if not Path(out).parent.is_dir():
            raise ValueError(f"{out}: its folder {Path(out).parent} does not exist; create it or give another --out")
        df.to_csv(out, sep="\t", index=False)
        print(f"{out}: {len(df)} rows")
    elif args.command == "verify":
        if not Path(args.results_dir).is_dir():
            raise ValueError(f"{args.results_dir}: results folder not found")
        result = verify(args.results_dir)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        elif result.error:
            print(f"acceflow verify: error: {result.error}", file=sys.stderr)
        else:
            print(format_verification(result))
        return result.exit_code
    else:
        print(f"acceflow {acceflow.__version__}")
        for name, version in package_versions().items():
            print(f"{name} {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
