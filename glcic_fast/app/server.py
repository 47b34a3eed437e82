"""The ``glcic-fast app`` web server: one page to remove objects from photos.

Routes (errors come back as JSON ``{"error": "..."}``, which the page shows):

    GET  /                                the page (static/index.html, with its app.js and app.css)
    GET  /api/info                        model, device, backends (and why some cannot run), limits,
                                          completion requests completed and dropped so far, and
                                          whether one is running
    POST /api/photos                      body: the photo file -> {"id", "width", "height"}
    GET  /api/photos/{id}/photo.png       the photo as decoded here (for types a browser cannot show)
    POST /api/photos/{id}/complete?seq=N&mask_x=&mask_y=&backend=&postprocess=&authors_mode=
                                          body: PNG of the mask's box at (mask_x, mask_y), the
                                          rest is not hole -> PNG of the region that changed;
                                          X-Glcic-* headers: the result's size, where the region
                                          goes in it, backend, timings. A result whose size is not
                                          the photo's (authors' mode: the script's resolution)
                                          comes back whole, its region the whole result
    GET  /api/photos/{id}/result.png?seq=N  the whole completed photo (the page's download)
    POST /api/photos/{id}/keep?seq=N      the result becomes the photo the next hole is cut from
                                          (at the result's size) -> {"id", "width", "height"}

Uploads are request bodies read into memory, not multipart forms: Starlette spools form files
over 1 MB to a temporary file on disk, and uploads must not leave memory. A completion request
whose photo has a newer request already (a stroke the user has since extended), or whose
client has gone (the page aborts a request when a new stroke starts), is dropped before it
reaches the network, with status 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import unquote

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..errors import InputError
from .engine import Engine
from .photos import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    PhotoStore,
    UploadError,
    changed_region,
    decode_mask,
    decode_photo,
    encode_png,
)

STATIC = Path(__file__).parent / "static"


async def read_body(request: Request, limit: int, what: str) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    too_big = UploadError(413, f"{what} is larger than the limit of {limit / 2**20:.0f} MB")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    engine: Engine,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_photos: int = 8,
) -> FastAPI:
    app = FastAPI(title="glcic-fast app", docs_url=None, redoc_url=None, openapi_url=None)
    photos = PhotoStore(max_photos)
    network_turn = asyncio.Lock()  # one completion at a time, in arrival order
    counts = {"completed": 0, "dropped": 0}  # completion requests since start (GET /api/info)

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, e: UploadError):
        return JSONResponse({"error": str(e)}, status_code=e.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception):  # the page shows it instead of "500"
        return JSONResponse({"error": f"the server failed: {type(e).__name__}: {e}"}, status_code=500)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    async def info():
        model = engine.model if engine.model is not None else "the packaged default model"
        return {
            "model": str(model), "backend": engine.default_backend, "device": engine.device,
            "precision": engine.default_precision, "requests": dict(counts, busy=network_turn.locked()),
            "backends": engine.backends(), "max_upload_bytes": max_upload_bytes, "max_pixels": max_pixels,
        }

    @app.post("/api/photos")
    async def upload(request: Request):
        name = unquote(request.headers.get("x-filename", "photo"))[:200] or "photo"
        data = await read_body(request, max_upload_bytes, name)
        pixels = await run_in_threadpool(decode_photo, data, name, max_pixels)
        photo = photos.add(name, pixels)
        return {"id": photo.id, "name": name, "width": pixels.shape[1], "height": pixels.shape[0]}

    @app.get("/api/photos/{photo_id}/photo.png")
    async def photo_png(photo_id: str):
        photo = photos.get(photo_id)
        return Response(await run_in_threadpool(encode_png, photo.pixels), media_type="image/png")

    @app.post("/api/photos/{photo_id}/complete")
    async def complete(
        photo_id: str, request: Request, seq: int = 0, mask_x: int = 0, mask_y: int = 0,
        backend: Optional[str] = None, postprocess: bool = False, authors_mode: bool = False,
    ):
        started = time.perf_counter()
        photo = photos.get(photo_id)
        photo.latest_seq = max(photo.latest_seq, seq)
        data = await read_body(request, max_upload_bytes, "mask")
        mask = await run_in_threadpool(decode_mask, data, photo.pixels.shape[:2], mask_x, mask_y)
        async with network_turn:
            if seq < photo.latest_seq or await request.is_disconnected():  # overtaken, or abandoned
                counts["dropped"] += 1
                return JSONResponse({"error": "superseded by a newer stroke", "superseded": True}, status_code=409)
            base = photo.pixels
            try:
                done = await run_in_threadpool(engine.complete, base, mask, backend, postprocess, authors_mode)
            except InputError as e:
                raise UploadError(422, str(e)) from None
            except (ValueError, RuntimeError, ImportError) as e:  # unknown or unavailable backend
                raise UploadError(400, f"backend {backend}: {e}") from None
        counts["completed"] += 1
        photo.result, photo.result_seq = done.pixels, seq
        height, width = done.pixels.shape[:2]
        if done.pixels.shape == base.shape:  # only what changed travels
            x, y, w, h = changed_region(base, done.pixels)
        else:  # a different size (authors' mode): nothing to diff against, the whole result travels
            x, y, w, h = 0, 0, width, height
        png = await run_in_threadpool(encode_png, done.pixels[y : y + h, x : x + w]) if w else b""
        headers = {
            "X-Glcic-Size": f"{width},{height}", "X-Glcic-Region": f"{x},{y},{w},{h}",
            "X-Glcic-Seq": str(seq), "X-Glcic-Backend": done.backend,
            "X-Glcic-Device": done.device, "X-Glcic-Precision": done.precision,
            "X-Glcic-Network-Ms": f"{done.network_ms:.1f}",
            "X-Glcic-Server-Ms": f"{(time.perf_counter() - started) * 1000:.1f}",
        }
        return Response(png, media_type="image/png", headers=headers)

    def latest_result(photo_id: str, seq: int):
        photo = photos.get(photo_id)
        if photo.result is None or photo.result_seq != seq:
            raise UploadError(409, "that result has been replaced by a newer one; complete again")
        return photo

    @app.get("/api/photos/{photo_id}/result.png")
    async def result_png(photo_id: str, seq: int):
        photo = latest_result(photo_id, seq)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(photo.name).stem).strip("._") or "photo"
        return Response(
            await run_in_threadpool(encode_png, photo.result), media_type="image/png",
            headers={"Content-Disposition": f'attachment; filename="{stem}-completed.png"'},
        )

    @app.post("/api/photos/{photo_id}/keep")
    async def keep(photo_id: str, seq: int):
        photo = latest_result(photo_id, seq)
        photo.pixels = photo.result  # the result stays downloadable until the next completion
        return {"id": photo.id, "width": photo.pixels.shape[1], "height": photo.pixels.shape[0]}

    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port), bound before the server starts
    so the caller can print the real address and report a port in use plainly."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections wait in the backlog from now on, even before uvicorn runs
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve ``app`` on the bound socket until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])


@contextlib.contextmanager
def serving_in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a thread of this process (tests, notebooks); yields its base URL."""
    import uvicorn

    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app server did not start")
            time.sleep(0.01)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
