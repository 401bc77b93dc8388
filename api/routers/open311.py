"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) over the events.

Services are the event catalogue's categories; service requests are events. Every
method answers in XML (``.xml``, required by the spec) or JSON (``.json``), with the
spec's field names; errors are the spec's ``errors`` list, not problem documents.

- ``GET discovery.{fmt}``
- ``GET services.{fmt}``, ``GET services/{service_code}.{fmt}``
- ``POST requests.{fmt}`` (form-encoded, with ``api_key``): an event from the public
  (source ``app``), through the same intake as ``POST /v1/events``;
- ``GET requests.{fmt}`` (``service_request_id`` list, ``service_code``,
  ``start_date``, ``end_date``, ``status``), ``GET requests/{service_request_id}.{fmt}``.

API keys: ``api_key`` is a gridgeo token (``gridgeo users token``; a bearer header works
too). Creating a request needs one of any user (the app that submits it); reading
requests needs a role that reads events, and gives only the events of its scope, as
``GET /v1/events`` does. Discovery and services are public. ``jurisdiction_id`` is accepted and ignored (one
jurisdiction per server). Positions are WGS84 as the spec says; a non-standard ``crs``
field (``gcj02``, ``bd09``) is accepted for phones that report those. Reporters'
names, phones and e-mails are never returned. The spec puts ``api_key`` in the query
or the form: it is accepted there and never logged (see gridgeo.api.middleware).

Text: URL-encoded form bodies are decoded as UTF-8, raw or percent-encoded, as the
WHATWG URL-encoded parser does (``curl -d 'description=井盖缺失'``). A request's text
fields have the limits of ``POST /v1/events`` (its schema is reused) and may not hold
control characters other than tab, line feed and carriage return (400: XML 1.0 cannot
carry them). Text stored before that rule, or by other routes, is written to XML with
such characters removed, so ``requests.xml`` is always well-formed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import xml.etree.ElementTree as ET
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from gridgeo.api.routers.events import EventCreate

from gridgeo.api.auth import PrincipalDep
from gridgeo.api.deps import StoreDep
from gridgeo import __version__, auth
from gridgeo.auth import Principal
from gridgeo.errors import GridgeoError, InternalError, NotFound, Unauthenticated
from gridgeo.events import catalogue, queries
from gridgeo.events.intake import CONTROL_CHARACTERS, EventIn, prepare_intake, submit_intake
from gridgeo.events.records import CST
from gridgeo.events.workflow import FINAL_STATES, STATES
from gridgeo.layers import PLATFORMS
from gridgeo.store import Store
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range

router = APIRouter(prefix="/open311/v2", tags=["open311"])

SPEC = "http://wiki.open311.org/GeoReport_v2"
MAX_REQUESTS = 1000
DEFAULT_DAYS = 90
_TYPES = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}


class Open311Error(Exception):
    def __init__(self, status: int, description: str):
        self.status = status
        self.description = description


def _caller(store: Store, principal: Principal, api_key: str | None) -> Principal:
    """The bearer token's principal, else the one of ``api_key``; 401 with neither."""
    if principal.anonymous and api_key and api_key.strip():
        principal = auth.authenticate(store, api_key)
    if principal.anonymous:
        raise Unauthenticated("api_key is required: a gridgeo token (gridgeo users token USERNAME)")
    return principal


def _fmt(fmt: str) -> str:
    if fmt not in _TYPES:
        raise Open311Error(404, f"unknown format {fmt!r}: use .xml or .json")
    return fmt


#: Characters XML 1.0 cannot carry (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    """``value`` as XML character data: characters XML 1.0 cannot carry removed."""
    return _NOT_XML.sub("", str(value))


def _xml_value(parent: ET.Element, key: str, value: Any, item: str | None = None) -> None:
    el = ET.SubElement(parent, key)
    if isinstance(value, list):
        for v in value:
            _xml_value(el, item or key[:-1], v)
    elif isinstance(value, dict):
        for k, v in value.items():
            _xml_value(el, k, v)
    elif isinstance(value, bool):
        el.text = "true" if value else "false"
    elif value is not None:
        el.text = _xml_text(value)


