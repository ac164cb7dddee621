#!/bin/bash
# Container health check for every Immunizer service: GET /healthz on 127.0.0.1 and expect
# HTTP 200. Uses bash's /dev/tcp so the runtime image needs no curl.
# Port: IMMUNIZER_HTTP_PORT, else `--set http.port=N` (the shop: `--port N`) on PID 1's
# command line, else the conventional default of the binary running as PID 1
# (docs/conventions.md). Binaries
# without an HTTP endpoint (immunizer CLI, immunizer-replay) are reported healthy.
set -u

port="${IMMUNIZER_HTTP_PORT:-}"
if [[ -z "$port" && -r /proc/1/cmdline ]]; then
  mapfile -d '' -t argv < /proc/1/cmdline
  prev=""
  for a in "${argv[@]}"; do
    if [[ "$prev" == "--set" && "$a" == http.port=* ]]; then port="${a#http.port=}"; fi
    if [[ "$a" == --set=http.port=* ]]; then port="${a#--set=http.port=}"; fi
    # immunizer-shop takes its one port as --port N.
    if [[ "$prev" == "--port" && "$(basename "${argv[0]:-}")" == immunizer-shop ]]; then port="$a"; fi
    prev="$a"
  done
  if [[ -z "$port" ]]; then
    case "$(basename "${argv[0]:-}")" in
      immunizer-monitor) port=9101 ;;
      immunizer-analyze) port=9102 ;;
      immunizer-plan) port=9103 ;;
      immunizer-execute) port=9104 ;;
      immunizer-dashboard) port=8080 ;;
      immunizer-shop) port=8088 ;;
      *) echo "no HTTP endpoint for ${argv[0]:-unknown}"; exit 0 ;;
    esac
  fi
fi

if ! { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null; then
  echo "cannot connect to 127.0.0.1:${port}"
  exit 1
fi
printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
status=""
IFS= read -r -t 4 status <&3 || true
exec 3<&-
case "$status" in
  "HTTP/1."?" 200"*) exit 0 ;;
  *) echo "unhealthy: /healthz on port ${port} answered '${status%$'\r'}'"; exit 1 ;;
esac
