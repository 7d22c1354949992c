"""Image corruptions at five severities, and a dataset-shift report for any classifier.

The corruptions follow ImageNet-C and CIFAR-10-C (Hendrycks & Dietterich 2019), the
benchmark behind Ovadia et al. (2019) and the book's chapter 8, rewritten with numpy
and scipy only (no download, no image library).  Each is a function
``corruption(images, severity, random_state=None, *, image_shape=None,
value_range=None)`` returning corrupted images of the input's shape and dtype;
:data:`CORRUPTIONS` maps their names to them and :func:`corrupt` calls one by name.
:func:`dataset_shift_report` evaluates a fitted classifier on every corruption and
severity; :func:`skbdl.plotting.plot_dataset_shift` draws the result.

Conventions
-----------
* Images are ``(n, h, w)``, channel-first ``(n, c, h, w)`` as in torch, or flat rows
  ``(n, h * w)`` / ``(n, c * h * w)`` with ``image_shape=(h, w)`` or ``(c, h, w)``
  (flat square single-channel images, such as scikit-learn's 8 x 8 digits, need no
  ``image_shape``).  The output has the input's shape and dtype (integer images are
  rounded); the input is never modified.
* ``value_range=(low, high)`` is the data's intensity range (``(0, 16)`` for
  ``load_digits``, ``(0, 255)`` for 8-bit images); ``None`` takes the smallest and
  largest value of the images given.  Corruptions work on intensities rescaled to
  ``[0, 1]`` and their results are clipped to the range, so the constants below are in
  units of the range.  Pass the range explicitly when corrupting several batches, so
  that all use the same one.
* Severity is an integer from 1 (mild) to 5 (strong); the effect grows with it.  A
  random corruption given the same ``random_state`` at every severity reuses its
  random draws, scaled (Gaussian and speckle noise, the values hit by impulse noise,
  displacement fields, directions of rotation; only Poisson counts are drawn afresh),
  so the severities of one image differ by the corruption's strength only.
* Geometric constants (blur widths, displacements) are in pixels of a 32-pixel image,
  as in CIFAR-10-C, and grow in proportion on larger images (never shrink below
  that, so they act on 8 x 8 digits too).

References
----------
D. Hendrycks and T. Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019.

Y. Ovadia, E. Fertig, J. Ren, Z. Nado, D. Sculley, S. Nowozin, J. V. Dillon,
B. Lakshminarayanan and J. Snoek, "Can You Trust Your Model's Uncertainty? Evaluating
Predictive Uncertainty Under Dataset Shift", NeurIPS 2019.
"""

import math
import numbers

import numpy as np
from scipy import fft, ndimage
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import metrics
from .uncertainty import entropy

__all__ = [
    "CORRUPTIONS",
    "brightness",
    "contrast",
    "corrupt",
    "dataset_shift_report",
    "defocus_blur",
    "elastic_transform",
    "gaussian_blur",
    "gaussian_noise",
    "impulse_noise",
    "jpeg_compression",
    "low_resolution",
    "rotate",
    "shot_noise",
    "speckle_noise",
]

#: Severities accepted by every corruption.
SEVERITIES = (1, 2, 3, 4, 5)

#: Side (pixels) of the images the geometric constants are given for (CIFAR-10-C).
_REFERENCE_SIDE = 32

# The standard JPEG luminance quantisation table (ITU T.81, Annex K, table K.1).
_JPEG_TABLE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)


# ----------------------------------------------------------------- the plumbing
def _check_severity(severity):
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise TypeError(f"severity must be an integer from 1 to 5; got {severity!r}.")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5; got {severity}.")
    return int(severity)


def _image_shape(n_features, image_shape):
    """``(c, h, w)`` of flat rows of ``n_features`` values."""
    if image_shape is None:
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(
                f"Flat images of {n_features} values are not square; pass image_shape=(h, w) "
                "or (c, h, w)."
            )
        return (1, side, side)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (h, w) or (c, h, w); got {image_shape!r}.")
    if math.prod(shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {math.prod(shape)} values, but the images "
            f"have {n_features} values per row."
        )
    return shape


