"""Draw the crew's portraits: flat geometric busts made here from circles and polygons.

Every PNG in this folder is this script's output, nothing taken from elsewhere. Each persona's
portrait uses its ``colour`` from ``personas/<id>.yaml`` for the backdrop and one or two
features that say who they are (the commander's insignia, the scientist's glasses, the
captain's cap, the engineer's headset, ARIA's lens, the station for the narrator). Drawing is
deterministic, so re-running it gives the same files.

    uv run python personas/portraits/draw.py      # rewrites personas/portraits/*.png

Pillow is a development dependency only: the bot serves the committed PNGs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import yaml
from PIL import Image, ImageDraw
from rich.color import Color

HERE = Path(__file__).resolve().parent
PERSONAS = HERE.parent
SIZE = 256
SCALE = 4  # draw large, then shrink: smooth edges without anti-aliasing primitives
S = SIZE * SCALE

RGB = tuple[int, int, int]


def rgb(name: str) -> RGB:
    r, g, b = Color.parse(name).get_truecolor()
    return (r, g, b)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def px(v: float) -> int:
    return round(v * S)


def backdrop(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """A vertical gradient from the persona's colour into the dark of space, and a few stars."""
    night = (12, 16, 32)
    for y in range(S):
        d.line([(0, y), (S, y)], fill=mix(mix(colour, night, 0.25), night, y / S))
    for i in range(14):  # a fixed scatter: the same sky in every run
        x, y = (0.07 + 0.61 * i) % 1.0, (0.05 + 0.37 * i * i) % 0.55
        r = 0.004 + 0.003 * (i % 3)
        d.ellipse([px(x - r), px(y - r), px(x + r), px(y + r)], fill=(235, 240, 255))


def bust(d: ImageDraw.ImageDraw, skin: RGB, suit: RGB, collar: RGB) -> None:
    d.ellipse([px(0.14), px(0.70), px(0.86), px(1.30)], fill=suit)  # shoulders
    d.polygon([(px(0.40), px(0.70)), (px(0.60), px(0.70)), (px(0.50), px(0.82))], fill=collar)
    d.rectangle([px(0.44), px(0.58), px(0.56), px(0.72)], fill=skin)  # neck
    d.ellipse([px(0.33), px(0.26), px(0.67), px(0.66)], fill=skin)  # head


def eyes(d: ImageDraw.ImageDraw, colour: RGB = (30, 30, 40)) -> None:
    for x in (0.43, 0.57):
        d.ellipse([px(x - 0.018), px(0.44), px(x + 0.018), px(0.475)], fill=colour)


