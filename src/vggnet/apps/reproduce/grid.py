"""The grid: training scales scaled to the crop, the cells of Table 3, their initialisation chain,
and the budgets (how wide and how long each net trains)."""

from __future__ import annotations

from dataclasses import dataclass

from vggnet.data.geometry import Scale, default_test_scales, single_test_scale
from vggnet.model import configs
from vggnet.recipes.grid import BUDGETS, RECIPE, Budget  # noqa: F401 (the grid's settings)

# The paper's scales at crop 224: S1 = 256, S2 = 384, jittered [256, 512].
PAPER_CROP, PAPER_S1, PAPER_S2, PAPER_SMAX = configs.CROP_SIZE, 256, 384, 512
TAGS = ("S1", "S2", "jitter")
TABLE3_CONFIGS = ("A", "A-LRN", "B", "C", "D", "E")
MULTI_SCALE_CONFIGS = ("C", "D", "E")  # also trained at S2 and with jittering


@dataclass(frozen=True)
class TrainingScales:
    """S1, S2 and the jittered range, in the paper's ratios to the crop."""

    crop: int
    s1: int
    s2: int
    smax: int

    def scale(self, tag: str) -> Scale:
        """The training scale of a cell's tag (S1, S2 or jitter)."""
        return {
            "S1": Scale(self.s1, self.s1),
            "S2": Scale(self.s2, self.s2),
            "jitter": Scale(self.s1, self.smax),
        }[tag]

    def flag(self, tag: str) -> str:
        """The --scale value of a tag."""
        s = self.scale(tag)
        return str(s.smin) if not s.jittered else f"{s.smin}:{s.smax}"

    def single_q(self, tag: str) -> int:
        """Table 3's test scale: Q = S, or the middle of the jittered range."""
        return single_test_scale(self.scale(tag))

    def multi_q(self, tag: str) -> list[int]:
        """Table 4's test scales: {S - 32, S, S + 32} (scaled), or {Smin, middle, Smax}."""
        return default_test_scales(self.scale(tag), self.crop)


def training_scales(crop: int) -> TrainingScales:
    """256, 384 and [256, 512] are to 224 as S1, S2 and the range are to ``crop``."""

    def scaled(s: int) -> int:
        return round(s * crop / PAPER_CROP)

    return TrainingScales(crop, scaled(PAPER_S1), scaled(PAPER_S2), scaled(PAPER_SMAX))


@dataclass(frozen=True)
class Cell:
    """One trained net of the grid: a configuration at a training scale, and where it starts."""

    config: str
    tag: str
    start: str  # "scratch", "init-from" (net A's layers) or "finetune-from" (all layers)
    source: str | None = None  # the cell it starts from

    @property
    def name(self) -> str:
        return f"{self.config}-{self.tag}"

    @property
    def depth(self) -> int:
        """Weight layers: the convolutions of Table 1 plus the three FC layers."""
        layers = [configs.parse_layer(t) for block in configs.CONFIGS[self.config] for t in block]
        return sum(kind == "conv" for kind, _, _ in layers) + 3


def grid_cells(wanted: list[str] | None = None) -> list[Cell]:
    """Table 3's nets in training order; asking for deeper nets brings in net A (their start)."""
    wanted_set = set(wanted or TABLE3_CONFIGS)
    unknown = sorted(wanted_set - set(TABLE3_CONFIGS))
    if unknown:
        raise ValueError(unknown[0])
    if wanted_set - {"A", "A-LRN"}:
        wanted_set.add("A")
    cells = [Cell("A", "S1", "scratch"), Cell("A-LRN", "S1", "scratch")]
    cells += [Cell(c, "S1", "init-from", "A-S1") for c in ("B", "C", "D", "E")]
    cells += [Cell(c, "S2", "finetune-from", f"{c}-S1") for c in MULTI_SCALE_CONFIGS]
    cells += [Cell(c, "jitter", "finetune-from", f"{c}-S2") for c in MULTI_SCALE_CONFIGS]
    return [c for c in cells if c.config in wanted_set]
