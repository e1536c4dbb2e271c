"""Test fixture: out-of-band work and SIGQUIT backtraces under the ASGI runner.

Standard library only. Two out-of-band hooks are registered through the
runner's ``ferry`` module, a plain one and an ``async def``; the endpoints:

  /count           JSON: requests the app has seen (this one included), runs
                   of each hook, the pid
  /ask             a response asking the core for out-of-band work
                   (X-Ferry-Request-OOB-Work: true)
  /ask-passenger   the same with Passenger's header (!~Request-OOB-Work)
  /fail-next       the next out-of-band work: the async hook raises
  /sleep           writes "oob fixture: asleep" on stderr, then awaits
                   stuck_in_sleep() until /release (the event loop is free)
  /release         ends every /sleep
  /block?release=PATH  writes "oob fixture: blocking" on stderr, then blocks
                   the event loop in blocked_in_loop() until the file PATH
                   exists
  anything else    404
"""

import asyncio
import json
import os
import sys
import time

import ferry

STATE = {"requests": 0, "hooks": 0, "async_hooks": 0, "fail": False}
RELEASE = []  # the asyncio.Event of the sleepers


@ferry.on_out_of_band_work
def count_oob():
    STATE["hooks"] += 1


@ferry.on_out_of_band_work
async def count_oob_async():
    await asyncio.sleep(0)
    STATE["async_hooks"] += 1
    if STATE["fail"]:
        STATE["fail"] = False
        raise RuntimeError("async hook failed on purpose")


assert ferry.out_of_band_hooks() == [count_oob, count_oob_async]


async def stuck_in_sleep():
    if not RELEASE:
        RELEASE.append(asyncio.Event())
    await RELEASE[0].wait()


def blocked_in_loop(release):
    while not os.path.exists(release):
        time.sleep(0.01)


async def _reply(send, body, status=200, extra=()):
    body = body.encode("utf-8")
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan support needed
    STATE["requests"] += 1
    path = scope["path"]
    if path == "/count":
        out = {k: v for k, v in STATE.items() if k != "fail"}
        out["pid"] = os.getpid()
        await _reply(send, json.dumps(out))
    elif path == "/ask":
        await _reply(send, "asked", extra=[(b"x-ferry-request-oob-work", b"true")])
    elif path == "/ask-passenger":
        await _reply(send, "asked", extra=[(b"!~request-oob-work", b"true")])
    elif path == "/fail-next":
        STATE["fail"] = True
        await _reply(send, "the next async hook fails")
    elif path == "/sleep":
        sys.stderr.write("oob fixture: asleep\n")
        sys.stderr.flush()
        await stuck_in_sleep()
        await _reply(send, "awake")
    elif path == "/release":
        if RELEASE:
            RELEASE.pop().set()
        await _reply(send, "released")
    elif path == "/block":
        release = scope["query_string"].decode().partition("release=")[2]
        sys.stderr.write("oob fixture: blocking\n")
        sys.stderr.flush()
        blocked_in_loop(release)
        await _reply(send, "unblocked")
    else:
        await _reply(send, "not found", 404)
