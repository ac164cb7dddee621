#!/usr/bin/python3
"""Static checks of the Helm chart (deploy/helm/immunizer) that need no helm binary.

1. Chart.yaml: apiVersion v2, name, SemVer version, appVersion.
2. values.yaml (no duplicate keys) and ci/test-values.yaml merged over it validate
   against values.schema.json (JSON Schema draft 7, as helm does); a set of broken values
   (wrong types, unknown keys, bad enum, HPA bound missing) must be rejected.
3. Templates: {{ }} delimiters balance, every block (if/with/range/define) has its {{ end }},
   `else` only inside if/with/range, and every .Values.a.b path and every per-service
   ($v.x) path referenced exists in values.yaml.
4. Every file the templates read with .Files.Get exists in the chart.
Usage: check_helm_chart.py [REPO_ROOT]
"""
import copy
import json
import os
import re
import sys

import jsonschema
import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "deploy", "helm", "immunizer")
SERVICES = ["monitor", "analyze", "plan", "execute", "dashboard"]
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


class UniqueKeyLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = set()
    for k, _ in node.value:
        key = loader.construct_object(k, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", k.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=UniqueKeyLoader)


def merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def has_path(values, path):
    node = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}", re.S)


def check_template(name, text, values):
    ok = True
    if text.count("{{") != text.count("}}"):
        check(False, f"{name}: {{{{ and }}}} do not balance ({text.count('{{')} vs {text.count('}}')})")
        return
    stack = []
    for m in ACTION.finditer(text):
        body = m.group(1).strip()
        line = text.count("\n", 0, m.start()) + 1
        if body.startswith("/*"):
            if not body.endswith("*/"):
                check(False, f"{name}:{line}: comment not closed inside its action")
                ok = False
            continue
        word = body.split()[0] if body.split() else ""
        if word in ("if", "with", "range", "define", "block"):
            stack.append((word, line))
        elif word == "end":
            if not stack:
                check(False, f"{name}:{line}: {{{{ end }}}} without an open block")
                ok = False
            else:
                stack.pop()
        elif word == "else":
            if not stack or stack[-1][0] not in ("if", "with", "range"):
                check(False, f"{name}:{line}: else outside if/with/range")
                ok = False
        for ref in re.findall(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", body):
            path = ref.strip(".").split(".")
            if not has_path(values, path):
                check(False, f"{name}:{line}: .Values.{'.'.join(path)} is not in values.yaml")
                ok = False
        for ref in re.findall(r"\$v((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", body):
            path = ref.strip(".").split(".")
            owners = [s for s in SERVICES if has_path(values.get(s, {}), path)]
            if not owners:
                check(False, f"{name}:{line}: $v.{'.'.join(path)} exists in no service block of values.yaml")
                ok = False
    for word, line in stack:
        check(False, f"{name}:{line}: {{{{ {word} }}}} has no {{{{ end }}}}")
        ok = False
    check(ok, f"template {name}: delimiters, blocks and value references")


def main():
    chart = load(os.path.join(CHART, "Chart.yaml"))
    check(chart.get("apiVersion") == "v2", "Chart.yaml apiVersion v2")
    check(chart.get("name") == "immunizer", "Chart.yaml name immunizer")
    check(re.match(r"^\d+\.\d+\.\d+(-[\w.]+)?$", str(chart.get("version", ""))) is not None, f"Chart.yaml version is SemVer ({chart.get('version')})")
    check(bool(chart.get("appVersion")), "Chart.yaml appVersion set")

    try:
        values = load(os.path.join(CHART, "values.yaml"))
        check(True, "values.yaml parses with no duplicate keys")
    except yaml.YAMLError as e:
        check(False, f"values.yaml: {e}")
        return 1
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)

    def errors(v):
        return sorted(validator.iter_errors(v), key=lambda e: list(e.path))

    errs = errors(values)
    check(not errs, "values.yaml validates against values.schema.json" + "".join(f"\n     {list(e.path)}: {e.message}" for e in errs))
    ci_dir = os.path.join(CHART, "ci")
    for f in sorted(os.listdir(ci_dir)) if os.path.isdir(ci_dir) else []:
        merged = merge(copy.deepcopy(values), load(os.path.join(ci_dir, f)))
        errs = errors(merged)
        check(not errs, f"values.yaml + ci/{f} validates" + "".join(f"\n     {list(e.path)}: {e.message}" for e in errs))

    broken = {
        "replicaCount as a string": {"analyze": {"replicaCount": "two"}},
        "unknown top-level key": {"analyser": {}},
        "unknown service key": {"plan": {"replicas": 2}},
        "bad security protocol": {"kafka": {"securityProtocol": "tls"}},
        "bad SASL mechanism": {"kafka": {"sasl": {"mechanism": "GSSAPI-ish"}}},
        "bootstrap without port": {"kafka": {"bootstrap": "kafka"}},
        "port out of range": {"execute": {"grpcPort": 70000}},
        "HPA without maxReplicas": {"analyze": {"autoscaling": {"enabled": True, "minReplicas": 1, "targetCPUUtilizationPercentage": 70}}},
        "bad log level": {"logLevel": "verbose"},
        "bad image pull policy": {"image": {"pullPolicy": "Sometimes"}},
        "env with a bad name": {"monitor": {"env": {"BAD-NAME": "x"}}},
    }
    for name, patch in broken.items():
        v = copy.deepcopy(values)
        if name == "HPA without maxReplicas":
            del v["analyze"]["autoscaling"]["maxReplicas"]
        else:
            merge(v, patch)
        check(bool(errors(v)), f"schema rejects: {name}")

    # HPA bound documented in values: maxReplicas <= modelKeyedPartitions by default.
    parts = values["kafka"]["topics"]["modelKeyedPartitions"]
    for s in ("analyze", "monitor"):
        check(values[s]["autoscaling"]["maxReplicas"] <= parts, f"{s}: default maxReplicas <= modelKeyedPartitions ({parts})")

    tdir = os.path.join(CHART, "templates")
    for f in sorted(os.listdir(tdir)):
        text = open(os.path.join(tdir, f)).read()
        check_template(f, text, values)
        for ref in re.findall(r'\.Files\.Get\s+"([^"]+)"', text):
            check(os.path.isfile(os.path.join(CHART, ref)), f"{f}: .Files.Get {ref} exists in the chart")
    for s in SERVICES:
        check(os.path.isfile(os.path.join(tdir, f"{s}.yaml")), f"templates/{s}.yaml present")
    for f in ("_helpers.tpl", "NOTES.txt", "secret.yaml", "servicemonitor.yaml", "grafana-dashboard.yaml"):
        check(os.path.isfile(os.path.join(tdir, f)), f"templates/{f} present")

    print(f"helm chart static checks: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
