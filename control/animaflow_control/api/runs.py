"""Runs: start one, list them, follow one live (SSE), cancel one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from animaflow_control.api.deps import Operator, ServicesDep, Viewer
from animaflow_control.schemas.common import MAX_INT, RunState
from animaflow_control.schemas.runs import (
    CancelResult,
    HostProgress,
    Progress,
    Run,
    RunCreated,
    RunDetail,
    RunList,
    RunRequest,
)
from animaflow_control.services.container import Services
from animaflow_control.services.events import sse
from animaflow_control.services.locks import NodeBusy
from animaflow_control.services.runner import PlaybookMissing, UnknownTargets

router = APIRouter(prefix="/api/runs", tags=["runs"])

RunId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
EVENT_BATCH = 500
KEEPALIVE_S = 15.0


def load_run(services: Services, run_id: str) -> dict:
    run = services.store.get_run(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}")
    return run


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunCreated,
    responses={409: {"description": "A node is busy; names the run holding it"}},
)
def create_run(body: RunRequest, services: ServicesDep, principal: Operator) -> RunCreated:
    try:
        run = services.runs.start(body, created_by=principal.name)
    except UnknownTargets as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    except NodeBusy as error:
        holders = sorted(set(error.holders.values()))
        states = {run_id: (services.store.get_run(run_id) or {}).get("state") for run_id in holders}
        stopping = [run_id for run_id, state in states.items() if state == RunState.stopping]
        message = str(error) + (
            f" (run {', '.join(stopping)} is stopping: its processes are still being ended)"
            if stopping
            else ""
        )
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            {"message": message, "run": holders[0], "holders": error.holders, "states": states},
        ) from error
    except PlaybookMissing as error:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(error)) from error
    return RunCreated(id=run["id"], state=run["state"])


# Async: one indexed page of the history is a millisecond's read, cheaper on the loop than the thread
# hop while 50 live logs stream (benchmarks/control_api.py).
@router.get("", response_model=RunList)
async def list_runs(
    services: ServicesDep,
    _: Viewer,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> RunList:
    return RunList(runs=[Run(**run) for run in services.store.list_runs(limit, offset)])


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: RunId, services: ServicesDep, _: Viewer) -> RunDetail:
    run = load_run(services, run_id)
    started, per_host = services.store.progress(run_id)
    progress = Progress(
        tasks_started=started,
        tasks_expected=services.store.last_successful_task_count(run["action"], run["backend"]),
        hosts={host: HostProgress(**per_host.get(host, {})) for host in run["hosts"]},
    )
    failure = services.store.last_failure(run_id) if run["state"] == RunState.failed else None
    return RunDetail(**run, progress=progress, failure=failure)


@router.post("/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=CancelResult)
def cancel_run(run_id: RunId, services: ServicesDep, principal: Operator) -> CancelResult:
    run = load_run(services, run_id)
    if RunState(run["state"]).finished or not services.runs.cancel(run_id, canceled_by=principal.name):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run_id} is {run['state']}, nothing to cancel")
    return CancelResult(id=run_id, cancel_requested=True)


STOPPING_SERVER = "the control plane is stopping"
TOKEN_ENDED = "the token this stream was opened with is no longer valid"


async def event_stream(services: Services, run_id: str, after: int, token_id: int) -> AsyncIterator[str]:
    flag = services.bus.subscribe(run_id)
    last_state = None
    run: dict | None = None
    seen_version: int | None = None
    revocations = services.bus.revocations
    try:
        while True:
            flag.clear()
            # The server stopping and a revocation wake every stream.
            if services.bus.closed.is_set():
                yield sse("end", {"state": last_state, "reason": STOPPING_SERVER})
                return
            if services.bus.revocations != revocations:
                revocations = services.bus.revocations
                if not await run_in_threadpool(services.store.token_active, token_id):
                    yield sse("end", {"state": last_state, "reason": TOKEN_ENDED})
                    return
            # State first, then events: a run marked finished has stored all its events, so once a
            # finished state is seen, the events read after it are the last ones. A run in progress is
            # read again only when its state changed; its events come rendered from the bus.
            version = services.bus.state_version(run_id)
            if version is None or version != seen_version or run is None:
                seen_version = version
                run = await run_in_threadpool(services.store.get_run, run_id)
            live = services.bus.messages_after(run_id, after)
            if live is not None:
                seqs, messages = live
                if seqs:
                    after = seqs[-1]
                    yield "".join(messages)
            else:
                events = await run_in_threadpool(services.store.events_after, run_id, after, EVENT_BATCH)
                for event in events:
                    after = event["seq"]
                    yield sse("ansible", event, after)
                if len(events) == EVENT_BATCH:
                    continue
            if run and run["state"] != last_state:
                last_state = run["state"]
                yield sse(
                    "state",
                    {
                        "state": last_state,
                        "rc": run["rc"],
                        "error": run["error"],
                        "canceled_by": run["canceled_by"],
                    },
                )
            if run is None or RunState(run["state"]).finished:
                yield sse("end", {"state": last_state})
                return
            try:
                await asyncio.wait_for(flag.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
    finally:
        services.bus.unsubscribe(run_id, flag)


@router.get(
    "/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
def stream_events(
    run_id: RunId,
    services: ServicesDep,
    principal: Viewer,
    after: Annotated[int, Query(ge=0, le=MAX_INT, description="Resume after this event sequence number")] = 0,
    last_event_id: Annotated[int | None, Header(ge=0, le=MAX_INT)] = None,
) -> StreamingResponse:
    load_run(services, run_id)
    start = max(after, last_event_id or 0)
    return StreamingResponse(
        event_stream(services, run_id, start, principal.token_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
