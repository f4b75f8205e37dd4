"""quantfleet users add/ls/quota and token create/ls/revoke, through Typer as cli/app.py registers them."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from quantfleet.cli import users as users_cli
from quantfleet.cli.common import state
from quantfleet.core.settings import load_settings
from quantfleet.users import UserService


def make_app() -> typer.Typer:
    """Return the CLI as cli/app.py registers these commands."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def _root() -> None:
        state.settings = load_settings()

    app.add_typer(users_cli.users_app, name="users")
    app.add_typer(users_cli.token_app, name="token")
    return app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("QUANTFLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QUANTFLEET_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def invoke(cli: CliRunner, *args: str) -> str:
    done = cli.invoke(make_app(), list(args), catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.stdout


def service() -> UserService:
    return UserService.from_settings(load_settings())


def test_users_add_ls_and_quota(cli: CliRunner) -> None:
    assert "max running 2  max queued 50" in invoke(
        cli, "users", "add", "ana", "--max-running", "2", "--max-queued", "50"
    )
    invoke(cli, "users", "add", "root", "--admin")
    listed = invoke(cli, "users", "ls")
    assert "ana" in listed
    assert "root" in listed
    assert "yes" in listed
    shown = invoke(cli, "users", "quota", "ana", "--max-running", "none")
    assert "max running -  max queued 50" in shown
    assert invoke(cli, "users", "quota", "ana") == shown  # no option: shows, changes nothing
    user = service().get_user("ana")
    assert (user.max_running, user.max_queued) == (None, 50)


def test_token_create_prints_the_secret_once_and_ls_never_shows_it(cli: CliRunner) -> None:
    invoke(cli, "users", "add", "ana")
    done = cli.invoke(make_app(), ["token", "create", "ana", "--label", "laptop"], catch_exceptions=False)
    assert done.exit_code == 0
    secret = done.stdout.strip()
    assert secret.startswith("qf_")
    assert "shown only once" in done.stderr
    user = service().authenticate(secret)
    assert user is not None
    assert user.name == "ana"
    listed = invoke(cli, "token", "ls", "ana")
    assert secret not in listed
    assert secret[:8] in listed
    assert "laptop" in listed
    assert "active" in listed
    token_id = service().list_tokens("ana")[0].id
    assert f"token {token_id} of ana revoked" in invoke(cli, "token", "revoke", token_id)
    assert "revoked" in invoke(cli, "token", "ls")
    assert service().authenticate(secret) is None


def test_errors_are_user_errors_with_the_fix(cli: CliRunner) -> None:
    from quantfleet.core.errors import UserError

    for args, fix in (
        (["users", "add", "ana lee"], "1 to 64 ASCII letters"),
        (["users", "quota", "zoe", "--max-queued", "3"], "quantfleet users add zoe"),
        (["users", "quota", "zoe", "--max-queued", "lots"], "'none' for no limit"),
        (["token", "create", "zoe"], "quantfleet users add zoe"),
        (["token", "revoke", "nope"], "quantfleet token ls"),
    ):
        with pytest.raises(UserError, match=fix):
            cli.invoke(make_app(), args, catch_exceptions=False)
