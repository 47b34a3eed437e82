"""``glcic-fast app`` over plain HTTP (no browser): uploads are checked, completions are the API's.

The server runs for real (uvicorn on a loopback port, in a thread of this process) with the
packaged model on the default backend here; every result is compared, byte for byte, with
``glcic_fast.load(...).complete(...)`` on the same photo and mask (in authors' mode, with
``glcic_fast.load(..., authors_mode=True)``, whose result has the script's size).
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app needs FastAPI: pip install 'glcic-fast[app]'")
pytest.importorskip("uvicorn", reason="the app needs uvicorn: pip install 'glcic-fast[app]'")

from PIL import Image  # noqa: E402

import glcic_fast  # noqa: E402
from glcic_fast.app.engine import Engine  # noqa: E402
from glcic_fast.app.server import create_app, serving_in_background  # noqa: E402

DEMO = Path(glcic_fast.__file__).parent / "data" / "demo.jpg"


def request(url: str, data: bytes = None, headers: dict = None, method: str = None):
    """(status, headers, body) of one HTTP request; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def png(pixels: np.ndarray, text: str = "") -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for i in range(3 if text else 0):
        info.add_text(f"note{i}", text)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def demo_photo() -> np.ndarray:
    return np.asarray(Image.open(DEMO).convert("RGB"))


def wide_photo() -> np.ndarray:
    """640x160: over the authors' script's 600 px, so authors' mode returns 600x152. Small enough to be quick."""
    return np.asarray(Image.open(DEMO).convert("RGB").resize((640, 160), Image.BICUBIC))


def hole(shape, y0, y1, x0, x1) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.fixture(scope="module")
def reference(engine):
    """The API's own Completer on the backend the app uses."""
    return glcic_fast.load(backend=engine.default_backend)


@pytest.fixture(scope="module")
def authors(engine):
    """The API's authors-mode Completer on the backend the app uses."""
    return glcic_fast.load(backend=engine.default_backend, authors_mode=True)


@pytest.fixture(scope="module")
def url(engine):
    with serving_in_background(create_app(engine)) as base:
        yield base


def upload(url: str, data: bytes, name: str = "demo.jpg"):
    return request(f"{url}/api/photos", data, {"X-Filename": name, "Content-Type": "application/octet-stream"})


def upload_demo(url: str) -> str:
    status, _, body = upload(url, DEMO.read_bytes())
    assert status == 200, body
    return json.loads(body)["id"]


def complete(url: str, photo_id: str, mask: np.ndarray, seq: int = 0, box: bool = False, **options):
    """POST a completion; with ``box`` only the mask's bounding box is sent, with its place (as the page does)."""
    x = y = 0
    if box:
        ys, xs = np.nonzero(mask)
        y, x = ys.min(), xs.min()
        mask = mask[y : ys.max() + 1, x : xs.max() + 1]
    query = "&".join([f"seq={seq}", f"mask_x={x}", f"mask_y={y}"] + [f"{k}={str(v).lower()}" for k, v in options.items()])
    return request(f"{url}/api/photos/{photo_id}/complete?{query}", png(mask), {"Content-Type": "image/png"})


def whole_result(url: str, photo_id: str, seq: int = 0, stem: str = "demo") -> np.ndarray:
    status, headers, body = request(f"{url}/api/photos/{photo_id}/result.png?seq={seq}")
    assert status == 200, body
    assert headers["Content-Disposition"] == f'attachment; filename="{stem}-completed.png"'
    return np.asarray(Image.open(io.BytesIO(body)))


def test_info_lists_the_backends_and_why_some_cannot_run(url, engine):
    status, _, body = request(f"{url}/api/info")
    info = json.loads(body)
    assert status == 200 and info["backend"] == engine.default_backend and info["device"] == "cpu"
    rows = {b["name"]: b for b in info["backends"]}
    assert rows[engine.default_backend]["available"]
    assert not rows["tensorrt"]["available"] and "build-engine" in rows["tensorrt"]["reason"]


def test_page_and_its_files_are_served(url):
    status, headers, body = request(f"{url}/")
    assert status == 200 and b'id="overlay"' in body and headers["Content-Type"].startswith("text/html")
    for name in ("app.js", "app.css"):
        assert request(f"{url}/static/{name}")[0] == 200


