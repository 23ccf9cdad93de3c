"""Pure geometry of the paper's scale rules: training scale S, test scale Q, crops and grids."""

from __future__ import annotations

from dataclasses import dataclass

from vggnet.errors import VGGError


@dataclass(frozen=True)
class Scale:
    """Training scale: S fixed (smin == smax) or jittered per image, S ~ U[smin, smax]."""

    smin: int
    smax: int

    @property
    def jittered(self) -> bool:
        """Whether each image draws its own S."""
        return self.smax > self.smin

    def __str__(self) -> str:
        return f"{self.smin}:{self.smax}" if self.jittered else str(self.smin)


def parse_scale(text: str | int, crop: int, flag: str = "--scale") -> Scale:
    """Parse ``256`` or ``256:512`` and check it against the crop size (S >= crop)."""
    parts = str(text).split(":")
    try:
        if len(parts) > 2:
            raise ValueError
        smin, smax = int(parts[0]), int(parts[-1])
    except ValueError:
        raise VGGError(f"{flag} {text} is not S or Smin:Smax (e.g. 256 or 256:512)") from None
    if smin > smax:
        raise VGGError(f"{flag} {text}: Smin {smin} is larger than Smax {smax}; write Smin:Smax")
    if smin < crop:
        raise VGGError(
            f"{flag} {text}: S = {smin} is smaller than the crop {crop}; the paper needs S >= crop"
        )
    return Scale(smin, smax)


def rescaled_size(width: int, height: int, short: int) -> tuple[int, int]:
    """(width, height) after an isotropic rescale that makes the smallest side ``short``.

    The long side is truncated, as torchvision's ``Resize(short)`` does.
    """
    if width <= height:
        return short, max(short, int(height * short / width))
    return max(short, int(width * short / height)), short


def grid_offsets(length: int, crop: int, grid: int) -> list[int]:
    """``grid`` evenly spaced crop offsets along a side of ``length`` (first at 0, last at the end)."""
    if length < crop:
        raise VGGError(f"a {crop}-pixel crop does not fit in {length} pixels")
    if grid == 1:
        return [(length - crop) // 2]
    return [round(i * (length - crop) / (grid - 1)) for i in range(grid)]


def center_offset(length: int, crop: int) -> int:
    """Offset of a centred crop (torchvision's rounding: ``round((length - crop) / 2)``)."""
    return round((length - crop) / 2.0)


def default_test_scales(scale: Scale, crop: int = 224) -> list[int]:
    """Table 4's rule: fixed S -> {S-32, S, S+32}; jittered -> {Smin, (Smin+Smax)/2, Smax}.

    The 32 is the paper's at crop 224; other crops scale it in proportion (5 at crop 32).
    A scale below the crop (S - 32 when S is close to the crop) is left out.
    """
    if scale.jittered:
        return [scale.smin, (scale.smin + scale.smax) // 2, scale.smax]
    step = max(1, round(32 * crop / 224))
    return [q for q in (scale.smin - step, scale.smin, scale.smin + step) if q >= crop]


def single_test_scale(scale: Scale) -> int:
    """Table 3's rule: Q = S for fixed S, Q = (Smin + Smax) / 2 for jittered S."""
    return (scale.smin + scale.smax) // 2
