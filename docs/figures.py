"""Regenerate the pictures of the data page (docs/data.md) from one synthetic patient.

Run from the repository root, in hnprog's environment::

    python docs/figures.py                 # writes docs/img/*.png
    python docs/figures.py --out /tmp/img  # somewhere else

The patient is made by :func:`hnprog.data.synthetic.generate_cohort` (one patient, a fixed
seed) in a temporary folder, and every step uses hnprog's own functions:
:func:`hnprog.data.bbox.auto_bbox`, :func:`hnprog.transforms.crop_margin`,
:func:`hnprog.transforms.preprocess_case` with :class:`hnprog.transforms.PreprocessConfig`.
It writes:

- ``box_and_crop.png``: the original CT with the PET over it, in physical LPS mm, with the
  HECKTOR box (``bboxes.csv``), the automatic box and the region the crop keeps;
- ``network_input.png``: the network input (CT and PET channels, GTVt mask) on the 144^3 grid
  of 1 mm;
- ``augmentation.png``: the same input under four random augmentations (seeds 0 to 3).

It needs about 1 GB of memory and half a minute on one core. The figures follow the house
style of :func:`hnprog.plotting.plot_overlay` (black background, CT window -250 to 350 HU,
"hot" PET at 45% opacity); the GTVt is drawn in red here.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from hnprog.data.bbox import auto_bbox  # noqa: E402
from hnprog.geometry import BoundingBox, physical_extent  # noqa: E402
from hnprog.data.cohort import read_cohort  # noqa: E402
from hnprog.data.preprocess import load_case  # noqa: E402
from hnprog.data.synthetic import generate_cohort  # noqa: E402
from hnprog.transforms import PreprocessConfig, crop_margin, preprocess_case  # noqa: E402

SEED = 0
CT_WINDOW = (-250.0, 350.0)  # HU, as hnprog.plotting.plot_overlay
PET_ALPHA = 0.45
PET_SHOWN_SUV = 1.5  # the PET is drawn where SUV >= this, so the CT stays readable
DPI = 110
FG = "white"
BG = "black"
COLOURS = {"hecktor": "#00e5ff", "auto": "#b6ff00", "crop": "white", "ct_fov": "#9e9e9e",
           "gtvt": "red"}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _style(ax: plt.Axes) -> None:
    ax.set_facecolor(BG)
    ax.tick_params(colors=FG, labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#666666")
    ax.xaxis.label.set_color(FG)
    ax.yaxis.label.set_color(FG)


def _save(fig: plt.Figure, path: Path) -> Path:
    """Save as PNG, then quantise to 256 colours so that each file stays small."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, facecolor=BG, format="png")
    plt.close(fig)
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _slice_2d(image: sitk.Image, axes_mm: dict[str, np.ndarray], interpolator: int,
              default: float) -> np.ndarray:
    """Resample ``image`` on a 1-voxel-thick identity-direction grid (a slice in mm).

    ``axes_mm`` gives the voxel centres along x, y and z (one of them a single value).
    Returns the 2D array with the remaining axes in (z, y, x) order, the single axis dropped.
    """
    origin = [float(axes_mm[a][0]) for a in "xyz"]
    spacing = [float(axes_mm[a][1] - axes_mm[a][0]) if len(axes_mm[a]) > 1 else 1.0
               for a in "xyz"]
    size = [len(axes_mm[a]) for a in "xyz"]
    reference = sitk.Image(size, sitk.sitkFloat32)
    reference.SetOrigin(origin)
    reference.SetSpacing(spacing)
    resampled = sitk.Resample(image, reference, sitk.Transform(), interpolator, default,
                              sitk.sitkFloat32)
    return np.squeeze(sitk.GetArrayFromImage(resampled))