def _to_unit(images, image_shape, value_range):
    """``(x, low, high)``: images as a float64 ``(n, c, h, w)`` copy scaled to [0, 1]."""
    array = np.asarray(images)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"images must hold numbers; got dtype {array.dtype}.")
    if array.ndim == 2:
        shape = _image_shape(array.shape[1], image_shape)
    elif array.ndim in (3, 4):
        shape = array.shape[1:] if array.ndim == 4 else (1, *array.shape[1:])
        if image_shape is not None and _image_shape(math.prod(shape), image_shape) != shape:
            raise ValueError(
                f"image_shape={image_shape!r} does not match images of shape {array.shape}; "
                "image_shape is for flat (n, h * w) images and can be left out here."
            )
    else:
        raise ValueError(
            "images must have shape (n, h * w) (flat), (n, h, w) or (n, c, h, w); got "
            f"shape {array.shape}."
        )
    x = array.astype(np.float64).reshape(len(array), *shape)
    if not np.all(np.isfinite(x)):
        raise ValueError("images contain NaN or infinity.")
    if value_range is None:
        low, high = (float(x.min()), float(x.max())) if x.size else (0.0, 1.0)
        high = high if high > low else low + 1.0  # constant images
    else:
        low, high = (float(v) for v in value_range)
        if not high > low:
            raise ValueError(f"value_range must be (low, high) with low < high; got {value_range}.")
    return (x - low) / (high - low), low, high


def _from_unit(x, like, low, high):
    """Undo :func:`_to_unit`: clip to the range, restore shape and dtype."""
    like = np.asarray(like)
    out = np.clip(x, 0.0, 1.0) * (high - low) + low
    if np.issubdtype(like.dtype, np.integer):
        out = np.rint(out)
    return out.reshape(like.shape).astype(like.dtype, copy=False)


def _geometric_scale(x):
    """Factor on pixel constants: 1 up to 32-pixel images, proportional above."""
    return max(1.0, min(x.shape[-2:]) / _REFERENCE_SIDE)


def _apply(kernel, constants, images, severity, random_state, image_shape, value_range):
    severity = _check_severity(severity)
    x, low, high = _to_unit(images, image_shape, value_range)
    rng = check_random_state(random_state)
    return _from_unit(kernel(x, constants[severity - 1], rng), images, low, high)


_COMMON_PARAMETERS = """    images : array-like of shape (n, h, w), (n, c, h, w) or (n, c * h * w)
        Images, channel-first; flat rows need ``image_shape`` unless square.
    severity : int in 1..5
        Strength of the corruption.
    random_state : int, RandomState instance or None, default=None
        Seed of the random draws (ignored by deterministic corruptions).
    image_shape : tuple of int, default=None
        ``(h, w)`` or ``(c, h, w)`` of flat images; ``None`` for square ones.
    value_range : tuple of float, default=None
        ``(low, high)`` intensity range of the data, e.g. ``(0, 16)`` for
        ``load_digits``; ``None`` takes the images' own minimum and maximum.
        Results are clipped to it.

    Returns
    -------
    corrupted : ndarray
        The corrupted images, of the input's shape and dtype."""


def _example(name):
    return f"""
    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skbdl.shift import {name}
    >>> X = load_digits().data[:10]              # flat 8 x 8 images, values 0..16
    >>> X_shifted = {name}(X, severity=3, random_state=0, value_range=(0, 16))
    >>> X_shifted.shape, X_shifted.dtype, bool(X_shifted.min() >= 0 and X_shifted.max() <= 16)
    ((10, 64), dtype('float64'), True)
    """


def _documented(function):
    function.__doc__ = function.__doc__.replace(
        "%(parameters)s", _COMMON_PARAMETERS.strip("\n")[4:]
    ) + _example(function.__name__)
    return function


# ------------------------------------------------------------------------ noise
_GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)
_SHOT_NOISE = (60.0, 25.0, 12.0, 5.0, 3.0)
_IMPULSE_NOISE = (0.03, 0.06, 0.09, 0.17, 0.27)
_SPECKLE_NOISE = (0.15, 0.2, 0.35, 0.45, 0.6)


