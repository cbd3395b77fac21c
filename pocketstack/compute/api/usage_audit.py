"""os-instance_usage_audit_log (admin only): the state of the instance usage audit per
compute host for the last completed audit period (a calendar month, Nova's default
`instance_usage_audit_period`), optionally the last one before a given time.

Nova's compute hosts write a task log row per period when `instance_usage_audit` is on
(upstream's default is off). pocketstack has no usage-audit periodic task (usage is read
directly by os-simple-tenant-usage), so no host ever has a task log: every compute service,
disabled ones included, is reported under `hosts_not_run`, which is exactly what Nova
answers with the audit switched off. The body has upstream's task-log shape.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from pocketstack.common.db import utcnow
from pocketstack.common.errors import BadRequest
from pocketstack.compute import servers as sv
from pocketstack.compute.api.common import api, session
from pocketstack.compute.models import Service

R = "os_compute_api:os-instance-usage-audit-log:"


def last_completed_month(before: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The last whole calendar month that ended before `before` (default now), naive UTC."""
    now = (before or utcnow()).replace(tzinfo=None)
    end = dt.datetime(now.year, now.month, 1)
    if end >= now:  # exactly at a month's start: that month has not completed yet
        end = _month_before(end)
    return _month_before(end), end


def _month_before(day: dt.datetime) -> dt.datetime:
    return dt.datetime(day.year - 1, 12, 1) if day.month == 1 else dt.datetime(day.year, day.month - 1, 1)


def task_log(before: dt.datetime | None = None) -> dict:
    """Upstream's task-log summary: with no audit run, no host is done, running or in error."""
    begin, end = last_completed_month(before)
    with session() as sess:
        hosts = sorted(set(sess.scalars(select(Service.host).where(Service.binary == "nova-compute"))))
    done = "ALL" if not hosts else f"0 of {len(hosts)}"  # Nova says ALL when done == all hosts
    return {
        "period_beginning": str(begin), "period_ending": str(end),
        "num_hosts": len(hosts), "num_hosts_done": 0, "num_hosts_running": 0,
        "num_hosts_not_run": len(hosts), "hosts_not_run": hosts,
        "total_instances": 0, "total_errors": 0, "overall_status": f"{done} hosts done. 0 errors.",
        "log": {},
    }


@api.route("/v2.1/os-instance_usage_audit_log", "GET")
def list_audit_logs(req):
    sv.enforce(req.context, R + "list")
    return {"instance_usage_audit_logs": task_log()}


@api.route("/v2.1/os-instance_usage_audit_log/{before_timestamp}", "GET")
def show_audit_log(req):
    sv.enforce(req.context, R + "show")
    raw = req.path_params["before_timestamp"]
    try:
        before = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f" if "." in raw else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise BadRequest(f"Invalid timestamp for date {raw}") from None
    return {"instance_usage_audit_log": task_log(before)}
