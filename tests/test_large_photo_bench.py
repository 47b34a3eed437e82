"""The large-photo benchmark case runs and reports what it measured (issue 11, item 7).

Run small here (480x640); `glcic-fast bench --large-photo` runs the 12-megapixel case.
"""

import json

from glcic_fast.bench.large_photo import photo_and_hole, run_large_photo, write_large_photo


def test_photo_and_hole():
    photo, hole = photo_and_hole((300, 400), 0.05)
    assert photo.shape == (300, 400, 3) and abs(hole.mean() - 0.05) < 0.001


def test_large_photo_case_small(tmp_path):
    rows = run_large_photo(calls=1, size=(480, 640), hole_fraction=0.01, backends=("torch",), device="cpu")
    by_mode = {r["mode"]: r for r in rows}
    windows, whole = by_mode["hole windows"], by_mode["whole image"]
    assert whole["network_inputs"] == ["480x640"] and windows["network_inputs"] == ["356x356"]  # 55x55 hole + context
    assert windows["network_megapixels"] < whole["network_megapixels"]
    for r in rows:
        assert r["calls"] == 1 and r["median_s"] > 0 and r["peak_rss_gib"] >= r["loaded_rss_gib"] > 0
    assert "speedup_vs_whole_image" in windows
    json_path, markdown_path = write_large_photo(rows, "cpu", results_dir=tmp_path, note="test")
    report = json.loads(open(json_path).read())
    assert report["schema"].startswith("glcic-fast-bench-large-photo") and report["machine"]["cpu_model"]
    assert "| hole windows | torch fp32 | 480x640 |" in open(markdown_path).read()
