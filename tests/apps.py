"""The two host apps the behaviour tests drive: one Starlette (ASGI), one
Flask (WSGI), with the same routes."""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify
from flask import Response as FlaskResponse
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sessionguard import SessionGuard, SessionLimitReached


def _whoami(ctx: Any) -> dict[str, Any]:
    session = ctx.session
    return {
        "session": None if session is None else session.to_json(),
        "ended_reason": ctx.ended_reason,
    }


def _anomaly(ctx: Any) -> dict[str, Any]:
    anomaly = ctx.anomaly
    return {"user": None if ctx.session is None else ctx.session.user_id,
            "ended_reason": ctx.ended_reason, "anomaly": None if anomaly is None else anomaly.to_json()}


def _login_args(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    kwargs = {k: body[k] for k in ("remember_me", "metadata", "platform") if k in body}
    return body["user"], kwargs


def starlette_app(guard: SessionGuard) -> Any:
    async def whoami(request: Request) -> Response:
        return JSONResponse(_whoami(request.scope["sessionguard"]))

    async def anomaly(request: Request) -> Response:
        return JSONResponse(_anomaly(request.scope["sessionguard"]))

    async def login(request: Request) -> Response:
        user, kwargs = _login_args(await request.json())
        try:
            session = await request.scope["sessionguard"].login(user, **kwargs)
        except SessionLimitReached as error:
            return JSONResponse({"error": "limit", "limit": error.limit}, status_code=409)
        return JSONResponse({"token": session.token, "session": session.to_json()})

    async def logout(request: Request) -> Response:
        await request.scope["sessionguard"].logout()
        return JSONResponse({"ok": True})

    async def end_others(request: Request) -> Response:
        return JSONResponse({"ended": await request.scope["sessionguard"].end_others()})

    async def rotate(request: Request) -> Response:
        session = await request.scope["sessionguard"].rotate()
        return JSONResponse(None if session is None else {"token": session.token,
                                                          "session": session.to_json()})

    async def recheck(request: Request) -> Response:
        ctx = request.scope["sessionguard"]
        if request.query_params.get("end") == "1" and ctx.session is not None:
            await guard.aend_session(ctx.session.id)  # as if revoked while the request runs
        await ctx.recheck(passive=request.query_params.get("passive") == "1")
        return JSONResponse(_whoami(ctx))

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        ctx = websocket.scope["sessionguard"]
        await websocket.send_json(_whoami(ctx))
        try:
            while (await websocket.receive_text()) == "recheck":  # anything else closes
                await ctx.recheck()
                await websocket.send_json(_whoami(ctx))
        except WebSocketDisconnect:
            return
        await websocket.close()

    app = Starlette(routes=[
        Route("/whoami", whoami), Route("/poll/status", whoami), Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]), Route("/stream", stream), WebSocketRoute("/ws", ws),
        Route("/end-others", end_others, methods=["POST"]), Route("/recheck", recheck),
        Route("/rotate", rotate, methods=["POST"]), Route("/anomaly", anomaly),
    ])
    return guard.asgi(app)


def flask_app(guard: SessionGuard) -> Any:
    app = Flask(__name__)

    @app.get("/whoami")
    @app.get("/poll/status")
    def whoami() -> Any:
        return jsonify(_whoami(flask_request.environ["sessionguard"]))

    @app.get("/anomaly")
    def anomaly() -> Any:
        return jsonify(_anomaly(flask_request.environ["sessionguard"]))

    @app.post("/login")
    def login() -> Any:
        user, kwargs = _login_args(flask_request.get_json())
        try:
            session = flask_request.environ["sessionguard"].login(user, **kwargs)
        except SessionLimitReached as error:
            return jsonify({"error": "limit", "limit": error.limit}), 409
        return jsonify({"token": session.token, "session": session.to_json()})

    @app.post("/logout")
    def logout() -> Any:
        flask_request.environ["sessionguard"].logout()
        return jsonify({"ok": True})

    @app.post("/end-others")
    def end_others() -> Any:
        return jsonify({"ended": flask_request.environ["sessionguard"].end_others()})

    @app.post("/rotate")
    def rotate() -> Any:
        session = flask_request.environ["sessionguard"].rotate()
        return jsonify(None if session is None else {"token": session.token, "session": session.to_json()})

    @app.get("/recheck")
    def recheck() -> Any:
        ctx = flask_request.environ["sessionguard"]
        if flask_request.args.get("end") == "1" and ctx.session is not None:
            guard.end_session(ctx.session.id)  # as if revoked while the request runs
        ctx.recheck(passive=flask_request.args.get("passive") == "1")
        return jsonify(_whoami(ctx))

    @app.get("/stream")
    def stream() -> Any:
        return FlaskResponse((f"chunk{i};" for i in range(3)), mimetype="text/plain")

    app.wsgi_app = guard.wsgi(app.wsgi_app)  # type: ignore[method-assign]
    return app
