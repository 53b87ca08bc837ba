"""The check registry as data: check id -> definition, with the former ids (aliases) a renamed check still answers
to. One id has one definition: registering an id (or alias) that another definition holds is refused, naming both
places — a plugin adds ids, it never replaces one. The decorator that fills it is the check API's (api/registry.py);
the spec loader is handed a registry (the nox pattern) and never imports the check library itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from sealgate.model.results import CheckDef


class DuplicateCheck(ValueError):
    """An id registered by a second definition; the message names both places."""

    def __init__(self, check_id: str, existing: CheckDef, new: CheckDef) -> None:
        self.check_id = check_id
        self.existing = existing
        self.new = new
        super().__init__(
            f"check id {check_id!r} is already defined at {existing.origin} ({existing.identity}); "
            f"{new.origin} ({new.identity}) may not define it again"
        )


class Registry(Mapping[str, CheckDef]):
    """id -> CheckDef. Iterating gives the current ids; looking up a former id gives the check it became."""

    def __init__(self) -> None:
        self._checks: dict[str, CheckDef] = {}
        self._aliases: dict[str, str] = {}

    def add(self, definition: CheckDef) -> None:
        for check_id in (definition.id, *definition.aliases):
            existing = self.get(check_id)
            if existing is not None and existing.identity != definition.identity:
                raise DuplicateCheck(check_id, existing, definition)
        self._checks[definition.id] = definition  # the same function registered again (a module re-imported)
        for alias in definition.aliases:
            self._aliases[alias] = definition.id

    def canonical(self, check_id: str) -> str:
        """The current id of `check_id` (itself unless it is a former id)."""
        return self._aliases.get(check_id, check_id)

    def __getitem__(self, check_id: str) -> CheckDef:
        return self._checks[self.canonical(check_id)]

    def __contains__(self, check_id: object) -> bool:
        return isinstance(check_id, str) and self.canonical(check_id) in self._checks

    def __iter__(self) -> Iterator[str]:
        return iter(self._checks)

    def __len__(self) -> int:
        return len(self._checks)