@pytest.mark.parametrize(
    "options",
    [{}, {"postprocess": True}, {"authors_mode": True}, {"authors_mode": True, "postprocess": True}, {"box": True}],
    ids=["default", "postprocess", "authors", "authors-postproc", "box"],
)
def test_completion_equals_the_api_byte_for_byte(url, reference, authors, options):
    photo = demo_photo()
    mask = hole(photo.shape, 20, 44, 30, 52)
    photo_id = upload_demo(url)
    status, headers, body = complete(url, photo_id, mask, **options)
    options.pop("box", None)
    assert status == 200, body
    if options.pop("authors_mode", False):  # postprocess there is the script's --postproc
        expected = authors.complete(photo, mask, **options)
    else:
        expected = reference.complete(photo, mask, **options)
    # 96x72 is under 600 px and a multiple of 4: authors' mode keeps the size too. The response
    # carries only the region that changed; the download holds the whole photo.
    assert expected.shape == photo.shape and headers["X-Glcic-Size"] == "96,72"
    x, y, w, h = map(int, headers["X-Glcic-Region"].split(","))
    assert (x, y, w, h) != (0, 0, 0, 0)
    changed = np.argwhere((expected != photo).any(axis=2))
    assert (y, x) == tuple(changed.min(axis=0)) and (y + h - 1, x + w - 1) == tuple(changed.max(axis=0))
    region = np.asarray(Image.open(io.BytesIO(body)))
    assert region.tobytes() == expected[y : y + h, x : x + w].tobytes()
    assert whole_result(url, photo_id).tobytes() == expected.tobytes()
    assert headers["X-Glcic-Backend"] == reference.backend.name and headers["X-Glcic-Device"] == "cpu"
    assert headers["X-Glcic-Precision"] == "fp32"
    assert 0 < float(headers["X-Glcic-Network-Ms"]) <= float(headers["X-Glcic-Server-Ms"])


def test_authors_mode_on_a_larger_photo_returns_the_scripts_size_whole(url, authors):
    """640x160 comes back as the script writes it, 600x152: the whole result in the response,
    its size in a header. Keep makes it the photo, at that size, and the next hole is cut from it."""
    photo = wide_photo()
    status, _, body = upload(url, png(photo), name="wide.png")
    photo_id = json.loads(body)["id"]
    first = hole(photo.shape, 40, 90, 300, 380)
    status, headers, body = complete(url, photo_id, first, seq=1, box=True, authors_mode=True)
    assert status == 200, body
    expected = authors.complete(photo, first)
    assert expected.shape == (152, 600, 3)
    assert headers["X-Glcic-Size"] == "600,152" and headers["X-Glcic-Region"] == "0,0,600,152"
    assert np.asarray(Image.open(io.BytesIO(body))).tobytes() == expected.tobytes()
    assert whole_result(url, photo_id, seq=1, stem="wide").tobytes() == expected.tobytes()

    status, _, body = request(f"{url}/api/photos/{photo_id}/keep?seq=1", b"", method="POST")
    assert status == 200 and json.loads(body) == {"id": photo_id, "width": 600, "height": 152}
    status, _, body = request(f"{url}/api/photos/{photo_id}/photo.png")
    assert np.asarray(Image.open(io.BytesIO(body))).tobytes() == expected.tobytes()
    # A mask of the old photo's size no longer fits; one of the kept photo's size does.
    status, _, body = complete(url, photo_id, hole(photo.shape, 10, 30, 610, 630), seq=2, box=True, authors_mode=True)
    assert status == 422 and "a 20x20 box at (610, 10) does not fit in the 600x152 photo" in error_of(body)
    second = hole(expected.shape, 60, 100, 100, 160)
    status, headers, _ = complete(url, photo_id, second, seq=3, box=True, authors_mode=True)
    assert status == 200 and headers["X-Glcic-Size"] == "600,152"
    assert whole_result(url, photo_id, seq=3, stem="wide").tobytes() == authors.complete(expected, second).tobytes()


def test_a_request_overtaken_by_a_newer_stroke_is_dropped(url, reference):
    photo = demo_photo()
    photo_id = upload_demo(url)
    newer = hole(photo.shape, 10, 30, 10, 40)
    assert complete(url, photo_id, newer, seq=5)[0] == 200
    status, _, body = complete(url, photo_id, hole(photo.shape, 40, 60, 50, 80), seq=4)
    assert status == 409 and json.loads(body)["superseded"]
    # The dropped request changed nothing: the download is still seq 5's result ...
    assert whole_result(url, photo_id, seq=5).tobytes() == reference.complete(photo, newer).tobytes()
    # ... and asking for seq 4's says it is gone.
    status, _, body = request(f"{url}/api/photos/{photo_id}/result.png?seq=4")
    assert status == 409 and "replaced" in error_of(body)


