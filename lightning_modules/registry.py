"""A tiny name -> entry registry, one per extension point (datasets, models, ...)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, get_args

T = TypeVar("T")


class UnknownEntryError(KeyError):
    """A name that is not in a registry; the message lists what is."""

    def __init__(self, kind: str, name: object, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known)}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class Registry(Generic[T]):
    """Maps names to entries; every registry is filled the same way, `REGISTRY.register(name)(entry)`
    (or as a decorator). With a `tag` (the key that selects an entry in a spec section, such as
    `kind` for models), an entry's `config` must take the registered name as that tag's value,
    so a spec's tag and the registry cannot drift apart."""

    def __init__(self, kind: str, tag: str | None = None) -> None:
        self.kind, self.tag = kind, tag
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self.tag is not None:
                field = entry.config.model_fields.get(self.tag)
                allowed = get_args(field.annotation) if field is not None else ()
                if name not in allowed:
                    raise ValueError(f"{self.kind} {name!r}: its config's {self.tag} must admit {name!r} (admits {allowed})")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownEntryError(self.kind, name, self.names()) from None

    def check(self, name: str) -> str:
        """Return `name` if registered, else raise ValueError listing the known names."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")
        return name

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
