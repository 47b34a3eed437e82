"""``glcic-fast app`` in a real headless Chromium, driven by Playwright with the installed browser.

The test opens the page, uploads the bundled photo, brushes strokes with mouse events and
checks every result the page shows and downloads against ``glcic_fast.load(...).complete(...)``
on the same photo and the mask the page sent, byte for byte; a text file named .jpg must
show an error and leave the app working. Authors' mode on a photo over 600 px wide must show
and download ``load(..., authors_mode=True)``'s result at the script's smaller size, and Keep
must carry on from it, even after the server has forgotten the photo. It also takes the README's screenshot:

    GLCIC_APP_SCREENSHOT=docs/app.png python -m pytest tests/test_app_browser.py

Needs Chromium (Debian: ``apt-get install chromium``; elsewhere set GLCIC_CHROMIUM to the
browser's path) and ``pip install playwright`` (the Python package only: nothing is downloaded,
``playwright install`` is not needed). Without either, the test skips and says which.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the app needs FastAPI: pip install 'glcic-fast[app]'")
pytest.importorskip("uvicorn", reason="the app needs uvicorn: pip install 'glcic-fast[app]'")


def find_chromium():
    for candidate in (os.environ.get("GLCIC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    return None


def _no_browser(reason: str):
    """Skip, saying why; CI sets GLCIC_REQUIRE_BROWSER=1 so that a missing browser fails instead."""
    if os.environ.get("GLCIC_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (and GLCIC_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright import sync_api
except ImportError:
    _no_browser("Playwright is not installed: pip install playwright (it drives the installed Chromium)")
CHROMIUM = find_chromium()
if CHROMIUM is None:
    _no_browser("no Chromium found: apt-get install chromium (Debian), or set GLCIC_CHROMIUM to the browser's path")

from PIL import Image  # noqa: E402

import glcic_fast  # noqa: E402
from glcic_fast.app.engine import Engine  # noqa: E402
from glcic_fast.app.server import create_app, serving_in_background  # noqa: E402

DEMO = Path(glcic_fast.__file__).parent / "data" / "demo.jpg"
# Flags for a closed network: without the background-networking ones Chromium keeps trying
# to reach Google's services at start.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.fixture(scope="module")
def url(engine):
    with serving_in_background(create_app(engine)) as base:
        yield base


@pytest.fixture
def page(url):
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1200, "height": 760}, accept_downloads=True,
        )
        page = context.new_page()
        errors: list = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]")
        yield page
        context.close()
        assert errors == [], f"the page raised: {errors}"


class CompletionRequests:
    """Every completion request the page sends: its sequence number and the mask it carries
    (a PNG of the brushed box, placed at mask_x, mask_y in a photo-sized mask)."""

    def __init__(self, page, shape):
        self.shape = shape
        self.seen = []
        page.on("request", lambda r: self.seen.append(r) if "/complete?" in r.url else None)

    def last(self):
        request = self.seen[-1]
        query = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        box = np.asarray(Image.open(io.BytesIO(request.post_data_buffer)).convert("L"))
        x, y = int(query["mask_x"]), int(query["mask_y"])
        mask = np.zeros(self.shape, np.uint8)
        mask[y : y + box.shape[0], x : x + box.shape[1]] = box
        assert mask.sum() == box.sum()  # the box lies inside the photo
        return query["seq"], mask


def brush(page, points, photo_size):
    """Press the mouse at the first point, drag through the rest, release (photo pixels)."""
    box = page.locator("#overlay").bounding_box()
    sx, sy = box["width"] / photo_size[0], box["height"] / photo_size[1]
    xy = [(box["x"] + x * sx, box["y"] + y * sy) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for p in xy[1:]:
        page.mouse.move(*p, steps=6)
    page.mouse.up()


def centre(mask):
    """(x, y) of the hole's centre of mass, in photo pixels: where the page put the brushed hole."""
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def wait_for_result(page, requests):
    page.wait_for_function("document.body.dataset.state !== 'busy'")
    seq, mask = requests.last()
    page.wait_for_function(f"document.body.dataset.seq === '{seq}' && document.body.dataset.state === 'done'")
    return mask


def shown(page):
    """The pixels of the page's view canvas (the canvas the user sees, at the size of what it shows), RGB.

    They travel as base64 text: a JSON array of numbers takes seconds for a 600x152 canvas."""
    height, width, text = page.evaluate(
        "() => { const c = document.getElementById('view');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let s = '';"
        " for (let i = 0; i < d.length; i += 32768) s += String.fromCharCode.apply(null, d.subarray(i, i + 32768));"
        " return [c.height, c.width, btoa(s)]; }"
    )
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(height, width, 4)[..., :3]


def downloaded(page):
    with page.expect_download() as info:
        page.click("#download")
    return np.asarray(Image.open(info.value.path()).convert("RGB"))


def check_result(page, requests, reference, photo, **options):
    """The page's latest result: download and on-screen pixels equal the API's on the mask it sent."""
    mask = wait_for_result(page, requests)
    assert set(np.unique(mask)) == {0, 255}
    expected = reference.complete(photo, mask, **options)
    assert downloaded(page).tobytes() == expected.tobytes()
    # On screen, every pixel that changed is the server's (the rest is the browser's own decoding).
    changed = (expected != photo).any(axis=2)
    assert changed.any()
    assert shown(page)[changed].tobytes() == expected[changed].tobytes()
    return mask, expected


