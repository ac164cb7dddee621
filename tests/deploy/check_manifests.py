#!/usr/bin/python3
"""Checks Kubernetes manifests rendered from the Immunizer chart (by `helm template` or by
tests/deploy/helmrender), read from stdin or a file:
  every document parses without duplicate keys and has apiVersion, kind and a DNS-1123
  metadata.name; one Deployment, Service and ConfigMap per service; Deployments: selector
  within the pod labels, image, requests and limits, liveness /healthz and readiness
  /readyz on a declared port, non-root, envFrom/volume ConfigMaps rendered, secretKeyRefs to
  the chart's Secret name existing keys; Services select exactly one Deployment and target
  declared ports; HPAs (analyze, monitor) target a rendered Deployment and stay within the
  partition bound; PDBs select a Deployment; the dashboard ConfigMap carries the same JSON
  as deploy/helm/immunizer/dashboards/immunizer.json; no secret-looking key in a ConfigMap.
Usage: check_manifests.py [--partitions N] [--expect-secret|--no-secret] [--existing-secret NAME] [FILE]
"""
import argparse
import json
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_helm_chart import UniqueKeyLoader  # noqa: E402

SERVICES = ["monitor", "analyze", "plan", "execute", "dashboard"]
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failures = []


def check(cond, msg):
    if not cond:
        print("FAIL " + msg)
        failures.append(msg)
    return cond


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file", nargs="?")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--no-secret", action="store_true", help="the chart's Secret must not be rendered")
    ap.add_argument("--existing-secret", default="", help="name the workloads must reference instead")
    a = ap.parse_args()
    text = open(a.file).read() if a.file else sys.stdin.read()
    docs = []
    for i, raw in enumerate(re.split(r"^---\s*$", text, flags=re.M)):
        body = "\n".join(l for l in raw.splitlines() if not l.startswith("# Source:"))
        if not body.strip() or raw.lstrip().startswith("# Source: immunizer/templates/NOTES.txt"):
            continue
        try:
            d = yaml.load(body, Loader=UniqueKeyLoader)
        except yaml.YAMLError as e:
            check(False, f"document {i} does not parse: {e}")
            continue
        if d is None:
            continue
        docs.append(d)
    print(f"manifests: {len(docs)} documents")
    for d in docs:
        name = d.get("metadata", {}).get("name", "")
        check(bool(d.get("apiVersion")) and bool(d.get("kind")), f"{name or d}: apiVersion and kind")
        check(bool(DNS1123.match(name)) and len(name) <= 63, f"{d.get('kind')} name '{name}' is a DNS-1123 label of <= 63 chars")
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deps = by_kind.get("Deployment", {})
    cms = by_kind.get("ConfigMap", {})
    secrets = by_kind.get("Secret", {})

    for s in SERVICES:
        for kind in ("Deployment", "Service", "ConfigMap"):
            check(any(n.endswith("-" + s) for n in by_kind.get(kind, {})), f"{kind} for {s} rendered")
    if a.no_secret:
        check(not secrets, "no Secret rendered when secrets.existingSecret is set")
    else:
        check(len(secrets) == 1, "the chart's Secret rendered")
    chart_secret = next(iter(secrets.values()), None)
    chart_secret_name = chart_secret["metadata"]["name"] if chart_secret else a.existing_secret

    for n, d in deps.items():
        spec = d["spec"]
        tpl = spec["template"]
        plabels = tpl["metadata"].get("labels", {})
        sel = spec["selector"]["matchLabels"]
        check(all(plabels.get(k) == v for k, v in sel.items()), f"{n}: selector within pod labels")
        pod = tpl["spec"]
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{n}: runAsNonRoot")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            check(bool(c.get("image")), f"{n}: image")
            r = c.get("resources", {})
            check(bool(r.get("requests")) and bool(r.get("limits")), f"{n}: resource requests and limits")
            lp, rp = c.get("livenessProbe", {}).get("httpGet", {}), c.get("readinessProbe", {}).get("httpGet", {})
            check(lp.get("path") == "/healthz" and lp.get("port") in ports, f"{n}: liveness /healthz on a declared port")
            check(rp.get("path") == "/readyz" and rp.get("port") in ports, f"{n}: readiness /readyz on a declared port")
            for ef in c.get("envFrom", []):
                ref = ef.get("configMapRef", {}).get("name")
                check(ref in cms, f"{n}: envFrom ConfigMap {ref} rendered")
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] == chart_secret_name and chart_secret:
                    check(ref["key"] in chart_secret.get("data", {}), f"{n}: {e['name']} -> key {ref['key']} exists in Secret {ref['name']}")
                if ref and a.existing_secret and ref["name"] != a.existing_secret and "KAFKA" not in e["name"]:
                    check(False, f"{n}: {e['name']} should come from {a.existing_secret}, not {ref['name']}")
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            for m in mounts:
                check(m in vols, f"{n}: volumeMount {m} has a volume")
            # Every *_FILE variable (TLS files, signing keys) names a file mounted read-only from a Secret item.
            for name, e in env.items():
                if not name.endswith(("_FILE", "_PUBLIC_KEYS")) or "value" not in e:
                    continue
                for path in str(e["value"]).split(","):
                    mount = [m for m, p in mounts.items() if path.startswith(p + "/")]
                    ok = bool(mount) and "secret" in vols.get(mount[0], {})
                    if ok:
                        sv = vols[mount[0]]["secret"]
                        ok = any(i["path"] == os.path.basename(path) for i in sv.get("items", []))
                    check(ok, f"{n}: {name} file {path} is mounted from a Secret item")
            check("IMMUNIZER_SECURITY_SIGNING_KEY" not in str(env) and "IMMUNIZER_EFFECTOR_TLS" not in str(env),
                  f"{n}: no shared HMAC key")
        for v in vols.values():
            if "configMap" in v:
                check(v["configMap"]["name"] in cms, f"{n}: volume ConfigMap {v['configMap']['name']} rendered")
    execute = [d for n, d in deps.items() if n.endswith("-execute")]
    if execute:
        envs = [e["name"] for c in execute[0]["spec"]["template"]["spec"]["containers"] for e in c.get("env", [])]
        for k in ("IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE", "IMMUNIZER_EXECUTE_TLS_CA_FILE", "IMMUNIZER_EXECUTE_TLS_CERT_FILE",
                  "IMMUNIZER_EXECUTE_TLS_KEY_FILE", "IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS"):
            check(k in envs, f"execute: {k} from a mounted Secret")
        vols = execute[0]["spec"]["template"]["spec"].get("volumes", [])
        tls = [v for v in vols if v.get("name") == "tls"]
        check(bool(tls) and {i["key"] for i in tls[0]["secret"].get("items", [])} == {"tls.crt", "tls.key", "ca.crt"},
              "execute: TLS from a Secret with cert-manager's keys tls.crt, tls.key, ca.crt")
        keys = [v for v in vols if v.get("name") == "signing-keys"]
        check(bool(keys) and "plan.key" not in {i["key"] for i in keys[0]["secret"].get("items", [])},
              "execute: gets its own signing key and plan's public key, never plan's private key")
    plan = [d for n, d in deps.items() if n.endswith("-plan")]
    if plan:
        vols = plan[0]["spec"]["template"]["spec"].get("volumes", [])
        keys = [v for v in vols if v.get("name") == "signing-keys"]
        check(bool(keys) and {i["key"] for i in keys[0]["secret"].get("items", [])} == {"plan.key"},
              "plan: mounts plan.key only")
    # NetworkPolicy: execute's gRPC port only from the dashboard and effector pods.
    nps = by_kind.get("NetworkPolicy", {})
    if execute:
        grpc_rules = [r for np in nps.values() for r in np["spec"].get("ingress", [])
                      if any(p.get("port") == "grpc" for p in r.get("ports", []))]
        check(bool(grpc_rules) and all(r.get("from") for r in grpc_rules),
              "NetworkPolicy: execute's gRPC port is reachable only from listed pods")
        check(not any(p.get("port") == "grpc" for np in nps.values() for r in np["spec"].get("ingress", [])
                      if not r.get("from") for p in r.get("ports", [])), "NetworkPolicy: no open rule on the gRPC port")

    for n, svc in by_kind.get("Service", {}).items():
        sel = svc["spec"]["selector"]
        matches = [d for d in deps.values() if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        if check(len(matches) == 1, f"Service {n} selects exactly one Deployment ({len(matches)})"):
            ports = {p["name"] for c in matches[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
            for p in svc["spec"]["ports"]:
                check(p["targetPort"] in ports, f"Service {n}: targetPort {p['targetPort']} declared by the pod")
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    for s in ("analyze", "monitor"):
        h = [x for n, x in hpas.items() if n.endswith("-" + s)]
        if check(len(h) == 1, f"HPA for {s} rendered"):
            spec = h[0]["spec"]
            check(spec["scaleTargetRef"]["name"] in deps, f"HPA {s} targets a rendered Deployment")
            check(spec["maxReplicas"] <= a.partitions, f"HPA {s} maxReplicas {spec['maxReplicas']} <= partitions {a.partitions}")
            check(spec["minReplicas"] <= spec["maxReplicas"], f"HPA {s} min <= max")
            tgt = deps.get(spec["scaleTargetRef"]["name"], {}).get("spec", {})
            check("replicas" not in tgt, f"Deployment {s} leaves replicas to its HPA")
    for n, p in by_kind.get("PodDisruptionBudget", {}).items():
        sel = p["spec"]["selector"]["matchLabels"]
        check(any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items()) for d in deps.values()),
              f"PDB {n} selects a Deployment")
    dash = [c for c in cms.values() if "immunizer.json" in c.get("data", {})]
    if check(len(dash) == 1, "Grafana dashboard ConfigMap rendered"):
        shipped = json.load(open(os.path.join(ROOT, "deploy", "helm", "immunizer", "dashboards", "immunizer.json")))
        check(json.loads(dash[0]["data"]["immunizer.json"]) == shipped, "dashboard ConfigMap holds dashboards/immunizer.json")
        check(dash[0]["metadata"].get("labels", {}).get("grafana_dashboard") == "1", "dashboard ConfigMap labelled for the Grafana sidecar")
    for n, c in cms.items():
        for k, v in (c.get("data") or {}).items():
            check(not re.search(r"PASSWORD|SECRET|SIGNING_KEY$", k) or k.endswith("_FILE"), f"ConfigMap {n}: {k} looks like a secret")
    print(f"manifests: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
