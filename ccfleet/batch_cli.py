"""`ccfleet batch`: submit a JSONL file as a message batch, follow it, fetch its results.

The server is `--url`, else `CCFLEET_URL`, else http://127.0.0.1:8080; the client key is
`CCFLEET_API_KEY`. Exit codes: 0 the batch ended (or, for `submit` without `--wait`,
`cancel` and `list`, the server accepted the command); 1 an error (its message is printed);
3 the batch has not ended yet (`status`, `results`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

batch_app = typer.Typer(no_args_is_help=True, help=__doc__)

NOT_ENDED = 3
_UPLOAD_PIECE_BYTES = 256 * 1024
_POLL_S = 1.0

Url = Annotated[str, typer.Option(envvar="CCFLEET_URL", help="The ccfleet front end.")]
Key = Annotated[str, typer.Option(envvar="CCFLEET_API_KEY", help="Client key.", show_default=False)]
Out = Annotated[Path | None, typer.Option(help="Write the results (JSONL) here.")]

console = Console(stderr=True, soft_wrap=True)  # messages whole, never wrapped


def _client(url: str, key: str) -> httpx.Client:
    headers = {"anthropic-version": "2023-06-01"}
    if key:
        headers["x-api-key"] = key
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=httpx.Timeout(60.0))


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


def _checked(response: httpx.Response) -> Any:
    if response.is_success:
        return response.json()
    try:
        error = response.json()["error"]
        detail = f"{error['type']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:200]
    raise _fail(f"HTTP {response.status_code} {detail}")


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return _checked(client.request(method, path, **kwargs))
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {client.base_url}: {exc}") from exc


def _read_lines(path: Path) -> list[bytes]:
    """The file's requests, each line checked to be a JSON object (the server checks more)."""
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise _fail(f"cannot read {path}: {exc.strerror}") from exc
    lines = []
    for number, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise _fail(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(item, dict):
            raise _fail(f"{path}:{number}: expected an object with custom_id and params")
        lines.append(line)
    if not lines:
        raise _fail(f"{path}: no requests")
    return lines


def _upload_body(lines: list[bytes], progress: Progress, task: TaskID) -> Iterator[bytes]:
    body = b'{"requests":[' + b",".join(lines) + b"]}"
    progress.update(task, total=len(body))
    for start in range(0, len(body), _UPLOAD_PIECE_BYTES):
        piece = body[start : start + _UPLOAD_PIECE_BYTES]
        yield piece
        progress.advance(task, len(piece))


def _counts_text(batch: dict[str, Any]) -> str:
    counts = batch["request_counts"]
    kinds = ("succeeded", "errored", "canceled", "expired")
    return " ".join(f"{kind} {counts[kind]}" for kind in kinds if counts[kind]) or "-"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _wait(client: httpx.Client, batch: dict[str, Any]) -> dict[str, Any]:
    total = sum(batch["request_counts"].values())
    with _progress() as progress:
        task = progress.add_task("processing", total=total, counts="")
        while True:
            done = total - batch["request_counts"]["processing"]
            progress.update(task, completed=done, counts=_counts_text(batch))
            if batch["processing_status"] == "ended":
                return batch
            time.sleep(_POLL_S)
            batch = _request(client, "GET", f"/v1/messages/batches/{batch['id']}")


def _write_results(client: httpx.Client, batch_id: str, out: Path | None) -> None:
    path = f"/v1/messages/batches/{batch_id}/results"
    try:
        with client.stream("GET", path) as response:
            if not response.is_success:
                response.read()
                _checked(response)
            if out is None:
                for line in response.iter_lines():
                    typer.echo(line)
                return
            with out.open("wb") as sink:
                for piece in response.iter_bytes():
                    sink.write(piece)
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach {client.base_url}: {exc}") from exc
    console.print(f"results written to {out}")


def _print_batch(batch: dict[str, Any]) -> None:
    console.print(
        f"{batch['id']}  {batch['processing_status']}  "
        f"processing {batch['request_counts']['processing']}  {_counts_text(batch)}"
    )


@batch_app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL: one {custom_id, params} a line.")],
    wait: Annotated[bool, typer.Option(help="Follow the batch until it ends.")] = False,
    out: Out = None,
    url: Url = "http://127.0.0.1:8080",
    api_key: Key = "",
) -> None:
    """Create a batch from FILE; prints its id (on stdout)."""
    lines = _read_lines(file)
    with _client(url, api_key) as client:
        with _progress() as progress:
            task = progress.add_task(f"uploading {len(lines)} requests", counts="")
            batch = _request(
                client,
                "POST",
                "/v1/messages/batches",
                content=_upload_body(lines, progress, task),
                headers={"content-type": "application/json"},
            )
        typer.echo(batch["id"])
        if not wait and out is None:
            return
        batch = _wait(client, batch)
        _print_batch(batch)
        if out is not None:
            _write_results(client, batch["id"], out)


@batch_app.command()
def status(batch_id: str, url: Url = "http://127.0.0.1:8080", api_key: Key = "") -> None:
    """A batch's status and counts; exit code 3 while it has not ended."""
    with _client(url, api_key) as client:
        batch = _request(client, "GET", f"/v1/messages/batches/{batch_id}")
    _print_batch(batch)
    typer.echo(orjson.dumps(batch, option=orjson.OPT_INDENT_2).decode())
    if batch["processing_status"] != "ended":
        raise typer.Exit(NOT_ENDED)


@batch_app.command()
def results(
    batch_id: str, out: Out = None, url: Url = "http://127.0.0.1:8080", api_key: Key = ""
) -> None:
    """An ended batch's results (JSONL) on stdout or into --out; exit code 3 if not ended."""
    with _client(url, api_key) as client:
        batch = _request(client, "GET", f"/v1/messages/batches/{batch_id}")
        if batch["processing_status"] != "ended":
            _print_batch(batch)
            console.print("the batch has not ended yet")
            raise typer.Exit(NOT_ENDED)
        _write_results(client, batch_id, out)


@batch_app.command()
def cancel(batch_id: str, url: Url = "http://127.0.0.1:8080", api_key: Key = "") -> None:
    """Cancel a batch: waiting requests become canceled, running ones finish."""
    with _client(url, api_key) as client:
        # No body, but a POST is JSON or 415 (the front end refuses what web pages send).
        batch = _request(
            client,
            "POST",
            f"/v1/messages/batches/{batch_id}/cancel",
            headers={"content-type": "application/json"},
        )
    _print_batch(batch)


@batch_app.command("list")
def list_batches(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    url: Url = "http://127.0.0.1:8080",
    api_key: Key = "",
) -> None:
    """The newest batches."""
    with _client(url, api_key) as client:
        page = _request(client, "GET", "/v1/messages/batches", params={"limit": limit})
    table = Table("status", "processing", "results", "created")
    table.add_column("id", no_wrap=True)
    for batch in page["data"]:
        table.add_row(
            batch["processing_status"],
            str(batch["request_counts"]["processing"]),
            _counts_text(batch),
            batch["created_at"],
            batch["id"],
        )
    out = Console()
    if not out.is_terminal:  # piped: no terminal width to fit, keep ids whole
        out = Console(width=200)
    out.print(table)
