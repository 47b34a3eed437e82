"""An independent port of the authors' inpaint.lua, for tests: written from the Lua and C
sources (satoshiiizuka/siggraph2017_inpainting, torch/image, torch/torch7, OpenCV 3.1), not
from glcic_fast.authors, and written the way those sources are: one output sample at a time.

Each function names the lines it follows. Everything is float32 where the Lua tensors are
(torch.setdefaulttensortype('torch.FloatTensor')), double where Lua numbers are.
"""

from __future__ import annotations

import numpy as np

f32 = np.float32


# -- torch/image generic/image.c: scaleLinear_rowcol, then Main_scaleBilinear ----------------

def scale_line(src: np.ndarray, dst_len: int) -> np.ndarray:
    """scaleLinear_rowcol along axis 0 of ``src`` (every other axis is carried along).

    The C loop, sample by sample and tap by tap, in float (temp_t = real = float).
    """
    src_len = src.shape[0]
    dst = np.zeros((dst_len,) + src.shape[1:], f32)
    if dst_len > src_len:
        scale = f32(src_len - 1) / f32(dst_len - 1)  # (float)(src_len - 1) / (dst_len - 1)
        if src_len == 1:
            for di in range(dst_len - 1):
                dst[di] = src[0]
        else:
            for di in range(dst_len - 1):
                si_f = f32(di) * scale
                si_i = int(si_f)  # (long) truncates
                si_f = f32(si_f - f32(si_i))
                dst[di] = (f32(1) - si_f) * src[si_i] + si_f * src[si_i + 1]
        dst[dst_len - 1] = src[src_len - 1]
    elif dst_len < src_len:
        si0_i, si0_f = 0, f32(0)
        scale = f32(src_len) / f32(dst_len)
        for di in range(dst_len):
            si1_f = f32(di + 1) * scale
            si1_i = int(si1_f)
            si1_f = f32(si1_f - f32(si1_i))
            acc = (f32(1) - si0_f) * src[si0_i]
            n = f32(1) - si0_f
            for si in range(si0_i + 1, si1_i):
                acc = acc + src[si]
                n = f32(n + f32(1))
            if si1_i < src_len:
                acc = acc + si1_f * src[si1_i]
                n = f32(n + si1_f)
            dst[di] = acc / n
            si0_i, si0_f = si1_i, si1_f
    else:
        dst[:] = src
    return dst


def image_scale(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """image.scale(img, width, height), bilinear: CxHxW float32; rows (width) first, then columns."""
    assert img.dtype == f32 and img.ndim == 3
    tmp = scale_line(img.transpose(2, 1, 0), width).transpose(2, 1, 0)  # each row: src_width -> dst_width
    return np.ascontiguousarray(scale_line(tmp.transpose(1, 0, 2), height).transpose(1, 0, 2))


def image_scale_string(img: np.ndarray, size: str) -> np.ndarray:
    """image.scale(img, '*SCn/SCd') (init.lua): sizes in Lua doubles, math.max(., 1), then the
    tensor constructor's (long) cast."""
    scn, scd = (float(s) for s in size[1:].split("/"))
    iheight, iwidth = img.shape[1], img.shape[2]
    height = max(iheight * scn / scd, 1)
    width = max(iwidth * scn / scd, 1)
    return image_scale(img, int(width), int(height))


# -- image.load (init.lua processPNG: img:mul(1/MAXVAL)), image.rgb2y (image.c), utils.lua ---

def image_load(pixels: np.ndarray) -> np.ndarray:
    """HxWxC bytes (or 16-bit) -> CxHxW FloatTensor: the raw values, then :mul(1/MAXVAL)."""
    maxval = 65535 if pixels.dtype == np.uint16 else 255
    t = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).transpose(2, 0, 1).astype(f32)
    return t * f32(1.0 / maxval)  # THTensor mul: value cast to float, float multiply


def rgb2y(img: np.ndarray) -> np.ndarray:
    """image.rgb2y: yc = 0.299 * r + 0.587 * g + 0.114 * b (double literals), stored in float."""
    out = np.zeros((1,) + img.shape[1:], f32)
    r, g, b = (img[c].astype(np.float64) for c in range(3))
    out[0] = (0.299 * r + 0.587 * g + 0.114 * b).astype(f32)
    return out


def load_image_gray(pixels: np.ndarray) -> np.ndarray:
    """utils.lua load_image_gray."""
    img = image_load(pixels)
    if img.shape[0] > 3:
        img = img[0:3]
    if img.shape[0] == 2:
        img = img[0:1]
    if img.shape[0] > 1:
        img = rgb2y(img)
    return img


# -- inpaint.lua -----------------------------------------------------------------------------

def torch_round(x: float) -> float:
    """torch.round on a number: C round(), half away from zero."""
    return float(np.floor(abs(x) + 0.5) * np.sign(x))


