"""The command line's client side: ``sheafdb collections | describe | load | release | memory |
plan`` talk to a running server over REST (``/v2/vectordb/`` and ``/v2/sheafdb/``).

Tables and progress bars are ``rich``'s; ``--json`` prints the server's data instead, for
scripts. A server error exits 1 with the server's code and message; an unreachable server
exits 2. ``load`` sends the load on a thread (REST's load returns once Loaded) and meanwhile
polls the load state to draw the bar, then says how many bytes the load added.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

DEFAULT_URI = "http://127.0.0.1:19530"  # serve's default host and port
DEFAULT_TOKEN = "root:Milvus"  # serve's first login when --auth is on (ignored when it is off)
REQUEST_TIMEOUT_S = 300.0
_POLL_S = 0.2


class ServerError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code


class Unreachable(Exception):
    pass


class RestClient:
    def __init__(self, uri: str, token: str, db: str) -> None:
        self.uri = uri.rstrip("/")
        self.token = token
        self.db = db

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``path`` (``vectordb/...`` or ``sheafdb/...``); the reply's data, or ServerError."""
        payload = json.dumps({"dbName": self.db, **(body or {})}).encode()
        request = urllib.request.Request(
            f"{self.uri}/v2/{path}",
            data=payload,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                reply = json.loads(response.read())
        except urllib.error.HTTPError as err:  # 401 / 403 carry the envelope too
            try:
                reply = json.loads(err.read())
            except ValueError:
                raise ServerError(err.code, f"HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            raise Unreachable(
                f"cannot reach the server at {self.uri}: {getattr(err, 'reason', err)}"
            ) from None
        if reply.get("code", 0) != 0:
            raise ServerError(int(reply["code"]), str(reply.get("message", "")))
        return reply.get("data")

    def resident_bytes(self, name: str) -> int:
        memory = self.call("sheafdb/memory")
        return sum(
            c["bytes"]
            for c in memory["collections"]
            if c["collectionName"] == name and c["dbName"] == self.db
        )


def human_bytes(nbytes: float) -> str:
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


Command = Callable[[RestClient, argparse.Namespace, Console], Any]


def collections(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    names = client.call("vectordb/collections/list")
    memory = {
        c["collectionName"]: c["bytes"]
        for c in client.call("sheafdb/memory")["collections"]
        if c["dbName"] == client.db
    }
    rows = []
    for name in names:
        state = client.call("vectordb/collections/get_load_state", {"collectionName": name})
        stats = client.call("vectordb/collections/get_stats", {"collectionName": name})
        rows.append(
            {
                "collectionName": name,
                "rowCount": stats["rowCount"],
                "loadState": state["loadState"],
                "loadProgress": state.get("loadProgress", 0),
                "residentBytes": memory.get(name, 0),
            }
        )
    if args.json:
        return rows
    table = Table(title=f"Collections in {client.db}")
    for column, justify in (
        ("collection", "left"),
        ("rows", "right"),
        ("load state", "left"),
        ("in memory", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        state = row["loadState"].removeprefix("LoadState")
        if state == "Loading":
            state += f" {row['loadProgress']}%"
        table.add_row(row["collectionName"], str(row["rowCount"]), state, human_bytes(row["residentBytes"]))
    out.print(table)
    return None


def describe(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    info = client.call("vectordb/collections/describe", {"collectionName": args.name})
    info["partitions"] = client.call("vectordb/partitions/list", {"collectionName": args.name})
    info["indexes"] = [
        {
            **ix,
            **client.call(
                "vectordb/indexes/describe", {"collectionName": args.name, "indexName": ix["indexName"]}
            )[0],
        }
        for ix in info["indexes"]
    ]
    info["residentBytes"] = client.resident_bytes(args.name)
    if args.json:
        return info
    out.print(f"[bold]{client.db} / {info['collectionName']}[/bold]  id {info.get('collectionID')}")
    state = info.get("load", "").removeprefix("LoadState")
    out.print(f"load state: {state}, in memory: {human_bytes(info['residentBytes'])}")
    fields = Table(title="Fields")
    for column in ("field", "type", "details"):
        fields.add_column(column)
    for f in info.get("fields", []):
        details = ["primary key"] if f.get("primaryKey") else []
        details += [f"{p['key']}={p['value']}" for p in f.get("params", [])]
        fields.add_row(f["name"], f.get("type", ""), ", ".join(details))
    out.print(fields)
    indexes = Table(title="Indexes")
    for column in ("index", "field", "type", "metric", "state", "indexed rows"):
        indexes.add_column(column)
    for ix in info["indexes"]:
        indexed = f"{ix.get('indexedRows', 0)} / {ix.get('totalRows', 0)}"
        indexes.add_row(
            ix["indexName"],
            ix["fieldName"],
            ix.get("indexType", ""),
            ix["metricType"],
            ix.get("indexState", ""),
            indexed,
        )
    out.print(indexes)
    out.print("partitions: " + ", ".join(info["partitions"]))
    out.print("aliases: " + (", ".join(info.get("aliases") or []) or "none"))
    properties = info.get("properties", [])
    out.print("properties: " + (", ".join(f"{p['key']}={p['value']}" for p in properties) or "none"))
    return None


def load(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    before = client.resident_bytes(args.name)
    body: dict[str, Any] = {"collectionName": args.name, "loadFields": args.fields or []}
    if args.skip_dynamic:
        body["skipLoadDynamicField"] = True
    path = "vectordb/collections/load"
    if args.partitions:
        path, body["partitionNames"] = "vectordb/partitions/load", args.partitions
    outcome: dict[str, Any] = {}

    def send() -> None:
        try:
            client.call(path, body)
        except (ServerError, Unreachable) as err:
            outcome["error"] = err

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    state: dict[str, Any] = {}
    columns = (TextColumn("loading {task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    with Progress(*columns, console=out, disable=args.json) as progress:
        task = progress.add_task(args.name, total=100)
        while True:
            sender.join(_POLL_S)
            if "error" in outcome:
                raise outcome["error"]
            state = client.call("vectordb/collections/get_load_state", {"collectionName": args.name})
            progress.update(task, completed=state.get("loadProgress", 0))
            if state.get("loadState") == "LoadStateLoaded" and not sender.is_alive():
                break
            if state.get("loadState") == "LoadStateNotLoad" and not sender.is_alive():
                raise ServerError(101, f"the load of {args.name} stopped: the collection is not loaded")
    added = client.resident_bytes(args.name) - before
    result = {"collectionName": args.name, "loadState": state.get("loadState"), "addedBytes": added}
    if args.json:
        return result
    out.print(f"{args.name}: Loaded, added {human_bytes(added)} ({added} bytes)")
    return None


def release(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    data = client.call("sheafdb/release", {"collectionName": args.name})
    freed = int(data.get("freedBytes", 0))
    if args.json:
        return {"collectionName": args.name, "freedBytes": freed}
    out.print(f"{args.name}: released, freed {human_bytes(freed)} ({freed} bytes)")
    return None


def memory(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    data = client.call("sheafdb/memory")
    if args.json:
        return data
    table = Table(title="Memory by collection and field")
    for column, justify in (
        ("database", "left"),
        ("collection", "left"),
        ("field", "left"),
        ("kind", "left"),
        ("bytes", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for c in data["collections"]:
        for f in sorted(c["fields"], key=lambda item: -item["bytes"]):
            table.add_row(
                c["dbName"], c["collectionName"], f["fieldName"], f["kind"], human_bytes(f["bytes"])
            )
        table.add_row(
            c["dbName"],
            c["collectionName"],
            "[bold]total[/bold]",
            "",
            f"[bold]{human_bytes(c['bytes'])}[/bold]",
        )
    out.print(table)
    out.print(
        f"used {human_bytes(data['usedBytes'])}, reserved {human_bytes(data['reservedBytes'])}, "
        f"free {human_bytes(data['freeBytes'])} of a {human_bytes(data['budgetBytes'])} budget"
    )
    return None


def plan(client: RestClient, args: argparse.Namespace, out: Console) -> Any:
    body: dict[str, Any] = {
        "collectionName": args.name,
        "loadFields": args.fields or [],
        "partitionNames": args.partitions or [],
    }
    if args.skip_dynamic:
        body["skipLoadDynamicField"] = True
    data = client.call("sheafdb/load_plan", body)
    if args.json:
        return data
    table = Table(title=f"Load plan of {args.name}")
    table.add_column("field")
    table.add_column("kind")
    table.add_column("bytes", justify="right")
    for item in data["items"]:
        table.add_row(item["fieldName"], item["kind"], human_bytes(item["bytes"]))
    table.add_row("[bold]total[/bold]", "", f"[bold]{human_bytes(data['totalBytes'])}[/bold]")
    out.print(table)
    verdict = "[green]fits[/green]" if data["fits"] else "[red]does not fit[/red]"
    out.print(
        f"free {human_bytes(data['freeBytes'])} of a {human_bytes(data['budgetBytes'])} budget: {verdict}"
    )
    return None


COMMANDS: dict[str, tuple[Command, str]] = {
    "collections": (collections, "list the collections, their rows, load state and memory"),
    "describe": (describe, "a collection's schema, indexes, partitions, properties and memory"),
    "load": (load, "load a collection (a progress bar until Loaded) and say the bytes it added"),
    "release": (release, "release a collection and say the bytes it freed"),
    "memory": (memory, "memory by collection and field, and the budget"),
    "plan": (plan, "what a load would add, per field and index, and whether it fits"),
}


def add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, (_, text) in COMMANDS.items():
        parser = commands.add_parser(name, help=text)
        parser.add_argument("--uri", default=DEFAULT_URI, help=f"the server (default {DEFAULT_URI})")
        parser.add_argument("--token", default=DEFAULT_TOKEN, help="user:password (default root:Milvus)")
        parser.add_argument("--db", default="default", help="the database (default: default)")
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        if name in ("describe", "load", "release", "plan"):
            parser.add_argument("name", help="the collection")
        if name in ("load", "plan"):
            parser.add_argument("--fields", nargs="+", help="load only these fields (load_fields)")
            parser.add_argument("--partitions", nargs="+", help="only these partitions")
            parser.add_argument("--skip-dynamic", action="store_true", help="skip the dynamic field")


def run_client_command(args: argparse.Namespace) -> int:
    out = Console()
    command, _ = COMMANDS[args.command]
    client = RestClient(args.uri, args.token, args.db)
    try:
        result = command(client, args, out)
    except ServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Unreachable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    return 0
