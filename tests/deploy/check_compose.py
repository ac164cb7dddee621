#!/usr/bin/python3
"""Validates docker/docker-compose.yml with Debian's docker-compose and checks its design.

1. `docker-compose --env-file tests/deploy/compose.test.env -f docker/docker-compose.yml
   config -q` passes (the compose file is valid for docker-compose 1.29).
2. Without the env file, config fails and names every required secret (secrets have no
   default, so a stack never starts with an empty signing key or password).
3. On the resolved config: Kafka runs in KRaft mode with no ZooKeeper; a one-shot
   kafka-topics service creates the topics and every Immunizer service waits for it to
   complete; the five services, the demo shop and the replayer exist, with the conventional
   HTTP ports; Prometheus scrapes every service with an HTTP port; Grafana mounts the
   provisioning and the chart's dashboard directory; every bind-mounted file exists; no
   secret-looking variable has a literal value in the compose file.
Usage: check_compose.py [REPO_ROOT]. Needs docker-compose (installed by scripts/deps.sh).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
COMPOSE = os.path.join(ROOT, "docker", "docker-compose.yml")
ENV_FILE = os.path.join(ROOT, "tests", "deploy", "compose.test.env")
SERVICES = {"monitor": 9101, "analyze": 9102, "plan": 9103, "execute": 9104, "dashboard": 8080, "shop": 8088}
REQUIRED_SECRETS = ["IMMUNIZER_DASHBOARD_AUTH_USER",
                    "IMMUNIZER_DASHBOARD_AUTH_PASSWORD", "GRAFANA_ADMIN_PASSWORD"]
failures = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        failures.append(msg)


def compose(*args, env_file=None):
    # A clean environment: variables of the caller's shell must not satisfy the check.
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    cmd = [shutil.which("docker-compose", path=env["PATH"]) or "docker-compose"]
    if env_file:
        cmd += ["--env-file", env_file]
    cmd += ["-f", COMPOSE, *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)


def main():
    if not shutil.which("docker-compose", path="/usr/local/bin:/usr/bin:/bin"):
        print("FAIL docker-compose not found: run scripts/deps.sh")
        return 1
    r = compose("config", "-q", env_file=ENV_FILE)
    check(r.returncode == 0, "docker-compose config -q with the test env file" + (": " + r.stderr.strip() if r.returncode else ""))
    # A .env beside the compose file would satisfy the secrets: point --env-file at nothing.
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        r = compose("config", "-q", env_file=empty.name)
    check(r.returncode != 0, "docker-compose config fails when the secrets are not set")
    missing_named = [s for s in REQUIRED_SECRETS if s in r.stderr]
    check(bool(missing_named), f"the failure names a missing secret ({r.stderr.strip()[:160]})")
    raw = open(COMPOSE).read()
    for s in REQUIRED_SECRETS:
        check(re.search(r"\$\{" + s + r":\?", raw) is not None, f"{s} is required (${{{s}:?...}}), no default")

    r = compose("config", env_file=ENV_FILE)
    if r.returncode:
        print(r.stderr)
        return 1
    cfg = yaml.safe_load(r.stdout)
    svcs = cfg.get("services", {})

    kafka = svcs.get("kafka", {})
    kenv = kafka.get("environment", {})
    check("controller" in str(kenv.get("KAFKA_PROCESS_ROLES", "")) and "broker" in str(kenv.get("KAFKA_PROCESS_ROLES", "")),
          "kafka: KRaft combined broker,controller (KAFKA_PROCESS_ROLES)")
    check(bool(kenv.get("KAFKA_CONTROLLER_QUORUM_VOTERS")) and bool(kenv.get("CLUSTER_ID")), "kafka: quorum voters and CLUSTER_ID set")
    check(not any("zookeeper" in n.lower() or "zookeeper" in str(s.get("image", "")) for n, s in svcs.items()), "no ZooKeeper service")
    check(re.match(r"^[\w./-]+:\d[\w.-]*$", kafka.get("image", "")) is not None, f"kafka image pinned ({kafka.get('image')})")
    check(str(kenv.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE")).lower() == "false", "kafka: topic auto-creation off (topics come from kafka-topics)")
    check("healthcheck" in kafka, "kafka: healthcheck (kafka-topics waits for service_healthy)")

    topics = svcs.get("kafka-topics", {})
    check(topics.get("restart", "no") == "no", "kafka-topics is one-shot (restart: no)")
    check(topics.get("depends_on", {}).get("kafka", {}).get("condition") == "service_healthy", "kafka-topics waits for a healthy kafka")
    mounts = [v if isinstance(v, str) else v.get("source", "") for v in topics.get("volumes", [])]
    script_ok = False
    for m in mounts:
        src = m.split(":")[0] if isinstance(m, str) else m
        if src.endswith("create-topics.sh") and os.path.isfile(src):
            script = open(src).read()
            script_ok = all(t in script for t in ["calls", "features", "scores", "alarms", "plans", "actions", "feedback", "models", "deadletter"]) \
                and "cleanup.policy=compact" in script
    check(script_ok, "kafka-topics mounts create-topics.sh creating all nine topics, models compacted")

    for name, port in SERVICES.items():
        s = svcs.get(name)
        check(s is not None, f"service {name} present")
        if not s:
            continue
        env = s.get("environment", {})
        if name == "shop":
            check(s.get("command", [])[1:3] == ["--port", str(port)], f"shop: --port {port}")
        else:
            check(str(env.get("IMMUNIZER_HTTP_PORT")) == str(port), f"{name}: IMMUNIZER_HTTP_PORT={port}")
        check(env.get("IMMUNIZER_KAFKA_BOOTSTRAP") == "kafka:9092", f"{name}: IMMUNIZER_KAFKA_BOOTSTRAP=kafka:9092")
        dep = s.get("depends_on", {})
        waits = dep.get("kafka-topics", {}).get("condition") == "service_completed_successfully" or \
            any(svcs.get(d, {}).get("depends_on", {}).get("kafka-topics", {}).get("condition") == "service_completed_successfully" for d in dep)
        check(waits, f"{name}: starts after kafka-topics completed")
        check(s.get("command", [""])[0] == f"immunizer-{name}", f"{name}: runs immunizer-{name}")
        check(s.get("user") in (None, "") and "privileged" not in s, f"{name}: image's non-root user kept, not privileged")
    # Keys and certificates: made by the one-shot pki service, read-only in the services; no
    # shared symmetric key anywhere.
    pki = svcs.get("pki", {})
    check(pki.get("command", [])[:2] == ["immunizer", "pki"] and "init" in pki.get("command", []) and pki.get("restart") == "no",
          "pki: one-shot `immunizer pki init`")
    check(not any("IMMUNIZER_SECURITY_SIGNING_KEY" in str(s.get("environment", {})) for s in svcs.values()),
          "no service gets the former shared HMAC key")
    def env_of(n):
        return svcs.get(n, {}).get("environment", {})
    def mounts_pki_ro(n):
        return any((isinstance(v, str) and v.startswith("immunizer-pki:") and v.endswith(":ro")) or
                   (isinstance(v, dict) and v.get("source") == "immunizer-pki" and v.get("read_only"))
                   for v in svcs.get(n, {}).get("volumes", []))
    for n in ("execute", "plan", "dashboard", "shop"):
        check(mounts_pki_ro(n), f"{n}: mounts the pki volume read-only")
        check(svcs.get(n, {}).get("depends_on", {}).get("pki", {}).get("condition") == "service_completed_successfully",
              f"{n}: starts after pki completed")
    e = env_of("execute")
    check(all(e.get(k, "").startswith("/etc/immunizer/") for k in
              ("IMMUNIZER_EXECUTE_TLS_CA_FILE", "IMMUNIZER_EXECUTE_TLS_CERT_FILE", "IMMUNIZER_EXECUTE_TLS_KEY_FILE",
               "IMMUNIZER_EXECUTE_DIRECTIVE_SIGNING_KEY_FILE", "IMMUNIZER_EXECUTE_PLAN_PUBLIC_KEYS")),
          "execute: mutual TLS files, directive signing key and trusted plan keys from mounted files")
    check(str(e.get("IMMUNIZER_EXECUTE_TLS", "mtls")) == "mtls", "execute: TLS not turned off")
    s_env = env_of("shop")
    check(s_env.get("IMMUNIZER_EFFECTOR_DIRECTIVE_PUBLIC_KEYS", "").endswith(".pub") and
          "IMMUNIZER_EFFECTOR_TLS_CERT_FILE" in s_env, "shop: effector gets execute's public key and its own certificate only")
    check("execute.key" not in str(s_env) and "plan.key" not in str(s_env), "shop: no signing key")
    check(env_of("plan").get("IMMUNIZER_PLAN_SIGNING_KEY_FILE", "").endswith("plan.key"), "plan: signs with keys/plan.key")
    check("IMMUNIZER_DASHBOARD_EXECUTE_TLS_CERT_FILE" in env_of("dashboard"), "dashboard: operator certificate for execute")
    check(svcs.get("shop", {}).get("environment", {}).get("IMMUNIZER_EXECUTE_ADDRESS") == "execute:7070", "shop: effector reaches execute:7070")
    check(svcs.get("dashboard", {}).get("environment", {}).get("IMMUNIZER_DASHBOARD_EXECUTE_ADDRESS") == "execute:7070", "dashboard: reaches execute:7070")
    replay = svcs.get("replay", {})
    check(replay.get("command", [""])[0] == "immunizer-replay" and "http://shop:8088" in replay.get("command", []),
          "replay: immunizer-replay --target http://shop:8088")
    check(any(str(v).endswith(":/data/csic2010:ro") or (isinstance(v, dict) and v.get("target") == "/data/csic2010" and v.get("read_only"))
              for v in replay.get("volumes", [])), "replay: dataset mounted read-only at /data/csic2010")

    # Prometheus: every service with an HTTP port is scraped on that port.
    prom = yaml.safe_load(open(os.path.join(ROOT, "docker", "prometheus", "prometheus.yml")))
    targets = set()
    for job in prom.get("scrape_configs", []):
        for sd in job.get("dns_sd_configs", []):
            for n in sd.get("names", []):
                targets.add((n, sd.get("port")))
        for sc in job.get("static_configs", []):
            for t in sc.get("targets", []):
                h, _, p = t.partition(":")
                targets.add((h, int(p or 0)))
    for name, port in SERVICES.items():
        check((name, port) in targets, f"prometheus scrapes {name}:{port}")
    check("prometheus" in svcs and any("prometheus.yml" in str(v) for v in svcs["prometheus"].get("volumes", [])),
          "prometheus service mounts docker/prometheus/prometheus.yml")

    grafana = svcs.get("grafana", {})
    gvols = [str(v) if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in grafana.get("volumes", [])]
    check(any("grafana/provisioning:/etc/grafana/provisioning" in v for v in gvols), "grafana mounts the provisioning directory")
    check(any("deploy/helm/immunizer/dashboards:" in v for v in gvols), "grafana mounts the chart's dashboard directory (one JSON for both)")
    check(grafana.get("environment", {}).get("GF_SECURITY_ADMIN_PASSWORD") == "test-only-not-a-secret", "grafana admin password from the environment file")

    # Every bind-mounted host path exists (compose resolves them to absolute paths).
    for name, s in svcs.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else (v.get("source") if v.get("type") == "bind" else None)
            if src and src.startswith("/") and "datasets" not in src:
                check(os.path.exists(src), f"{name}: bind mount source {os.path.relpath(src, ROOT)} exists")

    # No literal secret values in the compose file itself.
    for m in re.finditer(r"^\s*([A-Z0-9_]*(?:PASSWORD|SECRET|SIGNING_KEY|TOKEN)[A-Z0-9_]*):\s*(.+)$", raw, re.M):
        if m.group(1).endswith("_FILE"):  # a path to a mounted file, not the secret itself
            continue
        check(m.group(2).strip().startswith("${"), f"{m.group(1)} is taken from the environment, not written in the file")

    print(f"compose: {len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
