#!/usr/bin/python3
"""Generates the Grafana dashboard deploy/helm/immunizer/dashboards/immunizer.json (the one
copy compose and the chart use) from the panel list below: a panel for every metric family
the services and agents export, with `datasource`, `job` and `instance` variables that every
query honours. tests/deploy/check_dashboard.py fails when a family in the source has no
panel, so a new metric comes with its panel: add it here and run
    deploy/grafana/dashboard.py
Usage: dashboard.py [--check]   (--check: exit 1 when the JSON on disk is not what this makes)
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "helm", "immunizer", "dashboards", "immunizer.json")
SEL = 'job=~"$job",instance=~"$instance"'
DS = {"type": "prometheus", "uid": "${datasource}"}


def q(expr):
    """The expression with the job/instance selector in every {SEL} (or appended to a matcher)."""
    return expr.replace("{SEL}", "{" + SEL + "}").replace(",SEL}", "," + SEL + "}")


def rate(metric, by=None, extra="", scale=""):
    sel = "{" + (extra + "," if extra else "") + "SEL}"
    inner = f"rate({metric}{sel}[$__rate_interval])"
    return q(f"sum by ({by}) ({inner}){scale}" if by else f"sum({inner}){scale}")


def gauge(metric, by=None, agg="sum", extra=""):
    sel = "{" + (extra + "," if extra else "") + "SEL}"
    return q(f"{agg} by ({by}) ({metric}{sel})" if by else f"{agg}({metric}{sel})")


def quantiles(metric, by=""):
    grp = f"le{', ' + by if by else ''}"
    return [q(f"histogram_quantile({p}, sum by ({grp}) (rate({metric}_bucket{{SEL}}[$__rate_interval])))") for p in ("0.5", "0.95", "0.99")]


def per_second(title, description, metric, by):
    """A time series of a counter's rate summed by the labels `by`, a line per label set."""
    legend = " ".join("{{" + label.strip() + "}}" for label in by.split(","))
    return (title, "timeseries", "ops", description, [rate(metric, by)], legend)