def counts(url: str) -> dict:
    return json.loads(request(f"{url}/api/info")[2])["requests"]


def post_and_hang_up(url: str, path: str, body: bytes) -> None:
    """Send a whole POST, then close the connection without reading the answer (an aborted fetch)."""
    host, port = urlparse(url).hostname, urlparse(url).port
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection((host, port)) as s:
        s.sendall(head.encode() + body)


def test_a_request_whose_client_has_gone_is_dropped(url):
    """While one completion holds the network, a request that is sent and abandoned is dropped
    when its turn comes instead of being completed for nobody."""
    big = np.asarray(Image.fromarray(demo_photo()).resize((384, 288)))  # long enough to queue behind
    slow_id = json.loads(upload(url, png(big), name="big.png")[2])["id"]
    gone_id = upload_demo(url)
    before = counts(url)
    slow = threading.Thread(target=complete, args=(url, slow_id, hole(big.shape, 100, 160, 100, 200)))
    slow.start()
    deadline = time.monotonic() + 30
    while not counts(url)["busy"] and time.monotonic() < deadline:  # the slow one has the network now
        time.sleep(0.01)
    post_and_hang_up(url, f"/api/photos/{gone_id}/complete?seq=0", png(hole((72, 96), 20, 40, 30, 50)))
    slow.join()
    deadline = time.monotonic() + 30
    while counts(url)["dropped"] == before["dropped"] and time.monotonic() < deadline:
        time.sleep(0.05)
    after = counts(url)
    assert after == {"completed": before["completed"] + 1, "dropped": before["dropped"] + 1, "busy": False}
    status, _, body = request(f"{url}/api/photos/{gone_id}/result.png?seq=0")
    assert status == 409  # no result was made for it


