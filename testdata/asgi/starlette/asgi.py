"""Test fixture: a small Starlette app (Debian python3-starlette)."""

import contextlib
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


@contextlib.asynccontextmanager
async def lifespan(app):
    print("starlette startup", flush=True)
    yield {"greeting": "hello from starlette"}  # lifespan state: scope["state"]
    print("starlette shutdown", flush=True)


async def homepage(request: Request):
    return PlainTextResponse(request.state.greeting)


async def items(request: Request):
    data = await request.json()
    return JSONResponse({"received": data, "count": len(data.get("items", []))}, status_code=201)


async def stream(request: Request):
    n = int(request.query_params.get("n", "3"))

    async def gen():
        for i in range(n):
            yield "part %d\n" % i

    return StreamingResponse(gen(), media_type="text/plain")


async def pid(request: Request):
    return PlainTextResponse(str(os.getpid()))


async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await websocket.send_text("echo: " + msg["text"])
            else:
                await websocket.send_bytes(msg["bytes"])
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[
        Route("/", homepage),
        Route("/items", items, methods=["POST"]),
        Route("/stream", stream),
        Route("/pid", pid),
        WebSocketRoute("/ws", ws),
    ],
    lifespan=lifespan,
)