def script_prepare(image_pixels: np.ndarray, mask_pixels: np.ndarray, maxdim: int):
    """inpaint.lua lines 48-78: (Ip, M, network input) -- 3xHxW, 1xHxW, 4xHxW float32."""
    I = image_load(image_pixels)  # line 48
    M = load_image_gray(mask_pixels)  # line 51
    assert I.shape[1] == M.shape[1] and I.shape[2] == M.shape[2]  # line 52
    hwmax = max(I.shape[1], I.shape[2])  # line 67
    if hwmax > maxdim:  # lines 68-71
        I = image_scale_string(I, "*%d/%d" % (maxdim, hwmax))
        M = image_scale_string(M, "*%d/%d" % (maxdim, hwmax))
    # lines 74-75; scale() clamps a size of 0 to 1 (math.max(width, 1))
    I = image_scale(I, max(int(torch_round(I.shape[2] / 4) * 4), 1), max(int(torch_round(I.shape[1] / 4) * 4), 1))
    M = image_scale(M, max(int(torch_round(M.shape[2] / 4) * 4), 1), max(int(torch_round(M.shape[1] / 4) * 4), 1))
    M = (M >= f32(0.2)).astype(f32)  # :ge(0.2):float(), 0.2 cast to float
    Ip = I.copy()  # line 76
    for j in range(3):  # line 77: I[j]:add(-datamean[j])
        I[j] = I[j] + f32(-MEAN_FOR_TESTS[j])
    I[np.repeat(M.astype(np.uint8), 3, axis=0) == 1] = 0  # line 78: maskedFill
    return Ip, M, np.concatenate([I, M], axis=0)  # line 82: torch.cat(I, M, 1)


MEAN_FOR_TESTS = [0.4560, 0.4472, 0.4155]  # set by the tests to the completer's mean


def script_output(Ip: np.ndarray, M: np.ndarray, res: np.ndarray, postproc: bool) -> np.ndarray:
    """Lines 86-122: the bytes of out.png, HxWx3 RGB."""
    M3 = np.repeat(M, 3, axis=0)
    out = Ip * (f32(1) - M3) + res.astype(f32) * M3  # line 86 (Ip:cmul, res:cmul)
    if postproc:
        out = script_postproc(out, M)
    # image.save -> clampImage: saturate, mul(255); libpng save: row[...] = *tensor_data (C cast)
    a = np.clip(out, f32(0), f32(1)) * f32(255)
    return np.trunc(a).astype(np.uint8).transpose(1, 2, 0)


def tensor2cvimg(src: np.ndarray) -> np.ndarray:
    """utils.lua: permute(2,3,1):mul(255):byte(), then channels 1 and 3 swapped."""
    out = np.trunc(src.transpose(1, 2, 0) * f32(255)).astype(np.uint8)
    return np.ascontiguousarray(out[..., [2, 1, 0]])


def cvimg2tensor(src: np.ndarray) -> np.ndarray:
    """utils.lua: permute(3,1,2):float():div(255), channels 1 and 3 swapped."""
    out = src.transpose(2, 0, 1).astype(f32) / f32(255)
    return np.ascontiguousarray(out[[2, 1, 0]])


