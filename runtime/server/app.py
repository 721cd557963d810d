"""The FastAPI application: routes, auth, ETag/If-Match, Idempotency-Key, problem+json.

Routes hold no rules: each parses its path, query and body into a typed command (the bodies are
the commands' own fields, so the validation is the CLI's), runs it through
:func:`runtime.engine.handle` as the token's actor, and answers with the export shape. Errors
are answered through the one table in :mod:`runtime.server.problems`.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run
# time, and the body models are made per route (locals a string annotation could not name).
import hashlib
import logging
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, create_model
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from runtime import engine
from runtime.engine import views
from runtime.engine.services import Services
from runtime.engine.tokens import authenticate, list_tokens, require
from runtime.errors import DataopsError, InputError
from runtime.model import (
    ApiToken,
    AssistantJob,
    AuditEvent,
    Bundle,
    Task,
    TokenRole,
    parse_instant,
)
from runtime.model import commands as c
from runtime.server import idempotency
from runtime.server.problems import (
    ERROR_STATUSES,
    PROBLEM_JSON,
    RETRY_LATER,
    Problem,
    from_error,
    problem,
)

log = logging.getLogger("dataops.server")

MAX_UPLOAD_BYTES = 100 * 1024 * 1024
MAX_BODY_BYTES = 1024 * 1024
"""A JSON body larger than this is refused (413) before it is parsed."""
_bearer = HTTPBearer(auto_error=False, description="a token from `dataops token create`")


# ---- response shapes (for the OpenAPI document; answers are written from the records) ------

class BundleWithTasks(BaseModel):
    bundle: Bundle
    tasks: list[Task]


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None


class BundlePage(BaseModel):
    items: list[Bundle]
    next_cursor: str | None


class AuditPage(BaseModel):
    items: list[AuditEvent]
    next_cursor: str | None


class JobPage(BaseModel):
    items: list[AssistantJob]
    next_cursor: str | None


class PublicToken(BaseModel):
    token_id: str
    actor: str
    role: TokenRole
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    version: int


class TokenPage(BaseModel):
    items: list[PublicToken]
    next_cursor: str | None


class ReminderPreview(BaseModel):
    reminder_id: str
    kind: str
    entity_type: str
    entity_id: str
    bundle_id: str | None
    task_id: str | None
    fire_at: datetime
    late: bool
    summary: str


class ReminderPreviewPage(BaseModel):
    items: list[ReminderPreview]
    next_cursor: str | None


class PersonOut(BaseModel):
    person_id: str
    name: str
    email: str | None
    chat: str | None
    timezone: str
    manager: str | None
    delivery: str | dict[str, str]
    """``immediate``, or ``{"digest": "HH:MM"}`` (local to the person)."""
    groups: list[str]


class PersonPage(BaseModel):
    items: list[PersonOut]
    next_cursor: str | None


class PersonWithTasks(BaseModel):
    person: PersonOut
    open_tasks: list[Task]


class TemplateSummary(BaseModel):
    template_id: str
    version: int
    title: str
    timezone: str
    trigger: dict[str, Any]
    tasks: int


class TemplatePage(BaseModel):
    items: list[TemplateSummary]
    next_cursor: str | None


class Health(BaseModel):
    status: str
    version: str


RESPONSE_MODELS: list[type[BaseModel]] = [
    BundleWithTasks, TaskPage, BundlePage, AuditPage, Task, AssistantJob, JobPage, PublicToken,
    TokenPage,
    ReminderPreviewPage, TemplatePage, Health, Problem]


def body_model(cmd: type[c.Command], *path: str, **given: Any) -> type[BaseModel]:
    """A request body of ``cmd``'s own fields (validators included), less those the path
    gives and the version (which ``If-Match`` gives); ``given`` adds or replaces fields
    (``name=(type, default)``). Unknown fields, an ``actor`` among them, are refused."""
    fields: dict[str, Any] = {**given, **{n: (f.annotation, f) for n, f in cmd.model_fields.items()
                                         if n not in (*path, "expected_version", *given)}}
    return create_model(f"{cmd.__name__}Body", __config__=ConfigDict(
        extra="forbid", str_strip_whitespace=True), **fields)


# ---- answers ---------------------------------------------------------------------------------

def _json(body: bytes | str, status: int = 200, etag: int | None = None) -> Response:
    headers = {"ETag": f'"{etag}"'} if etag is not None else None
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _task(task: Task, status: int = 200) -> Response:
    return _json(task.model_dump_json(), status, task.version)


def _bundle(view: views.BundleView, status: int = 200) -> Response:
    body = (b'{"bundle":' + view.bundle.model_dump_json().encode() + b',"tasks":['
            + b",".join(t.model_dump_json().encode() for t in view.tasks) + b"]}")
    return _json(body, status, view.bundle.version)


def _page(items: list[Any], next_cursor: str | None) -> Response:
    return _json(b'{"items":[' + b",".join(i.model_dump_json().encode() for i in items)
                 + b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}")


def _if_match(request: Request) -> int | None:
    """The version ``If-Match`` names (``"3"``, ``W/"3"``; ``*``: none).

    :raises InputError: not an ETag this API gave."""
    value = request.headers.get("if-match")
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit() or not 1 <= int(tag) < 2**31:
        raise InputError(f"If-Match {value!r}: give the ETag of the record as the API sent it, "
                         'e.g. "3"')
    return int(tag)


def _problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": Problem, "description": ERROR_STATUSES[s]} for s in statuses}


READ = _problem_responses(401, 403, 404, 422, 500, 503)
WRITE = _problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 500, 503)
ETAG = {"ETag": {"description": 'the record\'s version, e.g. "3"', "schema": {"type": "string"}}}


# ---- the application -------------------------------------------------------------------------

def create_app(svc: Services, *, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The API over ``svc`` (its actor is ignored: every request acts as its token's)."""
    from runtime.cli.parser import version

    svc.content  # noqa: B018  (loaded once, here, and shared by every request)
    app = FastAPI(title="dataops", version=version(), docs_url=None, redoc_url=None,
                  description="The dataops workflow task runtime: bundles, tasks, proof, "
                  "reminders. Bodies are the export shape; errors are problem+json.")

    # -- errors --------------------------------------------------------------------------------
    @app.exception_handler(DataopsError)
    async def _dataops_error(request: Request, err: DataopsError) -> Response:
        if from_error(err).status_code >= 500:
            log.error("%s %s: %s", request.method, request.url.path, err)
        return from_error(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> Response:
        return _validation_problem(err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> Response:
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
            err.status_code, "http")
        detail = {404: f"no route {request.url.path}; see /openapi.json"}.get(
            err.status_code, str(err.detail))
        from http import HTTPStatus

        return problem(err.status_code, slug, HTTPStatus(err.status_code).phrase, detail,
                       dict(err.headers) if err.headers else None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> Response:
        log.exception("%s %s failed", request.method, request.url.path)
        return from_error(err)

    app.add_middleware(_BodyLimit, upload_limit=max_upload_bytes + 65536)

    # -- auth ----------------------------------------------------------------------------------
    def caller(role: TokenRole) -> Callable[..., Any]:
        async def dependency(request: Request, credentials: HTTPAuthorizationCredentials |
                             None = Depends(_bearer)) -> Caller:  # noqa: B008  (FastAPI's idiom)
            header = request.headers.get("authorization")
            if header and credentials is None:
                raise _unauthenticated("Authorization: use the Bearer scheme with a token")
            if credentials is None:  # a missing token is refused before anything is read
                authenticate(svc, None)
            assert credentials is not None
            return Caller(svc, credentials.credentials, role,
                          f"{request.method} {request.url.path}")
        return dependency

    viewer = Depends(caller(TokenRole.VIEWER))
    operator = Depends(caller(TokenRole.OPERATOR))
    admin = Depends(caller(TokenRole.ADMIN))

    async def command(request: Request, caller: Caller, run: Callable[[Services], Response],
                      fingerprint: str | None = None) -> Response:
        """Check the caller and run a command under the request's Idempotency-Key, if any: all
        in one worker thread (one hop off the event loop per request)."""
        key = request.headers.get("idempotency-key")
        who: Services | None = None

        def answer() -> tuple[Response, bool]:
            """The response, and whether an idempotency key may keep it."""
            assert who is not None
            try:
                return run(who), True
            except DataopsError as err:
                response = from_error(err)
                if response.status_code >= 500:
                    log.error("%s %s: %s", request.method, request.url.path, err)
                return response, not isinstance(err, RETRY_LATER) and response.status_code < 500
            except Exception as err:  # a fault of ours: logged, answered 500, key released
                log.exception("%s %s failed", request.method, request.url.path)
                return from_error(err), False

        sha = None if key is None else fingerprint or idempotency.fingerprint(
            request.method, request.url.path, request.headers.get("if-match"),
            await request.body())

        def in_thread() -> Response:
            nonlocal who
            who = caller.services()  # 401 or 403 here: before any key is claimed
            if key is None or sha is None:
                return answer()[0]
            return idempotency.run(who, key, request.method, request.url.path, sha, answer)
        return await run_in_threadpool(in_thread)

    # -- routes --------------------------------------------------------------------------------
    @app.get("/v1/health", response_model=Health, tags=["meta"],
             responses=_problem_responses(500, 503))
    def health() -> Response:
        svc.store.find(Bundle, "health-check")  # answers, or raises a StoreFault (503)
        return _json(orjson.dumps({"status": "ok", "version": app.version}))

    @app.get("/v1/templates", response_model=TemplatePage, tags=["templates"], responses=READ)
    def templates(caller: Caller = viewer) -> Response:
        who = caller.services()
        items = [{"template_id": wf.template_id, "version": wf.version, "title": wf.title,
                  "timezone": wf.timezone, "trigger": wf.trigger.model_dump(mode="json"),
                  "tasks": len(wf.tasks)} for wf in who.content.workflows.values()]
        return _json(orjson.dumps({"items": items, "next_cursor": None}))

    @app.get("/v1/templates/{template_id:path}", tags=["templates"], responses=READ,
             response_model=dict[str, Any])
    def template(template_id: str, caller: Caller = viewer) -> Response:
        who = caller.services()
        return _json(orjson.dumps(who.content.workflow(template_id).model_dump(mode="json")))

    create_body = body_model(c.CreateBundle)

    @app.post("/v1/bundles", status_code=201, response_model=BundleWithTasks, tags=["bundles"],
              responses={200: {"model": BundleWithTasks, "description": "it existed already",
                               "headers": ETAG}, **WRITE})
    async def create_bundle(request: Request, body: create_body,  # type: ignore[valid-type]
                            caller: Caller = operator) -> Response:
        def run(who: Services) -> Response:
            view = engine.handle(who, c.build(c.CreateBundle, **body.model_dump()))  # type: ignore[attr-defined]
            return _bundle(view, 201 if view.created else 200)
        return await command(request, caller, run)

    @app.get("/v1/bundles", response_model=BundlePage, tags=["bundles"], responses=READ)
    def bundles(template_id: str | None = None, status: str | None = None,
                limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
                caller: Caller = viewer) -> Response:
        who = caller.services()
        page = views.list_bundles(who, template_id, status, limit=limit, cursor=cursor)
        return _page(page.items, page.next_cursor)

    @app.get("/v1/bundles/{bundle_id:path}", response_model=BundleWithTasks, tags=["bundles"],
             responses={200: {"headers": ETAG}, **READ})
    def bundle(bundle_id: str, caller: Caller = viewer) -> Response:
        who = caller.services()
        return _bundle(views.get_bundle(who, bundle_id))

    def bundle_command(suffix: str, cmd: type[c.Command]) -> None:
        body_cls = body_model(cmd, "bundle_id")

        async def route(request: Request, bundle_id: str, body: body_cls,  # type: ignore[valid-type]
                        caller: Caller = operator) -> Response:
            version = _if_match(request)
            fields = body.model_dump()  # type: ignore[attr-defined]

            def run(who: Services) -> Response:
                return _bundle(engine.handle(who, c.build(
                    cmd, bundle_id=bundle_id, expected_version=version, **fields)))
            return await command(request, caller, run)

        app.post(f"/v1/bundles/{{bundle_id:path}}/{suffix}", response_model=BundleWithTasks,
                 tags=["bundles"], name=cmd.name, responses={200: {"headers": ETAG}, **WRITE})(route)

    bundle_command("links", c.LinkBundle)
    bundle_command("cancel", c.CancelBundle)

    @app.get("/v1/tasks", response_model=TaskPage, tags=["tasks"], responses=READ)
    def tasks(bundle_id: str | None = None, status: str | None = None,
              assignee: str | None = None, limit: int = Query(100, ge=1, le=1000),
              cursor: str | None = None, caller: Caller = viewer) -> Response:
        who = caller.services()
        page = views.list_tasks(who, bundle_id, status, assignee, limit=limit, cursor=cursor)
        return _page(page.items, page.next_cursor)

    @app.get("/v1/tasks/{task_id:path}", response_model=Task, tags=["tasks"],
             responses={200: {"headers": ETAG}, **READ})
    def task(task_id: str, caller: Caller = viewer) -> Response:
        who = caller.services()
        return _task(views.get_task(who, task_id))

    def task_command(suffix: str, cmd: type[c.Command]) -> None:
        body_cls = body_model(cmd, "task_id")

        async def run_task(request: Request, task_id: str, body: BaseModel | None,
                           caller: Caller) -> Response:
            version = _if_match(request)
            fields = body.model_dump() if body is not None else {}

            def run(who: Services) -> Response:
                return _task(engine.handle(who, c.build(
                    cmd, task_id=task_id, expected_version=version, **fields)))
            return await command(request, caller, run)

        if any(f.is_required() for f in body_cls.model_fields.values()):
            async def route(request: Request, task_id: str, body: body_cls,  # type: ignore[valid-type]
                            caller: Caller = operator) -> Response:
                return await run_task(request, task_id, body, caller)
        else:  # start, resume, done: {} or no body at all
            async def route(request: Request, task_id: str,  # type: ignore[misc]
                            body: body_cls | None = None,  # type: ignore[valid-type]
                            caller: Caller = operator) -> Response:
                return await run_task(request, task_id, body, caller)
        app.post(f"/v1/tasks/{{task_id:path}}/{suffix}", response_model=Task, tags=["tasks"],
                 name=f"{cmd.name}_task" if suffix in c.TRIGGER_COMMANDS or suffix == "done"
                 else cmd.name, responses={200: {"headers": ETAG}, **WRITE})(route)

    for suffix, cls in (("start", c.StartTask), ("resume", c.ResumeTask),
                        ("done", c.CompleteTask), ("wait", c.WaitTask),
                        ("cancel", c.CancelTask), ("reopen", c.ReopenTask),
                        ("assign", c.AssignTask), ("comments", c.CommentTask)):
        task_command(suffix, cls)

    proof_body = _proof_body()

    @app.post("/v1/tasks/{task_id:path}/proof", response_model=Task, tags=["tasks"],
              responses={200: {"headers": ETAG}, **WRITE})
    async def proof(request: Request, task_id: str, body: proof_body,  # type: ignore[valid-type]
                    caller: Caller = operator) -> Response:
        version = _if_match(request)
        cmd = PROOF_COMMANDS[body.kind]  # type: ignore[attr-defined]
        fields = body.model_dump(exclude={"kind"})  # type: ignore[attr-defined]

        def run(who: Services) -> Response:
            return _task(engine.handle(who, c.build(cmd, task_id=task_id,
                                                    expected_version=version, **fields)))
        return await command(request, caller, run)

    @app.post("/v1/tasks/{task_id:path}/artifacts", response_model=Task, tags=["tasks"],
              status_code=201, responses={201: {"headers": ETAG}, **WRITE},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {
                      "type": "object", "required": ["file"],
                      "properties": {"file": {"type": "string", "format": "binary"}}}}}}})
    async def upload(request: Request, task_id: str, caller: Caller = operator) -> Response:
        from runtime.server.uploads import read_upload

        version = _if_match(request)
        filename, declared, data = await read_upload(request, max_upload_bytes)
        sha = hashlib.sha256(data).hexdigest()
        fingerprint = idempotency.fingerprint(request.method, request.url.path,
                                              request.headers.get("if-match"),
                                              f"{filename}\0{declared}\0{sha}".encode())

        def run(who: Services) -> Response:
            task, _ = engine.handle(who, c.build(c.AttachFile, task_id=task_id, data=data,
                                                 filename=filename, content_type=declared,
                                                 expected_version=version))
            return _task(task, 201)
        return await command(request, caller, run, fingerprint)

    @app.get("/v1/reminders", response_model=ReminderPreviewPage, tags=["reminders"],
             responses=READ)
    def reminders(at: str | None = None, caller: Caller = viewer) -> Response:
        who = caller.services()
        from runtime.engine.reminders import preview_due
        from runtime.rules.reminders import is_late

        when = parse_instant(at, "at") if at else who.now()
        items = [{"reminder_id": f.reminder_id, "kind": str(f.kind), "entity_type": f.entity_type,
                  "entity_id": f.entity_id, "bundle_id": f.bundle_id, "task_id": f.task_id,
                  "fire_at": f.fire_at.isoformat(), "late": is_late(f.fire_at, when),
                  "summary": f.summary} for f in preview_due(who, when)]
        return _json(orjson.dumps({"items": items, "next_cursor": None}))

    @app.get("/v1/people", response_model=PersonPage, tags=["people"], responses=READ)
    def people(caller: Caller = viewer) -> Response:
        who = caller.services()
        directory = views.directory_or_raise(who)
        items = [views.person_json(directory.people[pid], directory.groups_of(pid))
                 for pid in sorted(directory.people)]
        return _json(orjson.dumps({"items": items, "next_cursor": None}))

    @app.get("/v1/people/{person_id}", response_model=PersonWithTasks, tags=["people"],
             responses=READ)
    def person(person_id: str, caller: Caller = viewer) -> Response:
        who = caller.services()
        body, tasks = views.person_view(who, person_id)
        return _json(b'{"person":' + orjson.dumps(body) + b',"open_tasks":['
                     + b",".join(t.model_dump_json().encode() for t in tasks) + b"]}")

    @app.get("/v1/audit", response_model=AuditPage, tags=["audit"], responses=READ)
    def audit(entity_id: str | None = None, limit: int = Query(100, ge=1, le=1000),
              cursor: str | None = None, caller: Caller = viewer) -> Response:
        who = caller.services()
        page = views.audit_log(who, entity_id, limit=limit, cursor=cursor)
        return _page(page.items, page.next_cursor)

    # -- assistant jobs ------------------------------------------------------------------------
    def _job(job: AssistantJob, status: int = 200) -> Response:
        return _json(job.model_dump_json(), status, job.version)

    enqueue_body = body_model(c.EnqueueJob)

    @app.post("/v1/jobs", status_code=201, response_model=AssistantJob, tags=["jobs"],
              responses={201: {"headers": ETAG}, **WRITE})
    async def enqueue_job(request: Request, body: enqueue_body,  # type: ignore[valid-type]
                          caller: Caller = operator) -> Response:
        fields = body.model_dump()  # type: ignore[attr-defined]
        return await command(request, caller, lambda who: _job(
            engine.handle(who, c.build(c.EnqueueJob, **fields)), 201))

    claim_body: Any = body_model(c.ClaimJob, worker=(str | None, None))  # default: the actor

    @app.post("/v1/jobs/claim", response_model=AssistantJob, tags=["jobs"],
              responses={200: {"headers": ETAG, "description": "the job, now held"},
                         204: {"description": "no job to claim"}, **WRITE})
    async def claim_job(request: Request, body: claim_body = None,
                        caller: Caller = operator) -> Response:
        fields = body.model_dump() if body is not None else {}

        def run(who: Services) -> Response:
            job = engine.handle(who, c.build(c.ClaimJob, **{
                **fields, "worker": fields.get("worker") or who.actor}))
            return Response(status_code=204) if job is None else _job(job)
        return await command(request, caller, run)

    def job_command(suffix: str, cmd: type[c.JobCommand]) -> None:
        body_cls = body_model(cmd, "assistant_job_id")
        required = any(f.is_required() for f in body_cls.model_fields.values())

        async def run_job(request: Request, job_id: str, body: BaseModel | None,
                          caller: Caller) -> Response:
            fields = body.model_dump() if body is not None else {}
            return await command(request, caller, lambda who: _job(engine.handle(who, c.build(
                cmd, assistant_job_id=job_id, **fields))))

        if required:
            async def route(request: Request, job_id: str, body: body_cls,  # type: ignore[valid-type]
                            caller: Caller = operator) -> Response:
                return await run_job(request, job_id, body, caller)
        else:
            async def route(request: Request, job_id: str,  # type: ignore[misc]
                            body: body_cls | None = None,  # type: ignore[valid-type]
                            caller: Caller = operator) -> Response:
                return await run_job(request, job_id, body, caller)
        app.post(f"/v1/jobs/{{job_id}}/{suffix}", response_model=AssistantJob, tags=["jobs"],
                 name=cmd.name, responses={200: {"headers": ETAG}, **WRITE})(route)

    for suffix, job_cls in (("heartbeat", c.HeartbeatJob), ("fail", c.FailJob),
                            ("cancel", c.CancelJob)):
        job_command(suffix, job_cls)

    @app.post("/v1/jobs/{job_id}/complete", response_model=AssistantJob, tags=["jobs"],
              responses={200: {"headers": ETAG}, **WRITE},
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": {
                      "type": "object", "additionalProperties": False, "properties": {
                          "output": {"type": "object"}, "worker": {"type": "string"}}}},
                  "multipart/form-data": {"schema": {
                      "type": "object", "properties": {
                          "output": {"type": "string", "description": "a JSON object"},
                          "worker": {"type": "string"},
                          "file": {"type": "string", "format": "binary"}}}}}}})
    async def complete_job(request: Request, job_id: str, caller: Caller = operator) -> Response:
        from runtime.server.uploads import read_completion

        fields, sha = await read_completion(request, max_upload_bytes)
        fingerprint = idempotency.fingerprint(request.method, request.url.path, None,
                                              sha.encode())
        return await command(request, caller, lambda who: _job(engine.handle(who, c.build(
            c.CompleteJob, assistant_job_id=job_id, **fields))), fingerprint)

    @app.get("/v1/jobs", response_model=JobPage, tags=["jobs"], responses=READ)
    def jobs(task_id: str | None = None, status: str | None = None, kind: str | None = None,
             limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
             caller: Caller = viewer) -> Response:
        who = caller.services()
        from runtime.engine.jobs import list_jobs

        page = list_jobs(who, task_id, status, kind, limit=limit, cursor=cursor)
        return _page(page.items, page.next_cursor)

    @app.get("/v1/jobs/{job_id}", response_model=AssistantJob, tags=["jobs"],
             responses={200: {"headers": ETAG}, **READ})
    def job(job_id: str, caller: Caller = viewer) -> Response:
        who = caller.services()
        return _job(who.store.get(AssistantJob, job_id))

    @app.get("/v1/tokens", response_model=TokenPage, tags=["tokens"], responses=READ)
    def tokens(limit: int = Query(100, ge=1, le=1000), cursor: str | None = None,
               caller: Caller = admin) -> Response:
        who = caller.services()
        page = list_tokens(who, limit=limit, cursor=cursor)
        items = [PublicToken.model_validate(t.model_dump()) for t in page.items]
        return _page(items, page.next_cursor)

    @app.post("/v1/tokens/{token_id}/revoke", response_model=PublicToken, tags=["tokens"],
              responses=WRITE)
    async def revoke(request: Request, token_id: str, caller: Caller = admin) -> Response:
        def run(who: Services) -> Response:
            rec = engine.handle(who, c.build(c.RevokeToken, token_id=token_id))
            return _json(PublicToken.model_validate(rec.model_dump()).model_dump_json())
        return await command(request, caller, run)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class _BodyLimit:
    """Refuse a body over its limit (JSON 1 MiB; an upload its own limit plus the multipart
    framing): by its Content-Length before reading it, and, for a body sent without one, as it
    arrives. A pure ASGI middleware: nothing is buffered here."""

    def __init__(self, app: Any, upload_limit: int) -> None:
        self.app, self.upload_limit = app, upload_limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"].endswith("/artifacts") else MAX_BODY_BYTES
        size = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"content-length"),
                    None)
        if size is not None and (not size.isdigit() or int(size) > limit):
            response = problem(413, "too-large", "Body too large",
                               f"the body is {size} bytes; at most {limit} are taken here")
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # an HTTPException: FastAPI's body reader passes it on as it is
                raise StarletteHTTPException(413, f"the body is over {limit} bytes; send a "
                                                  "smaller one")
            return message

        await self.app(scope, counted, send)


