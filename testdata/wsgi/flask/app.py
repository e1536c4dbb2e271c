"""Test fixture: a small Flask app (Debian python3-flask) for the WSGI loader."""

import os
import time

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def hello():
    return "hello from flask"


@app.post("/form")
def form():
    return "hello %s" % request.form.get("name", "nobody")


@app.post("/upload")
def upload():
    f = request.files.get("file")
    if f is None:
        return "no file", 400
    data = f.read()
    return {"filename": f.filename, "size": len(data)}


@app.get("/stream")
def stream():
    n = request.args.get("n", 3, type=int)
    delay = request.args.get("delay", 0.0, type=float)

    def gen():
        for i in range(n):
            if i:
                time.sleep(delay)
            # request is usable inside the generator thanks to stream_with_context
            yield "chunk %d of %s\n" % (i, request.path)

    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.get("/sleep")
def sleep():
    time.sleep(request.args.get("s", 0.0, type=float))
    return str(os.getpid())


@app.get("/error")
def error():
    raise RuntimeError("boom from flask")


@app.get("/pid")
def pid():
    return str(os.getpid())