def script_postproc(out: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Lines 89-117, with OpenCV 3.1's seamlessClone (below)."""
    import cv2

    minx, maxx, miny, maxy = 1e5, 1, 1e5, 1
    for y in range(1, M.shape[2] + 1):  # lines 98-107: x runs over rows, y over columns, 1-based
        for x in range(1, M.shape[1] + 1):
            if M[0][x - 1][y - 1] == 1:
                minx, maxx = min(minx, x), max(maxx, x)
                miny, maxy = min(miny, y), max(maxy, y)
    p_i = (int(np.floor(miny + (maxy - miny) / 2) - 1), int(np.floor(minx + (maxx - minx) / 2) - 1))  # line 109
    src_i = tensor2cvimg(out)
    mask_i = (M.transpose(1, 2, 0) * f32(255)).astype(np.uint8)[..., 0]
    dst_i = cv2.inpaint(src_i, mask_i, 1, cv2.INPAINT_TELEA)
    out_i = seamless_clone_31(src_i, dst_i, mask_i, p_i)
    return cvimg2tensor(out_i)


# -- OpenCV 3.1 modules/photo/src/seamless_cloning.cpp + seamless_cloning_impl.cpp ------------
# (the wrapper as of 3.1; the Cloning maths, which 4.x/5.x still run on a sub-rectangle)

def seamless_clone_31(src, dest, mask, p):
    """cv::seamlessClone(src, dst, mask, p, blend, NORMAL_CLONE), OpenCV 3.1."""
    ys, xs = np.nonzero(mask == 255)
    minx, maxx, miny, maxy = ys.min(), ys.max(), xs.min(), xs.max()  # 3.1 calls rows x, columns y
    lenx, leny = maxx - minx, maxy - miny  # (one short: the last row / column are left out)
    minxd, minyd = p[1] - lenx // 2, p[0] - leny // 2
    assert minxd >= 0 and minyd >= 0 and p[1] + lenx // 2 <= dest.shape[0] and p[0] + leny // 2 <= dest.shape[1]
    dst_mask = np.zeros_like(mask)
    cs_mask = np.zeros_like(src)
    cd_mask = np.zeros_like(dest)
    dst_mask[minxd:minxd + lenx, minyd:minyd + leny] = mask[minx:minx + lenx, miny:miny + leny]
    sel = mask[minx:minx + lenx, miny:miny + leny] != 0
    cs_mask[minx:minx + lenx, miny:miny + leny][sel] = src[minx:minx + lenx, miny:miny + leny][sel]
    cd_mask[minxd:minxd + lenx, minyd:minyd + leny] = cs_mask[minx:minx + lenx, miny:miny + leny]
    import cv2

    eroded = cv2.erode(dst_mask, np.ones((3, 3), np.uint8), iterations=3)  # border: never erodes
    return normal_clone(dest, cd_mask, eroded)


def normal_clone(destination, patch, eroded_mask):
    """Cloning::normalClone (NORMAL_CLONE) given the already eroded mask."""
    import cv2

    h, w = eroded_mask.shape
    kx = np.array([[0, -1, 1]], f32)  # computeGradientX: out[x] = I[x+1] - I[x]
    ky = kx.T
    lx = np.array([[-1, 1, 0]], f32)  # computeLaplacianX: out[x] = L[x] - L[x-1]
    ly = lx.T
    mask_f = (eroded_mask.astype(f32) * f32(1.0 / 255.0))[..., None]
    inv_f = ((255 - eroded_mask).astype(f32) * f32(1.0 / 255.0))[..., None]
    dgx = cv2.filter2D(destination, cv2.CV_32F, kx) * inv_f
    dgy = cv2.filter2D(destination, cv2.CV_32F, ky) * inv_f
    pgx = cv2.filter2D(patch, cv2.CV_32F, kx) * mask_f
    pgy = cv2.filter2D(patch, cv2.CV_32F, ky) * mask_f
    lapx = cv2.filter2D(dgx + pgx, cv2.CV_32F, lx)
    lapy = cv2.filter2D(dgy + pgy, cv2.CV_32F, ly)
    filter_x = np.array([2.0 * f32(np.cos(np.pi / (w - 1) * (i + 1))) for i in range(w - 2)], f32)
    filter_y = np.array([2.0 * f32(np.cos(np.pi / (h - 1) * (j + 1))) for j in range(h - 2)], f32)
    channels = []
    for c in range(3):
        img = np.ascontiguousarray(destination[..., c])
        lap = lapx[..., c] + lapy[..., c]
        bound = img.copy()
        bound[1:h - 1, 1:w - 1] = 0  # rectangle(bound, (1,1), (w-2,h-2), 0, filled)
        mod_diff = (lap - cv2.Laplacian(bound, cv2.CV_32F))[1:h - 1, 1:w - 1]
        res = _dst(np.ascontiguousarray(mod_diff), False)
        res /= (filter_x[None, :] + filter_y[:, None]) - f32(4)  # float: fx[i] + fy[j] - 4, elementwise
        solved = _dst(res, True)
        result = img.copy()
        for j in range(1, h - 1):  # static_cast truncates; clamped to [0, 255] first
            v = solved[j - 1]
            result[j, 1:w - 1] = np.where(v < 0, 0, np.where(v > 255, 255, v)).astype(np.uint8)
        channels.append(result)
    return np.stack(channels, axis=2)


def _dst(src, invert):
    """Cloning::dst: a sine transform through DFTs of 2N + 2 samples, rows then columns."""
    import cv2

    rows, cols = src.shape
    flag = cv2.DFT_ROWS | cv2.DFT_SCALE | cv2.DFT_INVERSE if invert else cv2.DFT_ROWS
    temp = np.zeros((rows, 2 * cols + 2), f32)
    temp[:, 1:cols + 1] = src
    for i in range(cols):
        temp[:, cols + 2 + i] = -src[:, cols - 1 - i]
    planes = cv2.split(cv2.dft(cv2.merge([temp, np.zeros_like(temp)]), flags=flag))
    temp = np.zeros((cols, 2 * rows + 2), f32)
    for j in range(cols):
        val = planes[1][:, j + 1]
        temp[j, 1:rows + 1] = val
        temp[j, temp.shape[1] - rows:] = -val[::-1]
    planes2 = cv2.split(cv2.dft(cv2.merge([temp, np.zeros_like(temp)]), flags=flag))
    return np.ascontiguousarray(planes2[1].T[1:rows + 1, 0:cols])
