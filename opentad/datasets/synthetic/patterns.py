"""The 20 motion patterns that define the synthetic action classes.

A class is a way of moving, not a look: every pattern draws objects whose
colour, shape (disc or square), size, speed and position are drawn at random
for each action instance (:class:`ActionParams`), identically for every
class, so only the motion tells the classes apart.

A pattern is a pure function ``(t, params) -> list[Shape]``: ``t`` is the time
in seconds since the action started. Positions are in normalised frame
coordinates (``x`` in [0, 1] across the width, ``y`` in [0, 1] down the
height); sizes are fractions of the shorter frame side. The renderer
(:mod:`opentad.datasets.synthetic.render`) turns shapes into pixels.

Class ``k`` (THUMOS14's ``k``-th class name, in THUMOS14's order) uses
``PATTERNS[k]``. The first five are the most different in appearance (a
translating object, a rotating bar, two objects, a pulsing object, a
flashing object), because the default dataset uses five classes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Tuple

__all__ = [
    "CLASS_NAMES",
    "AMBIGUOUS_LABEL",
    "Shape",
    "ActionParams",
    "Pattern",
    "PATTERNS",
    "pattern_for_class",
]

# THUMOS14's 20 detection classes in THUMOS14's own order.
CLASS_NAMES: Tuple[str, ...] = (
    "BaseballPitch",
    "BasketballDunk",
    "Billiards",
    "CleanAndJerk",
    "CliffDiving",
    "CricketBowling",
    "CricketShot",
    "Diving",
    "FrisbeeCatch",
    "GolfSwing",
    "HammerThrow",
    "HighJump",
    "JavelinThrow",
    "LongJump",
    "PoleVault",
    "Shotput",
    "SoccerPenalty",
    "TennisSwing",
    "ThrowDiscus",
    "VolleyballSpiking",
)

# Label of segments whose content is unclear, as in the real THUMOS14 files.
AMBIGUOUS_LABEL = "Ambiguous"

RGB = Tuple[float, float, float]


class Shape(NamedTuple):
    """One primitive to draw.

    Attributes:
        kind: ``"disc"`` (radius ``size``), ``"box"`` (half side ``size``,
            rotated by ``angle``), ``"bar"`` (half length ``size``, half
            thickness ``size * aspect``, rotated by ``angle``) or ``"ring"``
            (outer radius ``size``, thickness ``size * aspect``).
        x: centre, fraction of the frame width.
        y: centre, fraction of the frame height.
        size: see ``kind``; a fraction of the shorter frame side.
        color: RGB in [0, 255].
        opacity: in [0, 1].
        angle: rotation in radians (box and bar).
        aspect: thickness ratio (bar and ring).
    """

    kind: str
    x: float
    y: float
    size: float
    color: RGB
    opacity: float = 1.0
    angle: float = 0.0
    aspect: float = 0.2


@dataclass(frozen=True)
class ActionParams:
    """Random appearance and motion parameters of one action instance.

    Every field is drawn the same way whatever the class, so none of them
    identifies the class on its own.

    Attributes:
        shape: ``"disc"`` or ``"box"``, the main object's shape.
        size: object radius, fraction of the shorter frame side.
        color: main colour, RGB in [0, 255].
        color2: second colour (patterns with two objects).
        speed: multiplier of the pattern's base speed / frequency.
        phase: start phase in [0, 1).
        u: three uniform numbers in [0, 1) that place the pattern in the frame.
    """

    shape: str
    size: float
    color: RGB
    color2: RGB
    speed: float
    phase: float
    u: Tuple[float, float, float]


def _lerp(lo: float, hi: float, u: float) -> float:
    return lo + (hi - lo) * u


def _wrap(position: float, lo: float = 0.1, hi: float = 0.9) -> float:
    """Fold ``position`` (unbounded) into ``[lo, hi)``, like an object leaving one side and entering the other."""
    return lo + (position - lo) % (hi - lo)


def _tri(x: float) -> float:
    """Triangle wave with period 1 and range [-1, 1]."""
    f = x % 1.0
    return 4.0 * f - 1.0 if f < 0.5 else 3.0 - 4.0 * f


def _obj(
    p: ActionParams, x: float, y: float, scale: float = 1.0, color: RGB | None = None, opacity: float = 1.0
) -> Shape:
    return Shape(p.shape, x, y, p.size * scale, p.color if color is None else color, opacity, angle=0.0)


# Base speeds: translations in frame widths (or heights) per second,
# periodic patterns in cycles per second; both multiplied by ``params.speed``.
_V = 0.35
_F = 0.8


def _move(dx: float, dy: float) -> Callable[[float, ActionParams], List[Shape]]:
    def pattern(t: float, p: ActionParams) -> List[Shape]:
        s = p.u[0] + _V * p.speed * t
        across = _lerp(0.2, 0.8, p.u[1])
        x = _wrap(s * dx) if dx else across
        y = _wrap(s * dy) if dy else across
        return [_obj(p, x, y)]

    return pattern


def _spin_bar(t: float, p: ActionParams) -> List[Shape]:
    angle = 2 * math.pi * (p.phase + 0.6 * _F * p.speed * t)
    x, y = _lerp(0.35, 0.65, p.u[0]), _lerp(0.35, 0.65, p.u[1])
    return [Shape("bar", x, y, _lerp(0.18, 0.26, p.u[2]), p.color, 1.0, angle, 0.16)]


def _two_objects(converge: bool) -> Callable[[float, ActionParams], List[Shape]]:
    def pattern(t: float, p: ActionParams) -> List[Shape]:
        cycle = (p.phase + 0.5 * _F * p.speed * t) % 1.0
        gap = 0.38 * (1.0 - cycle) + 0.04 if converge else 0.04 + 0.38 * cycle
        x, y = _lerp(0.45, 0.55, p.u[0]), _lerp(0.25, 0.75, p.u[1])
        return [_obj(p, x - gap, y, 0.8), _obj(p, x + gap, y, 0.8, color=p.color2)]

    return pattern


def _pulse(t: float, p: ActionParams) -> List[Shape]:
    scale = 1.1 + 0.8 * math.sin(2 * math.pi * (p.phase + _F * p.speed * t))
    return [_obj(p, _lerp(0.3, 0.7, p.u[0]), _lerp(0.3, 0.7, p.u[1]), scale)]


def _blink(t: float, p: ActionParams) -> List[Shape]:
    on = math.sin(2 * math.pi * (p.phase + 2.5 * _F * p.speed * t)) > 0.0
    return [_obj(p, _lerp(0.25, 0.75, p.u[0]), _lerp(0.25, 0.75, p.u[1]), 1.2, opacity=1.0 if on else 0.0)]


def _bounce(t: float, p: ActionParams) -> List[Shape]:
    x = _wrap(p.u[0] + 0.5 * _V * p.speed * t)
    height = _lerp(0.35, 0.55, p.u[1])
    y = 0.85 - height * abs(math.sin(math.pi * (p.phase + 1.2 * _F * p.speed * t)))
    return [_obj(p, x, y)]


def _orbit(t: float, p: ActionParams) -> List[Shape]:
    # Image y points down, so an increasing angle turns clockwise on screen.
    angle = 2 * math.pi * (p.phase + _F * p.speed * t)
    radius = _lerp(0.18, 0.28, p.u[2])
    cx, cy = _lerp(0.4, 0.6, p.u[0]), _lerp(0.4, 0.6, p.u[1])
    return [_obj(p, cx + radius * math.cos(angle), cy + radius * math.sin(angle))]


def _pendulum(t: float, p: ActionParams) -> List[Shape]:
    swing = 0.9 * math.sin(2 * math.pi * (p.phase + 0.7 * _F * p.speed * t))
    angle = math.pi / 2 + swing
    px, py = _lerp(0.35, 0.65, p.u[0]), _lerp(0.08, 0.2, p.u[1])
    length = _lerp(0.45, 0.6, p.u[2])
    mid_x, mid_y = px + 0.5 * length * math.cos(angle), py + 0.5 * length * math.sin(angle)
    bar = Shape("bar", mid_x, mid_y, 0.5 * length, p.color2, 1.0, angle, 0.08)
    return [bar, _obj(p, px + length * math.cos(angle), py + length * math.sin(angle))]


def _zigzag(t: float, p: ActionParams) -> List[Shape]:
    x = _wrap(p.u[0] + _V * p.speed * t)
    y = _lerp(0.35, 0.65, p.u[1]) + 0.2 * _tri(p.phase + 1.5 * _F * p.speed * t)
    return [_obj(p, x, y)]


def _diagonal(t: float, p: ActionParams) -> List[Shape]:
    s = (p.u[0] + _V * p.speed * t) % 0.8
    offset = _lerp(-0.1, 0.1, p.u[1])
    return [_obj(p, 0.1 + s + offset, 0.9 - s + offset)]


def _spiral(t: float, p: ActionParams) -> List[Shape]:
    cycle = (p.phase + 0.4 * _F * p.speed * t) % 1.0
    angle = 2 * math.pi * 1.5 * _F * p.speed * t
    cx, cy = _lerp(0.4, 0.6, p.u[0]), _lerp(0.4, 0.6, p.u[1])
    radius = 0.32 * cycle
    return [_obj(p, cx + radius * math.cos(angle), cy + radius * math.sin(angle), 0.6 + 0.6 * cycle)]


def _shake(vertical: bool) -> Callable[[float, ActionParams], List[Shape]]:
    def pattern(t: float, p: ActionParams) -> List[Shape]:
        d = 0.07 * math.sin(2 * math.pi * (p.phase + 4.0 * _F * p.speed * t))
        x, y = _lerp(0.25, 0.75, p.u[0]), _lerp(0.25, 0.75, p.u[1])
        return [_obj(p, x, y + d) if vertical else _obj(p, x + d, y)]

    return pattern


def _figure_eight(t: float, p: ActionParams) -> List[Shape]:
    a = 2 * math.pi * (p.phase + 0.5 * _F * p.speed * t)
    cx, cy = _lerp(0.4, 0.6, p.u[0]), _lerp(0.4, 0.6, p.u[1])
    return [_obj(p, cx + 0.28 * math.sin(a), cy + 0.18 * math.sin(2 * a))]


def _ripple(t: float, p: ActionParams) -> List[Shape]:
    cycle = (p.phase + _F * p.speed * t) % 1.0
    x, y = _lerp(0.3, 0.7, p.u[0]), _lerp(0.3, 0.7, p.u[1])
    radius = 0.04 + 0.3 * cycle
    return [Shape("ring", x, y, radius, p.color, 1.0 - 0.6 * cycle, 0.0, 0.25), _obj(p, x, y, 0.5, color=p.color2)]


def _chaser(t: float, p: ActionParams) -> List[Shape]:
    lit = int((p.phase + 3.0 * _F * p.speed * t) * 3) % 3
    x0, y = _lerp(0.2, 0.3, p.u[0]), _lerp(0.2, 0.8, p.u[1])
    return [_obj(p, x0 + 0.22 * i, y, 0.9, opacity=1.0 if i == lit else 0.15) for i in range(3)]


class Pattern(NamedTuple):
    """A named motion pattern: ``fn(t_seconds, params) -> list[Shape]``."""

    name: str
    fn: Callable[[float, ActionParams], List[Shape]]


PATTERNS: Tuple[Pattern, ...] = (
    Pattern("move_right", _move(1.0, 0.0)),
    Pattern("spin_bar", _spin_bar),
    Pattern("converge", _two_objects(converge=True)),
    Pattern("pulse", _pulse),
    Pattern("blink", _blink),
    Pattern("move_left", _move(-1.0, 0.0)),
    Pattern("bounce", _bounce),
    Pattern("move_down", _move(0.0, 1.0)),
    Pattern("orbit", _orbit),
    Pattern("pendulum", _pendulum),
    Pattern("move_up", _move(0.0, -1.0)),
    Pattern("zigzag", _zigzag),
    Pattern("diagonal", _diagonal),
    Pattern("diverge", _two_objects(converge=False)),
    Pattern("spiral", _spiral),
    Pattern("shake_vertical", _shake(vertical=True)),
    Pattern("shake_horizontal", _shake(vertical=False)),
    Pattern("figure_eight", _figure_eight),
    Pattern("ripple", _ripple),
    Pattern("chaser", _chaser),
)
assert len(PATTERNS) == len(CLASS_NAMES)


def pattern_for_class(index: int) -> Pattern:
    """The motion pattern of class ``index`` (0-based, THUMOS14 order).

    Raises:
        IndexError: ``index`` is outside ``[0, 20)``.
    """
    if not 0 <= index < len(PATTERNS):
        raise IndexError(f"Synthetic class index {index} out of range [0, {len(PATTERNS)}).")
    return PATTERNS[index]
