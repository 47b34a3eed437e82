"""A small WRITER of Torch7 binary files, for tests only.

The importer reads Torch7 files through the ``torchfile`` package; the tests need Torch7 files
without Lua, so this module writes them, following torch7's serialization format
(``File.lua`` ``writeObject`` plus ``generic/Tensor.c`` / ``generic/Storage.c`` ``write``), as
written on 64-bit Linux by ``torch.save(path, obj)`` (binary mode, referenced objects):

- every object starts with an int32 type tag: nil 0, number 1, string 2, table 3, torch 4,
  boolean 5;
- number: float64; boolean: int32 (1 = true); string: int32 length then the bytes;
- table and torch objects: int32 object index (1, 2, ... in writing order). An object written
  before is written again as just its tag and index (that is how shared tensors / storages and
  cycles survive);
- table: int32 number of entries, then key object, value object for each entry;
- torch object: the version string "V 1" and the class name (each int32 length + bytes), then
  the class's own data. Tensors (``torch.FloatTensor`` ...): int32 nDimension, nDimension int64
  sizes, nDimension int64 strides (in elements), int64 storage offset + 1 (1-based), then the
  storage object (or nil). Storages (``torch.FloatStorage`` ...): int64 element count, then the
  raw elements. Other classes (``nn.*`` modules) write a table of their fields.

Integers are little endian; "long" is 8 bytes, as on the Linux / macOS machines the published
GLCIC models were written on (``torchfile`` reads native longs, 8 bytes there too).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Optional

import numpy as np

TYPE_NIL = 0
TYPE_NUMBER = 1
TYPE_STRING = 2
TYPE_TABLE = 3
TYPE_TORCH = 4
TYPE_BOOLEAN = 5

VERSION = b"V 1"

# numpy dtype -> (tensor class, storage class)
_TENSOR_CLASSES = {
    np.dtype(np.float32): (b"torch.FloatTensor", b"torch.FloatStorage"),
    np.dtype(np.float64): (b"torch.DoubleTensor", b"torch.DoubleStorage"),
    np.dtype(np.int64): (b"torch.LongTensor", b"torch.LongStorage"),
    np.dtype(np.int32): (b"torch.IntTensor", b"torch.IntStorage"),
    np.dtype(np.uint8): (b"torch.ByteTensor", b"torch.ByteStorage"),
}


@dataclass(eq=False)
class TorchObject:
    """A Torch class instance that serializes as a table of fields (e.g. an ``nn`` module).

    ``fields`` maps field names (str) to values. Identity, not equality, decides sharing: the
    same ``TorchObject`` written twice is stored once and referenced the second time.
    """

    typename: str
    fields: dict = field(default_factory=dict)


@dataclass(eq=False)
class Storage:
    """A flat Torch storage (1-D numpy array). Share one between tensors to write views."""

    data: np.ndarray


@dataclass(eq=False)
class TensorView:
    """A tensor that is a strided view into ``storage`` (element strides, 0-based offset).

    What ``getParameters()`` leaves behind: every weight a view into one flat storage.
    """

    storage: Storage
    shape: tuple
    stride: tuple
    offset: int = 0


class Torch7Writer:
    """Write Python values as one Torch7 object.

    None -> nil, bool -> boolean, int/float -> number, str/bytes -> string, dict -> table,
    list/tuple -> table with keys 1..n, numpy array -> contiguous tensor with its own storage,
    ``TensorView`` / ``Storage`` / ``TorchObject`` as described on those classes.
    """

    def __init__(self, f: BinaryIO):
        self.f = f
        self._index: dict[int, int] = {}  # id(object) -> object index
        self._keepalive: list[Any] = []  # ids stay unique while we hold the objects
        self._next = 0

    # -- primitives ---------------------------------------------------------------------
    def _int(self, v: int) -> None:
        self.f.write(struct.pack("<i", v))

    def _long(self, v: int) -> None:
        self.f.write(struct.pack("<q", v))

    def _raw_string(self, s: bytes) -> None:
        self._int(len(s))
        self.f.write(s)

    def _reference(self, obj: Any) -> bool:
        """Write the object index; True if ``obj`` was written before (nothing more to write)."""
        key = id(obj)
        if key in self._index:
            self._int(self._index[key])
            return True
        self._next += 1
        self._index[key] = self._next
        self._keepalive.append(obj)
        self._int(self._next)
        return False

    # -- objects ------------------------------------------------------------------------
    def write(self, obj: Any) -> None:
        if obj is None:
            self._int(TYPE_NIL)
        elif isinstance(obj, bool):  # before int: bool is an int subclass
            self._int(TYPE_BOOLEAN)
            self._int(1 if obj else 0)
        elif isinstance(obj, (int, float, np.integer, np.floating)):
            self._int(TYPE_NUMBER)
            self.f.write(struct.pack("<d", float(obj)))
        elif isinstance(obj, (str, bytes)):
            self._int(TYPE_STRING)
            self._raw_string(obj.encode("utf-8") if isinstance(obj, str) else obj)
        elif isinstance(obj, dict):
            self._int(TYPE_TABLE)
            if not self._reference(obj):
                self._table_body(list(obj.items()))
        elif isinstance(obj, (list, tuple)):
            self._int(TYPE_TABLE)
            if not self._reference(obj):
                self._table_body([(i + 1, v) for i, v in enumerate(obj)])
        elif isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj)
            if arr.size == 0:  # Torch7's empty tensor: no dimensions, no storage
                self._tensor(obj, None, (), (), 0, arr.dtype)
            else:
                self._tensor(obj, Storage(arr.reshape(-1)), arr.shape, _contiguous_strides(arr.shape), 0, arr.dtype)
        elif isinstance(obj, TensorView):
            self._tensor(obj, obj.storage, obj.shape, obj.stride, obj.offset, obj.storage.data.dtype)
        elif isinstance(obj, Storage):
            self._storage(obj)
        elif isinstance(obj, TorchObject):
            self._int(TYPE_TORCH)
            if not self._reference(obj):
                self._raw_string(VERSION)
                self._raw_string(obj.typename.encode("utf-8"))
                self.write(dict(obj.fields))
        else:
            raise TypeError(f"cannot write {type(obj).__name__} as a Torch7 object")

    def _table_body(self, items: list) -> None:
        self._int(len(items))
        for k, v in items:
            self.write(k)
            self.write(v)

    def _tensor(self, owner: Any, storage: Optional[Storage], shape, stride, offset: int, dtype) -> None:
        tensor_class, _ = _classes(dtype)
        self._int(TYPE_TORCH)
        if self._reference(owner):
            return
        self._raw_string(VERSION)
        self._raw_string(tensor_class)
        self._int(len(shape))
        for s in shape:
            self._long(int(s))
        for s in stride:
            self._long(int(s))
        self._long(offset + 1)  # Lua's 1-based storage offset
        if storage is None:
            self._int(TYPE_NIL)
        else:
            self._storage(storage)

    def _storage(self, storage: Storage) -> None:
        data = np.ascontiguousarray(storage.data).reshape(-1)
        _, storage_class = _classes(data.dtype)
        self._int(TYPE_TORCH)
        if self._reference(storage):
            return
        self._raw_string(VERSION)
        self._raw_string(storage_class)
        self._long(data.size)
        self.f.write(data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes())


def _classes(dtype) -> tuple[bytes, bytes]:
    dtype = np.dtype(dtype)
    if dtype not in _TENSOR_CLASSES:
        raise TypeError(f"no Torch7 tensor class for dtype {dtype}")
    return _TENSOR_CLASSES[dtype]


def _contiguous_strides(shape) -> tuple:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= int(s)
    return tuple(reversed(strides))


def save(path, obj: Any) -> None:
    """Write ``obj`` to ``path`` as a binary Torch7 file (what ``torch.save(path, obj)`` does)."""
    with open(path, "wb") as f:
        Torch7Writer(f).write(obj)


def flatten_parameters(tensors: list[np.ndarray], dtype=np.float32) -> tuple[Storage, list[TensorView]]:
    """One storage holding all ``tensors`` back to back, and a view into it for each.

    This is the layout ``module:getParameters()`` leaves in a saved Torch7 model.
    """
    flat = np.concatenate([np.asarray(t, dtype=dtype).reshape(-1) for t in tensors]) if tensors else np.empty(0, dtype)
    storage = Storage(flat)
    views, offset = [], 0
    for t in tensors:
        views.append(TensorView(storage, tuple(t.shape), _contiguous_strides(t.shape), offset))
        offset += int(np.asarray(t).size)
    return storage, views
