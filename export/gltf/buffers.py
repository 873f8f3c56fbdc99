"""Buffers, buffer views and accessors of a glTF file, every range checked before a byte is
read (a mixin of the loader: it uses the loader's `g`, `folder`, `glb_bin`, `fail`, `index`)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import numpy as np

from ..safe_files import read_regular_file
from .container import decode_data_uri, resolve_uri
from .model import SceneError

# components of an accessor with no bufferView (zeros, maybe sparse-edited): 64 MB of floats
MAX_UNBACKED_COMPONENTS = 1 << 24
_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16,
               5125: np.uint32, 5126: np.float32}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


class BufferReading:
    def buffer(self, i: int) -> bytes:
        if i in self._buffers:
            return self._buffers[i]
        b = self.g.buffers[i]
        what = f"buffer {i}"
        length = b.byteLength
        if type(length) is not int or length < 0:
            self.fail(f"{what} has no valid byteLength")
        if b.uri is None:
            if i != 0 or self.glb_bin is None:
                self.fail(f"{what} has no uri and there is no .glb binary chunk")
            data = self.glb_bin
        elif isinstance(b.uri, str) and b.uri.startswith("data:"):
            data, _ = self.data_uri(b.uri, what)
        else:
            data = self.read_file(b.uri, what)
        if len(data) < length:
            self.fail(f"{what} is truncated: {len(data)} bytes, byteLength says {length}")
        self._buffers[i] = data
        return data

    def data_uri(self, uri: str, what: str) -> tuple[bytes, str | None]:
        try:
            return decode_data_uri(uri, what)
        except SceneError as e:
            self.fail(str(e))

    def read_file(self, uri, what: str) -> bytes:
        return self.read_file_at(uri, what)[1]

    def read_file_at(self, uri, what: str) -> tuple[Path, bytes]:
        try:
            full = resolve_uri(self.folder, uri, what)
        except SceneError as e:
            self.fail(str(e))
        try:
            return full, read_regular_file(full)
        except FileNotFoundError:
            self.fail(f"{what} file '{unquote(uri)}' is missing")
        except IsADirectoryError:
            self.fail(f"{what} file '{unquote(uri)}' is a folder")
        except OSError as e:
            self.fail(f"cannot read {what} file '{unquote(uri)}': {e.strerror or e}")

    def buffer_view(self, i, what: str) -> tuple[bytes, int, int, int | None]:
        """(buffer bytes, start, length, stride) of a bufferView, range-checked."""
        i = self.index(i, self.g.bufferViews, f"{what}: bufferView")
        bv = self.g.bufferViews[i]
        buf_i = self.index(bv.buffer, self.g.buffers, f"bufferView {i}: buffer")
        data = self.buffer(buf_i)
        off, length = bv.byteOffset or 0, bv.byteLength
        if type(off) is not int or type(length) is not int or off < 0 or length < 0:
            self.fail(f"bufferView {i} has an invalid byteOffset/byteLength")
        if off + length > min(len(data), self.g.buffers[buf_i].byteLength):
            self.fail(f"bufferView {i} (bytes {off}..{off + length}) runs past the end of buffer "
                      f"{buf_i} ({self.g.buffers[buf_i].byteLength} bytes)")
        stride = bv.byteStride
        if stride is not None and (type(stride) is not int or not 4 <= stride <= 252):
            self.fail(f"bufferView {i} has an invalid byteStride {stride!r}")
        return data, off, length, stride

    def accessor(self, i, what: str, float_out: bool = True) -> np.ndarray:
        """[count, components] array; float32 (normalized ints scaled) unless float_out=False."""
        i = self.index(i, self.g.accessors, f"{what}: accessor")
        a = self.g.accessors[i]
        where = f"accessor {i}"
        dtype = _COMPONENTS.get(a.componentType)
        if dtype is None:
            self.fail(f"{where} has unsupported componentType {a.componentType!r}")
        ncomp = _TYPE_SIZES.get(a.type)
        if ncomp is None:
            self.fail(f"{where} has unsupported type {a.type!r}")
        if a.type.startswith("MAT") and np.dtype(dtype).itemsize < 4:
            self.fail(f"{where}: matrices of 1- or 2-byte components are unsupported")
        count = a.count
        if type(count) is not int or count < 0 or count > 1 << 28:
            self.fail(f"{where} has an invalid count {count!r}")
        dt = np.dtype(dtype).newbyteorder("<")
        csize = dt.itemsize
        elem = csize * ncomp
        if a.bufferView is None:
            # all zeros (or sparse edits on zeros): nothing in the file backs the size, so it is
            # bounded here rather than by the buffers
            if count * ncomp > MAX_UNBACKED_COMPONENTS:
                self.fail(f"{where} has no bufferView and declares {count} elements, more than "
                          f"{MAX_UNBACKED_COMPONENTS // ncomp} of its type")
            out = np.zeros((count, ncomp), dt)
        else:
            data, start, length, stride = self.buffer_view(a.bufferView, where)
            aoff = a.byteOffset or 0
            if type(aoff) is not int or aoff < 0:
                self.fail(f"{where} has an invalid byteOffset")
            stride = stride or elem
            if stride < elem:
                self.fail(f"{where}: byteStride {stride} is smaller than an element ({elem} bytes)")
            need = aoff + (stride * (count - 1) + elem if count else 0)
            if need > length:
                self.fail(f"{where} needs {need} bytes of bufferView {a.bufferView}, which has "
                          f"{length}")
            out = np.ndarray((count, ncomp), dt, buffer=data, offset=start + aoff,
                             strides=(stride, csize)).copy()
        if a.sparse is not None:
            out = out.copy()
            self._apply_sparse(a.sparse, out, where)
        out = out.astype(dt.newbyteorder("="))
        if not float_out:
            return out
        if a.normalized and dtype is not np.float32:
            info = np.iinfo(dtype)
            res = out.astype(np.float32) / info.max
            return np.maximum(res, -1.0) if info.min < 0 else res
        return out.astype(np.float32)

    def _apply_sparse(self, sp, out: np.ndarray, where: str) -> None:
        try:
            n = sp.count
            idx_t = _COMPONENTS.get(sp.indices.componentType)
            if type(n) is not int or n < 1 or n > out.shape[0] or idx_t not in (np.uint8, np.uint16,
                                                                                   np.uint32):
                self.fail(f"{where}: malformed sparse accessor")
            data, start, length, _ = self.buffer_view(sp.indices.bufferView, f"{where} sparse")
            off = sp.indices.byteOffset or 0
            isz = np.dtype(idx_t).itemsize
            if off + n * isz > length:
                self.fail(f"{where}: sparse indices run past their bufferView")
            idx = np.frombuffer(data, np.dtype(idx_t).newbyteorder("<"), n, start + off)
            data, start, length, _ = self.buffer_view(sp.values.bufferView, f"{where} sparse")
            off = sp.values.byteOffset or 0
            vsz = out.dtype.itemsize * out.shape[1]
            if off + n * vsz > length:
                self.fail(f"{where}: sparse values run past their bufferView")
            vals = np.frombuffer(data, out.dtype, n * out.shape[1], start + off).reshape(n, -1)
        except AttributeError:
            self.fail(f"{where}: malformed sparse accessor")
        if int(idx.max()) >= out.shape[0]:
            self.fail(f"{where}: sparse index out of range")
        out[idx.astype(np.int64)] = vals
