"""Synthetic multi-site CT cohort with known truth (the built-in demo).

The default workflow configuration runs on this cohort, so a fresh machine needs no data.
Everything is generated from numpy's :class:`numpy.random.Generator` seeded from ``seed``; the
images are written with SimpleITK. Nothing here imports torch, scipy or snakemake. The default
cohort (220 cases, 240 scans, 20 second-reader masks) is written in a few seconds.

Quick start
-----------
>>> from acceflow.demo import make_demo_cohort                          # doctest: +SKIP
>>> paths = make_demo_cohort("data/demo", seed=42)                       # doctest: +SKIP
>>> paths["manifest"]                                                    # doctest: +SKIP
PosixPath('data/demo/manifest.tsv')

or from the shell: ``python -m acceflow.demo data/demo --seed 42``.

Cohort
------
Three sites (the ``cohort`` column). Cases are numbered ``demo_0001``, ``demo_0002``, ... across
the sites in this order: ``site_A`` (training, ``n_train`` cases), ``site_B`` and ``site_C``
(external, ``n_external = (n_B, n_C)`` cases). Every site samples the same population (same
distribution of the latent risk and the clinical variables); the sites differ only as scanners
do:

======  ===================  ==============  ========  =========  =========  =======
site    voxel spacing (mm)   grid (default)  noise SD  PSF sigma  offset     scale
                                             (HU)      (mm)       (HU)
======  ===================  ==============  ========  =========  =========  =======
site_A  1.0 x 1.0 x 2.0      40 x 40 x 20    10        0.6        0          1.00
site_B  0.8 x 0.8 x 2.5      50 x 50 x 16    13        0.4        +6         1.05
site_C  1.2 x 1.2 x 3.0      33 x 33 x 13    8         0.9        -5         0.95
======  ===================  ==============  ========  =========  =========  =======

``image_size`` is site A's grid (x, y, z voxels); the field of view ``image_size * (1, 1, 2)``
mm (40 x 40 x 40 mm by default) is kept at every site, and each site's grid is that field of view
divided by its spacing, rounded. The table is :data:`SITES`. The physical centre of every grid
is the origin (0, 0, 0) mm; the direction cosines are the identity.

Image model
-----------
The scene is a continuous function of physical position (mm), so a lesion looks the same at
every spacing. In "true" HU::

    scene(x) = background(x) + lesion(x) * (contrast + texture_sd * texture(x - c))
    background(x) = 40 + 8 * B(x)                      soft tissue with smooth structure

``B`` and ``texture`` are stationary Gaussian random fields of unit variance (random Fourier
features; Gaussian correlation with length 10 mm and 1.5 mm), drawn once per case. ``lesion`` is
the indicator of an irregular star-shaped blob around a centre ``c`` (within 1.5 mm of the
field-of-view centre) whose radius in direction ``u`` is ``R * (1 + irregularity * f(u))``,
``f`` a standardised sum of 8 random von Mises-Fisher bumps on the sphere (clipped to
``[0.6 R, 1.4 R]`` and so that the lesion stays at least 3 mm inside the field of view). The
scanner then samples the scene: each voxel averages 3 sub-slice samples across its slice
thickness, the volume is blurred by a Gaussian PSF (sigma in mm, :data:`SITES`), white Gaussian
noise is added (the per-scan noise: its SD is the site's noise SD times ``exp(0.10 * N(0, 1))``
drawn per scan, as dose and patient habitus vary, and its realisation is new on every scan),
and the site's intensity transform
``HU = scale * HU_true + offset`` is applied; images are stored as int16 HU. The mask
(uint8, 1 = lesion, 0 = background, same geometry as the image) is the lesion indicator at the
voxel centres, i.e. a perfect first reader.

Latent risk and its imaging phenotype
-------------------------------------
Each case has a latent risk ``z ~ N(0, 1)``. With ``e_*`` independent standard normals:

=========================  ===============================================  =====================
factor                     definition                                        truth.tsv column
=========================  ===============================================  =====================
radius R (mm)              ``8.5 + 1.3 z + 0.7 e_r``, clipped to [5, 12.5]  lesion_radius_mm
mean contrast (HU)         ``25 + 8 z + 5 e_c``, clipped to [5, 60]         lesion_contrast_hu
texture amplitude (HU SD)  ``12 + 4 z + 3 e_t``, clipped to [3, 30]         texture_sd_hu
shape irregularity         ``0.10 + 0.04 z + 0.03 e_i``, clipped [0.02,     lesion_irregularity
                           0.25]
=========================  ===============================================  =====================

The values in ``truth.tsv`` are the generative ones, in "true" HU, before the site's intensity
transform, PSF and noise.

Outcomes and clinical covariates
--------------------------------
* Binary: ``true_probability = sigmoid(-1.0 + 1.4 z)`` (prevalence about 0.32; the AUC of the
  true probability is about 0.80, the ceiling any model can reach); ``outcome ~ Bernoulli(p)``.
* Survival: event time exponential with hazard ``h0 * exp(0.9 z)``, ``h0 = ln 2 / 1080`` per day
  (median event time about 1000 days over the population); independent censoring time
  ``Uniform(0, 3650)`` days; ``time = ceil(min(T, C))`` days (>= 1), ``event = 1`` if the event
  was observed (about 60 % events).
* ``age`` (years, integer): ``63 + 3 z + N(0, 9)``, clipped to [35, 90] (weakly related to z).
* ``sex`` (0/1, unrelated to z, P(1) = 0.5).
* ``lesion_grade`` (1-3): ``g = 0.6 z + 0.8 e_g``; 1 if ``g < -0.5``, 3 if ``g > 0.6``, else 2
  (moderately related to z).

Reproducibility designs
-----------------------
* Test-retest: the first ``n_retest`` site A cases get a second scan (``repeat`` = ``scan2``;
  first scan ``scan1``): the same patient scene (same lesion shape, size, contrast, texture field
  and background) moved by a random sub-voxel translation (uniform within +-half a voxel per
  axis), with a new noise level and realisation. Its mask is the same lesion at the translated
  position.
* Inter-reader: the last ``n_reader`` site A cases get a second reader's mask on the first scan's
  image (``repeat`` = ``reader2``; first reader ``reader1`` = the scan1 mask). The boundary is
  perturbed by about one voxel: where a smooth random field (correlation length 6 mm) is high
  the mask is dilated in-plane by one voxel, where it is low it is eroded in-plane by one voxel,
  elsewhere it is unchanged (readers contour slice by slice).

Stable by construction
----------------------
What a feature depends on decides whether it can be reproducible:

=====================  =========================  =========================================
generative factor      same on a rescan?          linked to risk z?
=====================  =========================  =========================================
lesion size            yes                        yes (radius)
lesion shape           yes                        yes (irregularity)
mean contrast          yes                        yes
texture field          yes (same realisation)     yes (amplitude ``texture_sd_hu``)
background structure   yes                        no
patient position       no (sub-voxel shift)       no
scan noise             no (new level, new noise)  no
=====================  =========================  =========================================

:data:`STABLE_FACTORS` and :data:`UNSTABLE_FACTORS` list these names. Shape and first-order
mean/volume features should have a high test-retest ICC; fine-texture features that mostly
measure the white noise (and differ between sites through the noise SD and PSF) should not.

What to expect (seed 42, default cohort)
----------------------------------------
Measured with pyradiomics (binWidth 10 HU, resampled to 1 x 1 x 1 mm, firstorder + shape +
glcm) on the default cohort, seed 42; other seeds give similar figures. Spearman correlation
with z over the 100 site A scan1 cases: shape VoxelVolume +0.86, firstorder Mean +0.61,
firstorder Variance +0.82, glcm Contrast +0.66, shape Sphericity -0.54, firstorder Kurtosis
-0.06. Test-retest ICC(3,1) over the 20 pairs: VoxelVolume 1.00, Mean 1.00, Variance 0.96,
glcm JointEntropy 0.92, Sphericity 0.86, glcm Contrast 0.63, Kurtosis 0.49; 11 of 56 features
have ICC < 0.75. An L1-penalised logistic regression on all features, trained on site A, reaches
an AUC of about 0.7-0.8 on site B and site C (0.75 and 0.69 with seed 42; the true probability
reaches 0.80 and 0.90 on those cohorts); its 5-fold cross-validated AUC on site A is 0.69.
Texture features shift between sites (noise SD and PSF): the median lesion Variance is 181 HU^2
at site A, 262 at site B and 118 at site C.

Determinism
-----------
Case ``i`` (``demo_{i:04d}``) draws everything from generators seeded with
``(seed, i, stream)``: stream 0 the latent risk, outcomes and lesion factors, stream 1 the
anatomy (centre, shape, texture and background fields), stream 2 the scan noise and the retest
translation (with the scan number), stream 3 the second reader. A case's values therefore do not
depend on the order or the number of cases generated before it (its site does depend on
``n_train`` and ``n_external``). The same arguments give byte-identical tables and identical
voxel arrays.

Files written in ``out_dir``
----------------------------
* ``images/{case_id}_{repeat}.nii.gz`` (int16 HU), ``masks/{case_id}_{repeat}.nii.gz`` (uint8)
  for ``repeat`` in ``scan1`` (every case) and ``scan2`` (the retest cases), and
  ``masks/{case_id}_reader2.nii.gz`` (the reader cases).
* ``manifest.tsv``: columns :data:`MANIFEST_COLUMNS`; ``image`` / ``mask`` are relative to
  ``out_dir``; one ``scan1`` row per case plus a ``scan2`` row per retest case (outcome and
  clinical values repeated).
* ``manifest_inter_reader.tsv``: same columns; one ``reader1`` row per case (scan1 image and
  mask) plus a ``reader2`` row per reader case (scan1 image, second mask).
* ``truth.tsv``: :data:`TRUTH_COLUMNS`, one row per case.

Every file is written under a temporary name in its folder and renamed into place.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

__all__ = [
    "SITES",
    "TRAIN_SITE",
    "EXTERNAL_SITES",
    "STABLE_FACTORS",
    "UNSTABLE_FACTORS",
    "MANIFEST_COLUMNS",
    "TRUTH_COLUMNS",
    "OUTCOME_INTERCEPT",
    "OUTCOME_SLOPE",
    "HAZARD_LOG_RATIO",
    "BASELINE_HAZARD_PER_DAY",
    "CENSORING_MAX_DAYS",
    "draw_cases",
    "make_demo_cohort",
    "main",
]

# --------------------------------------------------------------------------------------------
# Design constants
# --------------------------------------------------------------------------------------------

#: Scanner settings per site: voxel spacing (x, y, z) in mm, white-noise SD in HU, Gaussian PSF
#: sigma in mm, intensity offset in HU and scale (``HU = scale * HU_true + offset``), role.
SITES: dict[str, dict] = {
    "site_A": {"spacing": (1.0, 1.0, 2.0), "noise_sd": 10.0, "psf_sigma_mm": 0.6,
               "offset": 0.0, "scale": 1.00, "role": "train"},
    "site_B": {"spacing": (0.8, 0.8, 2.5), "noise_sd": 13.0, "psf_sigma_mm": 0.4,
               "offset": 6.0, "scale": 1.05, "role": "external"},
    "site_C": {"spacing": (1.2, 1.2, 3.0), "noise_sd": 8.0, "psf_sigma_mm": 0.9,
               "offset": -5.0, "scale": 0.95, "role": "external"},
}
TRAIN_SITE = "site_A"
EXTERNAL_SITES = ("site_B", "site_C")

#: Generative factors that are identical on a rescan of the same patient.
STABLE_FACTORS = ("lesion_size", "lesion_shape", "lesion_contrast", "texture_field",
                  "background_structure")
#: Generative factors that change from scan to scan (and are not linked to risk).
UNSTABLE_FACTORS = ("patient_position", "scan_noise")

MANIFEST_COLUMNS = ("case_id", "image", "mask", "cohort", "modality", "repeat", "outcome",
                    "time", "event", "age", "sex", "lesion_grade")
TRUTH_COLUMNS = ("case_id", "cohort", "z", "true_probability", "lesion_radius_mm",
                 "lesion_contrast_hu", "texture_sd_hu", "lesion_irregularity")

# Outcome model: p = sigmoid(OUTCOME_INTERCEPT + OUTCOME_SLOPE * z).
OUTCOME_INTERCEPT = -1.0
OUTCOME_SLOPE = 1.4
# Survival: hazard BASELINE_HAZARD_PER_DAY * exp(HAZARD_LOG_RATIO * z); censoring U(0, max).
HAZARD_LOG_RATIO = 0.9
BASELINE_HAZARD_PER_DAY = math.log(2.0) / 1080.0
CENSORING_MAX_DAYS = 3650.0

# Image model (mm / HU).
_BACKGROUND_HU = 40.0
_BACKGROUND_SD_HU = 8.0
_BACKGROUND_CORR_MM = 10.0
_TEXTURE_CORR_MM = 1.5
_N_TEXTURE_MODES = 128
_N_BACKGROUND_MODES = 48
_N_SHAPE_BUMPS = 8
_SHAPE_KAPPA = 4.0
_CENTRE_JITTER_MM = 1.5
_EDGE_MARGIN_MM = 3.0
_SUBSLICE_OFFSETS = (-1.0 / 3.0, 0.0, 1.0 / 3.0)   # in units of the slice thickness
_NOISE_LEVEL_LOG_SD = 0.10      # per-scan noise SD = site noise SD * exp(0.10 * N(0, 1))
_READER_CORR_MM = 6.0
_READER_THRESHOLD = 0.35

_STREAM_CASE, _STREAM_ANATOMY, _STREAM_SCAN, _STREAM_READER = 0, 1, 2, 3


def _fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / n)
    azim = math.pi * (1.0 + 5.0 ** 0.5) * i
    return np.stack([np.cos(azim) * np.sin(polar), np.sin(azim) * np.sin(polar),
                     np.cos(polar)], axis=1)


_SPHERE = _fibonacci_sphere(512)


# --------------------------------------------------------------------------------------------
# Per-case table
# --------------------------------------------------------------------------------------------

def _case_rng(seed: int, index: int, stream: int, *extra: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), int(stream), *map(int, extra)])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _draw_case(seed: int, index: int) -> dict:
    """Latent risk, outcomes, clinical covariates and lesion factors of case ``index``."""
    rng = _case_rng(seed, index, _STREAM_CASE)
    z, e_r, e_c, e_t, e_i, e_a, e_g = rng.standard_normal(7)
    u_outcome, u_sex = rng.random(2)
    t_event = rng.exponential(1.0 / (BASELINE_HAZARD_PER_DAY * math.exp(HAZARD_LOG_RATIO * z)))
    t_censor = rng.uniform(0.0, CENSORING_MAX_DAYS)
    p = float(_sigmoid(OUTCOME_INTERCEPT + OUTCOME_SLOPE * z))
    g = 0.6 * z + 0.8 * e_g
    return {
        "case_id": f"demo_{index:04d}",
        "z": float(z),
        "true_probability": p,
        "outcome": int(u_outcome < p),
        "time": int(max(1, math.ceil(min(t_event, t_censor)))),
        "event": int(t_event <= t_censor),
        "age": int(round(min(max(63.0 + 3.0 * z + 9.0 * e_a, 35.0), 90.0))),
        "sex": int(u_sex < 0.5),
        "lesion_grade": 1 if g < -0.5 else (3 if g > 0.6 else 2),
        "lesion_radius_mm": float(np.clip(8.5 + 1.3 * z + 0.7 * e_r, 5.0, 12.5)),
        "lesion_contrast_hu": float(np.clip(25.0 + 8.0 * z + 5.0 * e_c, 5.0, 60.0)),
        "texture_sd_hu": float(np.clip(12.0 + 4.0 * z + 3.0 * e_t, 3.0, 30.0)),
        "lesion_irregularity": float(np.clip(0.10 + 0.04 * z + 0.03 * e_i, 0.02, 0.25)),
    }


def _site_counts(n_train: int, n_external) -> list[tuple[str, int]]:
    if isinstance(n_external, (int, np.integer)):
        n_external = (int(n_external), int(n_external))
    n_external = tuple(int(n) for n in n_external)
    if len(n_external) != len(EXTERNAL_SITES):
        raise ValueError(f"n_external must give {len(EXTERNAL_SITES)} counts "
                         f"({', '.join(EXTERNAL_SITES)}), got {n_external!r}")
    counts = [(TRAIN_SITE, int(n_train)), *zip(EXTERNAL_SITES, n_external)]
    if any(n < 0 for _, n in counts):
        raise ValueError(f"case counts must be >= 0, got {counts!r}")
    return counts


def draw_cases(n_train: int = 100, n_external: Sequence[int] = (60, 60),
               seed: int = 42) -> pd.DataFrame:
    """Draw the per-case table (truth, outcomes, clinical covariates) without writing images.

    Parameters
    ----------
    n_train : int
        Number of training-site (``site_A``) cases.
    n_external : sequence of two int, or int
        Number of ``site_B`` and ``site_C`` cases (an int gives both the same count).
    seed : int
        Non-negative master seed; case ``i`` uses generators seeded from ``(seed, i, stream)``.

    Returns
    -------
    pandas.DataFrame
        One row per case, in case order, with columns ``case_id``, ``cohort``, ``z`` (latent
        risk, standard normal, unitless), ``true_probability`` (probability of ``outcome`` = 1),
        ``outcome`` (0/1), ``time`` (days, integer >= 1), ``event`` (1 = event, 0 = censored),
        ``age`` (years), ``sex`` (0/1), ``lesion_grade`` (1-3), ``lesion_radius_mm`` (mean
        lesion radius, mm), ``lesion_contrast_hu`` (mean lesion contrast over background, HU,
        before the site's intensity transform), ``texture_sd_hu`` (SD of the lesion's internal
        texture field, HU) and ``lesion_irregularity`` (relative radial variation, unitless).
        The values of a case depend only on ``seed`` and its number.
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    rows = []
    index = 0
    for site, n in _site_counts(n_train, n_external):
        for _ in range(n):
            index += 1
            row = _draw_case(seed, index)
            row["cohort"] = site
            rows.append(row)
    columns = ["case_id", "cohort", "z", "true_probability", "outcome", "time", "event", "age",
               "sex", "lesion_grade", "lesion_radius_mm", "lesion_contrast_hu",
               "texture_sd_hu", "lesion_irregularity"]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------
