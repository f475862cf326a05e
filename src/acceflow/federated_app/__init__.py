"""The federated learner as a Flower app (``ServerApp`` / ``ClientApp``) that a consortium runs across
hospitals with Flower's deployment runtime (a SuperLink at the coordinator, a SuperNode per hospital):
the same client (:class:`acceflow.models.federated.LogisticSiteClient`) and strategy as the workflow's
unrolled DAG. The Flower app project is ``apps/federated/`` (``pyproject.toml``); README: "Federated
training across hospitals".

Each SuperNode is started with ``--node-config "table='/path/site.tsv' site='NAME'"``: a TSV with
``case_id``, ``outcome`` (0/1) and the feature columns (what ``rule federated_split`` writes, e.g.
``clinical/federated/sites/{site}/table.tsv``), which never leaves the hospital.
"""