def _render(fmt: str, root: str, item: str | None, body, status: int = 200) -> Response:
    if fmt == "json":
        import json

        return Response(json.dumps(body, ensure_ascii=False), status_code=status, media_type=_TYPES["json"])
    el = ET.Element(root)
    if isinstance(body, list):
        for entry in body:
            _xml_value(el, item, entry, item=None)
    else:
        for k, v in body.items():
            _xml_value(el, k, v, item={"endpoints": "endpoint", "formats": "format"}.get(k))
    text = '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(el, encoding="unicode")
    return Response(text, status_code=status, media_type=_TYPES["xml"])


def _errors(fmt: str, status: int, description: str) -> Response:
    return _render(fmt if fmt in _TYPES else "xml", "errors", "error",
                   [{"code": status, "description": description}], status)


async def _guard(fmt: str, fn):
    """Run ``fn`` and turn failures into the spec's error list."""
    try:
        _fmt(fmt)
        result = fn()
        if asyncio.iscoroutine(result):
            result = await result
        return result
    except Open311Error as exc:
        return _errors(fmt, exc.status, exc.description)
    except InternalError:
        raise  # a bug: the API's problem handler logs it and tells the caller nothing
    except GridgeoError as exc:
        status = 400 if exc.status == 422 else exc.status
        return _errors(fmt, status, str(exc))


# -- discovery and services -------------------------------------------------------------


@router.get("/discovery.{fmt}", summary="Open311 service discovery")
async def discovery(fmt: str, request: Request):
    def run():
        base = str(request.url_for("discovery", fmt="json")).rsplit("/", 1)[0] + "/"
        body = {
            "changeset": __version__,
            "contact": "综合指挥室 (the command room) of the jurisdiction running this gridgeo",
            "key_service": ("API keys: api_key is a gridgeo API token, issued by the administrator "
                            "(gridgeo users token USERNAME). Creating a service request needs the token "
                            "of any active user (the app that submits it); reading requests needs a role "
                            "that reads events. An Authorization: Bearer header works too."),
            "endpoints": [{"specification": SPEC, "url": base, "changeset": __version__, "type": "production",
                           "formats": ["text/xml", "application/json"]}],
        }
        return _render(fmt, "discovery", None, body)

    return await _guard(fmt, run)


def _service(c: dict) -> dict:
    return {
        "service_code": c["code"],
        "service_name": c["name"],
        "description": c.get("description") or "",
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(x for x in (PLATFORMS[c["platform"]], c["department"]) if x),
        "group": PLATFORMS[c["platform"]],
    }


@router.get("/services.{fmt}", summary="Services: the event catalogue")
async def services(fmt: str, store: StoreDep, jurisdiction_id: str | None = None):
    return await _guard(fmt, lambda: _render(fmt, "services", "service",
                                             [_service(c) for c in catalogue.list_categories(store)]))


@router.get("/services/{service_code}.{fmt}", summary="A service definition")
async def service_definition(service_code: str, fmt: str, store: StoreDep, jurisdiction_id: str | None = None):
    """No service has extra attributes (``metadata`` is false): the definition lists none."""
    def run():
        c = catalogue.get_category(store, service_code)
        return _render(fmt, "service_definition", None, {"service_code": c["code"], "attributes": []})

    return await _guard(fmt, run)


# -- requests ----------------------------------------------------------------------------


def _status(state: str) -> str:
    return "closed" if state in FINAL_STATES else "open"


def _request(e: dict) -> dict:
    """An event as a GeoReport service request (no reporter data)."""
    notes = e.get("result") or STATES.get(e["state"], e["state"])
    if e.get("duplicate_of"):
        notes = f"{notes}（并入 {e['duplicate_of']}）"
    pos = e.get("position") or {}
    return {
        "service_request_id": e["code"],
        "status": _status(e["state"]),
        "status_notes": notes,
        "service_name": e.get("category_name"),
        "service_code": e["category_code"],
        "description": e.get("description"),
        "agency_responsible": e.get("escalated_to") or e.get("department"),
        "service_notice": e.get("state_label"),
        "requested_datetime": e["reported_at"],
        "updated_datetime": e.get("updated_at"),
        "expected_datetime": e.get("deadline_at"),
        "address": e.get("address_match") if e.get("located_by") == "address" else e.get("address"),
        "address_id": None,
        "zipcode": None,
        "lat": pos.get("lat"),
        "long": pos.get("lon"),
        "media_url": (e.get("photos") or [None])[0],
    }