def _mask_centre_mm(mask: sitk.Image) -> np.ndarray:
    """Physical centre (x, y, z) of the GTVt mask's voxels, mm."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(mask > 0, sitk.sitkUInt8))
    return np.asarray(stats.GetCentroid(1))


def _union(a: BoundingBox, b: BoundingBox, pad: float = 0.0) -> BoundingBox:
    lo = np.minimum(a.lower, b.lower) - pad
    hi = np.maximum(a.upper, b.upper) + pad
    return BoundingBox(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def _grow(box: BoundingBox, margin: float) -> BoundingBox:
    lo, hi = np.asarray(box.lower) - margin, np.asarray(box.upper) + margin
    return BoundingBox(lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])


def _r(value: float) -> str:
    """Two decimals, without a minus sign on zero."""
    return f"{round(float(value), 2) + 0.0:.2f}"


def _orientation(ax: plt.Axes, top: str, bottom: str, left: str, right: str) -> None:
    kw = dict(transform=ax.transAxes, color="#ffd54f", fontsize=9, fontweight="bold",
              bbox=dict(facecolor=BG, alpha=0.6, edgecolor="none", pad=1.0))
    ax.text(0.5, 0.985, top, ha="center", va="top", **kw)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **kw)
    ax.text(0.015, 0.5, left, ha="left", va="center", **kw)
    ax.text(0.985, 0.5, right, ha="right", va="center", **kw)


# ---------------------------------------------------------------------------------------------
# figure 1: the boxes and the crop on the original scan
# ---------------------------------------------------------------------------------------------
def box_and_crop(case, hecktor_box: BoundingBox, auto_box: BoundingBox,
                 config: PreprocessConfig, path: Path) -> Path:
    ct, pet, mask = case.images["ct"], case.images["pet"], case.images["mask"]
    coarsest = max(max(image.GetSpacing()) for image in case.images.values())
    margin = crop_margin(hecktor_box, config, coarsest)
    crop = _grow(hecktor_box, margin)
    ct_fov = physical_extent(ct)
    view = _union(_union(ct_fov, crop), auto_box, pad=8.0)
    centre = _mask_centre_mm(mask)

    step = 1.0
    xs = np.arange(view.x1, view.x2 + step / 2, step)
    ys = np.arange(view.y1, view.y2 + step / 2, step)
    zs = np.arange(view.z1, view.z2 + step / 2, step)
    planes = {
        # name: (axes for resampling, horizontal (axis, coords), vertical (axis, coords))
        "coronal": ({"x": xs, "y": np.array([centre[1]]), "z": zs}, ("x", xs), ("z", zs)),
        "axial": ({"x": xs, "y": ys, "z": np.array([centre[2]])}, ("x", xs), ("y", ys)),
    }
    suv_max = float(np.percentile(sitk.GetArrayViewFromImage(pet), 99.9))

    fig, axes = plt.subplots(1, 2, figsize=(12.4, 7.8), facecolor=BG)
    for ax, (name, (grid_axes, (h_name, h), (v_name, v))) in zip(axes, planes.items()):
        ct_2d = _slice_2d(ct, grid_axes, sitk.sitkLinear, -1024.0)
        pet_2d = _slice_2d(pet, grid_axes, sitk.sitkLinear, 0.0)
        mask_2d = _slice_2d(mask, grid_axes, sitk.sitkNearestNeighbor, 0.0)
        # pixel edges in mm; z grows upwards (origin lower); y grows downwards (anterior on top)
        extent = (h[0] - step / 2, h[-1] + step / 2, v[0] - step / 2, v[-1] + step / 2)
        origin = "lower"
        ax.imshow(ct_2d, cmap="gray", vmin=CT_WINDOW[0], vmax=CT_WINDOW[1], extent=extent,
                  origin=origin, interpolation="bilinear")
        ax.imshow(np.ma.masked_less(pet_2d, PET_SHOWN_SUV), cmap="hot", alpha=PET_ALPHA, vmin=0,
                  vmax=suv_max, extent=extent, origin=origin, interpolation="bilinear")
        if mask_2d.any():
            ax.contour(h, v, mask_2d, levels=[0.5], colors=COLOURS["gtvt"], linewidths=1.2)

        def rect(box: BoundingBox, colour: str, style: str, width: float) -> None:
            lo = {"x": box.x1, "y": box.y1, "z": box.z1}
            hi = {"x": box.x2, "y": box.y2, "z": box.z2}
            ax.add_patch(Rectangle((lo[h_name], lo[v_name]), hi[h_name] - lo[h_name],
                                   hi[v_name] - lo[v_name], fill=False, edgecolor=colour,
                                   linestyle=style, linewidth=width))

        rect(ct_fov, COLOURS["ct_fov"], ":", 1.0)
        rect(crop, COLOURS["crop"], "--", 1.6)
        rect(auto_box, COLOURS["auto"], "-", 1.6)
        rect(hecktor_box, COLOURS["hecktor"], "-", 1.8)
        ax.set_xlim(view.x1, view.x2)
        if v_name == "z":
            ax.set_ylim(view.z1, view.z2)
            ax.set_ylabel("z (mm), grows towards the head")
            ax.set_title(f"coronal slice y = {centre[1]:.0f} mm (through the GTVt centre)",
                         color=FG, fontsize=10)
            _orientation(ax, "S", "I", "R", "L")
        else:
            ax.set_ylim(view.y2, view.y1)  # y grows downwards: anterior (-y) at the top
            ax.set_ylabel("y (mm), grows posterior (anterior at the top)")
            ax.set_title(f"axial slice z = {centre[2]:.0f} mm (through the GTVt centre)",
                         color=FG, fontsize=10)
            _orientation(ax, "A", "P", "R", "L")
        ax.set_xlabel("x (mm), grows to the patient's left (shown on the right)")
        ax.set_aspect("equal")
        _style(ax)

    handles = [
        Line2D([], [], color=COLOURS["hecktor"], lw=1.8,
               label="HECKTOR box (bboxes.csv), 144 mm"),
        Line2D([], [], color=COLOURS["auto"], lw=1.6, label="automatic box (auto_bbox, PET)"),
        Line2D([], [], color=COLOURS["crop"], lw=1.6, ls="--",
               label=f"crop region: HECKTOR box + crop_margin ({margin:.0f} mm),\n"
                     "clipped to each image"),
        Line2D([], [], color=COLOURS["ct_fov"], lw=1.0, ls=":", label="CT field of view"),
        Line2D([], [], color=COLOURS["gtvt"], lw=1.2, label="GTVt (mask)"),
        Patch(facecolor="#ff6a00", alpha=PET_ALPHA,
              label=f"PET over the CT (SUV >= {PET_SHOWN_SUV:g})"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 0.005),
               frameon=False, fontsize=9, labelcolor=FG)
    fig.suptitle(
        f"Synthetic patient {case.patient_id}: original CT with the PET over it, in physical "
        "LPS mm (x to the patient's left, y to the back, z up)\nboxes and crop region for "
        f"PreprocessConfig(): {config.crop_size}^3 at {config.spacing:g} mm, shifts up to "
        f"{config.max_shift * config.spacing:g} mm, rotations up to {config.max_rotation:g} deg",
        color=FG, fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.89, bottom=0.18, wspace=0.16)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# figure 2: the network input
# ---------------------------------------------------------------------------------------------
def _views(volume: np.ndarray, centre: tuple[int, int, int]) -> list[tuple[str, np.ndarray]]:
    """Axial, coronal and sagittal slices of a (z, y, x) grid volume, ready for imshow
    with origin="upper": anterior / superior at the top, patient's right on the left."""
    cz, cy, cx = centre
    return [
        ("axial", volume[cz]),                 # rows y (anterior first), columns x
        ("coronal", volume[:, cy, :][::-1]),   # rows z (superior first), columns x
        ("sagittal", volume[:, :, cx][::-1]),  # rows z (superior first), columns y
    ]


