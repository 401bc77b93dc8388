"""``gridgeo users``: user accounts, their roles and scopes, and API tokens."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from gridgeo.cli.common import DatabaseOpt, err, open_store, out

app = typer.Typer(help="Users, passwords and API tokens: add, list, set passwords, issue and revoke tokens, demo users.",
                  no_args_is_help=True)


def _table(rows: list[dict], cols: list[str], title: str | None = None) -> None:
    table = Table(*cols, title=title)
    for r in rows:
        table.add_row(*["" if r.get(c) is None else ", ".join(r[c]) if isinstance(r.get(c), list)
                        else str(r[c]) for c in cols])
    out.print(table)


@app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name (1-64 characters).")],
    role: Annotated[str, typer.Option(help="admin, planner, command_room, leadership, platform_office, "
                                           "department or grid_worker.")],
    name: Annotated[Optional[str], typer.Option(help="Display name, kept in the history (default: the username).")] = None,
    grid: Annotated[Optional[list[str]], typer.Option(help="grid_worker: a grid code (repeat for several).")] = None,
    staff: Annotated[Optional[str], typer.Option(help="grid_worker: the staff code whose grids they serve.")] = None,
    department: Annotated[Optional[str], typer.Option(help="department: its name, as in the catalogue.")] = None,
    platform: Annotated[Optional[str], typer.Option(help="platform_office: stability, market, enforcement or service.")] = None,
    token: Annotated[bool, typer.Option("--token/--no-token", help="Also issue a token and print it.")] = True,
    days: Annotated[float, typer.Option(help="The token is valid this many days.")] = 90,
    password: Annotated[bool, typer.Option("--password", help="Ask for a password (the console's log-in).")] = False,
    generate_password: Annotated[bool, typer.Option("--generate-password",
                                                    help="Set a random password and print it once.")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Add a user with one role (and its scope); print a token for it, shown this once;
    with --password or --generate-password, a password for the console too.

    Example: gridgeo users add wangwei --role grid_worker --name 王伟 --staff P00051 --password
    """
    from gridgeo import auth, sessions

    store = open_store(database)
    secret = _ask_password(username) if password else sessions.new_password() if generate_password else None
    if secret is not None:
        sessions.check_new_password(username, secret)
    user = auth.create_user(store, username, role=role, name=name, grids=grid, staff_code=staff,
                            department=department, platform=platform, actor="cli")
    out.print(f"added {user['username']} ({user['role']}"
              + (f"; grids {', '.join(user['grids'])}" if user["grids"] else "")
              + (f"; {user['department']}" if user["department"] else "")
              + (f"; {user['platform']}" if user["platform"] else "") + ")")
    if secret is not None:
        sessions.set_password(store, username, secret, actor="cli")
        if generate_password and not password:
            typer.echo(f"password (shown once): {secret}")
        else:
            out.print("password set")
    if token:
        tok, _ = auth.create_token(store, username, days=days, actor="cli")
        out.print(f"token (shown once): {tok}")


def _ask_password(username: str) -> str:
    """A new password typed twice, hidden, checked before anything is written."""
    from gridgeo import sessions

    secret = typer.prompt(f"password for {username}", hide_input=True, confirmation_prompt=True)
    sessions.check_new_password(username, secret)
    return secret


@app.command("password")
def password(
    username: Annotated[str, typer.Argument(help="The user.")],
    generate: Annotated[bool, typer.Option("--generate", help="Set a random password and print it once "
                                                             "(instead of asking for one).")] = False,
    database: DatabaseOpt = None,
) -> None:
    """Set a user's console password (asked twice, hidden; or --generate). Every session of
    the user ends; their API tokens are not touched."""
    from gridgeo import auth, sessions

    store = open_store(database)
    auth.get_user(store, username)  # an unknown user is said before a password is asked
    secret = sessions.new_password() if generate else _ask_password(username)
    sessions.set_password(store, username, secret, actor="cli")
    if generate:
        typer.echo(f"password (shown once): {secret}")
    else:
        out.print(f"password set for {username}")