@_documented
def gaussian_noise(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Additive Gaussian noise (sensor noise in low light).

    ``x + sigma * eps`` with ``eps ~ N(0, 1)`` per pixel and ``sigma`` = 0.08, 0.12,
    0.18, 0.26, 0.38 of the value range at severities 1 to 5 (ImageNet-C).

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, sigma, rng):
        return x + sigma * rng.standard_normal(x.shape)

    return _apply(kernel, _GAUSSIAN_NOISE, images, severity, random_state, image_shape, value_range)


@_documented
def shot_noise(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Poisson (photon-counting) noise, stronger where the image is bright.

    ``Poisson(lam * x) / lam`` with ``lam`` = 60, 25, 12, 5, 3 photons for full
    intensity at severities 1 to 5 (ImageNet-C).

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, lam, rng):
        return rng.poisson(np.clip(x, 0, 1) * lam) / lam

    return _apply(kernel, _SHOT_NOISE, images, severity, random_state, image_shape, value_range)


@_documented
def impulse_noise(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Salt-and-pepper noise: a fraction of the pixel values set to the range's ends.

    Fractions 0.03, 0.06, 0.09, 0.17, 0.27 at severities 1 to 5 (ImageNet-C), half
    to the low end and half to the high end; each channel value independently.  With
    the same ``random_state`` the pixels hit at one severity are also hit at the next.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, amount, rng):
        hit = rng.uniform(size=x.shape) < amount
        salt = rng.uniform(size=x.shape) < 0.5
        return np.where(hit, salt.astype(np.float64), x)

    return _apply(kernel, _IMPULSE_NOISE, images, severity, random_state, image_shape, value_range)


@_documented
def speckle_noise(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Multiplicative Gaussian noise: ``x + x * sigma * eps``.

    ``sigma`` = 0.15, 0.2, 0.35, 0.45, 0.6 at severities 1 to 5 (ImageNet-C); dark
    pixels (at the low end of the range) stay unchanged.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, sigma, rng):
        return x + x * sigma * rng.standard_normal(x.shape)

    return _apply(kernel, _SPECKLE_NOISE, images, severity, random_state, image_shape, value_range)


# ------------------------------------------------------------------------- blur
_GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)
_DEFOCUS_BLUR = (0.6, 0.8, 1.0, 1.5, 2.0)


@_documented
def gaussian_blur(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Gaussian blur of each channel (an out-of-focus or moving camera, smoothed).

    Standard deviations 0.4, 0.6, 0.7, 0.8, 1.0 pixels at severities 1 to 5
    (CIFAR-10-C; proportionally more on images larger than 32 pixels), edges
    extended by their nearest pixel.  Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, sigma, rng):
        sigma = sigma * _geometric_scale(x)
        return ndimage.gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")

    return _apply(kernel, _GAUSSIAN_BLUR, images, severity, random_state, image_shape, value_range)


def _disk_kernel(radius, oversampling=9):
    """Normalised kernel: the area of each pixel covered by a disk of ``radius`` pixels."""
    half = math.ceil(radius - 0.5)
    size = 2 * half + 1
    offsets = (np.arange(size * oversampling) + 0.5) / oversampling - size / 2
    inside = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    kernel = inside.reshape(size, oversampling, size, oversampling).mean(axis=(1, 3))
    return kernel / kernel.sum()


@_documented
def defocus_blur(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Defocus blur: each channel averaged over a disk (the aperture of a lens).

    Disk radii 0.6, 0.8, 1.0, 1.5, 2.0 pixels at severities 1 to 5 (proportionally
    more on images larger than 32 pixels); the disk's partial coverage of the
    pixels it crosses is counted, so that small radii still blur.  Edges are
    reflected.  Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, radius, rng):
        disk = _disk_kernel(radius * _geometric_scale(x))
        return ndimage.convolve(x, disk[None, None], mode="reflect")

    return _apply(kernel, _DEFOCUS_BLUR, images, severity, random_state, image_shape, value_range)


