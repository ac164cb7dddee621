#!/usr/bin/python3
"""Checks the Grafana dashboard and its provisioning.

The dashboard (deploy/helm/immunizer/dashboards/immunizer.json, the one copy used by compose
and the chart) is valid JSON with a uid, a `datasource` variable that every panel and query
uses, unique panel ids and non-overlapping grid positions; it charts every metric the
services export (docs/operations.md lists their meaning); every query names only known
immunizer_* metrics with balanced brackets; histogram metrics are read through
histogram_quantile on _bucket; counters through rate()/increase(). The compose
provisioning files point Grafana at Prometheus and at the mounted dashboard directory.
Usage: check_dashboard.py [REPO_ROOT]
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
DASH = os.path.join(ROOT, "deploy", "helm", "immunizer", "dashboards", "immunizer.json")


def families():
    """Every metric family the shipped code registers (prometheus-cpp Build<Type>().Name("..."))
    by type, from the sources under the repository (tests, benchmarks and fuzzers excluded)."""
    found = {"Counter": set(), "Gauge": set(), "Histogram": set(), "Summary": set()}
    pat = re.compile(r'Build(Counter|Gauge|Histogram|Summary)\(\)\s*\.Name\(\s*"(immunizer_[a-z_]+)"')
    # common/metrics.hpp's helpers: counter_family(r, "name", ...), register_gauge(r, "name", ...)
    helper = re.compile(r'\b(?:common::)?(counter|gauge|histogram)_family\(\s*[^,()]+,\s*"(immunizer_[a-z_]+)"'
                        r'|\b(?:common::)?register_(counter|gauge|histogram)\(\s*[^,()]+,\s*"(immunizer_[a-z_]+)"')
    for top, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(top, ROOT)
        if rel.split(os.sep)[0] in ("build", ".git", "tests", "bench", "fuzz", "node_modules") or "/tests" in "/" + rel:
            dirs[:] = []
            continue
        for f in files:
            if f.endswith((".cpp", ".hpp")):
                text = open(os.path.join(top, f), errors="replace").read()
                for m in pat.finditer(text):
                    found[m.group(1)].add(m.group(2))
                # the sensor's own helpers (it links no service code): counter("name", ...),
                # gauge("name", ...), by_reason<Reason>(registry, "name", ...) (a counter per reason)
                for m in re.finditer(r'\b(counter|gauge)\(\s*"(immunizer_[a-z_]+)"', text):
                    found[m.group(1).capitalize()].add(m.group(2))
                for m in re.finditer(r'\bby_reason<\w+>\(\s*[^,()]+,\s*"(immunizer_[a-z_]+)"', text):
                    found["Counter"].add(m.group(1))
                for m in helper.finditer(text):
                    kind, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
                    found[kind.capitalize()].add(name)
    return found


FAMILIES = families()
COUNTERS = sorted(FAMILIES["Counter"])
GAUGES = sorted(FAMILIES["Gauge"])
HISTOGRAMS = sorted(FAMILIES["Histogram"] | FAMILIES["Summary"])
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def main():
    try:
        d = json.load(open(DASH))
        check(True, "dashboard JSON parses")
    except ValueError as e:
        check(False, f"dashboard JSON: {e}")
        return 1
    check(d.get("uid") == "immunizer-overview" and d.get("title"), "dashboard uid and title")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    check(variables.get("datasource", {}).get("type") == "datasource" and variables["datasource"].get("query") == "prometheus",
          "a `datasource` variable of type prometheus (works with any datasource name)")
    for v in ("job", "instance"):
        check(variables.get(v, {}).get("type") == "query" and variables[v].get("includeAll"), f"a `{v}` variable (query, with All)")
    check(len(COUNTERS) > 30 and len(GAUGES) > 10 and len(HISTOGRAMS) >= 3,
          f"metric families found in the source ({len(COUNTERS)} counters, {len(GAUGES)} gauges, {len(HISTOGRAMS)} histograms)")
    panels = [p for p in d["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in d["panels"]]
    check(len(ids) == len(set(ids)), "panel ids unique")
    cells = set()
    overlap = False
    for p in d["panels"]:
        g = p["gridPos"]
        check(g["x"] + g["w"] <= 24, f"panel '{p['title']}' fits in 24 columns")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                overlap |= (x, y) in cells
                cells.add((x, y))
    check(not overlap, "panels do not overlap")
    exprs = []
    for p in panels:
        check(p.get("datasource", {}).get("uid") == "${datasource}", f"panel '{p['title']}' uses ${{datasource}}")
        check(bool(p.get("targets")), f"panel '{p['title']}' has queries")
        for t in p.get("targets", []):
            e = t.get("expr", "")
            exprs.append(e)
            check(t.get("datasource", {}).get("uid") == "${datasource}", f"query {t['refId']} of '{p['title']}' uses ${{datasource}}")
            check(all(e.count(a) == e.count(b) for a, b in ("()", "[]", "{}")), f"'{p['title']}' {t['refId']}: brackets balance")
            check('job=~"$job"' in e and 'instance=~"$instance"' in e, f"'{p['title']}' {t['refId']}: honours $job and $instance")
            for m in re.findall(r"\bimmunizer_[a-z_]+", e):
                base = re.sub(r"_(bucket|sum|count)$", "", m)
                check(base in COUNTERS + GAUGES + HISTOGRAMS, f"'{p['title']}': {m} is a metric the code exports")
            for c in COUNTERS:
                for m in re.finditer(re.escape(c) + r"\b", e):
                    before = e[:m.start()]
                    check(re.search(r"(rate|increase)\($", before.rstrip()) is not None, f"'{p['title']}': counter {c} read through rate()/increase()")
    alltext = "\n".join(exprs)
    for c in COUNTERS + GAUGES:
        check(re.search(re.escape(c) + r"\b", alltext) is not None,
              f"dashboard charts {c} (add a panel in deploy/grafana/dashboard.py and run it)")
    for h in HISTOGRAMS:
        check(re.search(r"histogram_quantile\([^,]+,\s*sum by \(le[a-z_, ]*\) \(rate\(" + h + r"_bucket", alltext) is not None,
              f"dashboard charts quantiles of {h}")
    gen = os.path.join(ROOT, "deploy", "grafana", "dashboard.py")
    import subprocess
    check(subprocess.run([sys.executable, gen, "--check"], capture_output=True).returncode == 0,
          "the JSON is what deploy/grafana/dashboard.py generates")
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for word in ("throughput", "lag", "drops", "alarms", "actions", "detection latency", "mitigation latency"):
        check(word in titles, f"a panel or row about {word}")

    prov = os.path.join(ROOT, "docker", "grafana", "provisioning")
    ds = yaml.safe_load(open(os.path.join(prov, "datasources", "prometheus.yml")))
    check(any(x["type"] == "prometheus" and x["url"] == "http://prometheus:9090" and x.get("isDefault") for x in ds["datasources"]),
          "provisioned default Prometheus datasource at http://prometheus:9090")
    dp = yaml.safe_load(open(os.path.join(prov, "dashboards", "immunizer.yml")))
    path = dp["providers"][0]["options"]["path"]
    compose = open(os.path.join(ROOT, "docker", "docker-compose.yml")).read()
    check(f"../deploy/helm/immunizer/dashboards:{path}:ro" in compose, f"compose mounts the chart's dashboards at the provider path {path}")
    print(f"dashboard: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
