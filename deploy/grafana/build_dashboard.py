"""Write mailcode-dashboard.json, the Grafana dashboard for mailcode-exporter.

Run `python deploy/grafana/build_dashboard.py` after editing this file; tests/test_deploy.py checks that
the JSON beside it is what this script writes. Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).with_name("mailcode-dashboard.json")
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x; pinned so that imports do not migrate the JSON
DS = {"type": "prometheus", "uid": "${datasource}"}
F = 'instance=~"$instance", source=~"$source"'  # the filter every per-source query carries
INST = 'instance=~"$instance"'  # for the series without a source label

# Joins a result on `code` with the catalogue's description. An exporter per host exports the same
# catalogue, so one info series per code is picked; codes outside the catalogue stay, undescribed.
CODES_BY_RANGE = (
    "sum by (code, type, outcome, direction) (increase(mail_responses_total{{{sel}}}[$__range])) > 0"
)


def increases(by: str, metric: str, sel: str = F) -> str:
    """Increase of a counter per interval, summed by the given labels."""
    return f"sum by ({by}) (increase({metric}{{{sel}}}[$__rate_interval]))"


def value_map(*pairs: tuple[str, str, str]) -> list[dict]:
    """Grafana value mappings from (value, text, colour) triples."""
    return [
        {"type": "value", "options": {value: {"text": text, "color": colour, "index": i}}}
        for i, (value, text, colour) in enumerate(pairs)
    ]


def described(expr: str, key: str, info: str, keep: str) -> str:
    """`expr` with the info metric's description joined on `key`; rows without one are kept."""
    return (
        f"({expr}) * on({key}) group_left(description) topk by ({key}) (1, {info}{{{INST}}})\n"
        f"or on({keep}) ({expr})"
    )


def timeseries(title, expr, legend, unit="short", description="", stack=False, bars=False, more=()):
    """A time series panel; `more` holds further (expr, legend) queries."""
    custom = {"drawStyle": "bars" if bars else "line", "fillOpacity": 60 if bars else 10, "lineWidth": 1}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0, "custom": custom}, "overrides": []},
        "options": {
            "legend": {
                "showLegend": True,
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": e, "legendFormat": lg, "range": True}
            for i, (e, lg) in enumerate([(expr, legend), *more])
        ],
    }


def table(title, expr, description="", hide=()):
    excluded = {"Time": True, **{name: True for name in hide}}
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": "short"}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        "transformations": [{"id": "organize", "options": {"excludeByName": excluded, "renameByName": {}}}],
        "targets": [
            {"refId": "A", "datasource": DS, "expr": expr, "format": "table", "instant": True, "range": False}
        ],
    }


def stat(title, expr, legend, unit="short", description="", mappings=None, thresholds=None):
    defaults = {"unit": unit, "mappings": mappings or []}
    if thresholds:
        defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
        },
        "targets": [{"refId": "A", "datasource": DS, "expr": expr, "legendFormat": legend, "instant": True}],
    }