# -------------------------------------------------------------------- intensity
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)


@_documented
def contrast(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Lower contrast: every image pulled towards its own mean intensity.

    ``mean + c * (x - mean)`` with ``c`` = 0.4, 0.3, 0.2, 0.1, 0.05 at severities 1
    to 5 (ImageNet-C), the mean over each image's pixels and channels.
    Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, factor, rng):
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        return mean + factor * (x - mean)

    return _apply(kernel, _CONTRAST, images, severity, random_state, image_shape, value_range)


@_documented
def brightness(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Brighter images: 0.1, 0.2, 0.3, 0.4, 0.5 of the range added at severities 1 to 5.

    ImageNet-C's constants, added to every channel (rather than to the value channel
    of HSV), then clipped at the top of the range, where bright pixels saturate.
    Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, shift, rng):
        return x + shift

    return _apply(kernel, _BRIGHTNESS, images, severity, random_state, image_shape, value_range)


# ------------------------------------------------------------------ resolution
_RESOLUTION = (0.9, 0.75, 0.6, 0.45, 0.3)
_JPEG_QUALITY = (25, 18, 15, 10, 7)


def _area_matrix(n_in, n_out):
    """``(n_out, n_in)`` matrix averaging input pixels by their overlap with each output pixel."""
    edges_out = np.linspace(0, n_in, n_out + 1)
    low = np.maximum(edges_out[:-1, None], np.arange(n_in)[None, :])
    high = np.minimum(edges_out[1:, None], np.arange(1, n_in + 1)[None, :])
    overlap = np.clip(high - low, 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _linear_matrix(n_in, n_out):
    """``(n_out, n_in)`` matrix of linear interpolation at the output pixels' centres."""
    centres = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), low), 1 - (centres - low))
    np.add.at(matrix, (np.arange(n_out), high), centres - low)
    return matrix


@_documented
def low_resolution(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Lower resolution: area-averaged down to a fraction of the side, then enlarged.

    Each side shrinks to ``round(factor * side)`` pixels (at least 1) with
    ``factor`` = 0.9, 0.75, 0.6, 0.45, 0.3 at severities 1 to 5 (an 8-pixel digit
    becomes 7, 6, 5, 4, 2 pixels wide), and is enlarged back by bilinear
    interpolation.  ImageNet-C's *pixelate* enlarges by nearest neighbour instead
    (blocky pixels); on images as small as 8 x 8 digits that changed the images
    *less* at some stronger reductions (to 4 pixels) than at weaker ones (to 5 or 6),
    because of how the blocks fall on the pixel grid, so the smooth enlargement is
    used: its change grows with the severity.  Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, factor, rng):
        h, w = x.shape[-2:]
        small_h, small_w = max(1, round(factor * h)), max(1, round(factor * w))
        small = np.einsum("ih,nchw,jw->ncij", _area_matrix(h, small_h), x, _area_matrix(w, small_w))
        return np.einsum(
            "ih,nchw,jw->ncij", _linear_matrix(small_h, h), small, _linear_matrix(small_w, w)
        )

    return _apply(kernel, _RESOLUTION, images, severity, random_state, image_shape, value_range)