class Caller:
    """Who sends a request: the bearer token as given and the role the route needs. The token
    is checked by :meth:`services` in the route's worker thread, with the route's own work, so
    a request leaves the event loop once."""

    def __init__(self, svc: Services, token: str, role: TokenRole, what: str) -> None:
        self.svc, self.token, self.role, self.what = svc, token, role, what

    def services(self) -> Services:
        """The services acting as the token's actor.

        :raises NotAuthenticated: unknown, malformed or revoked. :raises NotAllowed: the role."""
        token: ApiToken = authenticate(self.svc, self.token)
        require(token, self.role, self.what)
        return self.svc.as_actor(token.actor)


def _unauthenticated(detail: str) -> DataopsError:
    from runtime.errors import NotAuthenticated

    return NotAuthenticated(detail)


PROOF_COMMANDS: dict[str, type[c.TaskCommand]] = {
    "url": c.AttachUrl, "comment": c.AttachComment, "external_status": c.AttachExternalStatus}


def _proof_body() -> Any:
    """One body per kind of proof, told apart by ``kind``: each is its command's own fields."""
    from typing import Annotated, Literal, Union

    from pydantic import Field

    variants = []
    for kind, cmd in PROOF_COMMANDS.items():
        tag: Any = Literal[kind]
        variants.append(body_model(cmd, "task_id", kind=(tag, Field())))
    return Annotated[Union[tuple(variants)], Field(discriminator="kind")]  # noqa: UP007