def rows():
    """(row title, [(panel, width, height), ...]) in display order."""
    codes = CODES_BY_RANGE.format(sel=F)
    failures = (
        "sum by (code, type, direction) (increase(mail_responses_total"
        f'{{{F}, outcome="failure", code=~"5[0-9][0-9]|9[0-9][0-9][0-9]"}}[$__range])) > 0'
    )
    enhanced = f"sum by (enhanced, outcome) (increase(mail_enhanced_status_codes_total{{{F}}}[$__range])) > 0"
    enhanced_described = described(
        enhanced, "enhanced", "mail_enhanced_status_code_info", "enhanced, outcome"
    )
    return [
        (
            "Replies",
            [
                (
                    timeseries(
                        "Replies/s by direction and outcome",
                        "sum by (direction, outcome) "
                        f"(instance_source_code_direction:mail_responses:rate5m{{{F}}})",
                        "{{direction}} {{outcome}}",
                        description="Inbound: replies this server gave clients. "
                        "Outbound: replies remote servers or delivery agents gave this server.",
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Replies/s by type",
                        f"sum by (type) (instance_source_code_direction:mail_responses:rate5m{{{F}}})",
                        "{{type}}",
                        description="smtp: SMTP reply codes; plex: Plex application codes; "
                        "unknown: a code that is neither.",
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Top reply codes over the time range, with their descriptions",
                        f"topk(20, {described(codes, 'code', 'mail_response_code_info', 'code, direction')})",
                        description="Replies in the selected time range by code, joined with the "
                        "catalogue's description (mail_response_code_info). 'none': the result carried "
                        "no code; 'other': not a code of the catalogue or of RFC 5321.",
                    ),
                    24,
                    9,
                ),
            ],
        ),
        (
            "Failures",
            [
                (
                    timeseries(
                        "Outbound 5xx replies/s by code",
                        "sum by (code) (instance_source_code_direction:mail_responses:rate5m"
                        f'{{{F}, direction="outbound", code=~"5[0-9][0-9]"}})',
                        "{{code}}",
                        description="Permanent failures remote servers gave this server: "
                        "these messages bounce.",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Outbound 5xx share",
                        "instance_source_direction:mail_responses_5xx:ratio_rate5m"
                        f'{{{F}, direction="outbound"}}',
                        "{{instance}} {{source}}",
                        unit="percentunit",
                        description="5xx replies among all outbound replies "
                        "(alert MailOutbound5xxRatioHigh).",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Inbound rejects/s by code",
                        "sum by (code) (instance_source_code_direction:mail_responses:rate5m"
                        f'{{{F}, direction="inbound", outcome="failure"}})',
                        "{{code}}",
                        description="Rejections this server gave clients.",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Plex failures by code",
                        increases("code", "mail_responses_total", F + ', type="plex", outcome="failure"'),
                        "{{code}}",
                        description="9009: Plex could not log into its SMTP server. 9010, 9998, 9999: "
                        "the server did not recognize a command.",
                        bars=True,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "5xx and Plex failures over the time range, with their descriptions",
                        described(failures, "code", "mail_response_code_info", "code, direction"),
                    ),
                    12,
                    8,
                ),
            ],
        ),
        (
            "Dispositions",
            [
                (
                    timeseries(
                        "Dispositions/s by status",
                        f"sum by (status) (instance_source_status:mail_delivery_status:rate5m{{{F}}})",
                        "{{status}}",
                        description="What the logs say became of each message: sent, deferred, bounced, "
                        "expired, or rejected (refused by this server). Counted with or without a code.",
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Deferred share of delivery attempts",
                        f"instance_source:mail_delivery_deferred:ratio_rate5m{{{F}}}",
                        "{{instance}} {{source}}",
                        unit="percentunit",
                        description="Deferred among sent, deferred, bounced and expired "
                        "(alert MailDeliveriesDeferred).",
                    ),
                    12,
                    8,
                ),
            ],
        ),
        (
            "Enhanced status codes",
            [
                (
                    timeseries(
                        "Enhanced status codes/s by class",
                        "sum by (class) (label_replace("
                        f"instance_source_enhanced_outcome:mail_enhanced_status_codes:rate5m{{{F}}}, "
                        '"class", "$1.x.x", "enhanced", "([245])[.].*"))',
                        "{{class}}",
                        description="RFC 3463 classes: 2 success, 4 persistent transient failure, "
                        "5 permanent failure.",
                        stack=True,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Top enhanced status codes over the time range, with their descriptions",
                        "topk(20, " + enhanced_described + ")",
                    ),
                    12,
                    8,
                ),
            ],
        ),
        (
            "Exporter health",
            [
                (
                    timeseries(
                        "Lines/s by result",
                        f"sum by (source, result) (instance_source_result:mail_exporter_lines:rate5m{{{F}}})",
                        "{{source}} {{result}}",
                        description="outcome: a line with a result; ignored: of the format, no result; "
                        "unparsed: not of the format; oversize: too long to parse.",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Bytes behind",
                        f"max by (instance, source) (mail_exporter_behind_bytes{{{F}}})",
                        "{{instance}} {{source}}",
                        unit="bytes",
                        description="Written to the log and not read yet (alert MailExporterFallingBehind).",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Bytes read/s",
                        f"sum by (instance, source) (instance_source:mail_exporter_read_bytes:rate5m{{{F}}})",
                        "{{instance}} {{source}}",
                        unit="Bps",
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "File events: opens, rotations, truncations, reopens",
                        increases("source, event", "mail_exporter_file_events_total"),
                        "{{source}} {{event}}",
                        bars=True,
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Lost bytes and dropped results",
                        increases("source, reason", "mail_exporter_lost_bytes_total"),
                        "{{source}} lost bytes: {{reason}}",
                        description="Log data never read (alert MailExporterLostLogData), "
                        "and results dropped.",
                        bars=True,
                        more=[
                            (
                                increases("source, reason", "mail_exporter_dropped_total"),
                                "{{source}} dropped: {{reason}}",
                            )
                        ],
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Read errors",
                        increases("instance, source", "mail_exporter_read_errors_total"),
                        "{{instance}} {{source}}",
                        bars=True,
                    ),
                    8,
                    8,
                ),
                (
                    stat(
                        "Sources readable",
                        f"mail_exporter_source_up{{{F}}}",
                        "{{instance}} {{source}}",
                        description="Alert MailExporterSourceUnreadable.",
                        mappings=value_map(("0", "unreadable", "red"), ("1", "readable", "green")),
                    ),
                    8,
                    6,
                ),
                (
                    stat(
                        "Time since the last line",
                        f"time() - mail_exporter_last_line_timestamp_seconds{{{F}}}"
                        f" and mail_exporter_last_line_timestamp_seconds{{{F}}} > 0",
                        "{{instance}} {{source}}",
                        unit="s",
                        description="Alert MailExporterNoLinesRead.",
                        thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 3600}],
                    ),
                    8,
                    6,
                ),
                (
                    stat(
                        "State file durable",
                        f"mail_exporter_state_durable{{{INST}}}",
                        "{{instance}}",
                        description="Whether the last save of read positions succeeded "
                        "(alert MailExporterStateNotDurable).",
                        mappings=value_map(("0", "not saved", "red"), ("1", "saved", "green")),
                    ),
                    8,
                    6,
                ),
                (
                    timeseries(
                        "State saves by result",
                        increases("instance, result", "mail_exporter_state_saves_total", INST),
                        "{{instance}} {{result}}",
                        bars=True,
                    ),
                    12,
                    8,
                ),
                (
                    table(
                        "Sources and exporter versions",
                        f"mail_exporter_source_info{{{F}}}"
                        " * on(job, instance) group_left(version, python_version) mail_exporter_build_info",
                        hide=("Value", "__name__"),
                    ),
                    12,
                    8,
                ),
            ],
        ),
    ]


