"""Test fixture: no out-of-band hook, so the runner's default (gc.collect())
runs; /count tells how many full (generation 2) collections there were and
whether ``import ferry`` gave the runner's module."""

import gc
import json

import ferry

STATE = {"requests": 0, "full_collections": 0}


def _on_gc(phase, info):
    if phase == "stop" and info.get("generation") == 2:
        STATE["full_collections"] += 1


gc.callbacks.append(_on_gc)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    STATE["requests"] += 1
    body = json.dumps(dict(STATE, hooks_registered=len(ferry.out_of_band_hooks()))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