def _jpeg_table(quality):
    """The luminance table scaled for a quality in 1..100 (the IJG convention)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.maximum(np.floor((_JPEG_TABLE * scale + 50) / 100), 1.0)


@_documented
def jpeg_compression(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """JPEG's lossy step: 8 x 8 block DCT coefficients rounded to a quantisation table.

    Intensities are mapped to 0..255, each channel is cut into 8 x 8 blocks (edges
    padded by repetition), each block's orthonormal 2-D DCT-II (the JPEG transform)
    is divided by the standard luminance table scaled to qualities 25, 18, 15, 10,
    7 at severities 1 to 5 (ImageNet-C's), rounded, multiplied back and inverted.
    There is no chroma subsampling or entropy coding (they lose nothing more or are
    lossless), so this is JPEG's loss applied to every channel.  Deterministic.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, quality, rng):
        n, c, h, w = x.shape
        pad_h, pad_w = -h % 8, -w % 8
        padded = np.pad(x * 255 - 128, ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        hb, wb = padded.shape[2] // 8, padded.shape[3] // 8
        blocks = padded.reshape(n, c, hb, 8, wb, 8)
        coefficients = fft.dctn(blocks, type=2, axes=(3, 5), norm="ortho")
        table = _jpeg_table(quality)[:, None, :]
        quantised = np.round(coefficients / table) * table
        restored = fft.idctn(quantised, type=2, axes=(3, 5), norm="ortho")
        restored = restored.reshape(n, c, hb * 8, wb * 8)[:, :, :h, :w]
        return (restored + 128) / 255

    return _apply(kernel, _JPEG_QUALITY, images, severity, random_state, image_shape, value_range)


# ------------------------------------------------------------------ geometry
_ELASTIC = (0.25, 0.5, 0.75, 1.0, 1.25)
_ROTATE = (6.0, 12.0, 18.0, 24.0, 30.0)


def _warp(x, rows, cols):
    """Resample every channel of each image at pixel coordinates ``rows, cols``
    of shape (n, h, w) (bilinear, edges extended by their nearest pixel)."""
    n, c, h, w = x.shape
    shape = (n, c, h, w)
    coordinates = np.stack(
        [
            np.broadcast_to(np.arange(n)[:, None, None, None], shape),
            np.broadcast_to(np.arange(c)[None, :, None, None], shape),
            np.broadcast_to(rows[:, None], shape),
            np.broadcast_to(cols[:, None], shape),
        ]
    )
    return ndimage.map_coordinates(x, coordinates, order=1, mode="nearest")


@_documented
def elastic_transform(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Elastic distortion: pixels moved by a smooth random displacement field.

    As in Simard et al. (2003): displacements drawn uniformly per pixel, smoothed by
    a Gaussian of ``side / 8`` pixels, and rescaled so that their root mean square
    is 0.25, 0.5, 0.75, 1.0, 1.25 pixels at severities 1 to 5 (proportionally more
    on images larger than 32 pixels); the image is resampled bilinearly (edges
    extended).  One field per image, shared by its channels; with the same
    ``random_state`` every severity uses the same field, scaled.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, magnitude, rng):
        n, _, h, w = x.shape
        smoothing = max(1.0, min(h, w) / 8)
        field = rng.uniform(-1, 1, size=(2, n, h, w))
        field = ndimage.gaussian_filter(field, sigma=(0, 0, smoothing, smoothing), mode="reflect")
        rms = np.sqrt(np.mean(field**2, axis=(0, 2, 3), keepdims=True))
        field *= magnitude * _geometric_scale(x) / np.maximum(rms, 1e-12)
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        return _warp(x, rows + field[0], cols + field[1])

    return _apply(kernel, _ELASTIC, images, severity, random_state, image_shape, value_range)


@_documented
def rotate(images, severity, random_state=None, *, image_shape=None, value_range=None):
    """Rotation about the image centre by 6, 12, 18, 24 or 30 degrees, either way.

    The direction is drawn per image (the same at every severity for the same
    ``random_state``); bilinear resampling, edges extended by their nearest pixel.

    Parameters
    ----------
    %(parameters)s
    """

    def kernel(x, degrees, rng):
        n, _, h, w = x.shape
        angle = np.deg2rad(degrees) * rng.choice([-1.0, 1.0], size=n)[:, None, None]
        rows, cols = np.meshgrid(
            np.arange(h) - (h - 1) / 2, np.arange(w) - (w - 1) / 2, indexing="ij"
        )
        cos, sin = np.cos(angle), np.sin(angle)
        source_rows = cos * rows - sin * cols + (h - 1) / 2
        source_cols = sin * rows + cos * cols + (w - 1) / 2
        return _warp(x, source_rows, source_cols)

    return _apply(kernel, _ROTATE, images, severity, random_state, image_shape, value_range)


#: Every corruption by name, in the order the report lists them.
CORRUPTIONS = {
    function.__name__: function
    for function in (
        gaussian_noise,
        shot_noise,
        impulse_noise,
        speckle_noise,
        gaussian_blur,
        defocus_blur,
        contrast,
        brightness,
        low_resolution,
        jpeg_compression,
        elastic_transform,
        rotate,
    )
}


def corrupt(images, kind, severity, *, image_shape=None, value_range=None, random_state=None):
    """Apply the corruption called ``kind`` at ``severity``.

    Parameters
    ----------
    images : array-like of shape (n, h, w), (n, c, h, w) or (n, c * h * w)
        Images, channel-first; flat rows need ``image_shape`` unless square.
    kind : str
        A key of :data:`CORRUPTIONS`: 'gaussian_noise', 'shot_noise',
        'impulse_noise', 'speckle_noise', 'gaussian_blur', 'defocus_blur',
        'contrast', 'brightness', 'low_resolution', 'jpeg_compression',
        'elastic_transform' or 'rotate'.
    severity : int in 1..5
        Strength of the corruption.
    image_shape : tuple of int, default=None
        ``(h, w)`` or ``(c, h, w)`` of flat images; ``None`` for square ones.
    value_range : tuple of float, default=None
        ``(low, high)`` intensity range; ``None`` takes the images' own extremes.
    random_state : int, RandomState instance or None, default=None
        Seed of the random draws.

    Returns
    -------
    corrupted : ndarray
        The corrupted images, of the input's shape and dtype.

    Examples
    --------
    >>> import numpy as np
    >>> from skbdl.shift import corrupt
    >>> images = np.random.RandomState(0).uniform(size=(4, 3, 16, 16)).astype(np.float32)
    >>> out = corrupt(images, "contrast", 5, value_range=(0, 1))
    >>> out.shape, out.dtype, bool(out.std() < images.std())
    ((4, 3, 16, 16), dtype('float32'), True)
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {kind!r}; choose one of {sorted(CORRUPTIONS)}.")
    return CORRUPTIONS[kind](
        images, severity, random_state, image_shape=image_shape, value_range=value_range
    )


# ---------------------------------------------------------------------- report
def _predictions(estimator, X):
    """``(proba, mean predictive entropy, mean epistemic uncertainty or NaN)``."""
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if hasattr(final, "predict_uncertainty"):
        if isinstance(estimator, Pipeline):
            X = estimator[:-1].transform(X)
        u = final.predict_uncertainty(X)
        return u.proba, float(np.mean(u.total)), float(np.mean(u.epistemic))
    proba = estimator.predict_proba(X)
    return proba, float(np.mean(entropy(proba))), np.nan


def dataset_shift_report(
    estimator,
    X,
    y,
    corruptions=None,
    severities=SEVERITIES,
    *,
    image_shape=None,
    value_range=None,
    n_bins=15,
    random_state=None,
):
    """Accuracy, NLL, calibration and uncertainty of a fitted classifier under corruption.

    The experiment of Ovadia et al. (2019) and of the book's chapter 8: the test
    images are corrupted by every corruption at every severity and the fitted
    classifier is scored on each shifted copy.  A model that knows it is failing
    loses accuracy while its ECE stays low and its uncertainty grows.

    Parameters
    ----------
    estimator : fitted classifier
        Any classifier with ``predict_proba`` and ``classes_`` (a ``Pipeline``
        too), fitted on images of the same layout as ``X``.  If it (or a
        pipeline's last step) has ``predict_uncertainty``, as skbdl's classifiers
        do, its probabilities and uncertainty decomposition are used.
    X : array-like of shape (n, h, w), (n, c, h, w) or (n, c * h * w)
        Clean test images, in the layout the estimator takes; corrupted copies keep
        it (a DataFrame of flat images stays a DataFrame with its columns).
    y : array-like of shape (n,)
        Their labels.
    corruptions : list of str, default=None
        Names from :data:`CORRUPTIONS`; ``None`` means all of them.
    severities : sequence of int, default=(1, 2, 3, 4, 5)
        Severities to evaluate; the clean images are always evaluated too (as
        severity 0).
    image_shape : tuple of int, default=None
        ``(h, w)`` or ``(c, h, w)`` of flat images; ``None`` for square ones.
    value_range : tuple of float, default=None
        ``(low, high)`` intensity range of the data; ``None`` takes the minimum and
        maximum of ``X`` (once, for every corruption).
    n_bins : int, default=15
        Bins of the expected calibration error.
    random_state : int, RandomState instance or None, default=None
        Seed of the corruptions' random draws.  Each corruption gets one seed, used
        at all its severities (so they differ in strength only).

    Returns
    -------
    report : pandas.DataFrame
        One row for the clean images (corruption ``'clean'``, severity 0), then one
        per corruption and severity, with columns ``corruption``, ``severity``,
        ``accuracy``, ``nll`` (:func:`skbdl.metrics.categorical_nll`), ``ece``
        (:func:`skbdl.metrics.expected_calibration_error`), ``brier``
        (:func:`skbdl.metrics.brier_score`), ``entropy`` (mean predictive entropy,
        nats) and ``epistemic`` (mean mutual information, nats; NaN for an
        estimator without ``predict_uncertainty``).

    See Also
    --------
    skbdl.plotting.plot_dataset_shift : Draws the report.

    References
    ----------
    Y. Ovadia et al., "Can You Trust Your Model's Uncertainty? Evaluating Predictive
    Uncertainty Under Dataset Shift", NeurIPS 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import LogisticRegression
    >>> from skbdl.shift import dataset_shift_report
    >>> X, y = load_digits(return_X_y=True)
    >>> model = LogisticRegression(max_iter=2000).fit(X[:1000], y[:1000])
    >>> report = dataset_shift_report(model, X[1000:], y[1000:], ["gaussian_noise", "rotate"],
    ...                               severities=(1, 5), value_range=(0, 16), random_state=0)
    >>> report[["corruption", "severity"]].values.tolist()
    [['clean', 0], ['gaussian_noise', 1], ['gaussian_noise', 5], ['rotate', 1], ['rotate', 5]]
    >>> bool(report.accuracy.iloc[0] > report.accuracy.iloc[-1])
    True
    """
    try:
        import pandas as pd
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "dataset_shift_report returns a pandas DataFrame: pip install pandas."
        ) from error
    check_is_fitted(estimator)
    if not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"{type(estimator).__name__} has no predict_proba; dataset_shift_report needs "
            "a probabilistic classifier."
        )
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"Unknown corruptions {unknown}; choose from {sorted(CORRUPTIONS)}.")
    severities = [_check_severity(s) for s in severities]
    frame = X if hasattr(X, "columns") and hasattr(X, "iloc") else None  # a DataFrame
    X = np.asarray(X)
    y = np.asarray(y)
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} images but y has {len(y)} labels.")
    _, low, high = _to_unit(X, image_shape, value_range)
    classes = estimator.classes_
    rng = check_random_state(random_state)
    seeds = {name: int(rng.randint(np.iinfo(np.int32).max)) for name in names}

    def row(name, severity, images):
        proba, mean_entropy, epistemic = _predictions(estimator, images)
        return {
            "corruption": name,
            "severity": severity,
            "accuracy": float(np.mean(classes[np.argmax(proba, axis=1)] == y)),
            "nll": metrics.categorical_nll(y, proba, classes=classes),
            "ece": metrics.expected_calibration_error(y, proba, n_bins=n_bins, classes=classes),
            "brier": metrics.brier_score(y, proba, classes=classes),
            "entropy": mean_entropy,
            "epistemic": epistemic,
        }

    rows = [row("clean", 0, X if frame is None else frame)]
    for name in names:
        for severity in severities:
            shifted = CORRUPTIONS[name](
                X, severity, seeds[name], image_shape=image_shape, value_range=(low, high)
            )
            if frame is not None:  # keep the feature names the estimator was fitted with
                shifted = pd.DataFrame(shifted, index=frame.index, columns=frame.columns)
            rows.append(row(name, severity, shifted))
    return pd.DataFrame(rows)
