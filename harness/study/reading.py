"""Reading a study or comparison file safely: bounded in size, nesting and alias expansion,
UTF-8 only, duplicate keys refused. Every problem is a SpecError naming the file (and the line
where YAML knows it), raised within a moment whatever the input."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from harness.errors import SpecError

MAX_FILE_BYTES = 1_000_000  # a study is a page of YAML; the largest shipped one is under 3 kB
MAX_EXPANDED_NODES = 100_000  # values after anchors/aliases are expanded (a "billion laughs" file)
MAX_DEPTH = 100  # nested mappings and lists


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that repeats a key (YAML would keep the last one
    silently) and nesting deeper than MAX_DEPTH."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise SpecError(f"line {mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise SpecError(
                        f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                        f"(first on line {seen[key]}); YAML would keep only the last value"
                    )
                seen[key] = key_node.start_mark.line + 1
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
        return super().construct_mapping(node, deep=deep)


def expanded_size(value: Any, limit: int = MAX_EXPANDED_NODES) -> int:
    """How many values `value` holds once every alias is expanded, counted without expanding
    (shared lists and mappings are counted once per reference, from a memo); stops past `limit`."""
    memo: dict[int, int] = {}

    def size(node: Any) -> int:
        if isinstance(node, dict):
            children: list[Any] = [*node.keys(), *node.values()]
        elif isinstance(node, list):
            children = node
        else:
            return 1
        if id(node) in memo:
            return memo[id(node)]
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        memo[id(node)] = total
        return total

    return size(value)


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping at the top of YAML file `path` (a `what`: "study file", "comparison file")."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError(f"{path}: {size:,} bytes; a {what} is at most {MAX_FILE_BYTES:,} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from None
    limit = sys.getrecursionlimit()
    try:
        loader = _StrictLoader(text)  # the safe loader's constructors only
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: malformed YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deeply (limit {MAX_DEPTH} levels)") from None
    finally:
        sys.setrecursionlimit(limit)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a {what} is a mapping of keys (name, ...), given {type(raw).__name__}")
    if expanded_size(raw) > MAX_EXPANDED_NODES:
        raise SpecError(
            f"{path}: its anchors and aliases expand to more than {MAX_EXPANDED_NODES:,} values; "
            "a study needs far fewer"
        )
    return raw
