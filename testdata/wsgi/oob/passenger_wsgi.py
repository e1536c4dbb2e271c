"""Test fixture: out-of-band work and SIGQUIT backtraces under the WSGI loader.

Standard library only. Two out-of-band hooks are registered through the
loader's ``ferry`` module; the endpoints (by PATH_INFO):

  /count           JSON: requests the app has seen (this one included), runs
                   of each hook, the thread the last hook ran in, the pid
  /ask             a response asking the core for out-of-band work
                   (X-Ferry-Request-OOB-Work: true)
  /ask-passenger   the same with Passenger's header (!~Request-OOB-Work)
  /fail-next       the next out-of-band work: the first hook raises
  /sleep?release=PATH  writes "oob fixture: asleep" on stderr, then waits in
                   stuck_in_sleep() until the file PATH exists
  anything else    404
"""

import json
import os
import sys
import threading
import time

import ferry

STATE = {"requests": 0, "hooks": 0, "hooks2": 0, "hook_thread": "", "fail": False}


@ferry.on_out_of_band_work
def count_oob():
    STATE["hooks"] += 1
    STATE["hook_thread"] = threading.current_thread().name
    if STATE["fail"]:
        STATE["fail"] = False
        raise RuntimeError("hook failed on purpose")


def second_hook():
    STATE["hooks2"] += 1


ferry.on_out_of_band_work(second_hook)
assert ferry.out_of_band_hooks() == [count_oob, second_hook]


def stuck_in_sleep(release):
    # Said from in here: a SIGQUIT after it finds this frame on the stack.
    sys.stderr.write("oob fixture: asleep\n")
    sys.stderr.flush()
    while not os.path.exists(release):
        time.sleep(0.01)


def _reply(start_response, body, status="200 OK", extra=()):
    body = body.encode("utf-8")
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))] + list(extra))
    return [body]


def application(environ, start_response):
    STATE["requests"] += 1
    path = environ["PATH_INFO"]
    if path == "/count":
        out = {k: v for k, v in STATE.items() if k != "fail"}
        out["pid"] = os.getpid()
        return _reply(start_response, json.dumps(out))
    if path == "/ask":
        return _reply(start_response, "asked", extra=[("X-Ferry-Request-OOB-Work", "true")])
    if path == "/ask-passenger":
        return _reply(start_response, "asked", extra=[("!~Request-OOB-Work", "true")])
    if path == "/fail-next":
        STATE["fail"] = True
        return _reply(start_response, "the next hook fails")
    if path == "/sleep":
        release = environ["QUERY_STRING"].partition("release=")[2]
        stuck_in_sleep(release)
        return _reply(start_response, "awake")
    return _reply(start_response, "not found", "404 Not Found")