def _validation_problem(err: RequestValidationError) -> Response:
    problems: list[dict[str, Any]] = []
    for e in err.errors():
        if e.get("type") == "json_invalid":
            return problem(400, "malformed", "Malformed JSON",
                           f"the body is not valid JSON ({e.get('ctx', {}).get('error', '')}); "
                           "send a JSON object")
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        msg = str(e.get("msg", "")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden" and loc and loc[-1] == "actor":
            msg = "the actor of a write is the token's; remove the field"
        problems.append({"field": field, "message": msg})
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return problem(422, "invalid", "Invalid input", detail, errors=problems)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error answer as problem+json (FastAPI files them under
    application/json and adds its own 422 shape, which this API never sends)."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes)
    ref = {"$ref": "#/components/schemas/Problem"}
    for path in doc.get("paths", {}).values():
        for op in path.values():
            for status, answer in op.get("responses", {}).items():
                if status[0] in "45":
                    answer["content"] = {PROBLEM_JSON: {"schema": ref}}
                    answer["description"] = ERROR_STATUSES.get(int(status), answer.get(
                        "description", ""))
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    # the records answer with their field names (snake_case, the export shape); FastAPI would
    # describe them by their camelCase aliases, which only the YAML definitions accept
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema([(m, "serialization") for m in RESPONSE_MODELS], by_alias=False,
                                 ref_template="#/components/schemas/{model}")
    schemas.update(defs.get("$defs", {}))
    app.openapi_schema = doc
    return doc


def from_environment() -> FastAPI:
    """The app ``dataops serve`` runs (in each uvicorn worker): the store, content, artifacts
    and clock from the DATAOPS_* variables the CLI set."""
    from runtime.clock import FixedClock, SystemClock
    from runtime.wiring import open_services

    now = os.environ.get("DATAOPS_NOW")
    clock = FixedClock(parse_instant(now, "DATAOPS_NOW")) if now else SystemClock()
    svc = open_services(os.environ.get("DATAOPS_STORE", "sqlite:///dataops.db"),
                        os.environ.get("DATAOPS_CONTENT", "content"), clock=clock,
                        actor="api", artifacts=os.environ.get("DATAOPS_ARTIFACTS") or None)
    limit = int(os.environ.get("DATAOPS_MAX_UPLOAD_BYTES", MAX_UPLOAD_BYTES))
    return create_app(svc, max_upload_bytes=limit)
