"""The layers gridgeo imports and exports, and the columns each one carries.

A layer is what a file (or one layer of a GeoPackage) holds. Column names are the
ones in files; the store uses the same names. Geometry is EPSG:4326 lon/lat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ACCOUNT_ROLES", "Column", "Layer", "LAYERS", "IMPORT_ORDER", "MAX_LENGTHS", "PLATFORMS", "STAFF_ROLES",
           "get_layer"]

#: The four platforms (四个平台), code name -> label.
PLATFORMS = {
    "stability": "综治工作",
    "market": "市场监管",
    "enforcement": "综合执法",
    "service": "便民服务",
}

# Three vocabularies of roles, each defined once: STAFF_ROLES (the posts of the people of
# a grid, in the staff layer), ACCOUNT_ROLES (what a user account may do in the service)
# and gridgeo.events.workflow.WORKFLOW_ACTORS (the parts played in an event's life cycle).

#: Staff roles (网格人员 posts), code name -> label.
STAFF_ROLES = {
    "grid_head": "网格长",
    "full_time_worker": "专职网格员",
    "part_time_worker": "兼职网格员",
    "instructor": "网格指导员",
}

#: Roles of user accounts, code name -> label (the users table's CHECK, gridgeo.auth's
#: permissions). The public reporter has no account: they follow their event with its token.
ACCOUNT_ROLES = {
    "admin": "系统管理员",
    "planner": "网格规划（社会发展科）",
    "command_room": "综合指挥室",
    "leadership": "领导小组",
    "platform_office": "平台协调办公室",
    "department": "责任部门",
    "grid_worker": "网格员",
}

#: Division levels, code name -> label.
LEVELS = {
    "county": "县/区",
    "township": "乡镇",
    "street": "街道",
    "village": "村",
    "community": "社区",
}

#: Event sources, code name -> label.
SOURCES = {
    "patrol": "网格员巡查",
    "hotline": "12345热线",
    "petition": "信访",
    "app": "群众APP/小程序",
    "inspection": "部门巡查",
    "department": "部门移交",
}


@dataclass(frozen=True)
class Column:
    """One column of a layer.

    ``kind`` is one of ``str``, ``int``, ``float``, ``bool``, ``date``, ``datetime``.
    ``pattern`` is a regular expression a ``str`` value must match in full;
    ``choices`` the values allowed.
    """

    name: str
    kind: str = "str"
    required: bool = True
    pattern: str | None = None
    choices: tuple[str, ...] | None = None
    label: str = ""


@dataclass(frozen=True)
class Layer:
    """A layer: its name, columns, geometry type and key column."""

    name: str
    label: str
    columns: tuple[Column, ...]
    geometry: str | None = None  # "point", "line", "polygon" or None for tables
    key: str | None = None
    geometry_required: bool = True
    notes: str = field(default="", compare=False)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


_CODE12 = r"\d{12}"
_CODE15 = r"\d{15}"

LAYERS: dict[str, Layer] = {
    layer.name: layer
    for layer in [
        Layer(
            "divisions",
            "行政区划",
            (
                Column("code", pattern=r"\d{6}|\d{9}|\d{12}", label="统计用区划代码"),
                Column("name", label="名称"),
                Column("level", choices=tuple(LEVELS), label="层级"),
                Column("parent_code", required=False, pattern=r"\d{6}|\d{9}|\d{12}", label="上级代码"),
            ),
            geometry="polygon",
            key="code",
            geometry_required=False,
            notes="county (6-digit code), township/street (9), village/community (12). "
            "Villages and communities need a polygon; counties and townships may have one.",
        ),
        Layer(
            "grids",
            "网格",
            (
                Column("code", pattern=_CODE15, label="网格编码"),
                Column("name", label="网格名称"),
                Column("village_code", pattern=_CODE12, label="所属村社"),
                Column("kind", required=False, choices=("basic", "dedicated"), label="类型"),
                Column("households", "int", required=False, label="户数"),
                Column("population", "int", required=False, label="人口"),
                Column("buildings", "int", required=False, label="楼栋"),
            ),
            geometry="polygon",
            key="code",
            notes="code = village code + 3-digit sequence, numbered west to east, north to south.",
        ),
        Layer(
            "households",
            "户",
            (
                Column("code", label="户编号"),
                Column("address", label="标准地址"),
                Column("village_code", required=False, pattern=_CODE12, label="所属村社"),
                Column("households", "int", required=False, label="户数"),
                Column("population", "int", required=False, label="人口"),
                Column("buildings", "int", required=False, label="楼栋"),
                Column("contact_name", required=False, label="联系人"),
                Column("contact_phone", required=False, label="联系电话"),
            ),
            geometry="point",
            key="code",
            notes="one point per address; 'households' counts the households at it (default 1).",
        ),
        Layer(
            "roads",
            "道路河流",
            (
                Column("code", label="编号"),
                Column("name", required=False, label="名称"),
                Column("kind", choices=("road", "river"), label="类别"),
                Column("rank", required=False, label="等级"),
            ),
            geometry="line",
            key="code",
        ),
        Layer(
            "staff",
            "网格人员",
            (
                Column("code", label="人员编号"),
                Column("name", label="姓名"),
                Column("phone", pattern=r"1\d{10}", label="手机"),
                Column("role", choices=tuple(STAFF_ROLES), label="角色"),
                Column("grid_code", pattern=_CODE15, label="网格编码"),
            ),
            key="code",
            notes="one row per person and grid; an instructor may serve several grids.",
        ),
        Layer(
            "categories",
            "事项清单",
            (
                Column("code", label="事项编码"),
                Column("name", label="事项名称"),
                Column("platform", choices=tuple(PLATFORMS), label="平台"),
                Column("department", label="责任部门"),
                Column("deadline_hours", "int", label="办理时限(小时)"),
                Column("major", "bool", required=False, label="重大事项"),
                Column("deadline_workdays", "int", required=False, label="办理时限(工作日)"),
                Column("description", required=False, label="说明"),
            ),
            key="code",
        ),
        Layer(
            "events",
            "事件",
            (
                Column("code", label="事件编号"),
                Column("source", choices=tuple(SOURCES), label="来源"),
                Column("category_code", label="事项编码"),
                Column("reported_at", "datetime", label="上报时间"),
                Column("description", required=False, label="描述"),
                Column("lon", "float", required=False, label="经度"),
                Column("lat", "float", required=False, label="纬度"),
                Column("crs", required=False, choices=("wgs84", "cgcs2000", "gcj02", "bd09"), label="坐标系"),
                Column("address", required=False, label="地址"),
                Column("reporter_name", required=False, label="上报人"),
                Column("reporter_phone", required=False, label="上报人电话"),
                Column("reporter_staff_code", required=False, label="上报网格员"),
            ),
            key="code",
            notes="lon/lat as reported, in the row's crs; an event may have only an address.",
        ),
    ]
}

#: The order in which layers depend on each other.
IMPORT_ORDER = ["divisions", "categories", "grids", "roads", "households", "staff", "events"]

#: The longest value, in characters, of every text column of every layer. An import
#: refuses a longer one (file, row, field): one huge address would slow every lookup.
#: The event intake (API and Open311) takes the same limits for the same fields. Never
#: above the store's column length, so the database never is the one to refuse.
MAX_LENGTHS: dict[str, dict[str, int]] = {
    "divisions": {"code": 12, "name": 200, "level": 16, "parent_code": 12},
    "grids": {"code": 15, "name": 200, "village_code": 12, "kind": 16},
    "households": {"code": 64, "address": 500, "village_code": 12, "contact_name": 100,
                   "contact_phone": 32},
    "roads": {"code": 64, "name": 200, "kind": 16, "rank": 32},
    "staff": {"code": 64, "name": 100, "phone": 32, "role": 32, "grid_code": 15},
    "categories": {"code": 32, "name": 200, "platform": 16, "department": 200, "description": 4000},
    "events": {"code": 64, "source": 32, "category_code": 32, "description": 4000, "crs": 16,
               "address": 500, "reporter_name": 100, "reporter_phone": 32, "reporter_staff_code": 64},
}


def get_layer(name: str) -> Layer:
    """Return the layer called ``name``; raise ``KeyError`` listing the known ones."""
    try:
        return LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}: use one of {', '.join(LAYERS)}") from None
