"""JSON schemas of the input sheets (``workflow/schemas/``) and row-wise validation of a table.

The schemas live where the Snakemake workflow catalog keeps them, ``workflow/schemas/*.schema.yaml``
(the config, the image manifest, the feature table), and the library reads them from there: the
workflow runs acceflow from its checkout (``src/`` on PYTHONPATH, or ``pip install -e .``), so the
folder is found relative to this file. Where acceflow is installed without its checkout, set
``ACCEFLOW_SCHEMAS`` to a folder holding the schema files.

A row schema describes one row of a table as a JSON object: column -> cell. Empty cells are
``null``; numbers are numbers. :func:`validate_rows` reports every failing cell with its line,
case and column, and the fix the schema gives (``x-fix``, on the property or on
``additionalProperties``).
"""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import yaml

#: workflow/schemas of the checkout this module belongs to (src/acceflow/io/schemas.py -> repo root)
SCHEMA_DIR = Path(__file__).resolve().parents[3] / "workflow" / "schemas"


def schema_dir() -> Path:
    """The folder of the schema files: ``$ACCEFLOW_SCHEMAS`` if set, else the checkout's ``workflow/schemas``."""
    return Path(os.environ.get("ACCEFLOW_SCHEMAS") or SCHEMA_DIR)


@cache
def _load(path: str) -> dict:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_schema(name: str) -> dict:
    """Read ``<name>.schema.yaml`` (e.g. ``"manifest"``) from :func:`schema_dir`.

    Raises
    ------
    FileNotFoundError
        With the folder searched and how to point acceflow at the schemas.
    """
    path = schema_dir() / f"{name}.schema.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: schema not found; run acceflow from its checkout (workflow/schemas) "
                                f"or set ACCEFLOW_SCHEMAS to a folder holding {path.name}")
    return _load(str(path))


def _cell(value):
    """A table cell as JSON: NaN / None -> null, numpy scalars -> Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _fix(schema: dict, column: str | None) -> str:
    if column is None:
        return schema.get("x-fix", "")
    prop = schema.get("properties", {}).get(column)
    if prop is None:
        prop = schema.get("additionalProperties") if isinstance(schema.get("additionalProperties"), dict) else {}
    return prop.get("x-fix", "")


def validate_rows(df: pd.DataFrame, schema: dict, id_column: str = "case_id", limit: int = 10) -> list[str]:
    """Validate each row of a table against a row schema.

    Parameters
    ----------
    df : pandas.DataFrame
        The table, rows in file order (line = position + 2, after the header line).
    schema : dict
        JSON schema of one row (:func:`load_schema`).
    id_column : str
        Column naming the case in the messages.
    limit : int
        Report at most this many problems (the count of all is given).

    Returns
    -------
    list of str
        ``"line 3 (case c5), column 'image': None is not of type 'string'; fix: ..."``, one per
        failing cell; empty when the table conforms.
    """
    validator = jsonschema.Draft202012Validator(schema)
    problems, total = [], 0
    records = df.to_dict("records")
    for position, record in enumerate(records):
        row = {str(k): _cell(v) for k, v in record.items()}
        for error in sorted(validator.iter_errors(row), key=lambda e: list(e.path)):
            total += 1
            if len(problems) >= limit:
                continue
            column = str(error.path[0]) if error.path else None
            if error.validator == "required":
                column = error.message.split("'")[1] if "'" in error.message else None
            where = f"line {position + 2} (case {row.get(id_column)})"
            fix = _fix(schema, column)
            problems.append(f"{where}, column '{column}': {error.message}" + (f"; fix: {fix}" if fix else ""))
    if total > len(problems):
        problems.append(f"... and {total - len(problems)} more")
    return problems