# Scene and scanner
# --------------------------------------------------------------------------------------------

class _FourierField:
    """Unit-variance Gaussian random field (Gaussian correlation, length ``corr_mm``).

    Random Fourier features ``sqrt(2/M) * sum_m cos(k_m . x + phi_m)`` with
    ``k_m ~ N(0, I / corr_mm**2)``, evaluated on separable grids with one matrix product.
    """

    def __init__(self, rng: np.random.Generator, n_modes: int, corr_mm: float):
        self.k = rng.standard_normal((n_modes, 3)) / corr_mm
        self.phase = rng.uniform(0.0, 2.0 * math.pi, n_modes)
        self.amp = math.sqrt(2.0 / n_modes)

    def on_grid(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Field at the grid ``zs x ys x xs`` (mm); returns an array indexed [z, y, x]."""
        ex = np.exp(1j * np.outer(self.k[:, 0], xs))            # (M, nx)
        ey = np.exp(1j * np.outer(self.k[:, 1], ys))            # (M, ny)
        ez = np.exp(1j * np.outer(self.k[:, 2], zs)) * np.exp(1j * self.phase)[:, None]
        exy = (ey[:, :, None] * ex[:, None, :]).reshape(len(self.k), -1)   # (M, ny*nx)
        out = (ez.T @ exy).real * self.amp                      # (nz, ny*nx)
        return out.reshape(len(zs), len(ys), len(xs))


class _Anatomy:
    """The patient scene of one case (everything that is the same on a rescan)."""

    def __init__(self, seed: int, index: int, case: dict, fov_mm: np.ndarray):
        rng = _case_rng(seed, index, _STREAM_ANATOMY)
        self.centre = rng.uniform(-_CENTRE_JITTER_MM, _CENTRE_JITTER_MM, 3)
        dirs = rng.standard_normal((_N_SHAPE_BUMPS, 3))
        self.bump_dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        self.bump_weights = rng.standard_normal(_N_SHAPE_BUMPS)
        ref = self._bumps(_SPHERE)
        self.bump_mean, self.bump_sd = float(ref.mean()), float(ref.std()) or 1.0
        self.texture = _FourierField(rng, _N_TEXTURE_MODES, _TEXTURE_CORR_MM)
        self.background = _FourierField(rng, _N_BACKGROUND_MODES, _BACKGROUND_CORR_MM)
        self.radius = case["lesion_radius_mm"]
        self.contrast = case["lesion_contrast_hu"]
        self.texture_sd = case["texture_sd_hu"]
        self.irregularity = case["lesion_irregularity"]
        r_limit = float(np.min(fov_mm)) / 2.0 - _EDGE_MARGIN_MM - _CENTRE_JITTER_MM * math.sqrt(3)
        self.r_min = 0.6 * self.radius
        self.r_max = min(1.4 * self.radius, r_limit)
        if self.r_max <= self.r_min:
            raise ValueError(f"field of view {tuple(fov_mm)} mm is too small for a lesion of "
                             f"radius {self.radius:.1f} mm; use a larger image_size")

    def _bumps(self, u: np.ndarray) -> np.ndarray:
        return np.exp(_SHAPE_KAPPA * (u @ self.bump_dirs.T - 1.0)) @ self.bump_weights

    def signed_radial_distance(self, xs, ys, zs) -> np.ndarray:
        """``|p - c| - r(u)`` (mm) on the grid, indexed [z, y, x]; <= 0 inside the lesion."""
        dx = (xs - self.centre[0])[None, None, :]
        dy = (ys - self.centre[1])[None, :, None]
        dz = (zs - self.centre[2])[:, None, None]
        dist = np.sqrt(dx * dx + dy * dy + dz * dz)
        safe = np.maximum(dist, 1e-9)
        u = np.stack(np.broadcast_arrays(dx / safe, dy / safe, dz / safe), axis=-1)
        f = (self._bumps(u.reshape(-1, 3)).reshape(dist.shape) - self.bump_mean) / self.bump_sd
        r = np.clip(self.radius * (1.0 + self.irregularity * f), self.r_min, self.r_max)
        return dist - r

    def scene(self, xs, ys, zs) -> tuple[np.ndarray, np.ndarray]:
        """True HU and the lesion indicator on the grid (both indexed [z, y, x])."""
        inside = self.signed_radial_distance(xs, ys, zs) <= 0.0
        hu = _BACKGROUND_HU + _BACKGROUND_SD_HU * self.background.on_grid(xs, ys, zs)
        tex = self.texture.on_grid(xs - self.centre[0], ys - self.centre[1],
                                   zs - self.centre[2])
        hu = hu + inside * (self.contrast + self.texture_sd * tex)
        return hu, inside


def _site_geometry(site: str, image_size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid size (x, y, z), spacing (mm) and origin (mm) of ``site``; FOV centred on 0."""
    fov = np.asarray(image_size, float) * np.asarray(SITES[TRAIN_SITE]["spacing"], float)
    spacing = np.asarray(SITES[site]["spacing"], float)
    size = np.maximum(np.rint(fov / spacing).astype(int), 1)
    origin = -(size - 1) / 2.0 * spacing
    return size, spacing, origin


def _gauss_matrix(n: int, spacing: float, sigma: float) -> np.ndarray | None:
    """Row-normalised (n x n) blur with a voxel-integrated Gaussian of ``sigma`` mm."""
    if sigma <= 0:
        return None
    k = np.arange(-n + 1, n)
    s = sigma / spacing * math.sqrt(2.0)
    erf = np.vectorize(math.erf)
    w = 0.5 * (erf((k + 0.5) / s) - erf((k - 0.5) / s))
    idx = np.arange(n)
    mat = w[(idx[None, :] - idx[:, None]) + n - 1]
    return mat / mat.sum(axis=1, keepdims=True)


def _blur(vol: np.ndarray, spacing: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a [z, y, x] volume; spacing is (x, y, z) mm."""
    out = vol
    for axis, sp in zip((2, 1, 0), spacing):
        mat = _gauss_matrix(vol.shape[axis], float(sp), sigma)
        if mat is not None:
            out = np.moveaxis(np.tensordot(mat, out, axes=([1], [axis])), 0, axis)
    return out


def _scan(anatomy: _Anatomy, site: str, image_size, seed: int, index: int,
          scan_no: int) -> tuple[sitk.Image, sitk.Image]:
    """Scan the anatomy at ``site``: int16 HU image and uint8 mask with identical geometry."""
    cfg = SITES[site]
    size, spacing, origin = _site_geometry(site, image_size)
    rng = _case_rng(seed, index, _STREAM_SCAN, scan_no)
    noise_sd = cfg["noise_sd"] * math.exp(_NOISE_LEVEL_LOG_SD * rng.standard_normal())
    shift = rng.uniform(-0.5, 0.5, 3) * spacing
    if scan_no == 1:
        shift = np.zeros(3)
    xs = origin[0] + np.arange(size[0]) * spacing[0] - shift[0]
    ys = origin[1] + np.arange(size[1]) * spacing[1] - shift[1]
    zc = origin[2] + np.arange(size[2]) * spacing[2] - shift[2]
    offsets = np.asarray(_SUBSLICE_OFFSETS) * spacing[2]
    zs = (zc[:, None] + offsets[None, :]).reshape(-1)
    hu, inside = anatomy.scene(xs, ys, zs)
    n_sub = len(offsets)
    hu = hu.reshape(size[2], n_sub, size[1], size[0]).mean(axis=1)
    mask = inside.reshape(size[2], n_sub, size[1], size[0])[:, n_sub // 2]
    hu = _blur(hu, spacing, cfg["psf_sigma_mm"])
    hu = hu + rng.normal(0.0, noise_sd, hu.shape)
    hu = cfg["scale"] * hu + cfg["offset"]
    image = sitk.GetImageFromArray(np.clip(np.rint(hu), -1024, 3071).astype(np.int16))
    label = sitk.GetImageFromArray(mask.astype(np.uint8))
    for img in (image, label):
        img.SetSpacing(tuple(float(s) for s in spacing))
        img.SetOrigin(tuple(float(o) for o in origin))
    return image, label


def _shift2d(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(a)
    ny, nx = a.shape[1:]
    out[:, max(dy, 0):ny + min(dy, 0), max(dx, 0):nx + min(dx, 0)] = \
        a[:, max(-dy, 0):ny + min(-dy, 0), max(-dx, 0):nx + min(-dx, 0)]
    return out


def _reader2_mask(mask1: sitk.Image, seed: int, index: int) -> sitk.Image:
    """Second reader: in-plane one-voxel dilation / erosion in smooth random parts."""
    m = sitk.GetArrayFromImage(mask1).astype(bool)
    neigh = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    dil = m.copy()
    ero = m.copy()
    for dy, dx in neigh:
        dil |= _shift2d(m, dy, dx)
        ero &= _shift2d(m, dy, dx)
    rng = _case_rng(seed, index, _STREAM_READER)
    field = _FourierField(rng, 32, _READER_CORR_MM)
    nx, ny, nz = mask1.GetSize()
    sp, org = np.asarray(mask1.GetSpacing()), np.asarray(mask1.GetOrigin())
    f = field.on_grid(org[0] + np.arange(nx) * sp[0], org[1] + np.arange(ny) * sp[1],
                      org[2] + np.arange(nz) * sp[2])
    m2 = np.where(f > _READER_THRESHOLD, dil, np.where(f < -_READER_THRESHOLD, ero, m))
    if not m2.any():
        m2 = m
    out = sitk.GetImageFromArray(m2.astype(np.uint8))
    out.CopyInformation(mask1)
    return out


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def _atomic_write_image(image: sitk.Image, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".nii.gz", dir=path.parent)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _atomic_write_tsv(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, sep="\t", index=False, lineterminator="\n", float_format="%.6g")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def make_demo_cohort(out_dir, n_train: int = 100, n_external: Sequence[int] = (60, 60),
                     n_retest: int = 20, n_reader: int = 20, seed: int = 42,
                     image_size: Sequence[int] = (40, 40, 20)) -> dict:
    """Write the synthetic multi-site CT cohort (images, masks, manifests, truth) to ``out_dir``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder; created if missing. Existing files of the same names are replaced.
    n_train : int
        Number of training-site (``site_A``) cases.
    n_external : sequence of two int, or int
        Number of ``site_B`` and ``site_C`` (external) cases.
    n_retest : int
        Number of site A cases (the first ones) that get a second scan (``scan2``); at most
        ``n_train``.
    n_reader : int
        Number of site A cases (the last ones) that get a second reader's mask (``reader2``) on
        their first scan; at most ``n_train``.
    seed : int
        Non-negative master seed. Same arguments give identical files.
    image_size : sequence of three int
        Site A's grid (x, y, z) in voxels; the field of view, ``image_size * (1.0, 1.0, 2.0)``
        mm, is the same at every site. Its smallest side must be at least about 30 mm.

    Returns
    -------
    dict
        Paths written (:class:`pathlib.Path`): ``out_dir``, ``manifest`` (``manifest.tsv``),
        ``manifest_inter_reader`` (``manifest_inter_reader.tsv``), ``truth`` (``truth.tsv``),
        ``images`` (list, every image) and ``masks`` (list, every mask, reader2 masks
        included).

    Raises
    ------
    ValueError
        On negative counts or seed, subsets larger than ``n_train``, or a field of view too
        small for the lesions.
    """
    n_retest, n_reader, n_train = int(n_retest), int(n_reader), int(n_train)
    if not 0 <= n_retest <= n_train or not 0 <= n_reader <= n_train:
        raise ValueError(f"n_retest ({n_retest}) and n_reader ({n_reader}) must lie in "
                         f"[0, n_train={n_train}]")
    image_size = tuple(int(s) for s in image_size)
    if len(image_size) != 3 or min(image_size) < 1:
        raise ValueError(f"image_size must be three positive ints, got {image_size!r}")
    cases = draw_cases(n_train, n_external, seed)

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    fov = np.asarray(image_size, float) * np.asarray(SITES[TRAIN_SITE]["spacing"], float)

    site_a_idx = [i for i, c in enumerate(cases["cohort"]) if c == TRAIN_SITE]
    retest = set(site_a_idx[:n_retest])
    reader = set(site_a_idx[len(site_a_idx) - n_reader:]) if n_reader else set()

    clinical = ["outcome", "time", "event", "age", "sex", "lesion_grade"]
    rows, reader_rows, images, masks = [], [], [], []
    for pos, case in enumerate(cases.to_dict("records")):
        index = pos + 1
        cid, site = case["case_id"], case["cohort"]
        anatomy = _Anatomy(seed, index, case, fov)
        base = {"case_id": cid, "cohort": site, "modality": "CT",
                **{k: case[k] for k in clinical}}
        scans = ["scan1", "scan2"] if pos in retest else ["scan1"]
        mask1 = None
        for scan_no, rep in enumerate(scans, start=1):
            image, label = _scan(anatomy, site, image_size, seed, index, scan_no)
            img_rel, msk_rel = f"images/{cid}_{rep}.nii.gz", f"masks/{cid}_{rep}.nii.gz"
            _atomic_write_image(image, out / img_rel)
            _atomic_write_image(label, out / msk_rel)
            images.append(out / img_rel)
            masks.append(out / msk_rel)
            rows.append({**base, "image": img_rel, "mask": msk_rel, "repeat": rep})
            if scan_no == 1:
                mask1 = label
                reader_rows.append({**base, "image": img_rel, "mask": msk_rel,
                                    "repeat": "reader1"})
        if pos in reader:
            r2_rel = f"masks/{cid}_reader2.nii.gz"
            _atomic_write_image(_reader2_mask(mask1, seed, index), out / r2_rel)
            masks.append(out / r2_rel)
            reader_rows.append({**base, "image": f"images/{cid}_scan1.nii.gz",
                                "mask": r2_rel, "repeat": "reader2"})

    cols = list(MANIFEST_COLUMNS)
    paths = {"out_dir": out, "manifest": out / "manifest.tsv",
             "manifest_inter_reader": out / "manifest_inter_reader.tsv",
             "truth": out / "truth.tsv", "images": images, "masks": masks}
    _atomic_write_tsv(pd.DataFrame(rows, columns=cols), paths["manifest"])
    _atomic_write_tsv(pd.DataFrame(reader_rows, columns=cols), paths["manifest_inter_reader"])
    _atomic_write_tsv(cases[list(TRUTH_COLUMNS)], paths["truth"])
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m acceflow.demo OUT_DIR [--seed 42] [--n-train 100] ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status, 0 on success.
    """
    parser = argparse.ArgumentParser(
        prog="python -m acceflow.demo",
        description="Write acceflow's synthetic multi-site CT cohort with known truth.")
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--seed", type=int, default=42, help="master seed (default 42)")
    parser.add_argument("--n-train", type=int, default=100,
                        help="site_A (training) cases (default 100)")
    parser.add_argument("--n-external", type=int, nargs=2, default=(60, 60),
                        metavar=("N_B", "N_C"), help="site_B and site_C cases (default 60 60)")
    parser.add_argument("--n-retest", type=int, default=20,
                        help="site_A cases with a second scan (default 20)")
    parser.add_argument("--n-reader", type=int, default=20,
                        help="site_A cases with a second reader's mask (default 20)")
    parser.add_argument("--image-size", type=int, nargs=3, default=(40, 40, 20),
                        metavar=("NX", "NY", "NZ"),
                        help="site_A grid in voxels; sets the field of view (default 40 40 20)")
    args = parser.parse_args(argv)
    paths = make_demo_cohort(args.out_dir, n_train=args.n_train, n_external=args.n_external,
                             n_retest=args.n_retest, n_reader=args.n_reader, seed=args.seed,
                             image_size=args.image_size)
    print(f"wrote {len(paths['images'])} images, {len(paths['masks'])} masks; "
          f"manifest: {paths['manifest']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