def _date(value: str | None, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} {value!r} is not an ISO 8601 date/time") from None
    if not in_time_range(d):
        raise Open311Error(400, f"{name} {value!r} must fall between {FIRST_DAY} and {LAST_DAY}")
    return d if d.tzinfo else d.replace(tzinfo=CST)


@router.get("/requests.{fmt}", summary="Service requests")
async def get_requests(
    fmt: str,
    store: StoreDep,
    principal: PrincipalDep,
    api_key: Annotated[str | None, Query(description="A gridgeo token (or send a bearer header).")] = None,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
    jurisdiction_id: str | None = None,
    page: Annotated[int, Query(ge=1, le=queries.MAX_OFFSET // MAX_REQUESTS,
                               description="Extension: the page of 1,000 requests.")] = 1,
):
    """Requests by id (comma-separated; the other filters are then ignored, as the spec
    says), or by service, date range (default: the last 90 days) and status, newest
    first, at most 1,000."""
    def run():
        caller = _caller(store, principal, api_key)
        scope = auth.event_filters(caller, "reading service requests")
        if service_request_id:
            items = []
            for code in [c.strip() for c in service_request_id.split(",") if c.strip()][:MAX_REQUESTS]:
                try:
                    e = queries.get_event(store, code, history=False)
                except NotFound:
                    continue
                if auth.sees_event(caller, e):
                    items.append(_request(e))
            return _render(fmt, "service_requests", "request", items)
        end = _date(end_date, "end_date")
        start = _date(start_date, "start_date")
        if start is None:
            start = (end or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=DEFAULT_DAYS)
        states = None
        if status:
            wanted = {s.strip() for s in status.split(",")}
            if not wanted <= {"open", "closed"}:
                raise Open311Error(400, "status must be open, closed or open,closed")
            states = [s for s in STATES if _status(s) in wanted]
        page_ = queries.list_events(store, category=service_code or None, state=states, since=start, **scope,
                                    until=end, limit=MAX_REQUESTS, offset=(page - 1) * MAX_REQUESTS)
        return _render(fmt, "service_requests", "request", [_request(e) for e in page_["items"]])

    return await _guard(fmt, run)


@router.get("/requests/{service_request_id}.{fmt}", summary="One service request")
async def get_request(service_request_id: str, fmt: str, store: StoreDep, principal: PrincipalDep,
                      api_key: Annotated[str | None, Query(description="A gridgeo token.")] = None,
                      jurisdiction_id: str | None = None):
    def run():
        caller = _caller(store, principal, api_key)
        auth.event_filters(caller, "reading service requests")
        e = queries.get_event(store, service_request_id, history=False)
        if not auth.sees_event(caller, e):
            raise NotFound(f"no event {service_request_id!r}")
        return _render(fmt, "service_requests", "request", [_request(e)])

    return await _guard(fmt, run)


def _float(form, name: str) -> float | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise Open311Error(400, f"{name} {value!r} is not a number") from None


#: More fields than any GeoReport request has: a body of 100,000 "&" is refused unread.
MAX_FIELDS = 100


def parse_urlencoded(raw: bytes) -> FormData:
    """An ``application/x-www-form-urlencoded`` body as the WHATWG URL standard parses
    it: split on ``&`` and the first ``=``, ``+`` as space, percent-decode the bytes,
    then decode UTF-8 (invalid sequences become U+FFFD). Starlette decodes raw bytes as
    Latin-1, which turns the UTF-8 that ``curl -d`` and hotline gateways send into mojibake."""
    if raw.count(b"&") >= MAX_FIELDS:
        raise Open311Error(400, f"more than {MAX_FIELDS} form fields")
    pairs = []
    for field in raw.split(b"&"):
        if field:
            name, _, value = field.partition(b"=")
            pairs.append(tuple(unquote_to_bytes(x.replace(b"+", b" ")).decode("utf-8", "replace")
                               for x in (name, value)))
    return FormData(pairs)


