#!/usr/bin/python3
"""Lints every Dockerfile under docker/ against the project's image rules.

Runs hadolint too when it is on the PATH; the rules below always run, because they encode
what the project requires (hadolint is not packaged in Debian 12):
  multi-stage build; every FROM pinned to an explicit tag (no :latest, no untagged);
  runtime (last) stage runs as a non-root USER; HEALTHCHECK present; no secret-looking
  names in ENV/ARG; apt-get update and install in one RUN with --no-install-recommends and
  the lists removed in the same RUN; no ADD of local files; COPY --from names a stage.
Usage: check_dockerfiles.py [REPO_ROOT] | --self-test
Exit 0 when every Dockerfile passes, 1 otherwise (each violation printed as FILE:LINE: rule).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SECRET_NAME = re.compile(r"(SECRET|PASSWORD|PASSWD|TOKEN|SIGNING_KEY|PRIVATE_KEY|API_KEY|CREDENTIAL)", re.I)


def instructions(text):
    """(line_number, KEYWORD, argument) for each instruction, continuations joined."""
    out, buf, start = [], "", 0
    for n, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        kw, _, arg = buf.partition(" ")
        out.append((start, kw.upper(), arg.strip()))
        buf = ""
    return out


def lint(path, text):
    errors = []
    ins = instructions(text)
    err = lambda n, msg: errors.append(f"{path}:{n}: {msg}")
    args = {}
    for n, kw, arg in ins:
        if kw == "ARG" and "=" in arg and not any(k == "FROM" for _, k, _ in ins[: ins.index((n, kw, arg))]):
            k, _, v = arg.partition("=")
            args[k.strip()] = v.strip().strip('"')
    froms = [(n, arg) for n, kw, arg in ins if kw == "FROM"]
    if len(froms) < 2:
        err(1, "not a multi-stage build (builder and runtime stages expected)")
    stages = []
    for n, arg in froms:
        parts = arg.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.append(parts[2])
        if image in stages or image == "scratch":
            continue
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if not tag:
            err(n, f"base image '{image}' has no tag: pin it")
        elif tag == "latest" or not re.search(r"\d", tag):
            err(n, f"base image '{image}' uses a floating tag: pin a versioned tag")
    # last stage = from the last FROM to the end
    last_from = max(i for i, (_, kw, _) in enumerate(ins) if kw == "FROM") if froms else 0
    last = ins[last_from:]
    users = [(n, arg) for n, kw, arg in last if kw == "USER"]
    if not users:
        err(last[0][0] if last else 1, "runtime stage has no USER: run as non-root")
    else:
        n, user = users[-1]
        if user.split(":")[0] in ("root", "0"):
            err(n, "runtime stage runs as root")
    if not any(kw == "HEALTHCHECK" and not arg.upper().startswith("NONE") for _, kw, arg in last):
        err(last[0][0] if last else 1, "runtime stage has no HEALTHCHECK")
    for n, kw, arg in ins:
        if kw in ("ENV", "ARG"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)(?==|\s|$)", arg) if kw == "ENV" else [arg.split("=")[0]]
            for name in names:
                if SECRET_NAME.search(name):
                    err(n, f"{kw} {name}: secrets must not be baked into images (pass them at run time)")
        if kw == "ADD" and not re.search(r"https?://", arg):
            err(n, "ADD of local files: use COPY")
        if kw == "COPY":
            m = re.search(r"--from=(\S+)", arg)
            if m and m.group(1) not in stages and not re.match(r"^[\w.-]+/[\w./-]+:", m.group(1)):
                err(n, f"COPY --from={m.group(1)}: no such stage")
        if kw == "RUN":
            if re.search(r"\bapt-get\s+(-\S+\s+)*install\b", arg):
                if "apt-get update" not in arg:
                    err(n, "apt-get install without apt-get update in the same RUN")
                if "--no-install-recommends" not in arg:
                    err(n, "apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in arg:
                    err(n, "apt lists not removed in the same RUN (rm -rf /var/lib/apt/lists/*)")
            if re.search(r"\bapt-get\s+upgrade\b|\bapt-get\s+dist-upgrade\b", arg):
                err(n, "apt-get upgrade in an image: pin the base image instead")
            if re.search(r"\bsudo\b", arg):
                err(n, "sudo in RUN")
            if "deps.sh" in arg and "rm -rf /var/lib/apt/lists" not in arg:
                err(n, "deps.sh installs packages: remove the apt lists in the same RUN")
        if kw == "WORKDIR" and not arg.startswith("/"):
            err(n, f"WORKDIR {arg} is not absolute")
    return errors


GOOD = """FROM debian:12.5 AS builder
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*
FROM debian:12.5-slim
COPY --from=builder /x /x
USER 10001
HEALTHCHECK CMD ["/x"]
"""
BAD = {
    "single stage": "FROM debian:12.5-slim\nUSER 1\nHEALTHCHECK CMD true\n",
    "latest": GOOD.replace("debian:12.5-slim", "debian:latest"),
    "untagged": GOOD.replace("debian:12.5-slim", "debian"),
    "floating": GOOD.replace("debian:12.5-slim", "debian:bookworm-slim"),
    "root": GOOD.replace("USER 10001", "USER root"),
    "no user": GOOD.replace("USER 10001\n", ""),
    "no healthcheck": GOOD.replace('HEALTHCHECK CMD ["/x"]\n', ""),
    "secret env": GOOD + "ENV IMMUNIZER_SECURITY_SIGNING_KEY=abc\n",
    "secret arg": GOOD + "ARG DB_PASSWORD\n",
    "apt lists": GOOD.replace(" && rm -rf /var/lib/apt/lists/*", ""),
    "recommends": GOOD.replace(" --no-install-recommends", ""),
    "separate update": GOOD.replace("RUN apt-get update && apt-get install", "RUN apt-get update\nRUN apt-get install"),
    "add local": GOOD + "ADD . /src\n",
    "bad stage": GOOD.replace("--from=builder", "--from=bulider"),
}


def self_test():
    failed = 0
    if lint("good", GOOD):
        print("self-test: the good Dockerfile was rejected:", lint("good", GOOD))
        failed += 1
    for name, text in BAD.items():
        if not lint(name, text):
            print(f"self-test: rule '{name}' did not fire")
            failed += 1
    print(f"self-test: {1 + len(BAD) - failed} passed, {failed} failed")
    return failed == 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return 0 if self_test() else 1
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    if not self_test():
        return 1
    files = []
    for d, _, names in os.walk(os.path.join(root, "docker")):
        files += [os.path.join(d, n) for n in names if n == "Dockerfile" or (n.startswith("Dockerfile.") and not n.endswith(".dockerignore")) or n.endswith(".Dockerfile")]
    if not files:
        print("no Dockerfile under docker/")
        return 1
    errors = []
    for f in sorted(files):
        errs = lint(os.path.relpath(f, root), open(f).read())
        errors += errs
        print(f"rules: {os.path.relpath(f, root)}: {'OK' if not errs else f'{len(errs)} violation(s)'}")
    hadolint = shutil.which("hadolint")
    if hadolint:
        for f in sorted(files):
            r = subprocess.run([hadolint, f], capture_output=True, text=True)
            print(f"hadolint: {os.path.relpath(f, root)}: {'OK' if r.returncode == 0 else 'FAILED'}")
            if r.returncode:
                errors.append(r.stdout + r.stderr)
    else:
        print("hadolint: not on PATH, project rules only")
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
