"""A client for GLCIC on Triton Inference Server, with the completion API's ``complete`` call.

    from glcic_fast.client import Client
    client = Client("localhost:8000")                      # HTTP; Client("localhost:8001", protocol="grpc")
    result = client.complete(image, mask)                  # as glcic_fast.load().complete(image, mask)
    results = client.complete([im1, im2], [m1, m2])        # same-size images go in one batched request

Needs ``tritonclient`` (``pip install 'glcic-fast[client]'``), not PyTorch or onnxruntime. The
server is one ``glcic-fast serve`` starts, or any serving a repository written by
``glcic-fast export-triton-server``.

Images are uint8 RGB: numpy (H, W, 3), a PIL image, a list of those, or a numpy (N, H, W, 3)
batch; the result comes back in the same type. Masks: numpy (H, W) (bool, 0/1 or 0/255), a
PIL image, one per image. The server checks masks by the repository's rules (binary, unless
it was exported with ``--mask-threshold``) and refuses sizes outside its range.

Errors: ``InputError`` for a request the server refuses (its message says why), a subclass of
``ServerUnavailable`` (a ``ConnectionError``) when the server cannot be reached or is stopping,
``RequestTimeout`` past ``timeout``, ``ServerError`` for anything else the server reports. With
``retries``, requests that met an unavailable server are sent again (completion has no side
effects, so a retry is safe); a response is never mixed up with another request's.

One ``Client`` can be shared by threads: each thread gets its own connection.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import numpy as np

from .errors import InputError
from .export.triton_server_model import ERROR_PREFIX
from .preprocess import read_image, to_callers_type

PROTOCOLS = ("http", "grpc")


class ServerUnavailable(ConnectionError):
    """The server could not be reached, or refused the request because it is stopping."""


class RequestTimeout(TimeoutError):
    """No answer within the client's timeout."""


class ServerError(RuntimeError):
    """The server failed the request for a reason other than the input."""


def _tritonclient(protocol: str) -> Any:
    try:
        if protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
    except ImportError as e:
        raise ImportError(
            f"glcic_fast.client needs tritonclient[{protocol}] ({e}): pip install 'glcic-fast[client]'"
        ) from None
    return module


