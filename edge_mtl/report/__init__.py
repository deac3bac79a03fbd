"""The FPS / accuracy quantization report: run folders of eval, bench and camera JSONs ->
``report.md``, ``report.json`` (schema ``edge_mtl.report/1``) and PNG plots.

    from edge_mtl.report import build_report
    report = build_report(["runs/deploy"], "runs/deploy")

collect.py reads the run folders, tables.py turns them into rows (unmeasured cells are None),
markdown.py and plots.py render them; build.py ties them together.
"""

from edge_mtl.report.build import SCHEMA, build_report

__all__ = ["SCHEMA", "build_report"]
