"""The `voxgate` command: serve the API, manage models, ask one question locally."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from voxgate import accounts, model_files
from voxgate.catalog import CATALOG, Role
from voxgate.config import Settings
from voxgate.errors import VoxgateError
from voxgate.personas import BUILTIN
from voxgate.registry import Registry

app = typer.Typer(help="voxgate: a self-hosted voice chat API.", no_args_is_help=True, add_completion=False)
models_app = typer.Typer(help="List, pull, import, create and remove models.", invoke_without_command=True)
app.add_typer(models_app, name="models")
users_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: VOXGATE_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: VOXGATE_PORT or 8000)")] = None,
) -> None:
    """Serve the HTTP API (SIGTERM or Ctrl-C drain it first: see README, Shutdown)."""
    from voxgate import logs, server
    from voxgate.api.app import create_app

    settings = Settings()
    logs.configure(settings.log_format)
    if settings.auth == "on":
        created = asyncio.run(_with_database(settings, accounts.first_admin))
        if created:
            user, password, key = created
            _print_credentials(
                "first admin account created",
                user,
                password,
                key,
                url=f"http://{host or settings.host}:{port or settings.port}",
            )
    else:
        console.print("[yellow]VOXGATE_AUTH=off: anyone who can reach this port acts as the admin[/]")
    server.serve(create_app(settings), settings, host or settings.host, port or settings.port)


async def _with_database(settings: Settings, work, *args, **kwargs):
    db = await accounts.open_database(settings)
    try:
        return await work(db, *args, **kwargs)
    finally:
        await db.close()


def _print_credentials(title: str, user, password: str, key: str, url: str = "http://127.0.0.1:8000") -> None:
    console.print(
        f"[bold green]{title}[/]: user [bold]{user.username}[/]\n"
        f"  password: {password}\n"
        f"  API key:  {key}\n"
        f"  talk:     open {url}/ in a browser and sign in with this password\n"
        f"  use it:   curl -H 'Authorization: Bearer {key}' {url}/v1/models\n"
        "  (shown once; `voxgate users add NAME` creates more accounts)",
        soft_wrap=True,
    )


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


def _show_models(registry: Registry) -> None:
    table = Table("role", "source", "size", "license", "state", "default")
    table.add_column("name", no_wrap=True)  # names are what users type: never cut them
    for m in registry.all_models():
        size = f"{m.size_bytes / 1e6:,.0f} MB" if m.size_bytes else ""
        table.add_row(m.role.value, m.source, size, m.license or "", m.state, "yes" if m.default else "", m.name)
    Console().print(table)


@models_app.callback()
def models_default(ctx: typer.Context) -> None:
    """List every model (the same as `voxgate models ls`)."""
    if ctx.invoked_subcommand is None:
        _show_models(Registry(Settings()))


@models_app.command("ls")
def models_ls() -> None:
    """List every model: role, source, size, license, state, and the default of each role."""
    _show_models(Registry(Settings()))


def _bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )


@models_app.command("pull")
def models_pull(
    names: Annotated[list[str] | None, typer.Argument(help="Catalog names (default: the configured models)")] = None,
) -> None:
    """Install a model's packages if needed, then join and verify it in the cache directory."""
    settings = Settings()
    registry = Registry(settings)
    configured = [*registry.defaults.values(), *filter(None, [settings.llm.draft_model, registry.second_opinion])]
    for name in names or configured:
        if name not in CATALOG and registry.role_of(name) is not None:
            continue  # a path, an imported or a remote model: nothing to pull
        with _bar() as bar:
            task = bar.add_task(f"preparing {name}", total=CATALOG[name].size_bytes if name in CATALOG else None)

            def report(event: dict, bar=bar, task=task) -> None:
                if "completed" in event:
                    bar.update(task, completed=event["completed"])
                elif event["status"] != "success":
                    console.print(event["status"])

            _run(registry.pull, name, report)
        console.print(f"[green]✓[/] {name} is ready in {model_files.prepared_dir(settings.models_dir, name)}")


@models_app.command("import")
def models_import(
    name: str,
    path: Annotated[
        Path, typer.Argument(help="GGUF file, faster-whisper directory, Piper .onnx voice, or Smart Turn .onnx")
    ],
    role: Annotated[Role, typer.Option(help="What the model does")],
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 of the main file")] = None,
) -> None:
    """Copy your own model into the cache (verified) so it can be used by name."""
    with _bar() as bar:
        task = bar.add_task(f"importing {name}", total=None)
        info = _run(Registry(Settings()).import_model, name, role, path, sha256, lambda n: bar.advance(task, n))
    console.print(f"[green]✓[/] imported {name} ({info.size_bytes / 1e6:,.1f} MB, sha256 {info.sha256})")


