"""A state-changing signed request, wherever it arrives: executed here on
the leader, forwarded through the channel (dex/api/channel.py) on a follower.

    handle(node, request):
        wait for a leader (none: 503 -1001)
        shed an overload (503 -1008): the leader's admission, or on a follower
            the leader's last refusal of a forwarded request, still fresh
        verify the signature and charge the rate limit, here (dex.api.deps.verify_call)
        leader:   dex.api.execute.execute(node, signed, call)
        follower: node.channel.forward(leader, call), then wait for this node's own apply
        -> the Answer as a JSON response (status, payload, headers)

Either way the answer is the one dex.api.execute gives, and it goes out only
after the block holding the request is applied on the node that answers,
so a read right after it sees the request's effect.
"""

from __future__ import annotations

from fastapi import Request

from dex.api.deps import call_of, verify_call
from dex.api.errors import DISCONNECTED, ApiError
from dex.api.execute import execute
from dex.api.jsonbody import JSONBody


async def handle(node, request: Request) -> JSONBody:
    leader = await node.port.wait_leader()
    if leader is None:
        raise ApiError.unavailable(DISCONNECTED, "No leader: the cluster is electing one or has lost quorum. Please try again.")
    if leader == node.node_id:
        node.port.admit()  # shed an overload before the signature check (dex/ledger/admission.py)
    else:
        node.channel.admit(leader)  # the leader shed one of ours just now: shed here too (dex/api/channel.py)
    call = await call_of(request)
    signed = verify_call(node, call, limiter=request.app.state.rate_limiter)  # where the user sent it: once
    if leader == node.node_id:
        answer = await execute(node, signed, call)
    else:
        answer = await node.channel.forward(leader, call)
    return JSONBody(answer.payload, status_code=answer.status, headers=answer.headers or None)
