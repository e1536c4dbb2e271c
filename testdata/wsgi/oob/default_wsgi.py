"""Test fixture: no out-of-band hook, so the loader's default (gc.collect())
runs; /count tells how many full (generation 2) collections there were and
whether ``import ferry`` gave the loader's module."""

import gc
import json

import ferry

STATE = {"requests": 0, "full_collections": 0}


def _on_gc(phase, info):
    if phase == "stop" and info.get("generation") == 2:
        STATE["full_collections"] += 1


gc.callbacks.append(_on_gc)


def application(environ, start_response):
    STATE["requests"] += 1
    out = dict(STATE, hooks_registered=len(ferry.out_of_band_hooks()))
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