def layout():
    """Panels with ids and grid positions: rows stacked, panels filled left to right."""
    panels, next_id, y = [], 1, 0
    for title, members in rows():
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id, y = next_id + 1, y + 1
        x, line_height = 0, 0
        for panel, width, height in members:
            if x + width > 24:
                x, y, line_height = 0, y + line_height, 0
            panels.append({"id": next_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}, **panel})
            next_id, x, line_height = next_id + 1, x + width, max(line_height, height)
        y += line_height
    return panels


def variable(name, label, query):
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def dashboard():
    return {
        "title": "Mail server response codes",
        "uid": "mailcode-exporter",
        "description": "Replies, failures, dispositions and exporter health from mailcode-exporter.",
        "tags": ["mail", "smtp", "mailcode-exporter"],
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "links": [],
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "options": [],
                    "regex": "",
                    "refresh": 1,
                    "hide": 0,
                },
                variable("instance", "Instance", "label_values(mail_exporter_build_info, instance)"),
                variable("source", "Source", f"label_values(mail_exporter_source_info{{{INST}}}, source)"),
            ]
        },
        "panels": layout(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(0 if OUT.read_text(encoding="utf-8") == render() else "mailcode-dashboard.json is stale")
    OUT.write_text(render(), encoding="utf-8")
