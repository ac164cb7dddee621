#!/bin/bash
# One-shot creation of Immunizer's topics (idempotent: existing topics are left as they are,
# their partition counts are reported). Runs in the apache/kafka image (compose) or in the
# Helm chart's topics Job. Environment (defaults in brackets):
#   KAFKA_BOOTSTRAP [kafka:9092]             bootstrap servers
#   TOPIC_PREFIX [immunizer.]                 prefix of every topic
#   PARTITIONS_MODEL_KEYED [6]                calls, features, scores, models, feedback (all
#                                             keyed by model key: equal counts keep a model's
#                                             features, snapshot and feedback on the same
#                                             partition number, i.e. on the same analyze)
#   PARTITIONS_OTHER [3]                      alarms, plans, actions, deadletter
#   REPLICATION_FACTOR [1]                    3 on a real cluster
#   RETENTION_MS [604800000]                  retention of the non-compacted topics (7 days)
#   KAFKA_CLIENT_CONFIG []                    properties file for SASL/TLS (command-config)
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
PREFIX="${TOPIC_PREFIX:-immunizer.}"
P_MODEL="${PARTITIONS_MODEL_KEYED:-6}"
P_OTHER="${PARTITIONS_OTHER:-3}"
RF="${REPLICATION_FACTOR:-1}"
RETENTION="${RETENTION_MS:-604800000}"
KT="${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}"

cmd=("$KT" --bootstrap-server "$BOOTSTRAP")
if [[ -n "${KAFKA_CLIENT_CONFIG:-}" ]]; then cmd+=(--command-config "$KAFKA_CLIENT_CONFIG"); fi

for i in $(seq 1 30); do
  if "${cmd[@]}" --list >/dev/null 2>&1; then break; fi
  if [[ $i -eq 30 ]]; then echo "create-topics: broker $BOOTSTRAP not reachable" >&2; exit 1; fi
  echo "create-topics: waiting for $BOOTSTRAP ($i/30)"
  sleep 2
done

create() { # name partitions config...
  local name="${PREFIX}$1" parts="$2"; shift 2
  local cfg=()
  for c in "$@"; do cfg+=(--config "$c"); done
  "${cmd[@]}" --create --if-not-exists --topic "$name" --partitions "$parts" \
    --replication-factor "$RF" "${cfg[@]}"
  local have
  have=$("${cmd[@]}" --describe --topic "$name" | grep -c 'Partition: ' || true)
  if [[ "$have" != "$parts" ]]; then
    echo "create-topics: WARNING $name has $have partitions, $parts requested" \
         "(not changed: adding partitions moves model keys, see docs/operations.md)" >&2
  fi
  echo "create-topics: $name partitions=$have"
}

for t in calls features scores feedback; do
  create "$t" "$P_MODEL" "retention.ms=$RETENTION"
done
# Learned models: compacted, never deleted by time; the latest snapshot per model key stays.
create models "$P_MODEL" cleanup.policy=compact min.cleanable.dirty.ratio=0.1 segment.ms=3600000
for t in alarms plans actions deadletter; do
  create "$t" "$P_OTHER" "retention.ms=$RETENTION"
done
echo "create-topics: done"
