"""Load a YAML site file; every error carries the file, the line and the field path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.models import SiteConfig


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigError(Exception):
    """A site file that cannot be used. ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


def _loc_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest YAML node along ``loc`` (pydantic's error location)."""
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
        if child is None:
            break  # a tagged-union name or a missing key: stay on the parent
        node = child
        line = max(line, node.start_mark.line + 1) if not isinstance(part, str) else line
    return line


def _clean_msg(err: Any) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field (not allowed here)"
    elif err["type"] == "missing":
        msg = "required field is missing"
    # never echo the offending value: it may be a secret
    return msg


MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a site file may have (a real one needs about 6); a
deeper file is refused with its line before the recursive YAML composer could overflow."""


class _TooDeep(yaml.YAMLError):
    def __init__(self, line: int) -> None:
        super().__init__(f"nested deeper than {MAX_DEPTH} levels")
        self.line = line


class _Loader(yaml.SafeLoader):
    """The safe loader with a bound on the nesting depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _compose(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def _construct(node: yaml.Node) -> Any:
    loader = _Loader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node | None, filename: str) -> list[ConfigIssue]:
    """A key given twice in one mapping (YAML would silently keep the last one), anywhere in
    the file: the file, the line of the repeat, the mapping's path and the key."""
    issues: list[ConfigIssue] = []
    seen_nodes: set[int] = set()
    todo: list[tuple[yaml.Node, list[int | str]]] = [(node, [])] if node is not None else []
    while todo:
        n, loc = todo.pop()
        if id(n) in seen_nodes:  # an alias: walked once
            continue
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in n.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if key.value in first:
                        issues.append(
                            ConfigIssue(
                                filename,
                                line,
                                _loc_path(loc),
                                f"duplicate key {key.value!r} (first at line {first[key.value]})",
                            )
                        )
                    else:
                        first[key.value] = line
                    todo.append((value, [*loc, key.value]))
        elif isinstance(n, yaml.SequenceNode):
            todo.extend((item, [*loc, i]) for i, item in enumerate(n.value))
    return sorted(issues, key=lambda i: i.line or 0)


_BOOL_TAG = "tag:yaml.org,2002:bool"


def yaml_surprises(text: str, filename: str = "<site>") -> list[ConfigIssue]:
    """Unquoted words YAML 1.1 reads as true/false although they look like text (``off``,
    ``on``, ``yes``, ``no``, ``y``, ``n``), as keys or values: file, line, path, the word."""
    try:
        node = _compose(text)
    except yaml.YAMLError:
        return []  # the loader reports the syntax error
    issues: list[ConfigIssue] = []
    seen: set[int] = set()
    todo: list[tuple[yaml.Node, list[int | str]]] = [(node, [])] if node is not None else []

    def check(n: yaml.Node, loc: list[int | str], what: str) -> None:
        if (
            isinstance(n, yaml.ScalarNode)
            and n.tag == _BOOL_TAG
            and n.style is None
            and n.value.lower() not in ("true", "false")
        ):
            issues.append(
                ConfigIssue(
                    filename,
                    n.start_mark.line + 1,
                    _loc_path(loc),
                    f"unquoted {what} {n.value!r} is read by YAML as "
                    f"{str(n.value.lower() in ('on', 'yes', 'y')).lower()}: "
                    f"quote it ('{n.value}') if you mean the text",
                )
            )

    while todo:
        n, loc = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for key, value in n.value:
                check(key, loc, "key")
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                check(value, [*loc, name], "value")
                todo.append((value, [*loc, name]))
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                check(item, [*loc, i], "value")
                todo.append((item, [*loc, i]))
    return sorted(issues, key=lambda i: i.line or 0)


def load_site_text(text: str, filename: str = "<site>") -> SiteConfig:
    try:
        node = _compose(text)
        dups = _duplicate_keys(node, filename)
        if dups:
            raise ConfigError(dups)
        data = _construct(node) if node is not None else None
    except _TooDeep as exc:
        raise ConfigError([ConfigIssue(filename, exc.line, "", str(exc))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(filename, line, "", f"YAML syntax: {problem}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(filename, 1, "", "the site file must be a YAML mapping (site:, devices:)")]
        )
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        issues: list[ConfigIssue] = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = [p for p in err["loc"] if isinstance(p, int | str)]
            # drop discriminator tags (e.g. 'sqlite') that are not keys of the file
            shown = [p for p in loc if not (isinstance(p, str) and p in ("sqlite", "influxdb"))]
            issues.append(
                ConfigIssue(filename, _line_of(node, shown), _loc_path(shown), _clean_msg(err))
            )
        raise ConfigError(issues) from None


def load_site(path: str | Path) -> SiteConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(str(p), None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(p), None, "", f"cannot read: {exc}")]) from None
    return load_site_text(text, str(p)).with_source_dir(p.resolve().parent)


def json_schema() -> str:
    schema = SiteConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "shopfloor site file"
    return json.dumps(schema, ensure_ascii=False, indent=2)


def secret_issues(site: SiteConfig, path: str | Path) -> list[ConfigIssue]:
    """Every secret reference of ``site`` that cannot be resolved now (unset env var, unreadable
    file), with the file, line and field path; the values themselves are never shown."""
    from pydantic import BaseModel

    from config.base import SecretError, SecretRef

    found: list[tuple[list[int | str], str]] = []

    def walk(obj: object, loc: list[int | str]) -> None:
        if isinstance(obj, SecretRef):
            try:
                obj.reveal()
            except SecretError as exc:
                found.append((loc, str(exc)))
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name), [*loc, name])
        elif isinstance(obj, tuple | list):
            for i, item in enumerate(obj):
                walk(item, [*loc, i])

    walk(site, [])
    if not found:
        return []
    p = Path(path)
    try:
        node = _compose(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        node = None
    return [ConfigIssue(str(p), _line_of(node, loc), _loc_path(loc), msg) for loc, msg in found]