def torres(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The commander: cropped dark hair, a high collar, gold rank bars."""
    bust(d, (198, 150, 118), (40, 48, 66), colour)
    d.chord([px(0.32), px(0.24), px(0.68), px(0.54)], 180, 360, fill=(48, 36, 30))
    d.rectangle([px(0.32), px(0.38), px(0.35), px(0.48)], fill=(48, 36, 30))
    d.rectangle([px(0.65), px(0.38), px(0.68), px(0.48)], fill=(48, 36, 30))
    eyes(d)
    d.line([(px(0.46), px(0.56)), (px(0.54), px(0.56))], fill=(120, 70, 60), width=px(0.008))
    for i in range(3):
        y = 0.84 + i * 0.035
        d.rectangle([px(0.62), px(y), px(0.74), px(y + 0.018)], fill=(232, 186, 64))


def tanaka(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The scientist: a black bob, round glasses, a lab coat over green."""
    bust(d, (228, 190, 160), (236, 238, 240), colour)
    d.chord([px(0.30), px(0.22), px(0.70), px(0.62)], 170, 370, fill=(22, 22, 28))
    d.rectangle([px(0.30), px(0.40), px(0.36), px(0.62)], fill=(22, 22, 28))
    d.rectangle([px(0.64), px(0.40), px(0.70), px(0.62)], fill=(22, 22, 28))
    eyes(d)
    for x in (0.43, 0.57):
        d.ellipse([px(x - 0.05), px(0.41), px(x + 0.05), px(0.505)], outline=(40, 40, 48),
                  width=px(0.01))  # fmt: skip
    d.line([(px(0.48), px(0.455)), (px(0.52), px(0.455))], fill=(40, 40, 48), width=px(0.01))
    d.arc([px(0.45), px(0.52), px(0.55), px(0.59)], 20, 160, fill=(150, 80, 80), width=px(0.01))


def vasquez(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The supply ship's captain: a peaked cap with a badge, a dark tunic."""
    bust(d, (176, 124, 92), (52, 40, 70), colour)
    eyes(d)
    d.rectangle([px(0.31), px(0.30), px(0.69), px(0.37)], fill=(30, 30, 44))  # cap band
    d.chord([px(0.31), px(0.18), px(0.69), px(0.44)], 180, 360, fill=(40, 40, 58))
    d.chord([px(0.30), px(0.33), px(0.62), px(0.43)], 0, 180, fill=(20, 20, 30))  # peak
    d.regular_polygon((px(0.5), px(0.27), px(0.035)), 5, fill=colour)
    d.line([(px(0.46), px(0.56)), (px(0.54), px(0.555))], fill=(110, 60, 50), width=px(0.008))


def webb(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The array engineer: tousled hair, a headset with a microphone."""
    bust(d, (214, 170, 132), (70, 80, 90), colour)
    for i in range(5):
        x = 0.36 + i * 0.07
        d.ellipse([px(x - 0.06), px(0.22), px(x + 0.06), px(0.34)], fill=(120, 82, 44))
    eyes(d)
    d.arc([px(0.29), px(0.24), px(0.71), px(0.66)], 190, 350, fill=(30, 30, 36), width=px(0.02))
    d.ellipse([px(0.28), px(0.42), px(0.35), px(0.52)], fill=(30, 30, 36))
    d.line([(px(0.32), px(0.52)), (px(0.44), px(0.58))], fill=(30, 30, 36), width=px(0.012))
    d.ellipse([px(0.43), px(0.565), px(0.47), px(0.595)], fill=colour)
    d.arc([px(0.46), px(0.52), px(0.56), px(0.58)], 20, 160, fill=(120, 70, 60), width=px(0.01))


def aria(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The station's AI: a lens of concentric rings, its pupil in ARIA's cyan."""
    c = (0.5, 0.52)
    for i, r in enumerate((0.34, 0.28, 0.22, 0.15)):
        fill = mix((24, 30, 44), (54, 66, 90), i / 3)
        d.ellipse([px(c[0] - r), px(c[1] - r), px(c[0] + r), px(c[1] + r)], fill=fill)
    for k in range(12):  # the status ticks around the lens
        a = k * math.tau / 12
        x0, y0 = c[0] + 0.37 * math.cos(a), c[1] + 0.37 * math.sin(a)
        x1, y1 = c[0] + 0.42 * math.cos(a), c[1] + 0.42 * math.sin(a)
        d.line([(px(x0), px(y0)), (px(x1), px(y1))], fill=colour, width=px(0.012))
    d.ellipse([px(c[0] - 0.09), px(c[1] - 0.09), px(c[0] + 0.09), px(c[1] + 0.09)], fill=colour)
    d.ellipse([px(c[0] - 0.03), px(c[1] - 0.06), px(c[0] + 0.02), px(c[1] - 0.01)],
              fill=(240, 255, 255))  # fmt: skip


def narrator(d: ImageDraw.ImageDraw, colour: RGB) -> None:
    """The station itself: a ring habitat on its spoke, and the planet below."""
    d.ellipse([px(-0.2), px(0.78), px(1.2), px(1.6)], fill=(40, 90, 120))  # the planet
    c, r = (0.5, 0.44), 0.27
    d.ellipse([px(c[0] - r), px(c[1] - r), px(c[0] + r), px(c[1] + r)], outline=colour,
              width=px(0.05))  # fmt: skip
    for k in range(4):
        a = k * math.tau / 4 + math.pi / 4
        d.line([(px(c[0]), px(c[1])), (px(c[0] + r * math.cos(a)), px(c[1] + r * math.sin(a)))],
               fill=colour, width=px(0.018))  # fmt: skip
    d.ellipse([px(c[0] - 0.06), px(c[1] - 0.06), px(c[0] + 0.06), px(c[1] + 0.06)],
              fill=(230, 236, 245))  # fmt: skip


ARTISTS: dict[str, Callable[[ImageDraw.ImageDraw, RGB], None]] = {
    "torres": torres, "tanaka": tanaka, "vasquez": vasquez, "webb": webb, "aria": aria,
    "narrator": narrator,
}  # fmt: skip


def draw(persona_id: str, colour: RGB) -> Image.Image:
    image = Image.new("RGB", (S, S))
    d = ImageDraw.Draw(image)
    backdrop(d, colour)
    ARTISTS[persona_id](d, colour)
    return image.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def main() -> None:
    for path in sorted(PERSONAS.glob("*.yaml")):
        persona = yaml.safe_load(path.read_text(encoding="utf-8"))
        out = HERE / f"{persona['id']}.png"
        draw(persona["id"], rgb(persona["colour"])).save(out, optimize=True)
        print(f"wrote {out.relative_to(PERSONAS.parent)}")


if __name__ == "__main__":
    main()
