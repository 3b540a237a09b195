"""Value semantics for the slotted record classes of the wire codecs (frames, parsed headers).

Per-packet records are plain slotted classes, not dataclasses (compiled, a dataclass keeps its
interpreted ``__init__``: docs/INTERNALS.md). This base gives them what a dataclass would: equal
when of the same class with equal fields (in ``_fields`` order), hashed and printed the same way.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["Record"]


class Record:
    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._fields)

    def __hash__(self) -> int:
        return hash((type(self).__name__, *[getattr(self, name) for name in self._fields]))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"
