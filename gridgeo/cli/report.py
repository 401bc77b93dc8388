"""``gridgeo report``: the assessment (考核) of a period as CSV, a spreadsheet or JSON."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from gridgeo.cli.common import SCHEDULER_HELP, DatabaseOpt, err, open_store, progress, scheduler_from

app = typer.Typer()


class Format(str, Enum):
    csv = "csv"
    xlsx = "xlsx"
    json = "json"


@app.command()
def report(
    period: Annotated[str, typer.Option(help="2026, 2026-Q3, 2026-07, 2026-07-15 or a range 2025-10/2026-09.")],
    by: Annotated[str, typer.Option(help="grid, village, township, worker, department, platform, category, total; "
                                         "several comma-separated, or all.")] = "grid",
    format: Annotated[Format, typer.Option("--format", "-f", help="csv, xlsx (one sheet per grouping) or json.")] = Format.csv,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write here (default: standard output; "
                                                                    "xlsx needs a file).")] = None,
    database: DatabaseOpt = None,
    as_of: Annotated[Optional[str], typer.Option(help="The moment the figures describe: an ISO date (its end, CST) "
                                                      "or time; default now.")] = None,
    rank: Annotated[Optional[str], typer.Option(help="Rank the units by this indicator (on_time_rate, closure_rate, "
                                                     "rework_rate, ...), with the minimum volume.")] = None,
    min_volume: Annotated[Optional[int], typer.Option(help="Ranking: least events in the indicator's denominator "
                                                           "(default GRIDGEO_RANKING_MIN_VOLUME).")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Column names: zh (中文) or en (codes). Default zh for xlsx, "
                                                       "en for csv and json.")] = None,
    total: Annotated[bool, typer.Option("--total/--no-total", help="Add the total row (合计) to each table "
                                                                   "(not to the worker table, whose rows overlap).")] = True,
    roles: Annotated[Optional[str], typer.Option(help="--by worker: the staff roles counted, comma-separated "
                                                      "(default all).")] = None,
    archive: Annotated[Optional[Path], typer.Option(
        help="Assess this archive (`gridgeo archive export`) on dask instead of the database; "
             "the same tables.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="With --archive. " + SCHEDULER_HELP)] = None,
    patrols: Annotated[bool, typer.Option("--patrols/--no-patrols", help="xlsx and json, --by grid or worker: add "
                                          "the patrols (巡查) of the period: distance, hours, coverage.")] = True,
) -> None:
    """The assessment (考核) of a period per unit: counts, hours to close, satisfaction and the rates.

    Rates: 立案率, 派遣率, 结案率, 按期结案率, 返工率, 延期率, 满意率.

    Example: gridgeo report --period 2026-Q3 --by department --format xlsx --out q3.xlsx

    Archives too large for one machine: gridgeo report --archive /shared/archive --period 2026
    --scheduler tcp://10.0.0.5:8786 (one dask task per month of events).
    """
    import pandas as pd

    from gridgeo.assess import DEFINITIONS, RANKABLE, assess_many, parse_groupings, parse_period, rank as rank_table
    from gridgeo.assess.export import records, to_csv, to_xlsx
    from gridgeo.assess.facts import as_utc

    if labels not in (None, "zh", "en"):
        raise typer.BadParameter("use zh or en", param_hint="--labels")
    chinese = (labels or ("zh" if format is Format.xlsx else "en")) == "zh"
    if format is Format.xlsx and out is None:
        raise typer.BadParameter("a spreadsheet needs a file: --out report.xlsx", param_hint="--out")
    if rank is not None and rank not in RANKABLE:
        raise typer.BadParameter(f"use one of {', '.join(RANKABLE)}", param_hint="--rank")
    groupings = parse_groupings(by)
    p = parse_period(period)
    when = as_utc(as_of)
    if scheduler is not None and archive is None:
        raise typer.BadParameter("--scheduler assesses an archive: give --archive DIR",
                                 param_hint="--scheduler")
    wanted = groupings + (["total"] if total and "total" not in groupings else [])
    with progress(len(wanted) + 2, "assessing") as step:
        role_list = [r.strip() for r in roles.split(",") if r.strip()] if roles else None
        if archive is not None:
            from gridgeo.scale.assess import assess_archive_many

            tables = assess_archive_many(archive, p, wanted, as_of=when, roles=role_list,
                                         client=scheduler_from(scheduler), progress=step)
        else:
            tables = assess_many(open_store(database), p, wanted, as_of=when, roles=role_list,
                                 progress=step)
        totals = tables.pop("total") if total and "total" not in groupings else None
        notes = {}
        for g in groupings:
            # Worker rows overlap (an event counts for every person of its grid): no total.
            if totals is not None and g not in ("total", "worker"):
                tables[g] = pd.concat([tables[g], totals])
            if rank is not None and g != "total":
                tables[g] = rank_table(tables[g], rank, min_volume=min_volume)
                notes[f"ranking {g}"] = tables[g].attrs["explanation_zh" if chinese else "explanation"]
        patrol_labels = {}
        if patrols and archive is None and format is not Format.csv:
            from gridgeo.patrols.service import LABELS as patrol_labels, patrol_stats

            for g in ("grid", "worker"):
                if g in groupings:
                    name = ("巡查·网格" if g == "grid" else "巡查·网格员") if format is Format.xlsx and chinese \
                        else f"patrols_{g}"
                    tables[name] = patrol_stats(open_store(database), p, g)
        step(f"writing {format.value}")
        if format is Format.xlsx:
            head = {"period": p.label, "as_of": when.isoformat(timespec="seconds")}
            to_xlsx(tables, out, chinese=chinese, notes={**head, **notes, **DEFINITIONS}, labels=patrol_labels or None)
        elif format is Format.json:
            body = {"period": p.as_dict(), "as_of": when.isoformat(timespec="seconds"),
                    "tables": {g: records(t) for g, t in tables.items()},
                    "rankings": notes or None, "definitions": DEFINITIONS}
            text = json.dumps(body, ensure_ascii=False, indent=1)
            if out:
                out.write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text + "\n")
        else:
            if len(tables) == 1:
                frame = next(iter(tables.values()))
            else:
                # Several groupings in one CSV: a first column says which.
                frame = pd.concat([t.assign(grouping=g) for g, t in tables.items()])
                frame = frame[["grouping", *[c for c in frame.columns if c != "grouping"]]]
            text = to_csv(frame, chinese=chinese, labels={"grouping": "分组"})
            if out:
                out.write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text.lstrip("\ufeff"))
    if out:
        source = f" of archive {archive}" if archive is not None else ""
        err.print(f"assessment{source} {p.label} by {', '.join(groupings)} -> {out}")
