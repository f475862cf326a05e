"""Image preprocessing after IBSI chapter 1 (image processing), with SimpleITK.

The order follows the IBSI image processing scheme (Zwanenburg et al. 2020, Radiology 295:328;
reference manual arXiv:1612.07003, chapter 2):

1. post-acquisition processing on the original grid: optional N4 bias-field correction (MR,
   Tustison et al. 2010), then intensity normalisation (none | zscore | reference-tissue);
2. interpolation (IBSI 2.4) onto a grid with the requested spacing, aligned on the grid centres,
   the image with nearest neighbour, trilinear or tricubic spline interpolation, the mask with
   nearest neighbour or trilinear interpolation plus a partial-volume threshold;
3. rounding of interpolated intensities to integers (IBSI 2.4, CT in HU).

Re-segmentation (range, outlier filtering, IBSI 2.5) and discretisation (fixed bin width / number,
IBSI 2.7) are pyradiomics settings, merged per modality in :mod:`acceflow.imaging.extract`, so that
pyradiomics keeps the morphological (original) and intensity (re-segmented) masks apart.

Units: spacing and positions in mm; intensities in the image's own units (CT in HU, PET in SUV,
MR arbitrary) until a normalisation changes them.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

INTERPOLATORS = {"bspline": sitk.sitkBSpline, "linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}

#: IBSI's names (and spellings users write) for the interpolators in :data:`INTERPOLATORS`.
#: SimpleITK's ``sitkBSpline`` is a cubic B-spline fitted through the samples (interpolating, with
#: the B-spline prefilter), i.e. IBSI's *tricubic spline interpolation*. IBSI's *tricubic
#: convolution* (Keys' kernel) has no SimpleITK interpolator and is not offered.
INTERPOLATOR_ALIASES = {
    "nearest_neighbour": "nearest", "nearest_neighbor": "nearest",
    "trilinear": "linear",
    "tricubic_spline": "bspline", "cubic_spline": "bspline",
}

#: Intensity normalisation methods of :func:`normalise`.
NORMALISATIONS = ("none", "zscore", "reference", "reference_zscore")


def interpolator_name(name: str) -> str:
    """Canonical interpolator name (``bspline``, ``linear`` or ``nearest``) of ``name``.

    Accepts the canonical names and IBSI's (``nearest_neighbour``, ``trilinear``,
    ``tricubic_spline``; see :data:`INTERPOLATOR_ALIASES`).

    Raises
    ------
    ValueError
        On an unknown name.
    """
    name = INTERPOLATOR_ALIASES.get(name, name)
    if name not in INTERPOLATORS:
        known = sorted(INTERPOLATORS) + sorted(INTERPOLATOR_ALIASES)
        raise ValueError(f"interpolator '{name}' unknown; use one of {known}")
    return name


def target_spacing(image: sitk.Image, spacing) -> list[float]:
    """The interpolation grid's spacing in mm: ``spacing`` with ``None`` axes taken from ``image``.

    Parameters
    ----------
    image : SimpleITK.Image
        3D image; its spacing (mm) fills the ``None`` axes.
    spacing : sequence of 3 (float or None)
        Desired spacing in mm (x, y, z); ``None`` keeps that axis' spacing (and, with
        :func:`resampled_grid`, its size and positions), as IBSI's 2D configurations A and B keep the
        slice spacing (IBSI manual chapter 5, configuration B: 2 x 2 mm in-plane, z unchanged).

    Returns
    -------
    list of 3 float (mm)

    Raises
    ------
    ValueError
        When ``spacing`` does not have one entry per image axis or a given spacing is not positive.
    """
    old = image.GetSpacing()
    if spacing is None or len(spacing) != len(old):
        raise ValueError(f"resampled spacing must be {len(old)} positive mm values (None keeps an axis), "
                         f"got {spacing}")
    out = [float(o) if s is None else float(s) for s, o in zip(spacing, old)]
    if min(out) <= 0:
        raise ValueError(f"resampled spacing must be {len(old)} positive mm values (None keeps an axis), "
                         f"got {spacing}")
    return out


def resampled_grid(image: sitk.Image, spacing) -> tuple[list[int], list[float]]:
    """Size and origin of the IBSI *align grid centers* interpolation grid over ``image``.

    Parameters
    ----------
    image : SimpleITK.Image
        3D image; its size ``n_a`` (voxels), spacing ``s_a`` (mm), origin (mm) and direction
        cosines define the original grid.
    spacing : sequence of 3 (float or None)
        Desired spacing ``s_b`` in mm (x, y, z); ``None`` on an axis keeps its spacing, size and
        positions (see :func:`target_spacing`).

    Returns
    -------
    size : list of 3 int
        ``n_b = ceil(n_a * s_a / s_b)`` per axis (IBSI 2.4, "interpolation grid dimensions"); a
        quotient within 0.001 of an integer counts as that integer, so that the float32 spacing of
        NIfTI headers (0.8 mm stored as 0.800000012) does not add a voxel.
    origin : list of 3 float
        World position (mm) of the first voxel centre: ``x_a + D (s_a (n_a - 1) - s_b (n_b - 1)) / 2``
        with ``D`` the direction cosines (IBSI 2.4, "interpolation grid position"), so that the
        centres of the original and the interpolation grid coincide. Example from the manual: a
        4 x 4 grid at 3 mm resampled to 2 mm gives a 6 x 6 grid whose origin is 0.5 mm before the
        original origin along each axis.

    Raises
    ------
    ValueError
        From :func:`target_spacing` (wrong length, non-positive spacing).
    """
    old_size = np.asarray(image.GetSize(), float)
    old_spacing = np.asarray(image.GetSpacing(), float)
    spacing = np.asarray(target_spacing(image, spacing), float)
    size = np.maximum(np.ceil(old_size * old_spacing / spacing - 1e-3), 1).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    shift = ((old_size - 1) * old_spacing - (size - 1) * spacing) / 2.0
    origin = np.asarray(image.GetOrigin(), float) + direction @ shift
    return size.tolist(), origin.tolist()


def _resampler(image: sitk.Image, spacing, reference: sitk.Image | None) -> sitk.ResampleImageFilter:
    f = sitk.ResampleImageFilter()
    if reference is not None:
        f.SetReferenceImage(reference)
        return f
    size, origin = resampled_grid(image, spacing)
    f.SetOutputSpacing(target_spacing(image, spacing))
    f.SetSize([int(s) for s in size])
    f.SetOutputOrigin(origin)
    f.SetOutputDirection(image.GetDirection())
    return f


def resample(image: sitk.Image, spacing, interpolator: str = "bspline",
             reference: sitk.Image | None = None, dtype: str = "float32") -> sitk.Image:
    """Resample an image to ``spacing`` (mm) on the IBSI grid, or onto ``reference``'s grid.

    Parameters
    ----------
    image : SimpleITK.Image
        3D image (intensities in HU, SUV or arbitrary MR units) or label mask.
    spacing : sequence of 3 (float or None), or None
        Target voxel spacing in mm (x, y, z), grid from :func:`resampled_grid`; ``None`` on an axis
        keeps that axis (IBSI's 2D configurations interpolate in-plane only); ``None`` overall (and
        no ``reference``) returns the image unchanged.
    interpolator : str
        ``nearest`` / ``nearest_neighbour`` (use it for label masks), ``linear`` / ``trilinear``,
        ``bspline`` / ``tricubic_spline`` (IBSI 2.4 interpolation algorithms).
    reference : SimpleITK.Image, optional
        Resample onto this grid instead (``spacing`` ignored).
    dtype : {"float32", "float64"}
        Pixel type of the linear / B-spline result (the input is cast to it first). ``float32``
        (default, IBSI's minimum "full precision") for the study's images; ``float64`` when the
        result is rounded next (:func:`preprocess` with ``rounding``), so that the nearest integer
        is taken of the interpolated value itself and not of its float32 approximation (a value
        of -128.500007 HU is stored as -128.5 in float32 and would round to -128, not -129).

    Returns
    -------
    SimpleITK.Image
        Nearest neighbour keeps the input's pixel type and fills points outside the original grid
        with 0; the other interpolators return ``dtype``. Points of the (ceil-sized) grid that lie
        outside the original image get the nearest boundary intensity (IBSI: pad with the
        boundary intensities).

    Raises
    ------
    ValueError
        On an unknown interpolator or dtype, or a non-positive spacing.
    """
    interpolator = interpolator_name(interpolator)
    pixel_type = {"float32": sitk.sitkFloat32, "float64": sitk.sitkFloat64}.get(dtype)
    if pixel_type is None:
        raise ValueError(f"resample dtype must be float32 or float64, got {dtype!r}")
    if reference is None and spacing is None:
        return image
    f = _resampler(image, spacing, reference)
    f.SetInterpolator(INTERPOLATORS[interpolator])
    if interpolator == "nearest":
        f.SetOutputPixelType(image.GetPixelID())
        f.SetDefaultPixelValue(0)
        return f.Execute(image)
    image = sitk.Cast(image, pixel_type)
    f.SetUseNearestNeighborExtrapolator(True)
    f.SetOutputPixelType(pixel_type)
    return f.Execute(image)


def resample_mask(mask: sitk.Image, reference: sitk.Image, interpolator: str = "nearest",
                  threshold: float = 0.5) -> sitk.Image:
    """Resample a label mask onto ``reference``'s grid (IBSI 2.4, partial volume effects in the mask).

    Parameters
    ----------
    mask : SimpleITK.Image
        Integer label mask (0 = background) on the original image's grid.
    reference : SimpleITK.Image
        The interpolated image; its grid is used.
    interpolator : {"nearest", "linear"} (or IBSI's ``nearest_neighbour``, ``trilinear``)
        ``nearest`` copies the nearest label. ``linear`` interpolates each label's indicator
        trilinearly and keeps a voxel in the label whose interpolated fraction is the largest and
        at least ``threshold`` (for a binary mask: ``R_j = 1`` if ``R_interp,j >= threshold``, IBSI's
        partial-volume threshold, commonly 0.5).
    threshold : float in (0, 1]
        Partial-volume threshold for ``linear``.

    Returns
    -------
    SimpleITK.Image
        Mask on ``reference``'s grid with the input's pixel type and labels.

    Raises
    ------
    ValueError
        On an interpolator other than nearest / linear, or a threshold outside (0, 1].
    """
    name = interpolator_name(interpolator)
    if name == "nearest":
        return resample(mask, None, "nearest", reference=reference)
    if name != "linear":
        raise ValueError(f"mask interpolator '{interpolator}' not allowed; IBSI interpolates masks with "
                         f"nearest neighbour or trilinear interpolation")
    if not 0 < threshold <= 1:
        raise ValueError(f"mask threshold must lie in (0, 1], got {threshold}")
    arr = sitk.GetArrayViewFromImage(mask)
    labels = [int(v) for v in np.unique(arr) if v != 0]
    best = np.zeros(reference.GetSize()[::-1], np.float32)
    out = np.zeros(best.shape, arr.dtype)
    for value in labels:
        indicator = sitk.Cast(mask == value, sitk.sitkFloat32)
        f = _resampler(indicator, None, reference)
        f.SetInterpolator(sitk.sitkLinear)
        f.SetDefaultPixelValue(0.0)
        f.SetOutputPixelType(sitk.sitkFloat32)
        frac = sitk.GetArrayFromImage(f.Execute(indicator))
        take = (frac >= threshold - 1e-6) & (frac > best)
        out[take] = value
        best = np.maximum(best, frac)
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(reference)
    return sitk.Cast(img, mask.GetPixelID())


def round_intensities(image: sitk.Image) -> sitk.Image:
    """Round intensities to the nearest integer (IBSI 2.4, "rounding image intensities after interpolation").

    Meant for CT in HU, which takes only integer values. The value is rounded at the input's own
    precision (a float64 image is not cast to float32 first, which could turn -128.500007 into
    -128.5), then stored as float32 (integers up to 2**24 are exact). Exact halves are rounded to
    even (numpy's ``rint``): IBSI asks for the nearest integer without naming a tie rule, and on the
    IBSI CT phantom (configurations B-E) rounding halves up instead changes no reference
    comparison (same match / mismatch for every feature and diagnostic, checked with
    :func:`acceflow.imaging.ibsi.run_ibsi_check`).

    Parameters
    ----------
    image : SimpleITK.Image

    Returns
    -------
    SimpleITK.Image
        float32 image with integer values, same grid.
    """
    arr = np.rint(sitk.GetArrayFromImage(image).astype(np.float64)).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out


def n4_correct(image: sitk.Image, shrink: int = 4, iterations=(50, 50, 50, 50),
               mask: sitk.Image | None = None) -> sitk.Image:
    """N4 bias-field correction (Tustison et al. 2010, IEEE TMI 29:1310) with SimpleITK.

    The bias field is estimated by ``sitk.N4BiasFieldCorrectionImageFilter`` on a copy shrunk by
    ``shrink`` (per axis, but never below 8 voxels) for speed, inside the foreground (Otsu
    threshold, voxels > 0), then evaluated on the full grid and divided out:
    ``corrected = image / exp(log bias field)``.

    Parameters
    ----------
    image : SimpleITK.Image
        3D MR image (arbitrary units, multiplicative bias).
    shrink : int >= 1
        Shrink factor for the estimation (SimpleITK's example uses 4).
    iterations : sequence of int
        Maximum iterations per fitting level (the number of entries is the number of levels);
        SimpleITK's default is ``(50, 50, 50, 50)``.
    mask : SimpleITK.Image, optional
        Region (non-zero) in which the field is estimated; default: the Otsu foreground.

    Returns
    -------
    SimpleITK.Image
        Corrected float32 image on the same grid.

    Raises
    ------
    ValueError
        On ``shrink`` < 1, or when the estimation region holds no positive voxels.
    """
    if int(shrink) < 1:
        raise ValueError(f"N4 shrink factor must be >= 1, got {shrink}")
    image = sitk.Cast(image, sitk.sitkFloat32)
    region = sitk.OtsuThreshold(image, 0, 1) if mask is None else sitk.Cast(mask != 0, sitk.sitkUInt8)
    region = sitk.Cast(region, sitk.sitkUInt8) * sitk.Cast(image > 0, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(region).any():
        raise ValueError("N4: no positive voxels in the foreground to estimate the bias field from")
    factors = [int(max(1, min(int(shrink), n // 8))) for n in image.GetSize()]
    small, small_region = sitk.Shrink(image, factors), sitk.Shrink(region, factors)
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations([int(i) for i in iterations])
    f.Execute(small, small_region)
    log_bias = f.GetLogBiasFieldAsImage(image)
    return sitk.Cast(image / sitk.Exp(log_bias), sitk.sitkFloat32)


def normalise(image: sitk.Image, method: str = "none", mask: sitk.Image | None = None,
              reference_label: int | None = None) -> sitk.Image:
    """Intensity normalisation.

    Parameters
    ----------
    image : SimpleITK.Image
    method : {"none", "zscore", "reference", "reference_zscore"}
        ``none`` keeps physical units (CT in HU, PET in SUV). ``zscore`` subtracts the mean and
        divides by the SD of the image's foreground (voxels above the Otsu threshold), the usual
        choice for MR whose units are arbitrary (Shinohara et al. 2014, NeuroImage Clin 6:9).
        Reference-tissue normalisation uses the voxels of ``mask == reference_label`` (e.g. muscle,
        fat or normal-appearing white matter drawn beside the lesion): ``reference`` divides by
        their mean (mean 1 inside the reference region afterwards, a ratio scale as with a
        tissue-to-reference ratio); ``reference_zscore`` subtracts their mean and divides by their
        SD (mean 0, SD 1 there; the WhiteStripe idea of Shinohara et al. 2014 with a drawn region).
    mask : SimpleITK.Image, optional
        Label mask on the image's grid; required by the reference methods.
    reference_label : int, optional
        Label of the reference tissue in ``mask``; required by the reference methods.

    Returns
    -------
    SimpleITK.Image
        float32 image on the same grid (``none`` returns the input).

    Raises
    ------
    ValueError
        On an unknown method, a constant image (zscore), a missing mask / label or an empty
        reference region, a reference mean <= 0 (``reference``) or a reference SD of 0
        (``reference_zscore``).
    """
    if method not in NORMALISATIONS:
        raise ValueError(f"normalisation '{method}' unknown; use one of {list(NORMALISATIONS)}")
    if method == "none":
        return image
    image = sitk.Cast(image, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(image)
    if method == "zscore":
        fg = sitk.GetArrayViewFromImage(sitk.OtsuThreshold(image, 0, 1)) > 0
        values = arr[fg] if fg.sum() > 10 else arr.ravel()
        sd = float(values.std())
        if sd == 0:
            raise ValueError("image is constant: z-score normalisation is undefined")
        mean = float(values.mean())
    else:
        if mask is None or reference_label is None:
            raise ValueError(f"normalisation '{method}' needs a mask holding the reference tissue and "
                             f"preprocessing.reference_label naming its label")
        ref = sitk.GetArrayViewFromImage(mask) == int(reference_label)
        if not ref.any():
            raise ValueError(f"reference-tissue label {reference_label} is absent from the mask; draw the "
                             f"reference region with that label or change preprocessing.reference_label")
        values = arr[ref]
        mean, sd = float(values.mean()), float(values.std())
        if method == "reference":
            if mean <= 0:
                raise ValueError(f"reference-tissue mean is {mean:g} (<= 0): dividing by it is undefined")
            mean, sd = 0.0, mean
        elif sd == 0:
            raise ValueError("reference tissue is constant: reference_zscore normalisation is undefined")
    out = sitk.GetImageFromArray(((arr - mean) / sd).astype(np.float32))
    out.CopyInformation(image)
    return out


def preprocess(image: sitk.Image, mask: sitk.Image | None, spacing=None, interpolator: str = "bspline",
               normalisation: str = "none", *, mask_interpolator: str = "nearest", mask_threshold: float = 0.5,
               rounding: bool = False, n4: bool = False, n4_shrink: int = 4,
               n4_iterations=(50, 50, 50, 50),
               reference_label: int | None = None) -> tuple[sitk.Image, sitk.Image | None]:
    """One scan through IBSI's image processing up to re-segmentation (see the module docstring).

    Order: N4 (optional) -> normalisation -> interpolation of image and mask onto one grid ->
    rounding (optional).

    Parameters
    ----------
    image : SimpleITK.Image
        3D image in HU (CT), SUV (PET) or arbitrary units (MR).
    mask : SimpleITK.Image or None
        Label mask on the image's grid (checked at ingest); may hold a reference-tissue label.
    spacing : sequence of 3 (float or None), or None
        Resampled spacing in mm; None on an axis keeps that axis, None overall the original grid.
    interpolator : str
        Image interpolator, see :func:`resample` (IBSI names accepted).
    normalisation : str
        See :func:`normalise`.
    mask_interpolator, mask_threshold :
        See :func:`resample_mask` (``nearest`` by default; IBSI's benchmark uses trilinear with 0.5).
    rounding : bool
        Round interpolated intensities to integers with :func:`round_intensities` (IBSI, for CT
        in HU).
    n4, n4_shrink, n4_iterations :
        N4 bias-field correction before normalisation, see :func:`n4_correct`.
    reference_label : int, optional
        Reference-tissue label in ``mask`` for the reference normalisations.

    Returns
    -------
    (image, mask) : SimpleITK.Image pair on the same grid (mask None when none was given).

    Raises
    ------
    ValueError
        From the steps above, and when rounding is asked for a normalised image (rounding z-scores
        or ratios to integers would destroy them).
    """
    if rounding and normalisation != "none":
        raise ValueError(f"rounding intensities to integers is meant for CT in HU; it cannot be combined with "
                         f"normalisation '{normalisation}'")
    if n4:
        image = n4_correct(image, shrink=n4_shrink, iterations=n4_iterations)
    image = normalise(image, normalisation, mask=mask, reference_label=reference_label)
    # rounding: interpolate at float64 and round once (see resample's dtype); float32 afterwards
    out_image = resample(image, spacing, interpolator, dtype="float64" if rounding else "float32")
    if rounding:
        out_image = round_intensities(out_image)
    out_mask = None
    if mask is not None:
        out_mask = resample_mask(mask, out_image, mask_interpolator, mask_threshold)
    return out_image, out_mask

