"""Stop this notebook instance once nothing has happened for N minutes (cron runs it every 5 minutes).

Activity is what Jupyter reports: any kernel or terminal that is busy, or was active within the last N
minutes, keeps the instance up; so does a background job of lifecycle-config.sh (its pid file, while the
process it names is still that script: a pid reused after a reboot does not count). With no kernels and
no terminals, the instance counts as idle since it booted. An open but untouched browser tab does not
keep it up: the point is to stop paying for a forgotten instance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import ssl
import urllib.request
from pathlib import Path
from typing import Any

#: A notebook instance's Jupyter server, local only, with a self-signed certificate.
JUPYTER_URL = "https://localhost:8443"
METADATA_FILE = Path("/opt/ml/metadata/resource-metadata.json")
#: A busy pid file counts only while its process's command line contains this (the lifecycle script's jobs).
BUSY_COMMAND = "lifecycle-config.sh"


def parse_time(text: str) -> dt.datetime:
    """Jupyter's ISO timestamps ('2024-05-01T10:00:00.123456Z') -> aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def pid_alive(pidfile: Path, command: str = BUSY_COMMAND) -> bool:
    """True when `pidfile` names a running process whose command line contains `command`."""
    try:
        pid = int(pidfile.read_text().strip())
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")  # empty for a zombie
    except (OSError, ValueError):  # no pid file, not a pid, or no such process
        return False
    return any(command.encode() in arg for arg in argv)


def idle_reason(
    activity: list[dict[str, Any]],
    now: dt.datetime,
    idle_minutes: float,
    booted: dt.datetime,
    busy: list[Path],
) -> str | None:
    """Why the instance may stop (a sentence), or None while something is active."""
    if any(pid_alive(p) for p in busy):
        return None
    if any(item.get("execution_state") == "busy" for item in activity):
        return None
    last = max((parse_time(item["last_activity"]) for item in activity), default=booted)
    idle = (now - last).total_seconds() / 60
    if idle < idle_minutes:
        return None
    what = f"{len(activity)} kernels/terminals" if activity else "no kernels or terminals since boot"
    return f"idle for {idle:.0f} min (limit {idle_minutes:g}), {what}"


def fetch(url: str) -> list[dict[str, Any]]:
    """GET a Jupyter API list (kernels or terminals) from the local server."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # localhost, self-signed
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return json.load(response)


def boot_time(now: dt.datetime) -> dt.datetime:
    """When this machine booted (from /proc/uptime)."""
    seconds = float(Path("/proc/uptime").read_text().split()[0])
    return now - dt.timedelta(seconds=seconds)


def stop_instance(metadata: Path = METADATA_FILE) -> str:
    """Ask SageMaker to stop this notebook instance (named in the instance metadata)."""
    import boto3

    name = json.loads(metadata.read_text())["ResourceName"]
    boto3.client("sagemaker").stop_notebook_instance(NotebookInstanceName=name)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.aws.autostop", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--idle-minutes", type=float, required=True, help="stop after this many idle minutes")
    parser.add_argument("--jupyter-url", default=JUPYTER_URL)
    parser.add_argument(
        "--busy-pidfile", type=Path, action="append", default=[], help="a running job's pid file"
    )
    parser.add_argument("--metadata", type=Path, default=METADATA_FILE, help="the instance's metadata file")
    parser.add_argument("--dry-run", action="store_true", help="report, never stop")
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    activity = fetch(f"{args.jupyter_url}/api/kernels") + fetch(f"{args.jupyter_url}/api/terminals")
    reason = idle_reason(activity, now, args.idle_minutes, boot_time(now), args.busy_pidfile)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S")
    if reason is None:
        print(f"{stamp} active: not stopping", flush=True)
    elif args.dry_run:
        print(f"{stamp} {reason}: would stop (dry run)", flush=True)
    else:
        print(f"{stamp} {reason}: stopping notebook instance {stop_instance(args.metadata)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