async def _form(request: Request) -> FormData:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        return parse_urlencoded(await request.body())
    return await request.form()  # multipart: decoded by its declared charset (UTF-8 by default)


def _consent(form: FormData) -> bool:
    """The extension field ``notify_reporter`` (true/false, 1/0, yes/no): the reporter
    agrees to be told the outcome by SMS at ``phone``."""
    value = (form.get("notify_reporter") or "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise Open311Error(400, f"notify_reporter is true or false, not {value[:20]!r}")


def _event_in(form: FormData) -> EventIn:
    """The event of a request's fields, checked by the schema of ``POST /v1/events``
    (one definition of its limits), and free of control characters."""
    for key, value in form.multi_items():
        if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
            raise Open311Error(400, f"{key} holds a control character (only tab and line breaks are "
                                    "allowed in text)")
    lat, lon = _float(form, "lat"), _float(form, "long")
    address = (form.get("address_string") or "").strip() or None
    if (lat is None) != (lon is None):
        raise Open311Error(400, "lat and long go together")
    if lat is None and address is None and not form.get("address_id"):
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
    if form.get("address_id") and address is None and lat is None:
        raise Open311Error(400, "address_id is not supported here: send lat/long or address_string")
    name = "".join(x for x in ((form.get("last_name") or "").strip(), (form.get("first_name") or "").strip()) if x)
    media = (form.get("media_url") or "").strip()
    fields = {"source": "app", "category_code": (form.get("service_code") or "").strip(),
              "description": form.get("description") or None, "lon": lon, "lat": lat,
              "crs": form.get("crs") or ("wgs84" if lat is not None else None), "address": address,
              "reporter_name": name or None, "reporter_phone": (form.get("phone") or "").strip() or None,
              "photos": [media] if media else [],
              "notify_reporter": _consent(form)}
    try:
        checked = EventCreate(**fields)
    except ValidationError as exc:
        names = {"category_code": "service_code", "address": "address_string", "reporter_name": "first_name/last_name",
                 "reporter_phone": "phone", "photos": "media_url", "lon": "long"}
        raise Open311Error(400, "; ".join(
            f"{names.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'request'}: {e['msg']}"
            for e in exc.errors())) from None
    return EventIn(**checked.model_dump())


@router.post("/requests.{fmt}", summary="Create a service request (form-encoded, with api_key)")
async def post_request(fmt: str, request: Request, store: StoreDep, principal: PrincipalDep):
    """Fields: ``api_key`` (a gridgeo token, or a bearer header), ``service_code``, a location
    (``lat`` + ``long``, or ``address_string``, or ``address_id``), and optionally
    ``description``, ``first_name``, ``last_name``, ``phone``, ``email``,
    ``device_id``, ``account_id``, ``media_url``, ``jurisdiction_id``; extensions:
    ``crs`` of lat/long (default wgs84), ``notify_reporter`` (true: the reporter agrees to
    be told the outcome by SMS at ``phone``, a mobile number). Text is UTF-8, with the limits of
    ``POST /v1/events``. The event is committed before the answer, whose
    ``service_notice`` carries the reporter's status token."""
    async def run():
        form = await _form(request)
        caller = _caller(store, principal, form.get("api_key"))
        if not (form.get("service_code") or "").strip():
            raise Open311Error(400, "service_code is required")
        prepared = prepare_intake(store, _event_in(form), actor=f"open311:{caller.username}")
        result = await asyncio.wrap_future(submit_intake(store, prepared))
        e = result.event
        notice = (f"{e['state_label']}：事件编号 {e['code']}，查询码 {result.token}"
                  f"（GET /v1/events/{e['code']}/status）")
        return _render(fmt, "service_requests", "request",
                       [{"service_request_id": e["code"], "service_notice": notice,
                         "account_id": form.get("account_id") or None}], 201)

    return await _guard(fmt, run)