# (row title, [(panel title, type, unit, description, [expressions], legend)])
ROWS = [
    ("Overview", [
        ("Calls/s into the pipeline", "stat", "ops", "Call records consumed by monitor from the calls topic.",
         [rate("immunizer_kafka_messages_consumed_total", extra='service="monitor",topic=~".*calls"')], ""),
        ("Total consumer lag", "stat", "short", "Messages the consumers have not read yet.",
         [gauge("immunizer_kafka_consumer_lag")], ""),
        ("Alarms (1h)", "stat", "short", "Alarms raised by analyze in the last hour.",
         [q("sum(increase(immunizer_alarms_total{SEL}[1h]))")], ""),
        ("Records dropped or lost (1h)", "stat", "short",
         "Sensor drops, dead letters, skipped outputs and records lost to offset resets in the last hour: all must stay 0.",
         [q("(sum(increase(immunizer_sensor_records_dropped_total{SEL}[1h])) or vector(0)) + "
            "(sum(increase(immunizer_deadletters_total{SEL}[1h])) or vector(0)) + "
            "(sum(increase(immunizer_records_lost_total{SEL}[1h])) or vector(0)) + "
            "(sum(increase(immunizer_outputs_skipped_total{SEL}[1h])) or vector(0))")], ""),
    ]),
    ("Pipeline throughput", [
        per_second("Messages consumed / s", "Per service and topic.",
         "immunizer_kafka_messages_consumed_total", "service, topic"),
        per_second("Messages produced / s", "Per service and topic.",
         "immunizer_kafka_messages_produced_total", "service, topic"),
        ("Consumer lag", "timeseries", "short", "Unread messages per service and topic.",
         [gauge("immunizer_kafka_consumer_lag", "service, topic")], "{{service}} {{topic}}"),
        ("Broker reachable", "timeseries", "short", "1 while a service reaches a Kafka broker (its /readyz is 503 while 0).",
         [gauge("immunizer_kafka_broker_reachable", "job", "min")], "{{job}}"),
        ("Batch processing time", "timeseries", "s", "Time per consumed batch, per service (p50/p95/p99).",
         quantiles("immunizer_batch_seconds", "service"), "{{service}}"),
        ("Monitor records / s", "timeseries", "ops", "Records measured by monitor, and records it rejected.",
         [rate("immunizer_monitor_records_total"), rate("immunizer_monitor_records_rejected_total")], ""),
        ("Analyze vectors / s", "timeseries", "ops", "Vectors scored and vectors learnt while models were learning.",
         [rate("immunizer_analyze_vectors_scored_total"), rate("immunizer_analyze_vectors_learning_total")], ""),
    ]),
    ("Drops, loss and dead letters", [
        per_second("Sensor drops / s", "Records the sensors dropped, by app and reason.",
         "immunizer_sensor_records_dropped_total", "app, reason"),
        per_second("Sampled-out calls kept / s", "Calls the CPU budget sampled out but the sensor recorded anyway (a flag check or a watched principal), by app and reason.",
         "immunizer_sensor_sampled_kept_total", "app, reason"),
        per_second("Dead letters / s", "Messages dead-lettered, by service and reason.",
         "immunizer_deadletters_total", "service, reason"),
        per_second("Records lost / s", "Messages skipped by an offset reset past unread data (retention), by service and topic.",
         "immunizer_records_lost_total", "service, topic"),
        per_second("Outputs skipped / s", "Outputs that could not be produced after the retries.",
         "immunizer_outputs_skipped_total", "service"),
        per_second("Kafka delivery failures / s", "Produce requests the broker did not acknowledge.",
         "immunizer_kafka_delivery_failures_total", "service"),
        per_second("Duplicates dropped / s", "Redelivered alarms, plans or actions recognised by id and dropped.",
         "immunizer_duplicates_dropped_total", "job, what"),
    ]),
    ("Sensors and effectors (in the apps)", [
        ("Sensor records / s", "timeseries", "ops", "Calls recorded and records sent per app.",
         [rate("immunizer_sensor_records_recorded_total", "job"), rate("immunizer_sensor_records_sent_total", "app")], ""),
        ("Sensor sample rate", "timeseries", "percentunit", "Share of calls recorded (1 = all).",
         [gauge("immunizer_sensor_sample_rate", "job", "min")], "{{job}}"),
        ("Sensor overhead", "timeseries", "percentunit", "Share of the app's time spent recording, by app and reason.",
         [gauge("immunizer_sensor_overhead_share", "app, reason", "max")], "{{app}} {{reason}}"),
        ("Sensor bytes in flight", "timeseries", "bytes", "Bytes queued in the sensors (bounded by their byte budget).",
         [gauge("immunizer_sensor_inflight_bytes", "job", "max")], "{{job}}"),
        per_second("Effector directives / s", "Directives received by the effectors, by app and result.",
         "immunizer_effector_directives_total", "app, result"),
        ("Effectors: connected and active actions", "timeseries", "short", "Connected effectors and the actions each enforces.",
         [gauge("immunizer_effector_connected", "app"), gauge("immunizer_effector_active_actions", "app")], "{{app}}"),
        ("Calls denied by effectors / min", "timeseries", "short", "Calls an effector refused, per app.",
         [rate("immunizer_effector_denied_total", "app", scale=" * 60")], "{{app}}"),
    ]),
    ("Detection", [
        ("Alarms / min", "timeseries", "short", "By severity.",
         [rate("immunizer_alarms_total", "severity", scale=" * 60")], "{{severity}}"),
        ("Models by state", "timeseries", "short", "Analyze's models (learning, active, ...) and monitor's model keys.",
         [gauge("immunizer_analyze_models", "state"), gauge("immunizer_monitor_models")], "{{state}}"),
        ("Model memory", "timeseries", "bytes", "Analyze's and monitor's model memory, and monitor's largest model.",
         [gauge("immunizer_analyze_model_memory_bytes"), gauge("immunizer_monitor_memory_bytes"),
          gauge("immunizer_monitor_model_memory_max_bytes", agg="max")], ""),
        ("Feedback / min", "timeseries", "short", "Operator feedback given on the dashboard and learnt by analyze.",
         [rate("immunizer_dashboard_feedback_total", "job", scale=" * 60"), rate("immunizer_analyze_feedback_total", "job", scale=" * 60")], "{{job}}"),
        ("Detection latency (call -> alarm)", "timeseries", "s", "p50/p95/p99.",
         quantiles("immunizer_detection_latency_seconds"), ""),
    ]),
    ("Response (plan and execute)", [
        ("Plans / min", "timeseries", "short", "Plans by what they decided.",
         [rate("immunizer_plans_total", "what", scale=" * 60")], "{{what}}"),
        ("Actions / min", "timeseries", "short", "Action events by type.",
         [rate("immunizer_actions_total", "type", scale=" * 60")], "{{type}}"),
        per_second("Acks / s", "Effector acks received by execute.",
         "immunizer_execute_acks_total", "job"),
        ("Active directives and effectors", "timeseries", "short", "Directives execute enforces, effectors connected to it.",
         [gauge("immunizer_execute_active_directives"), gauge("immunizer_execute_effectors_connected")], ""),
        ("Circuit breaker open", "stat", "short", "1 while more automatic blocks were planned than the guard allows (escalated to people).",
         [gauge("immunizer_execute_breaker_open", agg="max")], ""),
        ("Guard decisions and refused plans / s", "timeseries", "ops", "Automatic plans clamped or refused by the guard, and unsigned or altered plans refused.",
         [rate("immunizer_execute_guard_total", "job"), rate("immunizer_execute_plans_refused_total", "job")], "{{job}}"),
        ("Execute: slow effectors and dropped events / s", "timeseries", "ops", "Effectors too slow to keep up, action events dropped.",
         [rate("immunizer_execute_slow_effectors_total"), rate("immunizer_execute_events_dropped_total")], ""),
        ("Mitigation latency (call -> effector applied)", "timeseries", "s", "p50/p95/p99.",
         quantiles("immunizer_mitigation_latency_seconds"), ""),
    ]),
    ("Security of the control plane", [
        per_second("gRPC calls refused / s", "Calls execute refused (no certificate, wrong role, forged identity).",
         "immunizer_execute_grpc_refused_total", "reason"),
        per_second("Dashboard requests refused / s", "Unauthenticated, forbidden, CSRF, rate limited.",
         "immunizer_dashboard_requests_refused_total", "reason"),
        ("Dashboard logins / min", "timeseries", "short", "By result.",
         [rate("immunizer_dashboard_logins_total", "result", scale=" * 60")], "{{result}}"),
        ("Manual operations / min", "timeseries", "short", "Blocks and unblocks sent to execute from the dashboard.",
         [rate("immunizer_dashboard_operations_total", "job", scale=" * 60")], "{{job}}"),
        ("HTTP connections and refusals", "timeseries", "short", "Open connections of every service's HTTP server; refusals (limits) per second.",
         [gauge("immunizer_http_connections", "job"), rate("immunizer_http_refused_total", "reason")], "{{job}} {{reason}}"),
    ]),
    ("Incidents and notifications", [
        ("Incidents / min", "timeseries", "short", "Opened, escalated, state changes.",
         [rate("immunizer_dashboard_incidents_total", "event", scale=" * 60")], "{{event}}"),
        ("Incident alarms / s", "timeseries", "ops", "Alarms grouped into incidents, collapsed into a row, duplicates.",
         [rate("immunizer_dashboard_incident_alarms_total"), rate("immunizer_dashboard_incident_alarms_collapsed_total"),
          rate("immunizer_dashboard_incident_alarms_duplicate_total")], ""),
        ("Low-evidence alarms / s", "timeseries", "ops",
         "Alarms kept in pattern rows (no incident of their own yet), and pattern alarms moved into "
         "a principal's incident when its evidence arrived.",
         [rate("immunizer_dashboard_incident_pattern_alarms_total"),
          rate("immunizer_dashboard_incident_alarms_moved_total")], ""),
        ("History database", "timeseries", "bytes", "Size of the SQLite history; incidents pruned and errors per second.",
         [gauge("immunizer_dashboard_store_bytes"), rate("immunizer_dashboard_store_pruned_incidents_total"),
          rate("immunizer_dashboard_store_errors_total", "op")], "{{op}}"),
        ("Notifications / min", "timeseries", "short", "Per destination and result; queued notifications.",
         [rate("immunizer_dashboard_notifications_total", "destination, result", scale=" * 60"),
          gauge("immunizer_dashboard_notification_queue", "destination")], "{{destination}} {{result}}"),
        ("Browsers", "timeseries", "short", "Live dashboard clients and events dropped for slow ones.",
         [gauge("immunizer_dashboard_sse_clients"), rate("immunizer_dashboard_sse_dropped_total")], ""),
    ]),
    ("Versions", [
        ("Build info", "table", "short", "Version and commit of every process.",
         [gauge("immunizer_build_info", "job, instance, version, commit", "max")], ""),
    ]),
]