def test_remove_an_object_in_the_browser(page, engine, tmp_path):
    reference = glcic_fast.load(backend=engine.default_backend)
    photo = np.asarray(Image.open(DEMO).convert("RGB"))
    size = (photo.shape[1], photo.shape[0])
    requests = CompletionRequests(page, photo.shape[:2])

    page.set_input_files("#file", str(DEMO))
    page.wait_for_selector("body[data-state=ready]")
    assert page.inner_text("#stat-size") == "96 × 72"
    brush(page, [(44, 20), (52, 18), (60, 22)], size)
    first_mask, first = check_result(page, requests, reference, photo)
    for stat in ("network", "server", "request"):
        assert page.inner_text(f"#stat-{stat}").endswith(" ms")
    assert page.inner_text("#stat-backend") == engine.default_backend
    # The paper's post-processing: the same hole again, blended.
    page.check("#postprocess")
    blended_mask, first = check_result(page, requests, reference, photo, postprocess=True)
    assert blended_mask.tobytes() == first_mask.tobytes()
    page.mouse.move(0, 0)  # no hover or focus highlight in the picture
    page.evaluate("document.activeElement.blur()")
    shot = Path(os.environ.get("GLCIC_APP_SCREENSHOT") or tmp_path / "app.png")
    page.screenshot(path=str(shot))
    assert Image.open(shot).size == (1200, 760)

    # Before / after: the view shows the photo, then the result again.
    changed = (first != photo).any(axis=2)
    page.click("#compare")
    assert shown(page)[changed].tobytes() != first[changed].tobytes()
    page.click("#compare")
    assert shown(page)[changed].tobytes() == first[changed].tobytes()

    # A text file named .jpg: the server's message on the page; the photo and result stay.
    bad = tmp_path / "holiday.jpg"
    bad.write_text("this is not a photo\n")
    page.set_input_files("#file", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error").startswith("holiday.jpg: not an image this app can read")
    assert page.inner_text("#photo-name") == "demo.jpg"
    assert page.evaluate("document.body.dataset.state") == "done"

    # ... and the app still works: two quick strokes (the first one's request is superseded).
    brush(page, [(20, 50), (30, 52)], size)
    brush(page, [(70, 48), (80, 50)], size)
    mask, _ = check_result(page, requests, reference, photo, postprocess=True)
    assert (mask >= first_mask).all() and mask.sum() > first_mask.sum()
    assert page.is_hidden("#error")

    # Undo twice: back to the first stroke's hole and result.
    page.click("#undo")
    page.click("#undo")
    mask, result = check_result(page, requests, reference, photo, postprocess=True)
    assert mask.tobytes() == first_mask.tobytes() and result.tobytes() == first.tobytes()


def test_authors_mode_shows_the_scripts_smaller_result(page, engine, tmp_path):
    """640x160 in authors' mode: the page shows and downloads the script's 600x152 result, the
    before/after toggle switches sizes, and Keep makes the result the photo for the next hole."""
    authors = glcic_fast.load(backend=engine.default_backend, authors_mode=True)
    photo = np.asarray(Image.open(DEMO).convert("RGB").resize((640, 160), Image.BICUBIC))
    path = tmp_path / "wide.png"
    Image.fromarray(photo).save(path)
    requests = CompletionRequests(page, photo.shape[:2])

    page.set_input_files("#file", str(path))
    page.wait_for_selector("body[data-state=ready]")
    page.check("#authors-mode")
    brush(page, [(300, 60), (380, 60)], (640, 160))
    mask = wait_for_result(page, requests)
    assert np.allclose(centre(mask), (340, 60), atol=1.5)  # under the stroke
    expected = authors.complete(photo, mask)
    assert expected.shape == (152, 600, 3)
    assert page.inner_text("#stat-result") == "600 × 152" and page.inner_text("#stat-size") == "640 × 160"
    assert downloaded(page).tobytes() == expected.tobytes()
    assert shown(page).tobytes() == expected.tobytes()  # every pixel: the whole result came from the server
    page.click("#compare")
    assert shown(page).tobytes() == photo.tobytes()  # a PNG: the browser decodes the same bytes
    page.click("#compare")
    assert shown(page).tobytes() == expected.tobytes()

    # Keep: the 600x152 result is the photo now; a default-mode hole brushed on it.
    page.click("#keep")
    page.wait_for_function("document.getElementById('stat-size').textContent === '600 × 152'")
    assert page.evaluate("document.body.dataset.state") == "ready"
    page.uncheck("#authors-mode")
    requests.shape = expected.shape[:2]
    # Eight other photos push it out of the server's store: the page sends the kept result again.
    page.evaluate(
        "async () => { const c = document.createElement('canvas'); c.width = c.height = 8;"
        " const png = await new Promise((resolve) => c.toBlob(resolve, 'image/png'));"
        " for (let i = 0; i < 8; i++) await fetch('api/photos', { method: 'POST', body: png }); }"
    )
    brush(page, [(100, 40), (130, 50)], (600, 152))
    mask, _ = check_result(page, requests, glcic_fast.load(backend=engine.default_backend), expected)
    assert np.allclose(centre(mask), (115, 45), atol=1.5)  # in the kept photo's pixels, under the stroke
    statuses = [r.response().status for r in requests.seen[-2:]]
    assert statuses == [404, 200]  # forgotten, then completed on the kept result sent again