@models_app.command("create")
def models_create(
    name: str,
    base: Annotated[str, typer.Option("--from", help="The LLM it runs on")],
    persona: Annotated[str | None, typer.Option(help="Start from a built-in persona")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt")] = None,
    voice: Annotated[str | None, typer.Option(help="Voice id (see GET /v1/voices)")] = None,
    language: Annotated[str | None, typer.Option(help="Answer in this language (ISO 639-1)")] = None,
    temperature: Annotated[float | None, typer.Option()] = None,
    max_tokens: Annotated[int | None, typer.Option()] = None,
) -> None:
    """A custom model: a base LLM plus a persona, usable by name in every endpoint."""
    fields = {}
    if persona:
        if persona not in BUILTIN:
            raise typer.BadParameter(f"{persona!r} is not a built-in persona ({', '.join(BUILTIN)})")
        fields = BUILTIN[persona].as_fields()
    given = {
        "system": system,
        "voice": voice,
        "language": language,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    fields.update({k: v for k, v in given.items() if v is not None})
    _run(Registry(Settings()).create, name, base, fields)
    console.print(f"[green]✓[/] created {name} from {base}")


@models_app.command("rm")
def models_remove(name: str) -> None:
    """Delete a prepared, imported or custom model and free its disk."""
    _run(Registry(Settings()).delete, name)
    console.print(f"removed {name}")


def _run(work, *args):
    """Call `work`; a voxgate error becomes a red message and exit code 1."""
    try:
        return work(*args)
    except VoxgateError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None


@app.command()
def ask(
    text: Annotated[str | None, typer.Argument(help="The question as text")] = None,
    audio: Annotated[Path | None, typer.Option(help="Ask with a recording instead of text")] = None,
    voice: Annotated[Path | None, typer.Option(help="Also speak the reply into this WAV file")] = None,
) -> None:
    """Run one turn locally, without the server."""
    from voxgate.pipeline import Pipeline
    from voxgate.turn_events import TurnInput

    if (text is None) == (audio is None):
        raise typer.BadParameter("give a question as text or --audio FILE (not both)")
    settings = Settings()

    async def run() -> None:
        pipeline = Pipeline(await asyncio.to_thread(Registry(settings).load_defaults), settings)
        try:
            result = await pipeline.turn(
                TurnInput(
                    text=text,
                    audio=audio.read_bytes() if audio else None,
                    reply_as="voice" if voice else "text",
                )
            )
        finally:
            await asyncio.to_thread(pipeline.close)
        if result.transcript is not None:
            console.print(f"[bold]you:[/] {result.transcript}")
        print(result.reply)
        if voice and result.speech:
            voice.write_bytes(result.speech)
            console.print(f"reply spoken into {voice}")

    try:
        asyncio.run(run())
    except VoxgateError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise typer.Exit(1) from None


@app.command("eval")
def evaluate(
    model: Annotated[
        list[str] | None,
        typer.Option(help="An LLM or custom model to score; repeat to compare (default: the server's default LLM)"),
    ] = None,
    url: Annotated[str, typer.Option(help="The voxgate server to ask")] = "http://127.0.0.1:8000",
    key: Annotated[str | None, typer.Option(envvar="VOXGATE_API_KEY", help="API key or access token")] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="Only these kinds: fact, arithmetic, explanation, follow-up, memory, instruction"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Also write every reply and verdict here as JSON")] = None,
) -> None:
    """Score models on the answer battery (right, heard, well-formed, latency) through a running server."""
    import json

    import httpx

    from voxgate.battery import BATTERY, run

    items = tuple(item for item in BATTERY if not kind or item.kind in kind)
    if not items:
        raise typer.BadParameter(f"no questions of kind {', '.join(kind or [])}")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    reports = []
    with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        names: list[str | None] = [*model] if model else [None]  # None: the server's default
        for name in names:
            with _bar() as bar:
                task = bar.add_task(f"{name or 'default'}", total=len(items))
                reports.append(run(client, name, items=items, on_score=lambda _, bar=bar, task=task: bar.advance(task)))
    table = Table(title=f"answer battery: {len(items)} questions, temperature 0")
    for column in ("model", "right", "heard (spoken)", "well-formed", "median s", "p95 s", "errors"):
        table.add_column(column)
    for report in reports:
        s = report.summary()
        table.add_row(
            s["model"],
            f"{s['right']}/{s['asked']}",
            f"{s['heard']}/{s['spoken']}",
            f"{s['well_formed']}/{s['asked']}",
            str(s["median_s"]),
            str(s["p95_s"]),
            str(s["errors"]),
        )
    Console().print(table)
    for report in reports:
        for error in report.errors:
            console.print(f"[red]{report.model}:[/] {error}")
        for miss in (x for x in report.scores if not (x.right and x.well_formed)):
            console.print(
                f"[yellow]{report.model}:[/] {miss.item.turns[-1]!r} → {miss.reply!r}"
                f"{'' if miss.right else ' (wrong)'}"
                f"{'' if miss.well_formed else ' (too long or unspeakable)'}"
            )
    if output:
        output.write_text(
            json.dumps(
                [
                    {
                        **r.summary(),
                        "replies": [
                            {
                                "kind": x.item.kind,
                                "turns": x.item.turns,
                                "reply": x.reply,
                                "right": x.right,
                                "heard": x.heard,
                                "well_formed": x.well_formed,
                                "seconds": round(x.seconds, 2),
                            }
                            for x in r.scores
                        ],
                        "failures": r.errors,
                    }
                    for r in reports
                ],
                indent=1,
            )
        )
    if any(r.errors for r in reports):
        raise typer.Exit(1)
