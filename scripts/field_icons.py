"""Draw the phone app's icons (console/static/field/icon-*.png) once: a 3×3 grid with a
location pin, white on the console's blue; geometry only (no font). Run again only to change
them: ``.venv/bin/python scripts/field_icons.py``."""

from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "console" / "static" / "field"
BLUE, WHITE, RED = (29, 79, 145), (255, 255, 255), (240, 180, 41)


def icon(size: int, inset: float) -> Image.Image:
    """``inset``: the share of each side left blank (maskable icons keep a safe zone)."""
    scale = 4  # drawn large, then reduced: smooth edges
    s = size * scale
    img = Image.new("RGB", (s, s), BLUE)
    d = ImageDraw.Draw(img)
    lo, hi = s * inset, s * (1 - inset)
    step = (hi - lo) / 3
    width = max(2, int(s * 0.022))
    for i in range(4):
        d.line([(lo + i * step, lo), (lo + i * step, hi)], fill=WHITE, width=width)
        d.line([(lo, lo + i * step), (hi, lo + i * step)], fill=WHITE, width=width)
    # a pin over the middle cell
    cx, cy, r = lo + 1.5 * step, lo + 1.25 * step, step * 0.55
    d.polygon([(cx - r * 0.8, cy + r * 0.5), (cx + r * 0.8, cy + r * 0.5), (cx, cy + r * 2.0)], fill=RED)
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=RED)
    d.ellipse([cx - r * 0.4, cy - r * 0.4, cx + r * 0.4, cy + r * 0.4], fill=BLUE)
    return img.resize((size, size), Image.LANCZOS)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    icon(192, 0.14).save(OUT / "icon-192.png", optimize=True)
    icon(512, 0.14).save(OUT / "icon-512.png", optimize=True)
    icon(512, 0.24).save(OUT / "icon-maskable-512.png", optimize=True)
    print("wrote", *sorted(p.name for p in OUT.glob("icon-*.png")))