def test_concurrent_requests_are_served_one_at_a_time_correctly(url, reference):
    photo = demo_photo()
    masks = [hole(photo.shape, 8 + 6 * i, 30 + 6 * i, 10 + 12 * i, 40 + 8 * i) for i in range(4)]
    ids = [upload_demo(url) for _ in masks]
    answers = [None] * len(masks)

    def send(i):
        answers[i] = complete(url, ids[i], masks[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(masks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (status, _, body) in enumerate(answers):
        assert status == 200, body
        assert whole_result(url, ids[i]).tobytes() == reference.complete(photo, masks[i]).tobytes()


def test_keep_cuts_the_next_hole_from_the_result(url, reference):
    photo = demo_photo()
    photo_id = upload_demo(url)
    first, second = hole(photo.shape, 10, 30, 10, 40), hole(photo.shape, 40, 60, 50, 80)
    assert complete(url, photo_id, first, seq=1)[0] == 200
    assert request(f"{url}/api/photos/{photo_id}/keep?seq=1", b"", method="POST")[0] == 200
    assert complete(url, photo_id, second, seq=2)[0] == 200
    expected = reference.complete(reference.complete(photo, first), second)
    assert whole_result(url, photo_id, seq=2).tobytes() == expected.tobytes()


def test_a_text_file_named_jpg_is_refused_with_a_clear_message(url):
    status, _, body = upload(url, b"this is not a photo\n", name="holiday.jpg")
    assert status == 415
    assert error_of(body).startswith("holiday.jpg: not an image this app can read")


def test_photos_are_decoded_upright_and_16_bit_grey_kept(url):
    """EXIF orientation is applied (as browsers show photos); 16-bit grey keeps its high bytes
    instead of clipping to white. photo.png hands back what the server decoded."""
    photo = demo_photo()
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    Image.fromarray(photo).save(out, format="JPEG", quality=95, exif=exif)
    status, _, body = upload(url, out.getvalue(), name="sideways.jpg")
    meta = json.loads(body)
    assert status == 200 and (meta["width"], meta["height"]) == (72, 96)
    grey = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, format="PNG")
    status, _, body = upload(url, out.getvalue(), name="grey16.png")
    assert status == 200, body
    status, _, body = request(f"{url}/api/photos/{json.loads(body)['id']}/photo.png")
    decoded = np.asarray(Image.open(io.BytesIO(body)))
    assert status == 200 and decoded.shape == (64, 64, 3)
    assert (decoded == (grey >> 8).astype(np.uint8)[..., None]).all()


@pytest.mark.parametrize(
    "data, status, message",
    [
        (b"", 400, "the file is empty"),
        (DEMO.read_bytes()[:600], 422, "damaged or cut short"),
        (png(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))[:-100], 422, "damaged or cut short"),
    ],
    ids=["empty", "truncated-jpeg", "truncated-png"],
)
def test_broken_uploads_are_refused_with_a_clear_message(url, data, status, message):
    got, _, body = upload(url, data, name="x.png")
    assert got == status and message in error_of(body)


def test_limits_on_bytes_and_pixels(engine):
    with serving_in_background(create_app(engine, max_upload_bytes=2000, max_pixels=64 * 64)) as url:
        status, _, body = upload(url, DEMO.read_bytes())
        assert status == 413 and "larger than the limit of" in error_of(body)
        big = png(np.zeros((100, 100, 3), np.uint8))  # small file, too many pixels
        assert len(big) < 2000 < len(DEMO.read_bytes())
        status, _, body = upload(url, big, name="wide.png")
        assert status == 413 and error_of(body) == "wide.png: 100x100 has 10,000 pixels; the limit is 4,096"
        assert upload(url, png(np.zeros((64, 64, 3), np.uint8)))[0] == 200


@pytest.mark.parametrize(
    "mask, status, message",
    [
        (hole((80, 50), 10, 20, 10, 20), 422, "a 50x80 box at (0, 0) does not fit in the 96x72 photo"),
        (np.zeros((72, 96), np.uint8), 422, "there is no hole"),
        (np.full((72, 96), 128, np.uint8), 422, "binary"),
    ],
    ids=["wrong-size", "no-hole", "grey"],
)
def test_bad_masks_are_refused_with_a_clear_message(url, mask, status, message):
    got, _, body = complete(url, upload_demo(url), mask)
    assert got == status and message in error_of(body), error_of(body)


def test_unknown_photo_and_unavailable_backends_say_what_to_do(url):
    photo_id = upload_demo(url)
    mask = hole((72, 96), 10, 20, 10, 20)
    status, _, body = complete(url, "no-such-photo", mask)
    assert status == 404 and "open it again" in error_of(body)
    status, _, body = request(f"{url}/api/photos/{photo_id}/complete?backend=nonsense", png(mask))
    assert status == 400 and "unknown backend 'nonsense'" in error_of(body)
    status, _, body = request(f"{url}/api/photos/{photo_id}/complete?backend=tensorrt", png(mask))
    assert status == 400 and "build-engine" in error_of(body)


_WRITES: list = []  # files opened for writing while a test listens (the audit hook below)
_LISTENING = threading.Event()


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _LISTENING.is_set():
        path, mode, flags = args
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
        if (mode and any(c in mode for c in "wax+")) or (mode is None and flags & writes):
            _WRITES.append(path)


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only while _LISTENING


def test_uploads_stay_in_memory(url):
    """A photo larger than Starlette's 1 MB threshold for spooling form files to disk is
    uploaded, decoded and completed without the process opening any file for writing."""
    photo = demo_photo()
    data = png(photo, text="x" * 400_000)  # 3 text chunks: a small photo in a 1.2 MB file
    assert len(data) > 1_100_000
    upload(url, data, name="warm-up.png")  # first use imports modules; only reads, but keep it out
    _LISTENING.set()
    try:
        status, _, body = upload(url, data, name="noise.png")
        photo_id = json.loads(body)["id"]
        done = complete(url, photo_id, hole(photo.shape, 20, 40, 30, 50))[0]
    finally:
        _LISTENING.clear()
    assert status == 200 and done == 200
    assert _WRITES == []


def _start_command(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "glcic_fast.cli", "app", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_the_command_serves_on_loopback_by_default():
    proc = _start_command("--port", "0", "--backend", "torch")
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "open http" in line:
                break
        address = re.search(r"open (http://\S+)", "".join(lines))
        assert address, "".join(lines)
        base = address.group(1)
        assert base.startswith("http://127.0.0.1:")
        info = json.loads(request(f"{base}/api/info")[2])
        assert info["backend"] == "torch" and info["max_upload_bytes"] == 25 * 2**20
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_command_says_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start_command("--port", str(port))
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert f"glcic-fast app: error: port {port} on 127.0.0.1 is in use; choose another with --port" in out
