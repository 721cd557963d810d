"""Which proof requirements a task still misses. Pure."""

from __future__ import annotations

from runtime.model import (
    ArtifactProof,
    CommentProof,
    ExternalStatusProof,
    ProofEntry,
    ProofKind,
    Task,
    UrlProof,
    describe_requirement,
)
from runtime.rules.pattern import pattern_matches

Requirement = UrlProof | ArtifactProof | CommentProof | ExternalStatusProof


def _satisfies(req: Requirement, entry: ProofEntry) -> bool:
    match req:
        case UrlProof():
            return (
                entry.kind == ProofKind.URL
                and entry.value is not None
                and (req.pattern is None or pattern_matches(req.pattern, entry.value))
            )
        case ArtifactProof():
            return (
                entry.kind == ProofKind.ARTIFACT
                and entry.artifact_id is not None
                and (not req.content_types or _type_ok(entry.content_type, req.content_types))
            )
        case CommentProof():
            return entry.kind == ProofKind.COMMENT and bool(entry.value)
        case ExternalStatusProof():
            return False  # judged on the latest report only, see missing_proof
    return False


def _type_ok(content_type: str | None, allowed: list[str]) -> bool:
    if not content_type:
        return False
    for pattern in allowed:
        if pattern.endswith("/*") and content_type.startswith(pattern[:-1]):
            return True
        if content_type == pattern:
            return True
    return False


def latest_status(task: Task, system: str) -> str | None:
    for entry in reversed(task.proof):
        if entry.kind == ProofKind.EXTERNAL_STATUS and entry.system == system:
            return entry.value
    return None


def missing_proof(task: Task) -> list[str]:
    """Every requirement of ``task`` that its attached proof does not satisfy, described.

    Each attached entry satisfies at most one requirement, so two url requirements need two URLs.
    An external status counts by its latest report for that system.
    """
    used: set[int] = set()
    missing: list[str] = []
    for req in task.proof_requirements:
        if isinstance(req, ExternalStatusProof):
            reported = latest_status(task, req.system)
            if reported != req.expected:
                missing.append(
                    f"{describe_requirement(req)} (reported: {reported or 'nothing'})"
                )
            continue
        for i, entry in enumerate(task.proof):
            if i not in used and _satisfies(req, entry):
                used.add(i)
                break
        else:
            missing.append(describe_requirement(req) + _found(req, task, used))
    return missing


def _found(req: Requirement, task: Task, used: set[int]) -> str:
    """For a typed artifact requirement: the types of the unused files attached, if any."""
    if not isinstance(req, ArtifactProof) or not req.content_types:
        return ""
    found = [e.content_type or "unknown type" for i, e in enumerate(task.proof)
             if i not in used and e.kind == ProofKind.ARTIFACT]
    return f" (attached: {', '.join(found)})" if found else ""
