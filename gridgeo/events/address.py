"""Matching free-text addresses to the standard address register (标准地址).

The register is the households layer: one point per address, e.g.
``松阳县青岚乡上源村12号`` or ``松阳县城东街道双溪社区城东大道458号7幢``. People write them
otherwise: ``浙江省丽水市`` in front, the county, township or community left out, ``3栋`` or
``3号楼`` for ``3幢``, ``号附近`` for ``号``, full-width digits, Chinese numerals.

:func:`normalize` brings both sides to one form and splits it into the village or
community named (if any), the numbers (house 号, building 幢, unit, room) and the rest
(road names). Matching then needs the numbers to agree exactly -- a fuzzy match must
never move an event from No. 12 to No. 21 -- and compares the names with rapidfuzz, so
a typo or a missing road name still finds the house. The confidence is 1.0 for an exact
match of the normalised address and less for every liberty taken.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process

__all__ = ["AddressMatch", "AddressRegister", "normalize"]

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5,
              "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=[号幢栋楼座单元室弄巷组])")
_NEAR = re.compile(r"(附近|旁边|旁|对面|边上|门口|一带|周边|周围|处|前面|后面|左右)+$")
_PUNCT = re.compile(r"[\s,，.。、;；:：()（）\[\]【】\"'“”‘’\-—_/\\#]+")
_PROVINCE = re.compile(r"^[^省市县区乡镇村]{2,3}(省|自治区)")
_CITY = re.compile(r"^[^省市县区乡镇村]{2,4}市(?!场)")
_BUILDING = re.compile(r"(\d+)(号楼|栋|座|幢|号幢)")
_UNIT = re.compile(r"(\d+)单元")
_ROOM = re.compile(r"(\d+)室")
_HOUSE = re.compile(r"(\d+)号")
_DIVISION_SUFFIXES = ("省", "市", "县", "区", "乡", "镇", "街道")


def _cn_to_int(text: str) -> int | None:
    """``"十二"`` -> 12, ``"二〇三"`` -> 203, ``"一百零五"`` -> 105."""
    if not any(c in text for c in "十百千"):
        digits = [_CN_DIGITS.get(c) for c in text]
        return None if None in digits else int("".join(map(str, digits)))
    total, current = 0, 0
    for c in text:
        if c in _CN_DIGITS:
            current = _CN_DIGITS[c]
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[c]
            total += (current or 1) * unit
            current = 0
    return total + current


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", str(text))
    text = _PUNCT.sub("", text)
    text = _CN_NUMBER.sub(lambda m: str(_cn_to_int(m.group(0)) or m.group(0)), text)
    return text


@dataclass(frozen=True)
class Parsed:
    """An address taken apart: village named, numbers, the remaining names, "near"."""

    village: str | None
    numbers: tuple[str, ...]
    names: str
    near: bool
    text: str


def normalize(address: str, *, prefixes: tuple[str, ...] = (), villages: dict[str, str] | None = None) -> Parsed:
    """Normalise ``address`` and take it apart.

    Parameters
    ----------
    address : str
    prefixes : tuple of str
        Names of the county, townships and streets to drop when they lead (longest
        first), e.g. ``("松阳县", "青岚乡", "城东街道")``.
    villages : dict, optional
        Village / community name -> code; a leading name is recognised and removed.
    """
    text = _clean(address)
    near = bool(_NEAR.search(text))
    text = _NEAR.sub("", text)
    text = _PROVINCE.sub("", text)
    text = _CITY.sub("", text)
    names = sorted(villages or {}, key=len, reverse=True)
    full = tuple(p for p in prefixes if p.endswith(_DIVISION_SUFFIXES))

    def leading_village(t: str) -> str | None:
        return next((n for n in names if t.startswith(n)), None)

    # Drop leading county / township / street names, one at a time, never eating into a
    # village name (青岚村 is not 青岚(乡) + 村). A short form (松阳 for 松阳县) only goes
    # when another prefix or a village follows it: 城东大道 is a road, not 城东(街道)大道.
    while leading_village(text) is None:
        for p in prefixes:
            if not p or not text.startswith(p):
                continue
            rest = text[len(p):]
            if p in full or leading_village(rest) or rest.startswith(prefixes):
                text = rest
                break
        else:
            break
    village = None
    name = leading_village(text)
    if name is not None:
        village, text = villages[name], text[len(name):]
    text = _BUILDING.sub(r"\1幢", text)
    numbers = []
    for pattern, tag in ((_HOUSE, "号"), (_BUILDING, "幢"), (_UNIT, "单元"), (_ROOM, "室")):
        m = pattern.search(text)
        if m:
            numbers.append(f"{m.group(1).lstrip('0') or '0'}{tag}")
    first = re.search(r"\d", text)
    names = text[: first.start()] if first else text
    return Parsed(village, tuple(numbers), names, near, text)


@dataclass(frozen=True)
class AddressMatch:
    """The register entry an address matched, and how sure the match is."""

    code: str | None
    address: str | None
    lon: float | None
    lat: float | None
    village_code: str | None
    confidence: float
    how: str


_NO_MATCH = AddressMatch(None, None, None, None, None, 0.0, "none")


class AddressRegister:
    """The standard address register, ready for matching.

    Parameters
    ----------
    households : GeoDataFrame
        The households layer (``code``, ``address``, ``village_code``, point geometry).
    divisions : DataFrame
        The divisions layer (``code``, ``name``, ``level``): county, township and
        street names are dropped as prefixes; village and community names recognised.
    min_score : float
        Lowest rapidfuzz score (0-100) of a fuzzy name match.
    margin : float
        How far ahead of the next different house the best fuzzy match must be.
    """

    def __init__(self, households, divisions, *, min_score: float = 60.0, margin: float = 10.0):
        levels = divisions["level"].to_numpy()
        names = divisions["name"].astype(str).to_numpy()
        codes = divisions["code"].astype(str).to_numpy()
        upper = np.isin(levels, ["county", "township", "street"])
        # Names also appear without their suffix (松阳 for 松阳县): both are prefixes.
        prefixes = set(names[upper])
        prefixes |= {n[:-1] for n in names[upper] if n.endswith(("县", "乡", "镇", "区")) and len(n) > 2}
        prefixes |= {n[:-2] for n in names[upper] if n.endswith("街道") and len(n) > 3}
        self.prefixes = tuple(sorted(prefixes, key=len, reverse=True))
        low = np.isin(levels, ["village", "community"])
        self.villages = dict(zip(names[low], codes[low]))
        self.village_names = dict(zip(codes[low], names[low]))
        self.min_score = float(min_score)
        self.margin = float(margin)
        n = len(households)
        self.codes = households["code"].astype(str).to_numpy()
        self.addresses = households["address"].astype(str).to_numpy()
        geoms = households.geometry.to_numpy() if n else np.array([], dtype=object)
        import shapely

        self.lon = shapely.get_x(geoms) if n else np.array([])
        self.lat = shapely.get_y(geoms) if n else np.array([])
        parsed = [normalize(a, prefixes=self.prefixes, villages=self.villages) for a in self.addresses]
        hv = households["village_code"].to_numpy() if "village_code" in households else [None] * n
        self.village = np.array([p.village or v for p, v in zip(parsed, hv)], dtype=object)
        self.numbers = [p.numbers for p in parsed]
        self.names = np.array([p.names for p in parsed], dtype=object)
        self.key = np.array([f"{v}|{p.text}" for v, p in zip(self.village, parsed)], dtype=object)
        self._by_key: dict[str, list[int]] = {}
        self._by_text: dict[str, list[int]] = {}
        self._by_numbers: dict[tuple[str, ...], list[int]] = {}
        self._by_house: dict[str, list[int]] = {}
        for i, p in enumerate(parsed):
            if len(p.numbers) > 1 and p.numbers[0].endswith("号"):
                self._by_house.setdefault(f"{self.village[i]}|{p.names}{p.numbers[0]}", []).append(i)
            self._by_key.setdefault(self.key[i], []).append(i)
            self._by_text.setdefault(p.text, []).append(i)
            self._by_numbers.setdefault(p.numbers, []).append(i)

    def __len__(self) -> int:
        return len(self.codes)

    def _entry(self, i: int, confidence: float, how: str) -> AddressMatch:
        return AddressMatch(self.codes[i], self.addresses[i], float(self.lon[i]), float(self.lat[i]),
                            self.village[i], round(float(confidence), 3), how)

    def match(self, address: str | None) -> AddressMatch:
        """The register entry ``address`` designates, with a confidence in [0, 1].

        ``how`` says which rule answered: ``exact`` (normalised text and village agree),
        ``exact-no-village`` (no village named, the rest is unique), ``compound`` (a
        house number whose buildings are in the register: the first building),
        ``fuzzy`` (numbers agree, names close), ``village`` (only a village named: no
        point, the village), or ``none``.
        """
        if address is None or not str(address).strip():
            return _NO_MATCH
        p = normalize(address, prefixes=self.prefixes, villages=self.villages)
        near = 0.95 if p.near else 1.0
        if p.village is not None:
            hits = self._by_key.get(f"{p.village}|{p.text}", [])
            if len(hits) == 1:
                return self._entry(hits[0], 1.0 * near, "exact")
        elif p.names:  # without a village, a bare number says nothing
            hits = self._by_text.get(p.text, [])
            if len(hits) == 1:
                return self._entry(hits[0], 0.95 * near, "exact-no-village")
        if len(p.numbers) == 1 and p.numbers[0].endswith("号") and p.village is not None:
            # A compound (小区) named by its number, without the building: its first building.
            hits = self._by_house.get(f"{p.village}|{p.names}{p.numbers[0]}", [])
            if hits:
                first = min(hits, key=lambda i: int(self.numbers[i][1][:-1]))
                return self._entry(first, 0.85 * near, "compound")
        if not p.numbers:
            if p.village is not None and not p.names:
                return AddressMatch(None, None, None, None, p.village, 0.6, "village")
            return _NO_MATCH
        cands = self._by_numbers.get(p.numbers, [])
        if p.village is not None:
            same = [i for i in cands if self.village[i] == p.village]
            cands = same or cands
        if not cands:
            return _NO_MATCH
        query = (self.village_names.get(p.village, "") if p.village else "") + p.names
        choices = [self.village_names.get(self.village[i], "") + self.names[i] for i in cands]
        if p.village is None and not p.names:  # only numbers: nothing to match them in
            return _NO_MATCH
        scored = process.extract(query, choices, scorer=fuzz.ratio, limit=None)
        best_choice, best, best_i = scored[0]
        if best < self.min_score:
            return _NO_MATCH
        # Another house scoring about as well: the address does not say which.
        rival = next((sc for ch, sc, _ in scored[1:] if ch != best_choice), None)
        if rival is not None and best - rival < self.margin:
            return _NO_MATCH
        if sum(1 for ch, _, _ in scored if ch == best_choice) > 1:
            return _NO_MATCH
        return self._entry(cands[best_i], best / 100.0 * 0.95 * near, "fuzzy")

    def match_many(self, addresses) -> pd.DataFrame:
        """:meth:`match` for each address; exact matches are found by one join.

        Returns a DataFrame (the index of ``addresses`` if a Series) with the fields
        of :class:`AddressMatch`.
        """
        s = addresses if isinstance(addresses, pd.Series) else pd.Series(list(addresses))
        out = [self.match(a) if isinstance(a, str) and a.strip() else _NO_MATCH for a in s.to_numpy()]
        cols = ["code", "address", "lon", "lat", "village_code", "confidence", "how"]
        return pd.DataFrame({c: pd.Series([getattr(m, c) for m in out], index=s.index,
                                          dtype=float if c in ("lon", "lat", "confidence") else object)
                             for c in cols}, index=s.index)
