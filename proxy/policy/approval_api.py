"""The approval endpoint: `GET` (show) and `POST` (approve) `/v1/guardproxy/approvals/{approval_id}`.

Authenticated with the same client key as the withheld call (any key when the policy defines
none); only the client whose call was withheld can approve it. The answer names the call so the
application can show what it approved.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from proxy.errors import NotFound
from proxy.policy.approvals import ApprovalStore, Pending
from proxy.policy.auth import api_key_from
from proxy.policy.store import PolicyStore

ROUTE = "/v1/guardproxy/approvals/{approval_id}"


def add_approval_route(app: FastAPI, guards: Sequence[object], policies: PolicyStore) -> None:
    """Mounted when a stage holds approvals (tool_scope); absent otherwise, so it answers 404."""
    stores = [s for g in guards if isinstance(s := getattr(g, "approvals", None), ApprovalStore)]
    if not stores:
        return
    store = stores[0]

    @app.get(ROUTE, name="show_withheld_call")
    async def show(approval_id: str, request: Request) -> JSONResponse:
        client = policies.current.authenticate(api_key_from(request.headers))
        return _answer(store.get(approval_id, client.name), approval_id, store)

    @app.post(ROUTE, name="approve_withheld_call")
    async def approve(approval_id: str, request: Request) -> JSONResponse:
        client = policies.current.authenticate(api_key_from(request.headers))
        return _answer(store.approve(approval_id, client.name), approval_id, store)


def _answer(pending: Pending | None, approval_id: str, store: ApprovalStore) -> JSONResponse:
    if pending is None:
        raise NotFound(f"no pending approval {approval_id[:64]!r} for this client (unknown, expired or used)",
                       code="approval_not_found", param="approval_id")
    return JSONResponse({"id": pending.id, "status": "approved" if pending.approved else "pending",
                         "tool": pending.tool, "arguments": pending.arguments, "expires_in_s": int(store.ttl_s)})