ORIENTATION = {"axial": ("A", "P", "R", "L"), "coronal": ("S", "I", "R", "L"),
               "sagittal": ("S", "I", "A", "P")}


def network_input(patient_id: str, out, config: PreprocessConfig, path: Path) -> Path:
    image, mask = out.image, out.mask
    centre = tuple(int(round(c)) for c in np.argwhere(mask > 0).mean(axis=0))
    ct, pet = image[..., 0], image[..., 1]
    rows = [
        (f"CT channel: [{ct.min():.2f}, {ct.max():.2f}]\n(HU clipped to [-1024, 1024], "
         "mapped to [-1, 1])", ct, dict(cmap="gray", vmin=-1.0, vmax=1.0)),
        (f"PET channel: [{pet.min():.2f}, {pet.max():.2f}]\n(z-scored over the grid: "
         f"mean {_r(pet.mean())}, sd {_r(pet.std())})", pet,
         dict(cmap="hot", vmin=float(pet.min()), vmax=float(pet.max()))),
        (f"GTVt mask: values {{0, 1}}, {int(mask.sum())} voxels "
         f"({mask.sum() * config.spacing ** 3 / 1000:.1f} mL)\n"
         "(red, over the CT channel)", None, None),
    ]
    fig, axes = plt.subplots(3, 3, figsize=(11.0, 11.4), facecolor=BG)
    for r, (label, volume, style) in enumerate(rows):
        for c, (name, ct_view) in enumerate(_views(ct, centre)):
            ax = axes[r, c]
            if volume is None:
                ax.imshow(ct_view, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
                m = _views(mask, centre)[c][1]
                ax.imshow(np.ma.masked_equal(m, 0), cmap=ListedColormap([COLOURS["gtvt"]]),
                          alpha=0.7, interpolation="nearest")
            else:
                shown = ax.imshow(_views(volume, centre)[c][1], interpolation="nearest",
                                  **style)
                if c == 2:
                    bar = fig.colorbar(shown, ax=axes[r, :].tolist(), fraction=0.025, pad=0.02)
                    bar.ax.tick_params(colors=FG, labelsize=8)
                    bar.set_label(["CT channel value", "PET channel value (z-score)"][r],
                                  color=FG, fontsize=9)
                    bar.outline.set_edgecolor("#666666")
            _orientation(ax, *ORIENTATION[name])
            ax.set_xticks([])
            ax.set_yticks([])
            index = {"axial": f"z = {centre[0]}", "coronal": f"y = {centre[1]}",
                     "sagittal": f"x = {centre[2]}"}[name]
            if r == 0:
                ax.set_title(f"{name} (grid slice {index})", color=FG, fontsize=10)
            if c == 0:
                ax.set_ylabel(label, color=FG, fontsize=9)
            _style(ax)
    n, sp = config.crop_size, config.spacing
    fig.suptitle(
        f"Synthetic patient {patient_id}: the network input, image (D, H, W, 2) = "
        f"({n}, {n}, {n}, 2) float32 on {n}^3 voxels of {sp:g} mm\n"
        "(PreprocessConfig(), no augmentation; slices through the centre of the GTVt mask)",
        color=FG, fontsize=11)
    fig.subplots_adjust(left=0.1, right=0.88, top=0.92, bottom=0.02, wspace=0.04, hspace=0.06)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# figure 3: augmentations
# ---------------------------------------------------------------------------------------------
def augmentation(case, reference, config: PreprocessConfig, path: Path) -> Path:
    samples = [("no augmentation (rng=None)", reference)]
    for seed in range(4):
        out = preprocess_case(case, config, rng=seed)
        a = out.augmentation
        axis = ", ".join(f"{v:+.2f}" for v in a.axis)
        label = (f"rng={seed}: shift (x, y, z) = {a.shift} vox\n"
                 f"mirror: {'yes' if a.mirror else 'no'}; rotation {a.angle:+.1f} deg\n"
                 f"about axis ({axis})")
        samples.append((label, out))
    fig, axes = plt.subplots(1, len(samples), figsize=(12.6, 3.9), facecolor=BG)
    for ax, (label, out) in zip(axes, samples):
        cz = int(round(np.argwhere(out.mask > 0)[:, 0].mean()))
        ct, pet = out.image[cz, ..., 0], out.image[cz, ..., 1]
        ax.imshow(ct, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
        ax.imshow(np.ma.masked_less(pet, 1.0), cmap="hot", alpha=PET_ALPHA, vmin=0,
                  vmax=float(np.percentile(out.image[..., 1], 99.9)), interpolation="nearest")
        if out.mask[cz].any():
            ax.contour(out.mask[cz], levels=[0.5], colors=COLOURS["gtvt"], linewidths=1.0)
        n = out.mask.shape[1]
        ax.axhline((n - 1) / 2, color="#4fc3f7", lw=0.6, ls=":")
        ax.axvline((n - 1) / 2, color="#4fc3f7", lw=0.6, ls=":")
        ax.set_title(f"{label}\naxial grid slice z = {cz}", color=FG, fontsize=8.5)
        ax.set_xticks([])
        ax.set_yticks([])
        _style(ax)
    fig.suptitle(
        f"Synthetic patient {case.patient_id}: the network input under 4 random augmentations, "
        "preprocess_case(case, PreprocessConfig(), rng=seed)\naxial slice through each GTVt's "
        "centre: CT channel, PET channel (z-score > 1) over it, GTVt in red, grid centre "
        "dotted;\nwithout mirroring, anterior is at the top and the patient's right on the left",
        color=FG, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.66, bottom=0.01, wspace=0.04)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img",
                        help="folder for the PNG files (default: docs/img)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"seed of the synthetic patient (default: {SEED})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = PreprocessConfig()
    with tempfile.TemporaryDirectory(prefix="hnprog-figures-") as tmp:
        cohort = read_cohort(generate_cohort(tmp, n_patients=1, seed=args.seed))
        patient = cohort.patients[0]
        hecktor_box = cohort.bboxes[patient.patient_id]
        case = load_case(patient, hecktor_box)
    auto_box = auto_bbox(case.images["pet"], patient_id=patient.patient_id)
    reference = preprocess_case(case, config)
    written = [
        box_and_crop(case, hecktor_box, auto_box, config, args.out / "box_and_crop.png"),
        network_input(patient.patient_id, reference, config, args.out / "network_input.png"),
        augmentation(case, reference, config, args.out / "augmentation.png"),
    ]
    for path in written:
        print(f"{path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
