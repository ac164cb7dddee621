#!/usr/bin/env python3
"""Writes the normal requests of a CSIC 2010 format file (.txt or .txt.gz) as the request
list of bench/mitigation/normal.lua: one request a line, "METHOD<TAB>PATH?QUERY<TAB>BODY".
The normal load is then the same kind of traffic the models learnt and the bystander plays;
a few fixed URLs repeated hundreds of thousands of times would teach the models that every
other normal request is unusual while the benchmark runs.
Usage: requests.py IN OUT [MAX]   (MAX requests at most, default 20000)"""
import gzip
import sys


def requests(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        lines = f.read().decode("latin-1").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        parts = line.split(" ")
        if len(parts) < 3 or parts[0] not in ("GET", "POST", "PUT", "DELETE") or "://" not in parts[1]:
            i += 1
            continue
        method, url = parts[0], parts[1]
        target = "/" + url.split("://", 1)[1].split("/", 1)[1] if "/" in url.split("://", 1)[1] else "/"
        i += 1
        length = 0
        while i < len(lines) and lines[i].rstrip("\r"):  # headers
            name, _, value = lines[i].partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip() or 0)
            i += 1
        body = ""
        if length > 0:  # the body follows the blank line
            i += 1
            body = lines[i].rstrip("\r") if i < len(lines) else ""
        yield method, target, body
        i += 1


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    n = 0
    with open(sys.argv[2], "w", encoding="latin-1") as out:
        for method, target, body in requests(sys.argv[1]):
            if any(c in target + body for c in "\t\n\r"):
                continue
            out.write(f"{method}\t{target}\t{body}\n")
            n += 1
            if n >= limit:
                break
    if n == 0:
        sys.exit(f"requests.py: no request found in {sys.argv[1]}")
    print(f"{n} normal requests from {sys.argv[1]}")


main()
