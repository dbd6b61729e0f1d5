"""Dry runs: every AWS request is built, recorded and printed, and none is sent.

`DryRun.attach(boto_session)` hooks botocore's event system on a boto3 session before any client exists:
``before-parameter-build`` records the API call exactly as the SDK made it, ``before-call`` answers it with
a plausible canned response instead of sending it (no credentials are needed, nothing is signed). The
SageMaker SDK therefore runs its real code path (ModelBuilder, NotebookJobStep, Pipeline) and the printed
requests are the ones a real run would send.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

_ACCOUNT = "000000000000"  # placeholder account id in canned ARNs


@dataclass(frozen=True)
class Call:
    """One request that a real run would send."""

    service: str
    operation: str
    params: dict[str, Any]

    def describe(self) -> str:
        """'sagemaker.CreateModel {...}' with binary bodies shown as their size."""
        return f"{self.service}.{self.operation} {json.dumps(self.params, default=_jsonable, sort_keys=True)}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if hasattr(value, "read"):
        return f"<stream {getattr(value, 'name', type(value).__name__)}>"
    return str(value)


def _arn(region: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{_ACCOUNT}:{kind}/{name.lower()}"


@dataclass
class DryRun:
    """Collects (and by default prints) the requests of a dry run."""

    echo: bool = True
    stream: TextIO | None = field(default=None, repr=False)  # None: sys.stdout at print time
    calls: list[Call] = field(default_factory=list)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> Call:
        """Add one request (also used directly for steps that never reach botocore, e.g. file uploads)."""
        call = Call(service, operation, dict(params))
        self.calls.append(call)
        if self.echo:
            print(f"[dry run] {call.describe()}", file=self.stream or sys.stdout, flush=True)
        return call

    def operations(self) -> list[str]:
        """'service.Operation' for every recorded request, in order."""
        return [f"{c.service}.{c.operation}" for c in self.calls]

    def attach(self, boto_session: Any) -> None:
        """Record-and-answer every call made by clients that `boto_session` creates from now on."""
        events = boto_session.events
        events.register("before-parameter-build.*.*", self._on_params, unique_id="caption-dry-run-params")
        events.register("before-call.*.*", self._on_call, unique_id="caption-dry-run-call")

    def _on_params(self, params: dict, model: Any, context: dict, **_: Any) -> None:
        call = self.record(model.service_model.service_name, model.name, params)
        context["caption_dry_run_call"] = call

    def _on_call(self, model: Any, context: dict, **_: Any) -> tuple[Any, dict]:
        from botocore.awsrequest import AWSResponse

        call: Call = context["caption_dry_run_call"]
        region = context.get("client_region") or "us-east-1"
        return AWSResponse("https://dry-run.invalid", 200, {}, None), canned_response(
            call, region, self.calls
        )


def _created(history: list[Call], kind: str, name: str | None) -> dict[str, Any]:
    """The parameters of the dry run's own Create<kind> request for `name`, if it made one."""
    for call in reversed(history):
        if call.operation == f"Create{kind}" and call.params.get(f"{kind}Name") == name:
            return dict(call.params)
    return {}


def canned_response(call: Call, region: str, history: list[Call] = ()) -> dict[str, Any]:
    """A response good enough for the SDK to carry on: names and created settings echoed, statuses final."""
    p, now, op = call.params, dt.datetime.now(dt.UTC), call.operation
    if op == "GetCallerIdentity":
        return {"Account": _ACCOUNT, "Arn": f"arn:aws:iam::{_ACCOUNT}:role/dry-run", "UserId": "dry-run"}
    if op == "GetRole":
        arn = f"arn:aws:iam::{_ACCOUNT}:role/{p['RoleName']}"
        return {
            "Role": {
                "Path": "/",
                "RoleName": p["RoleName"],
                "RoleId": "dry-run",
                "Arn": arn,
                "CreateDate": now,
            }
        }
    if op == "InvokeEndpoint":
        from botocore.response import StreamingBody

        body = json.dumps({"dry_run": True, "endpoint": p["EndpointName"]}).encode()
        return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"}
    if op == "StartPipelineExecution":
        return {"PipelineExecutionArn": _arn(region, "pipeline", p["PipelineName"]) + "/execution/dry-run"}
    if op.startswith("Describe"):
        kind = op.removeprefix("Describe")
        name = p.get(f"{kind}Name")
        doc = {**_created(history, kind, name), f"{kind}Arn": _arn(region, kind.lower(), str(name))}
        doc.update(CreationTime=now, LastModifiedTime=now, **({f"{kind}Name": name} if name else {}))
        doc.setdefault("ExecutionRoleArn", f"arn:aws:iam::{_ACCOUNT}:role/dry-run")
        doc.pop("Tags", None)
        if kind == "Endpoint":
            doc["EndpointStatus"] = "InService"
        return doc
    if op.startswith("Create") and op != "CreateBucket":
        kind = op.removeprefix("Create")
        return {f"{kind}Arn": _arn(region, kind.lower(), p.get(f"{kind}Name", "dry-run"))}
    if op == "ListBuckets":
        return {"Buckets": [], "Owner": {"ID": _ACCOUNT}}
    if op == "ListObjectsV2":
        return {"KeyCount": 0, "IsTruncated": False}
    if op == "PutObject":
        return {"ETag": '"dry-run"'}
    return {}
