#!/usr/bin/env python3
"""Render and lint charts/dittofs-operator with Helm 4's engine (helm-python-sdk).

Usage: render.py CHART CASES_JSON
CASES_JSON is a list of {"name", "release", "namespace", "values"}. Prints one JSON
object: {"helm": version, "cases": {name: {"manifests": {template: text},
"lint": report}}}. Exit 3 when helm-python-sdk cannot be imported (tests/helm_chart.rs
installs it and puts it on PYTHONPATH), 1 on a render error.
"""

import json
import sys

try:
    import helm_python as helm
except ImportError:
    print("helm-python-sdk cannot be imported", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    chart_dir, cases = sys.argv[1], json.loads(sys.argv[2])
    chart = helm.Chart.load(chart_dir)
    out = {"helm": helm.helm_sdk_version(), "cases": {}}
    for case in cases:
        values = case.get("values") or None
        try:
            manifests = chart.render(
                values,
                name=case["release"],
                namespace=case["namespace"],
                is_install=True,
            )
        except helm.HelmError as error:
            print(f"{case['name']}: render failed: {error}", file=sys.stderr)
            return 1
        report = helm.lint(chart_dir, values, strict=True, namespace=case["namespace"])
        out["cases"][case["name"]] = {"manifests": manifests, "lint": report}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