def build():
    panels, next_id, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"type": "row", "title": row_title, "id": next_id, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        x = 0
        for title, kind, unit, desc, exprs, legend in row_panels:
            w, h = (6, 4) if kind == "stat" else (12 if kind != "table" else 24, 8)
            if x + w > 24:
                x, y = 0, y + prev_h
            p = {"type": kind, "title": title, "description": desc, "id": next_id, "datasource": DS,
                 "gridPos": {"h": h, "w": w, "x": x, "y": y},
                 "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                 "targets": [{"datasource": DS, "refId": chr(ord("A") + i), "expr": e, "legendFormat": legend}
                             for i, e in enumerate(exprs)]}
            if kind == "stat":
                p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                                "colorMode": "value", "graphMode": "area"}
            elif kind == "table":
                for t in p["targets"]:
                    t.update({"format": "table", "instant": True})
            else:
                p["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
            panels.append(p)
            next_id += 1
            x += w
            prev_h = h
        y += prev_h
    var = lambda name, label, query: {"name": name, "label": label, "type": "query", "datasource": DS,
                                      "query": {"query": query, "refId": name}, "definition": query,
                                      "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
                                      "current": {"text": "All", "value": "$__all"}, "hide": 0, "sort": 1}
    return {
        "__inputs": [],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
                                  "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "Immunizer MAPE-K pipeline: throughput, lag, drops and loss, agents, detection, response, "
                       "control-plane security, incidents. Generated by deploy/grafana/dashboard.py.",
        "editable": False, "graphTooltip": 1, "links": [], "liveNow": False, "refresh": "30s", "schemaVersion": 39,
        "tags": ["immunizer"],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus", "current": {},
             "hide": 0, "refresh": 1, "regex": "", "options": []},
            var("job", "Job", "label_values(immunizer_build_info, job)"),
            var("instance", "Instance", 'label_values(immunizer_build_info{job=~"$job"}, instance)'),
        ]},
        "time": {"from": "now-1h", "to": "now"}, "timepicker": {}, "timezone": "", "title": "Immunizer",
        "uid": "immunizer-overview", "version": 2, "panels": panels,
    }


def main():
    text = json.dumps(build(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        same = open(OUT).read() == text
        print("dashboard JSON up to date" if same else "dashboard JSON differs: run deploy/grafana/dashboard.py")
        return 0 if same else 1
    with open(OUT, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(OUT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
