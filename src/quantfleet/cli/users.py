"""``quantfleet users ...`` and ``quantfleet token ...``: users, their quotas and their API tokens.

Faces are thin: parse, call the user service, render. ``token create``
prints the secret alone on standard output (so ``TOKEN=$(quantfleet token
create ana)`` works) and everything else on standard error.
"""

from __future__ import annotations

from datetime import datetime

import typer
from rich.console import Console
from rich.table import Table

from quantfleet.cli.common import state
from quantfleet.core.errors import ConfigError
from quantfleet.core.settings import load_settings
from quantfleet.users import UNCHANGED, TokenInfo, User, UserService
from quantfleet.users.service import Quota

__all__ = ["token_app", "users_app"]

users_app = typer.Typer(help="Add and list users and set their job quotas.", no_args_is_help=True)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

_services: dict[str, UserService] = {}


def _service() -> UserService:
    url = (state.settings or load_settings()).resolved_database_url
    if url not in _services:
        _services[url] = UserService.from_settings(state.settings or load_settings())
    return _services[url]


def _limit(value: int | None) -> str:
    return "-" if value is None else str(value)


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.strftime("%Y-%m-%d %H:%M")


def _parse_limit(text: str | None, option: str) -> Quota:
    """Return UNCHANGED (option not given), None (``none``: no limit) or the number."""
    if text is None:
        return UNCHANGED
    if text.strip().lower() in ("none", "unlimited"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: give a whole number, 0 or more, or 'none' for no limit") from None
    if value < 0:
        raise ConfigError(f"{option} {value}: give a whole number, 0 or more, or 'none' for no limit")
    return value


def _print_user(user: User) -> None:
    out.print(
        f"{user.name}  admin {'yes' if user.admin else 'no'}  "
        f"max running {_limit(user.max_running)}  max queued {_limit(user.max_queued)}",
        highlight=False,
    )


# -- users --------------------------------------------------------------------------------------


@users_app.command("add")
def add(
    name: str = typer.Argument(..., help="The user's name (the owner of its jobs): letters, digits, '-', '_', '.'."),
    admin: bool = typer.Option(False, "--admin", help="Make the user an administrator."),
    max_running: int | None = typer.Option(None, "--max-running", min=0, help="Most jobs running at once."),
    max_queued: int | None = typer.Option(None, "--max-queued", min=0, help="Most jobs waiting in the queue."),
) -> None:
    """Add a user (no limits unless given)."""
    _print_user(_service().add_user(name, admin=admin, max_running=max_running, max_queued=max_queued))


@users_app.command("ls")
def ls() -> None:
    """List users and their quotas."""
    table = Table(title="users", caption="quota '-': no limit")
    for column in ("name", "admin", "max running", "max queued", "created"):
        table.add_column(column)
    for user in _service().list_users():
        table.add_row(
            user.name,
            "yes" if user.admin else "",
            _limit(user.max_running),
            _limit(user.max_queued),
            _when(user.created_at),
        )
    out.print(table)


@users_app.command("quota")
def quota(
    name: str = typer.Argument(..., help="The user."),
    max_running: str | None = typer.Option(
        None, "--max-running", help="Most jobs running at once: a number, or 'none' for no limit."
    ),
    max_queued: str | None = typer.Option(
        None, "--max-queued", help="Most jobs waiting in the queue: a number, or 'none' for no limit."
    ),
) -> None:
    """Show a user's quotas, or change them (an option not given stays as it is)."""
    running = _parse_limit(max_running, "--max-running")
    queued = _parse_limit(max_queued, "--max-queued")
    _print_user(_service().set_quota(name, max_running=running, max_queued=queued))


# -- tokens -------------------------------------------------------------------------------------


@token_app.command("create")
def create(
    name: str = typer.Argument(..., help="The user the token authenticates as."),
    label: str = typer.Option("", "--label", help="What the token is for, e.g. 'laptop' or 'ci'."),
) -> None:
    """Create an API token and print it once: store it now, it cannot be shown again."""
    secret, info = _service().create_token(name, label=label)
    out.print(secret, highlight=False, soft_wrap=True)
    err.print(
        f"[bold yellow]Store this token now (e.g. in a password manager): it is shown only once.[/bold yellow]\n"
        f"token id {info.id} for {info.user}; revoke it with 'quantfleet token revoke {info.id}'",
        highlight=False,
    )


def _token_row(token: TokenInfo) -> tuple[str, ...]:
    status = "active" if token.active else f"revoked {_when(token.revoked_at)}"
    return (
        token.id,
        token.user,
        token.prefix + "...",
        token.label,
        _when(token.created_at),
        _when(token.last_used_at),
        status,
    )


@token_app.command("ls")
def token_ls(name: str | None = typer.Argument(None, help="Only this user's tokens.")) -> None:
    """List API tokens (never their secrets)."""
    table = Table(title="API tokens", caption="last used: recorded at most every 5 minutes")
    for column in ("id", "user", "starts with", "label", "created", "last used", "status"):
        table.add_column(column)
    for token in _service().list_tokens(name):
        table.add_row(*_token_row(token))
    out.print(table)


@token_app.command("revoke")
def revoke(token_id: str = typer.Argument(..., help="The token's id, as 'quantfleet token ls' shows it.")) -> None:
    """Revoke an API token: it stops authenticating at once."""
    token = _service().revoke_token(token_id)
    out.print(f"token {token.id} of {token.user} revoked", highlight=False)
