"""Batch entity operations: what a batch body may hold and what the client is told back.

GS CIM 009 v1.8.1 §5.6.7-§5.6.10 and §5.6.20. A batch body is a JSON array: entities (create,
upsert), entity fragments (update, merge) or entity ids (delete). The array as a whole must be
usable — non-empty, with no ``null`` or otherwise misshapen member — or the whole request is
refused with ``BadRequestData``. Past that point every member succeeds or fails on its own: a
member that is invalid, or whose entity exists (create) or does not (update, merge, delete),
becomes a ``BatchEntityError`` (§5.2.17) while the others go through. The outcome is a
``BatchOperationResult`` (§5.2.16): the ids that succeeded and the errors, in the array's order.

An entity id that appears more than once is one entity changed several times, in array order
(§5.5.11): it is listed once under ``success`` if any of its operations succeeded, and once
under ``errors`` per failed operation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from broker.ngsild.errors import AlreadyExists, BadRequestData, NgsiLdError
from broker.ngsild.names import check_uri
from broker.ngsild.patch import UpdateResult
from broker.ngsild.terms import TermTable

T = TypeVar("T")

CONTEXT = "@context"


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """A batch member ready for the store.

    Attributes:
        entity_id: the entity it targets.
        payload: what the operation needs (an entity document, a fragment, nothing).
        terms: the member's term table, to name its attributes in error reports.
    """

    entity_id: str
    payload: T
    terms: TermTable | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """A batch member that failed before reaching the store (invalid, unusable @context)."""

    entity_id: str | None
    error: NgsiLdError


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one batch member."""

    entity_id: str | None
    error: NgsiLdError | None = None
    created: bool = False


def batch_members(body: Any) -> list[dict[str, Any]]:
    """The members of an entity batch: a non-empty array of JSON objects (§5.6.7.4)."""
    members = _array(body)
    for index, member in enumerate(members):
        if not isinstance(member, dict):
            raise BadRequestData(
                f"member {index} of the batch is {_kind(member)}; every member must be an entity"
            )
    return members


def batch_ids(body: Any) -> list[Entry[None] | Refused]:
    """The members of a delete batch: a non-empty array of entity ids (§5.6.10.4).

    A string that is not a URI fails on its own; anything but a string fails the batch.
    """
    entries: list[Entry[None] | Refused] = []
    for index, member in enumerate(_array(body)):
        if not isinstance(member, str):
            raise BadRequestData(
                f"member {index} of the batch is {_kind(member)}; every member must be an entity id"
            )
        try:
            entries.append(Entry(check_uri(member, "entity id"), None))
        except BadRequestData as error:
            entries.append(Refused(member, error))
    return entries


def member_id(member: dict[str, Any]) -> str | None:
    """The id a member gives, as given, for error reports about a member that is invalid."""
    raw = member.get("id", member.get("@id"))
    return raw if isinstance(raw, str) else None


def target_id(member: dict[str, Any]) -> str:
    """The id of the entity a fragment (update, merge) targets: required, a URI."""
    raw = member.get("id", member.get("@id"))
    if raw is None:
        raise BadRequestData("every member of the batch needs the 'id' of its entity")
    return check_uri(raw, "entity id")


def member_context(member: dict[str, Any], *, in_body: bool) -> Any:
    """The member's own @context, checked against where the request says contexts are (§6.3.5).

    With ``application/ld+json`` (``in_body``) each member carries its @context; with
    ``application/json`` none may, the Link header giving the context of all of them.
    """
    if in_body:
        if CONTEXT not in member:
            raise BadRequestData("with application/ld+json every entity needs its own @context")
        return member[CONTEXT]
    if CONTEXT in member:
        raise BadRequestData(
            "with application/json the @context belongs in a Link header; "
            "send application/ld+json to put it in each entity"
        )
    return None


def not_overwritten(entity_id: str, result: UpdateResult, terms: TermTable | None) -> NgsiLdError:
    """The error reported for an entity whose attributes ``noOverwrite`` kept (§5.6.9.4).

    The attributes that did not exist were added; the ones that did are named, as in an
    ``UpdateResult`` (§5.2.18), so the client sees exactly what was left alone.
    """
    names = [(terms.compact(iri) if terms else iri, reason) for iri, reason in result.not_updated]
    return AlreadyExists(
        f"entity {entity_id}: {', '.join(name for name, _ in names)} already exist(s) "
        "and noOverwrite was given",
        notUpdated=[{"attributeName": name, "reason": reason} for name, reason in names],
    )


def entity_error(entity_id: str | None, error: NgsiLdError) -> dict[str, Any]:
    """A ``BatchEntityError`` (§5.2.17): the entity and the ProblemDetails of its failure."""
    return {"entityId": entity_id, "error": {**error.problem(), "status": error.status}}


@dataclass(slots=True)
class BatchResult:
    """The outcome of a batch, folded from its members' outcomes in array order.

    Attributes:
        success: ids of the entities with at least one successful operation, each once.
        errors: one ``BatchEntityError`` per failed member.
        created: ids of the entities the batch created (upsert reports these), each once.
        failures: the errors themselves, for callers that must react to one kind.
    """

    success: list[str]
    errors: list[dict[str, Any]]
    created: list[str]
    failures: list[NgsiLdError]

    @classmethod
    def of(cls, outcomes: Iterable[Outcome]) -> BatchResult:
        """Fold outcomes, given in the order of the batch's members."""
        success: dict[str, None] = {}
        created: dict[str, None] = {}
        errors: list[dict[str, Any]] = []
        failures: list[NgsiLdError] = []
        for outcome in outcomes:
            if outcome.error is not None:
                errors.append(entity_error(outcome.entity_id, outcome.error))
                failures.append(outcome.error)
            elif outcome.entity_id is not None:
                success[outcome.entity_id] = None
                if outcome.created:
                    created[outcome.entity_id] = None
        return cls(list(success), errors, list(created), failures)

    @property
    def complete(self) -> bool:
        """Whether every member succeeded."""
        return not self.errors

    def document(self) -> dict[str, Any]:
        """The ``BatchOperationResult`` (§5.2.16)."""
        return {"success": self.success, "errors": self.errors}


def _array(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise BadRequestData(f"a batch is a JSON array, not {_kind(body)}")
    if not body:
        raise BadRequestData("a batch needs at least one member")
    return body


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )
