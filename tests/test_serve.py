"""GLCIC on a real Triton Inference Server: the exported onnxruntime repository loaded by
``tritonserver`` on loopback (free ports, stopped after), called over HTTP and gRPC.

Needs the server environment (nvidia-pytriton, numpy<2, onnxruntime in their own venv; see
glcic_fast.serving.environment): $GLCIC_TRITON_SERVER_ENV, the default one that
``glcic-fast serve --setup-env`` makes, or a tritonserver on PATH. .ci/run makes one with
.ci/triton-server-env.sh. Without it these tests skip and say so.

Every loop here is bounded in count and time; all traffic goes to 127.0.0.1.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install 'glcic-fast[client]')")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] is not installed (pip install 'glcic-fast[client]')")

import tritonclient.grpc as grpcclient  # noqa: E402
import tritonclient.http as httpclient  # noqa: E402

from glcic_fast.client import Client, RequestTimeout, ServerUnavailable  # noqa: E402
from glcic_fast.errors import InputError  # noqa: E402

MAX_SIZE = 160  # the test repository serves up to 160x160
MAX_BATCH = 4


def _server_or_skip():
    from glcic_fast.serving import ServerSetupError, find_server

    try:
        server = find_server(create=False)
        server.check_runtime("onnxruntime")
    except ServerSetupError as e:
        if os.environ.get("GLCIC_TRITON_SERVER_ENV"):  # named explicitly (as CI does): broken is a failure
            pytest.fail(f"GLCIC_TRITON_SERVER_ENV names an unusable server environment: {e}")
        pytest.skip(f"no Triton server environment here ({e}); .ci/triton-server-env.sh makes one")
    return server


@pytest.fixture(scope="session")
def server_env():
    return _server_or_skip()


@pytest.fixture(scope="session")
def repository(tmp_path_factory, server_env):
    """The packaged model exported for onnxruntime, as glcic-fast serve exports it."""
    from glcic_fast.export.triton_server import export_triton_repository

    repo = tmp_path_factory.mktemp("serve") / "model_repository"
    export_triton_repository(None, repo, runtime="onnxruntime", max_batch=MAX_BATCH, max_size=MAX_SIZE)
    return repo


@pytest.fixture(scope="session")
def served(repository, server_env):
    from glcic_fast.serving import TritonServer

    with TritonServer(repository, server_env, http_port=0, grpc_port=0, metrics_port=0, exit_timeout=5) as server:
        yield server


@pytest.fixture(scope="session")
def local():
    import glcic_fast

    # The packaged model on what the served repository runs: onnxruntime on the CPU (also what
    # glcic_fast.load() picks by itself on a machine without a GPU).
    return glcic_fast.load(backend="onnxruntime", device="cpu")


def make_case(rng, h, w, kind="rect"):
    """A uint8 image and a binary mask in one of the encodings the API takes (0/255, 0/1, bool),
    with a hole at the top-left pixel and context at the bottom-right one."""
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "rect":
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4: h // 2 + 1, w // 3: w // 3 + max(1, w // 3)] = 255
    elif kind == "scatter01":
        mask = (rng.random((h, w)) < 0.2).astype(np.uint8)
    else:
        mask = rng.random((h, w)) < 0.35
    mask[0, 0], mask[-1, -1] = {"rect": 255, "scatter01": 1, "bool": True}[kind], 0
    return image, mask


def clients(served, **options):
    e = served.endpoints
    return {"http": Client(e.http_url, protocol="http", **options), "grpc": Client(e.grpc_url, protocol="grpc", **options)}


def test_served_bytes_equal_local_api(served, local):
    rng = np.random.default_rng(0)
    cases = [make_case(rng, h, w, kind) for (h, w), kind in
             [((64, 64), "rect"), ((50, 77), "scatter01"), ((33, 21), "bool"), ((3, 2), "rect"), ((128, 96), "rect"),
              ((160, 160), "scatter01")]]
    expected = [local.complete(image, mask) for image, mask in cases]
    for protocol, client in clients(served).items():
        for (image, mask), want in zip(cases, expected):
            got = client.complete(image, mask)
            assert got.dtype == np.uint8 and got.shape == image.shape
            assert np.array_equal(got, want), f"{protocol} {image.shape}: served image differs from the local API's"
        assert client._max_batch is None  # single images never ask the server for the model's config
        # A batch of same-size images (one request, split at max batch) and a list of mixed sizes.
        batch = [make_case(rng, 40, 56) for _ in range(MAX_BATCH + 2)]
        images, masks = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
        assert np.array_equal(client.complete(images, masks), local.complete(images, masks))
        assert client._max_batch == MAX_BATCH
        mixed = client.complete([c[0] for c in cases[:3]], [c[1] for c in cases[:3]])
        assert all(np.array_equal(g, w) for g, w in zip(mixed, expected[:3]))
    from PIL import Image  # PIL in, PIL out, as with the local API

    image, mask = cases[0]
    got = clients(served)["http"].complete(Image.fromarray(image), Image.fromarray(mask))
    assert isinstance(got, Image.Image) and np.array_equal(np.asarray(got), expected[0])


def _network_stats(served):
    import urllib.request

    url = f"http://{served.endpoints.http_url}/v2/models/glcic_onnxruntime/stats"
    with urllib.request.urlopen(url, timeout=10) as r:
        stats = json.loads(r.read())["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])


def test_concurrent_http_and_grpc_clients(served, local):
    """8 client threads (half HTTP, half gRPC) at two sizes: every result is the local bytes,
    and the dynamic batcher ran same-size requests together (fewer executions than images)."""
    rng = np.random.default_rng(1)
    cases = [make_case(rng, 96, 96) for _ in range(3)] + [make_case(rng, 48, 64) for _ in range(3)]
    expected = [local.complete(im, m) for im, m in cases]
    both = clients(served, timeout=120)
    before = _network_stats(served)
    failures, done = [], []

    def worker(t):
        client = both["http" if t % 2 == 0 else "grpc"]
        for k in range(3):
            i = (t + k) % len(cases)
            try:
                ok = np.array_equal(client.complete(*cases[i]), expected[i])
            except Exception as e:  # reported below
                failures.append(repr(e))
                continue
            (done if ok else failures).append(i if ok else f"wrong image for case {i}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures and len(done) == 24
    inferences, executions = (a - b for a, b in zip(_network_stats(served), before))
    assert inferences == 24 and executions < inferences, "dynamic batching never combined requests"


def _raw_request(module, image, mask, image_dtype="UINT8"):
    inputs = [module.InferInput("IMAGE", list(image.shape), image_dtype), module.InferInput("MASK", list(mask.shape), "UINT8")]
    inputs[0].set_data_from_numpy(image)
    inputs[1].set_data_from_numpy(mask)
    return inputs


def test_bad_requests_get_clear_errors_and_server_keeps_serving(served, local):
    rng = np.random.default_rng(2)
    image, mask = make_case(rng, 32, 32)
    want = local.complete(image, mask)
    grey = mask.copy()
    grey[5, 5] = 128
    big_image, big_mask = make_case(rng, MAX_SIZE + 8, 40)
    e = served.endpoints
    for module, url in ((httpclient, e.http_url), (grpcclient, e.grpc_url)):
        conn = module.InferenceServerClient(url)
        bad = {
            "data-type": _raw_request(module, image[None].astype(np.float32), mask[None], "FP32"),
            "MASK must match IMAGE": _raw_request(module, image[None], mask[None, :30]),
            "not binary": _raw_request(module, image[None], grey[None]),
            "outside the sizes this server runs": _raw_request(module, big_image[None], big_mask[None]),
            "no hole pixels": _raw_request(module, image[None], np.zeros_like(mask)[None]),
            "batch-size must be <= 4": _raw_request(module, np.stack([image] * 5), np.stack([mask] * 5)),
            "unexpected shape": _raw_request(module, np.zeros((1, 32, 32, 4), np.uint8), mask[None]),
        }
        for reason, inputs in bad.items():
            with pytest.raises(Exception) as info:
                conn.infer("glcic", inputs)
            assert reason in str(info.value), f"{module.__name__}: {info.value}"
            ok = conn.infer("glcic", _raw_request(module, image[None], mask[None])).as_numpy("COMPLETED")[0]
            assert np.array_equal(ok, want)  # still serving, still right
    # The package's client turns the server's refusals into InputError, with the server's reason.
    client = clients(served)["grpc"]
    with pytest.raises(InputError, match="not binary"):
        client.complete(image, grey)
    with pytest.raises(InputError, match="outside the sizes"):
        client.complete(big_image, big_mask)
    with pytest.raises(InputError, match="uint8"):
        client.complete(image.astype(np.float32) / 255, mask)


def _http_infer_bytes(image, mask):
    """An HTTP/REST infer request with binary tensors (KServe v2 binary data extension)."""
    header = json.dumps({"inputs": [
        {"name": "IMAGE", "shape": [1, *image.shape], "datatype": "UINT8", "parameters": {"binary_data_size": image.nbytes}},
        {"name": "MASK", "shape": [1, *mask.shape], "datatype": "UINT8", "parameters": {"binary_data_size": mask.nbytes}},
    ], "outputs": [{"name": "COMPLETED", "parameters": {"binary_data": True}}]}).encode()
    body = header + image.tobytes() + mask.tobytes()
    head = (f"POST /v2/models/glcic/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def test_client_disconnecting_mid_request_does_not_disturb_others(served, local):
    rng = np.random.default_rng(3)
    cases = [make_case(rng, 128, 128) for _ in range(2)]
    expected = [local.complete(*c) for c in cases]
    both = clients(served, timeout=120)
    results = []

    def steady(protocol):
        for k in range(4):
            i = k % 2
            results.append(np.array_equal(both[protocol].complete(*cases[i]), expected[i]))

    threads = [threading.Thread(target=steady, args=(p,)) for p in ("http", "grpc", "http")]
    for t in threads:
        t.start()
    host, port = served.endpoints.http_url.rsplit(":", 1)
    request = _http_infer_bytes(*cases[0])
    for cut in (len(request), len(request) // 2, 200):  # whole request, half the body, half the headers
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(request[:cut])
            time.sleep(0.05)
        # ... and the socket is closed before any answer
    # gRPC: a caller that gives up after 1 ms (its call is cancelled mid-request).
    impatient = Client(served.endpoints.grpc_url, protocol="grpc", timeout=0.001)
    with pytest.raises((RequestTimeout, ServerUnavailable)):
        impatient.complete(*cases[1])
    for t in threads:
        t.join(timeout=300)
    assert len(results) == 12 and all(results)
    assert np.array_equal(both["http"].complete(*cases[1]), expected[1])


def test_restart_under_load(repository, server_env, local):
    """Clients under load while the server is stopped (in order, then killed) and restarted:
    in-flight requests either complete correctly or fail with ServerUnavailable; a retrying
    client gets its answer once the server is back; no response is ever a wrong image."""
    from glcic_fast.serving import TritonServer

    rng = np.random.default_rng(4)
    cases = [make_case(rng, 96, 96) for _ in range(3)]
    expected = [local.complete(*c) for c in cases]
    server = TritonServer(repository, server_env, http_port=0, grpc_port=0, metrics_port=0, exit_timeout=2)
    server.start()
    e = server.endpoints
    outcomes = {"ok": 0, "wrong": 0, "unavailable": 0, "other": []}
    stop = threading.Event()
    lock = threading.Lock()

    def load(protocol, t):
        client = Client(e.http_url if protocol == "http" else e.grpc_url, protocol=protocol, timeout=30)
        deadline = time.monotonic() + 90
        k = t
        while not stop.is_set() and time.monotonic() < deadline:
            i = k % len(cases)
            k += 1
            try:
                ok = np.array_equal(client.complete(*cases[i]), expected[i])
                key = "ok" if ok else "wrong"
            except ServerUnavailable:
                key = "unavailable"
                time.sleep(0.2)
            except Exception as ex:  # anything else is a test failure, reported below
                with lock:
                    outcomes["other"].append(repr(ex))
                continue
            with lock:
                outcomes[key] += 1

    def wait_for_ok(count, timeout=60):
        deadline = time.monotonic() + timeout
        while outcomes["ok"] < count and time.monotonic() < deadline:
            time.sleep(0.1)

    threads = [threading.Thread(target=load, args=(p, t)) for t, p in enumerate(("http", "grpc", "http", "grpc"))]
    try:
        for t in threads:
            t.start()
        wait_for_ok(4)
        server.stop()  # in order: in-flight requests finish, new ones are refused
        server.start()
        n = outcomes["ok"]
        wait_for_ok(n + 4)
        unavailable_before_kill = outcomes["unavailable"]
        server.kill()  # a crash: in-flight requests are cut off
        # A retrying client asks while the server is down and gets its answer after the restart.
        answer = {}
        retrying = Client(e.grpc_url, protocol="grpc", timeout=30, retries=60, retry_wait=0.1)
        asker = threading.Thread(target=lambda: answer.setdefault("image", retrying.complete(*cases[0])))
        asker.start()
        time.sleep(0.5)
        server.start()
        asker.join(timeout=90)
        n = outcomes["ok"]
        wait_for_ok(n + 4)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
        server.close()
    assert outcomes["wrong"] == 0 and not outcomes["other"], outcomes
    assert outcomes["unavailable"] > unavailable_before_kill > 0, outcomes  # both stops were seen by clients
    assert np.array_equal(answer.get("image"), expected[0])
    assert outcomes["ok"] >= 12


def test_serve_command_starts_serves_and_stops_on_ctrl_c(repository, server_env, local):
    """``glcic-fast serve`` as a user runs it: ready message with the endpoints, a request, Ctrl-C."""
    env = dict(os.environ)
    if server_env.env_dir:
        env["GLCIC_TRITON_SERVER_ENV"] = str(server_env.env_dir)
    cmd = [sys.executable, "-m", "glcic_fast.cli", "serve", "--model", str(repository), "--http-port", "0",
           "--grpc-port", "0", "--metrics-port", "0", "--exit-timeout", "2"]
    if not server_env.env_dir:
        cmd += ["--tritonserver", str(server_env.tritonserver)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C stops the server" in line:
                break
        text = "".join(lines)
        assert "Ctrl-C stops the server" in text, text
        http = next(ln.split()[1] for ln in lines if ln.strip().startswith("HTTP"))
        assert "Client(" in text and "/v2/health/ready" in text
        rng = np.random.default_rng(5)
        image, mask = make_case(rng, 40, 40)
        assert np.array_equal(Client(http).complete(image, mask), local.complete(image, mask))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopped" in out
    host, port = http.rsplit(":", 1)
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()  # nothing listens any more


def test_server_stops_when_its_parent_dies(repository, server_env, tmp_path):
    """A process that started a server and was killed (no cleanup ran) leaves no server behind."""
    script = (
        "import sys, time\n"
        "from glcic_fast.serving import TritonServer, server_from_env, ServerEnvironment\n"
        "from pathlib import Path\n"
        f"server = server_from_env({str(server_env.env_dir)!r}) if {server_env.env_dir is not None} else "
        f"ServerEnvironment(Path({str(server_env.tritonserver)!r}), 'PATH')\n"
        f"t = TritonServer({str(repository)!r}, server, http_port=0, grpc_port=0, metrics_port=0)\n"
        "t.start()\n"
        "print(t.process.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    # The killed parent cannot remove its work folder: keep it in pytest's temporary folder.
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        server_pid = int(parent.stdout.readline())
    finally:
        parent.kill()  # SIGKILL: nothing of ours runs in it any more
        parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _running(server_pid):
        time.sleep(0.2)
    assert not _running(server_pid), "the server outlived the process that started it"


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_bench_serve_against_running_server(served):
    from glcic_fast.bench.serving import markdown_table, serve_benchmark

    e = served.endpoints
    result = serve_benchmark(size=(32, 32), concurrencies=(1, 2), requests=4, rounds=2,
                             url={"http": e.http_url, "grpc": e.grpc_url}, log=lambda line: None)
    rows = result["rows"]
    assert [(r["target"], r["concurrency"], r["requests"]) for r in rows] == [
        ("in-process API (onnxruntime)", 1, 4), ("triton http", 1, 4), ("triton grpc", 1, 4),
        ("in-process API (onnxruntime)", 2, 4), ("triton http", 2, 4), ("triton grpc", 2, 4)]
    assert all(r["errors"] == 0 and r["wrong"] == 0 and r["images_per_s"] > 0 for r in rows)
    assert all(r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in rows)
    assert len(markdown_table(rows)) == 2 + len(rows)
