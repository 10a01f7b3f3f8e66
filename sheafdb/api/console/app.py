"""The web console: server-rendered pages (jinja2) made live with htmx, on the API's port.

``console_routes(engine, access, metrics)`` gives the routes the HTTP app serves after the REST
API's (``GET /`` and below; ``/static`` holds htmx and the style sheet, shipped in the
package: no network at run time). Pages read through the Engine facade in worker threads,
like REST; every page and action checks the privilege of the gRPC method it stands for
(sessions.py), and an action's refusal or error shows Milvus's message in place.

Live parts poll with htmx: the load state fragment asks again every half second while the
collection is Loading (and stops once it is not), the memory bars every second.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sheafdb.api.console import views
from sheafdb.api.console.explore import DataPage, SearchPage, read_data, run_search
from sheafdb.api.console.sessions import COOKIE, SESSION_SECONDS, NotLoggedIn, Sessions
from sheafdb.api.metrics import ServerMetrics
from sheafdb.api.status import code_and_message
from sheafdb.engine.access import AccessControl
from sheafdb.engine.engine import Engine
from sheafdb.errors import CredentialInvalid, SheafError

_HERE = Path(__file__).parent
Handler = Callable[[Request], Awaitable[Response]]


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["bytes"] = views.human_bytes
    env.filters["index_progress"] = views.index_progress
    env.filters["tojson_compact"] = lambda value: json.dumps(value, separators=(",", ":"), default=str)
    return env


async def _form(request: Request) -> dict[str, list[str]]:
    return parse_qs((await request.body()).decode(errors="replace"), keep_blank_values=True)


def _names(form: Mapping[str, list[str]], key: str) -> tuple[str, ...]:
    """Ticked boxes, or one text box of comma-separated names."""
    return tuple(name.strip() for value in form.get(key, ()) for name in value.split(",") if name.strip())


def _first(form: Mapping[str, list[str]], key: str, default: str = "") -> str:
    values = form.get(key)
    return values[0].strip() if values else default


def _code_and_message(err: Exception) -> tuple[int, str]:
    if isinstance(err, SheafError):
        return code_and_message(err)
    return 65535, f"{type(err).__name__}: {err}"  # a bug: say so in place instead of a blank 500


class Console:
    def __init__(self, engine: Engine, access: AccessControl | None, metrics: ServerMetrics | None) -> None:
        self.engine = engine
        self.sessions = Sessions(access)
        self.metrics = metrics
        self.templates = _templates()

    # -- plumbing ----------------------------------------------------------------------------
    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        text = self.templates.get_template(template).render(auth=self.sessions.required, **context)
        return HTMLResponse(text, status_code=status_code)

    def error(self, err: Exception, user: str | None = None, *, whole_page: bool = False) -> HTMLResponse:
        code, message = _code_and_message(err)
        if whole_page:
            return self.render("error_page.html", user=user, nav="", code=code, message=message)
        return self.render("error.html", code=code, message=message)

    def page(self, handler: Callable[[Request, str | None], Awaitable[Response]]) -> Handler:
        """Wraps a handler: finds the user (or sends to the login form), renders errors."""

        async def run(request: Request) -> Response:
            try:
                user = self.sessions.user(request.cookies.get(COOKIE))
            except NotLoggedIn:
                if request.headers.get("hx-request"):
                    return Response(status_code=401, headers={"HX-Redirect": "/login"})
                return RedirectResponse("/login", status_code=303)
            try:
                return await handler(request, user)
            except Exception as err:
                return self.error(err, user, whole_page=not request.headers.get("hx-request"))

        return run

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    def allowed(self, user: str | None) -> views.Allowed:
        return lambda operation, db, collection: self.sessions.allowed(user, operation, db, collection)

    # -- login -------------------------------------------------------------------------------
    async def login_form(self, request: Request) -> Response:
        return self.render("login.html", user=None, message="")

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        try:
            token = await self.call(self.sessions.login, _first(form, "username"), _first(form, "password"))
        except CredentialInvalid as err:
            return self.render("login.html", status_code=401, user=None, message=err.message)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="strict")
        return response

    async def logout(self, request: Request) -> Response:
        self.sessions.logout(request.cookies.get(COOKIE))
        response = RedirectResponse("/login" if self.sessions.required else "/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- databases and collections -----------------------------------------------------------
    async def overview(self, request: Request, user: str | None) -> Response:
        listing = await self.call(views.collection_rows, self.engine, self.allowed(user))
        return self.render("collections.html", user=user, listing=listing, nav="collections")

    async def collections_table(self, request: Request, user: str | None) -> Response:
        listing = await self.call(views.collection_rows, self.engine, self.allowed(user))
        return self.render("collections_table.html", listing=listing)

    async def collection(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        self.sessions.check(user, views.SEE_COLLECTION, db, name)
        detail = await self.call(views.collection_detail, self.engine, db, name)
        return self.render("collection.html", user=user, c=detail, nav="collections")

    async def state(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        self.sessions.check(user, "GetLoadState", db, name)
        status = await self.call(views.load_status, self.engine, db, name)
        return self.render("state.html", db=db, name=name, status=status)

    async def load(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        form = await _form(request)
        fields = _names(form, "fields")
        partitions = _names(form, "partitions")
        skip_dynamic = _first(form, "skip_dynamic") == "on"
        operation = "LoadPartitions" if partitions else "LoadCollection"
        self.sessions.check(user, operation, db, name)
        before = await self.call(views.load_status, self.engine, db, name)
        started_at = time.monotonic()
        failed = True
        try:
            if partitions:
                await self.call(
                    self.engine.load_partitions,
                    db,
                    name,
                    partitions,
                    load_fields=fields,
                    skip_load_dynamic_field=skip_dynamic,
                )
            else:
                await self.call(
                    self.engine.load_collection,
                    db,
                    name,
                    load_fields=fields,
                    skip_load_dynamic_field=skip_dynamic,
                )
            failed = False
        finally:
            self._lifecycle("/console/load", operation, db, name, failed, started_at)
        status = await self.call(views.load_status, self.engine, db, name)
        return self.render("state.html", db=db, name=name, status=status, before=before.resident_bytes)

    async def plan(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        form = await _form(request)
        self.sessions.check(user, "GetLoadState", db, name)
        preview = await self.call(
            self.engine.preview_load,
            db,
            name,
            partitions=_names(form, "partitions"),
            load_fields=_names(form, "fields"),
            skip_load_dynamic_field=_first(form, "skip_dynamic") == "on",
        )
        return self.render("plan.html", plan=preview)

    async def release(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        self.sessions.check(user, "ReleaseCollection", db, name)
        started_at = time.monotonic()
        failed = True
        try:
            freed = await self.call(self.engine.release_collection, db, name)
            failed = False
        finally:
            self._lifecycle("/console/release", "ReleaseCollection", db, name, failed, started_at)
        status = await self.call(views.load_status, self.engine, db, name)
        return self.render("state.html", db=db, name=name, status=status, freed=freed)

    async def properties(self, request: Request, user: str | None) -> Response:
        db, name = request.path_params["db"], request.path_params["name"]
        form = await _form(request)
        self.sessions.check(user, "AlterCollection", db, name)
        key, value = _first(form, "key"), _first(form, "value")
        if _first(form, "action") == "drop":
            await self.call(self.engine.drop_collection_properties, db, name, [key])
        else:
            await self.call(self.engine.alter_collection_properties, db, name, {key: value})
        info = await self.call(self.engine.describe_collection, db, name)
        return self.render("properties.html", db=db, name=name, properties=dict(info.properties))

    def _lifecycle(
        self, path: str, operation: str, db: str, name: str, failed: bool, started_at: float
    ) -> None:
        if self.metrics is not None:
            self.metrics.rest_call(path, operation, db, name, failed=failed, started_at=started_at)

    # -- memory ------------------------------------------------------------------------------
    async def memory(self, request: Request, user: str | None) -> Response:
        listing = await self.call(views.collection_rows, self.engine, self.allowed(user))
        return self.render("memory.html", user=user, nav="memory", listing=listing, **await self._bars(user))

    async def memory_bars(self, request: Request, user: str | None) -> Response:
        return self.render("memory_bars.html", **await self._bars(user))

    async def _bars(self, user: str | None) -> dict[str, Any]:
        view = await self.call(self.engine.memory_view)
        allowed = self.allowed(user)
        blocks = [b for b in view.blocks if allowed("GetLoadState", b.db, b.collection)]
        return {"view": view, "bars": views.memory_bars(view, blocks)}

    # -- data and search ---------------------------------------------------------------------
    async def data(self, request: Request, user: str | None) -> Response:
        listing = await self.call(views.collection_rows, self.engine, self.allowed(user))
        page = DataPage.from_query(request.query_params)
        result, error = None, None
        try:
            if page.collection:
                self.sessions.check(user, "Query", page.db, page.collection)
                result = await self.call(read_data, self.engine, page)
        except SheafError as err:
            error = _code_and_message(err)
        return self.render(
            "data.html", user=user, nav="data", listing=listing, page=page, result=result, error=error
        )

    async def search(self, request: Request, user: str | None) -> Response:
        listing = await self.call(views.collection_rows, self.engine, self.allowed(user))
        page = SearchPage.from_query(request.query_params)
        result, error = None, None
        try:
            if page.collection and (page.vector or page.row_id):
                self.sessions.check(user, "Search", page.db, page.collection)
                if page.row_id:
                    self.sessions.check(user, "Query", page.db, page.collection)
                result = await self.call(run_search, self.engine, page)
        except SheafError as err:
            error = _code_and_message(err)
        return self.render(
            "search.html", user=user, nav="search", listing=listing, page=page, result=result, error=error
        )


def console_routes(
    engine: Engine, access: AccessControl | None, metrics: ServerMetrics | None = None
) -> list[BaseRoute]:
    console = Console(engine, access, metrics)
    collection = "/db/{db}/collections/{name}"
    return [
        Route("/", console.page(console.overview)),
        Route("/collections/table", console.page(console.collections_table)),
        Route("/login", console.login_form, methods=["GET"]),
        Route("/login", console.login, methods=["POST"]),
        Route("/logout", console.logout, methods=["POST"]),
        Route(collection, console.page(console.collection)),
        Route(collection + "/state", console.page(console.state)),
        Route(collection + "/load", console.page(console.load), methods=["POST"]),
        Route(collection + "/plan", console.page(console.plan), methods=["POST"]),
        Route(collection + "/release", console.page(console.release), methods=["POST"]),
        Route(collection + "/properties", console.page(console.properties), methods=["POST"]),
        Route("/memory", console.page(console.memory)),
        Route("/memory/bars", console.page(console.memory_bars)),
        Route("/data", console.page(console.data)),
        Route("/search", console.page(console.search)),
        Mount("/static", app=StaticFiles(directory=_HERE / "static"), name="static"),
    ]
