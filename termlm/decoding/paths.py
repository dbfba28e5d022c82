"""A search's token paths as a tree, read as tuples without being copied at every step.

A beam search keeps one node per token, each pointing at its parent: beams that share a
prefix share its nodes. ``TokenPath(node)`` is the path from the root to ``node`` as a read-only
sequence of token ids: its length and its last few tokens cost as many steps as are read; the
whole tuple is built only when someone iterates it or reads far back, and then kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, overload

_NEAR = 64  # reads within this many tokens of the end walk the tree instead of building it


class PathNode(Protocol):
    """One token of a path: its id, its parent (None for the root, which holds no token) and
    its depth (the root's is 0; a node's is its parent's plus one)."""

    token: int
    depth: int

    @property
    def parent(self) -> PathNode | None: ...


class TokenPath(Sequence[int]):
    """The token ids from the root to ``node``; compares equal to the same tuple of ids."""

    __slots__ = ("_node", "_tuple")

    def __init__(self, node: PathNode) -> None:
        self._node = node
        self._tuple: tuple[int, ...] | None = None

    @property
    def node(self) -> PathNode:
        return self._node

    def __len__(self) -> int:
        return int(self._node.depth)

    def as_tuple(self) -> tuple[int, ...]:
        if self._tuple is None:
            out: list[int] = []
            node: PathNode | None = self._node
            while node is not None and node.parent is not None:
                out.append(int(node.token))
                node = node.parent
            out.reverse()
            self._tuple = tuple(out)
        return self._tuple

    def _tail(self, count: int) -> list[int]:
        """The last ``count`` tokens (count <= len), first to last, walking back."""
        out: list[int] = []
        node: PathNode | None = self._node
        while len(out) < count and node is not None and node.parent is not None:
            out.append(int(node.token))
            node = node.parent
        out.reverse()
        return out

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...

    def __getitem__(self, index: int | slice) -> int | tuple[int, ...]:
        n = len(self)
        if self._tuple is not None:
            return self._tuple[index]
        if isinstance(index, slice):
            start, stop, stride = index.indices(n)
            if stride == 1 and stop <= start:
                return ()
            if stride == 1 and n - start <= _NEAR:
                return tuple(self._tail(n - start)[: stop - start])
            return self.as_tuple()[index]
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError("token path index out of range")
        if n - i <= _NEAR:
            return self._tail(n - i)[0]
        return self.as_tuple()[i]

    def __iter__(self) -> Iterator[int]:
        return iter(self.as_tuple())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TokenPath):
            return other._node is self._node or self.as_tuple() == other.as_tuple()
        if isinstance(other, (tuple, list)):
            return len(other) == len(self) and self.as_tuple() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.as_tuple())

    def __repr__(self) -> str:
        return f"TokenPath({self.as_tuple()!r})"

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (and deep-copies) as a plain tuple
        return (tuple, (self.as_tuple(),))