@app.command("logout")
def logout(username: Annotated[str, typer.Argument(help="The user.")], database: DatabaseOpt = None) -> None:
    """End every console session of a user (a lost phone, a shared computer)."""
    from gridgeo import sessions

    n = sessions.revoke_sessions(open_store(database), username, actor="cli")
    out.print(f"ended {n} session(s) of {username}")


@app.command("list")
def list_(database: DatabaseOpt = None) -> None:
    """Every user with role, scope and whether active."""
    from gridgeo import auth

    _table(auth.list_users(open_store(database)),
           ["username", "name", "role", "grids", "department", "platform", "active"])


@app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="The user.")],
    label: Annotated[str, typer.Option(help="What the token is for (shown in lists).")] = "",
    days: Annotated[float, typer.Option(help="Valid this many days (0: no end).")] = 90,
    database: DatabaseOpt = None,
) -> None:
    """Issue a new token for a user and print it (only its hash is kept)."""
    from gridgeo import auth

    tok, rec = auth.create_token(open_store(database), username, label=label, days=days or None, actor="cli")
    out.print(tok, highlight=False)
    err.print(f"token {rec['id']} for {username}, expires {rec['expires_at'] or 'never'}")


@app.command("tokens")
def tokens(
    username: Annotated[Optional[str], typer.Argument(help="Only this user's.")] = None,
    database: DatabaseOpt = None,
) -> None:
    """Tokens by id and prefix (never the tokens themselves)."""
    from gridgeo import auth

    _table(auth.list_tokens(open_store(database), username),
           ["id", "username", "prefix", "label", "created_at", "expires_at", "revoked_at"])


@app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (gridgeo users tokens).")],
    database: DatabaseOpt = None,
) -> None:
    """Revoke a token: every server worker refuses it within seconds."""
    from gridgeo import auth

    auth.revoke_token(open_store(database), token_id, actor="cli")
    out.print(f"revoked token {token_id}")


@app.command("disable")
def disable(username: Annotated[str, typer.Argument()], database: DatabaseOpt = None) -> None:
    """Switch a user off: their tokens stop working."""
    from gridgeo import auth

    auth.set_active(open_store(database), username, False, actor="cli")
    out.print(f"{username} is off")


@app.command("enable")
def enable(username: Annotated[str, typer.Argument()], database: DatabaseOpt = None) -> None:
    """Switch a user back on."""
    from gridgeo import auth

    auth.set_active(open_store(database), username, True, actor="cli")
    out.print(f"{username} is on")


@app.command("demo")
def demo(
    days: Annotated[float, typer.Option(help="The demo tokens are valid this many days.")] = 30,
    database: DatabaseOpt = None,
) -> None:
    """Demo users, one per role (created when missing), each with a fresh token, printed.

    For trying the sample out; the previous demo tokens are revoked. Not for production.
    """
    from gridgeo import auth, sessions

    store = open_store(database)
    rows = auth.demo_users(store, days=days)
    for r in rows:
        r["password"] = sessions.new_password()
        sessions.set_password(store, r["username"], r["password"], actor="gridgeo demo")
    for r in rows:
        r["scope"] = (", ".join(r["grids"]) or r["department"] or r["platform"]
                      or ("every event" if r["role"] in auth.ALL_EVENTS else "plans and statistics"))
    # Plain lines, never a table: a token cut to the terminal's width would be no token.
    typer.echo("Demo users, one per role: log in to the console (/) with the password, or send "
               f"Authorization: Bearer <token> (valid {days:g} days; `gridgeo users demo` issues new ones):")
    for r in rows:
        typer.echo(f"  {r['username']:<16} {r['role']:<16} password: {r['password']}   {r['token']}   "
                   f"scope: {r['scope']}")