def _mask_array(mask: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    """A uint8 (H, W) mask as the server takes it (values checked by the server)."""
    if hasattr(mask, "convert") and hasattr(mask, "mode"):  # PIL
        mask = np.asarray(mask.convert("L"))
    elif type(mask).__module__.startswith("torch"):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise InputError(f"{what}: expected a numpy array or PIL image, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise InputError(f"{what}: expected an HxW mask, got shape {mask.shape}")
    if mask.shape != shape:
        raise InputError(f"{what}: size {mask.shape[0]}x{mask.shape[1]} does not match the image's {shape[0]}x{shape[1]}")
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8) * 255
    if mask.dtype == np.uint8:
        return np.ascontiguousarray(mask)
    if not np.isfinite(mask).all() or mask.min() < 0 or mask.max() > 255 or not np.array_equal(mask, np.round(mask)):
        raise InputError(f"{what}: values must be whole numbers in 0-255 (or 0/1, or bool), got dtype {mask.dtype}")
    return mask.astype(np.uint8)


def _split(image: Any, mask: Any) -> tuple[list, list, bool, bool]:
    """(images, masks, batched?, stacked numpy batch?)."""
    if isinstance(image, (list, tuple)):
        if not isinstance(mask, (list, tuple, np.ndarray)) or len(mask) != len(image):
            raise InputError("a list of images needs a list of masks, one per image")
        return list(image), list(mask), True, False
    if isinstance(image, np.ndarray) and image.ndim == 4:
        if len(mask) != len(image):
            raise InputError(f"got {len(image)} images but {len(mask)} masks")
        return list(image), list(mask), True, True
    return [image], [mask], False, False


class Client:
    """``complete(image, mask)`` against a GLCIC ensemble on Triton (HTTP or gRPC)."""

    def __init__(self, url: str = "localhost:8000", protocol: str = "http", model: str = "glcic",
                 timeout: float = 60.0, retries: int = 0, retry_wait: float = 0.5, max_batch: Optional[int] = None):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be http or grpc, got {protocol!r}")
        if timeout <= 0 or retries < 0 or retry_wait < 0:
            raise ValueError("timeout must be > 0, retries and retry_wait >= 0")
        self.url, self.protocol, self.model = url, protocol, model
        self.timeout, self.retries, self.retry_wait = float(timeout), int(retries), float(retry_wait)
        self._max_batch = max_batch
        self._module = _tritonclient(protocol)
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<Client {self.protocol}://{self.url} model={self.model}>"

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.protocol == "http":
                conn = self._module.InferenceServerClient(self.url, connection_timeout=self.timeout,
                                                          network_timeout=self.timeout)
            else:
                conn = self._module.InferenceServerClient(self.url)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop_connection()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- server state ---------------------------------------------------------------------------
    def ready(self) -> bool:
        """True when the server answers and the model is ready."""
        try:
            return bool(self._connection().is_model_ready(self.model))
        except Exception:
            self._drop_connection()
            return False

    @property
    def max_batch(self) -> int:
        """The largest batch one request may carry (the model's max_batch_size)."""
        if self._max_batch is None:
            config = self._call(lambda c: c.get_model_config(self.model))
            if self.protocol == "grpc":
                config = {"max_batch_size": config.config.max_batch_size}
            self._max_batch = max(1, int(config.get("max_batch_size", 1)))
        return self._max_batch

    # -- completion -----------------------------------------------------------------------------
    def complete(self, image: Any, mask: Any) -> Any:
        """Fill the hole of ``image`` where ``mask`` is set, on the server; see the module doc."""
        images, masks, batched, stacked = _split(image, mask)
        if not images:
            return []
        records, mask_arrays = [], []
        for i, (img, m) in enumerate(zip(images, masks)):
            what = "image" if not batched else f"image {i}"
            record = read_image(img, what)
            if record.pixels.dtype != np.uint8:
                raise InputError(f"{what}: the server takes uint8 images; convert with "
                                 "np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)")
            records.append(record)
            mask_arrays.append(_mask_array(m, record.pixels.shape[:2], what.replace("image", "mask")))
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(record.pixels.shape, []).append(i)
        results: list[Any] = [None] * len(records)
        for members in groups.values():
            step = self.max_batch if len(members) > 1 else 1  # one image: no model-config round trip
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                out = self.complete_arrays(np.stack([records[i].pixels for i in chunk]),
                                           np.stack([mask_arrays[i] for i in chunk]))
                for j, i in enumerate(chunk):
                    results[i] = to_callers_type(out[j], records[i])
        if stacked:
            return np.stack(results)
        return results if batched else results[0]

    __call__ = complete

    def complete_arrays(self, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """One request: uint8 (B, H, W, 3) + uint8 (B, H, W) -> uint8 (B, H, W, 3), sent as given."""
        m = self._module

        def infer(conn: Any) -> np.ndarray:
            inputs = [m.InferInput("IMAGE", list(images.shape), "UINT8"), m.InferInput("MASK", list(masks.shape), "UINT8")]
            inputs[0].set_data_from_numpy(np.ascontiguousarray(images))
            inputs[1].set_data_from_numpy(np.ascontiguousarray(masks))
            if self.protocol == "http":
                outputs = [m.InferRequestedOutput("COMPLETED", binary_data=True)]
                result = conn.infer(self.model, inputs, outputs=outputs, timeout=int(self.timeout * 1e6))
            else:
                outputs = [m.InferRequestedOutput("COMPLETED")]
                result = conn.infer(self.model, inputs, outputs=outputs, client_timeout=self.timeout)
            out = result.as_numpy("COMPLETED")
            if out is None or out.shape != images.shape:
                raise ServerError(f"the server returned {None if out is None else out.shape} for a {images.shape} request")
            return out

        return self._call(infer)

    def _call(self, fn: Any) -> Any:
        """``fn(connection)`` with the errors mapped to ours and unavailable servers retried."""
        for attempt in range(self.retries + 1):
            try:
                return fn(self._connection())
            except Exception as e:  # noqa: BLE001 (tritonclient raises many kinds; all are mapped)
                error = self._map_error(e)
                if isinstance(error, (ServerUnavailable, RequestTimeout)):
                    self._drop_connection()  # a fresh connection for the retry (or the next call)
                if isinstance(error, ServerUnavailable) and attempt < self.retries:
                    time.sleep(self.retry_wait * (attempt + 1))
                    continue
                raise error from e
        raise AssertionError("unreachable")

    def _map_error(self, e: Exception) -> Exception:
        text = str(e)
        status = str(getattr(e, "status", lambda: "")() or "")
        where = f"{self.protocol}://{self.url}"
        if ERROR_PREFIX in text:
            return InputError(text.split(ERROR_PREFIX, 1)[1].strip())
        if isinstance(e, (TimeoutError,)) or "DEADLINE_EXCEEDED" in status or "Deadline Exceeded" in text \
                or "timed out" in text.lower():
            return RequestTimeout(f"{where}: no answer within {self.timeout:g} s ({text.strip()[:200]})")
        unavailable = ("UNAVAILABLE" in status or "Server is stopping" in text or "failed to connect" in text.lower()
                       or "connection" in text.lower() or "not ready" in text.lower())
        if isinstance(e, (ConnectionError, OSError)) or type(e).__name__ == "HTTPConnectionClosed" or unavailable:
            return ServerUnavailable(f"{where}: the server is unavailable ({type(e).__name__}: {text.strip()[:200]})")
        if "INVALID_ARG" in status or status == "400" or "expects" in text or "unexpected shape" in text:
            return InputError(f"{where} refused the request: {text.strip()}")
        return ServerError(f"{where}: {type(e).__name__}: {text.strip()}")
