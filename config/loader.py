"""Load a YAML site file; every error carries the file, the line and the field path."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
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


_CLoader: type[Any] | None = getattr(yaml, "CSafeLoader", None)
C_LOADER = _CLoader is not None
"""libyaml's C parser is present (``yaml.CSafeLoader``): site files are parsed with it (same
nodes, same line numbers, ten times faster than the pure-Python parser)."""

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_depth(text: str, loader: type[Any]) -> None:
    """The depth bound of :class:`_Loader` on the event stream (libyaml composes recursively
    in C, so the bound is checked before): the same count (every node, scalars too) and the
    same line as the Python composer would report."""
    depth = 0
    events: Iterator[Any] = yaml.parse(text, Loader=loader)
    for event in events:
        kind = type(event)  # (not isinstance: the events stay Any for the type checker)
        if kind in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep(event.start_mark.line + 1)
        elif kind in _CLOSE:
            depth -= 1
        elif depth + 1 > MAX_DEPTH and kind in (yaml.ScalarEvent, yaml.AliasEvent):
            raise _TooDeep(event.start_mark.line + 1)


def _compose(text: str, c_loader: bool = C_LOADER) -> yaml.Node | None:
    if c_loader and _CLoader is not None:
        _check_depth(text, _CLoader)
        cloader = _CLoader(text)
        try:
            node: yaml.Node | None = cloader.get_single_node()
            return node
        finally:
            cloader.dispose()
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


class _Unusual(Exception):
    """A node the fast constructor leaves to PyYAML (aliases, merge keys, other tags)."""


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


def _fast_construct(root: yaml.Node, loader: _Loader) -> Any:
    """What ``construct_document`` gives for the plain documents site files are (maps,
    sequences, str/int/float/bool/null scalars, no aliases), without PyYAML's generic
    dispatch; anything else raises :class:`_Unusual`."""
    scalars: dict[str, Any] = {
        "tag:yaml.org,2002:int": loader.construct_yaml_int,
        "tag:yaml.org,2002:float": loader.construct_yaml_float,
        "tag:yaml.org,2002:bool": loader.construct_yaml_bool,
        "tag:yaml.org,2002:null": loader.construct_yaml_null,
    }
    seen: set[int] = set()

    def build(node: yaml.Node) -> Any:
        if id(node) in seen:
            raise _Unusual  # an alias: PyYAML shares the object
        seen.add(id(node))
        tag = node.tag
        if isinstance(node, yaml.ScalarNode):
            if tag == _STR:
                return node.value
            make = scalars.get(tag)
            if make is None:
                raise _Unusual
            return make(node)
        if isinstance(node, yaml.MappingNode) and tag == _MAP:
            out: dict[Any, Any] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    raise _Unusual
                out[build(key)] = build(value)
            return out
        if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
            return [build(item) for item in node.value]
        raise _Unusual

    return build(root)


_NOTHING: Any = object()


def _from_events(text: str, loader_cls: type[Any]) -> Any:
    """The document of ``text`` built straight from libyaml's events (no node tree): the
    depth bound as :func:`_check_depth`, scalars resolved and constructed as PyYAML does.
    Anything else than plain maps, sequences and scalars (anchors, aliases, explicit tags,
    merge keys, complex keys, several documents) and any duplicate key raise
    :class:`_Unusual`: the node path then handles (and reports) it."""
    helper = _Loader("")
    try:
        scalars: dict[str, Any] = {
            "tag:yaml.org,2002:int": helper.construct_yaml_int,
            "tag:yaml.org,2002:float": helper.construct_yaml_float,
            "tag:yaml.org,2002:bool": helper.construct_yaml_bool,
            "tag:yaml.org,2002:null": helper.construct_yaml_null,
        }
        resolve: Any = helper.resolve
        scalar_node = yaml.ScalarNode
        # containers being built: [object, is-mapping, pending key or _NOTHING]
        stack: list[list[Any]] = []
        root: Any = _NOTHING
        documents = 0
        events: Iterator[Any] = yaml.parse(text, Loader=loader_cls)
        for event in events:
            kind = type(event)
            if kind is yaml.ScalarEvent:
                if len(stack) + 1 > MAX_DEPTH:
                    raise _TooDeep(event.start_mark.line + 1)
                if event.anchor is not None:
                    raise _Unusual
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(scalar_node, event.value, event.implicit)
                if tag == _STR:
                    value: Any = event.value
                else:
                    make = scalars.get(tag)
                    if make is None:
                        raise _Unusual
                    value = make(scalar_node(tag, event.value))
                is_key = bool(stack) and stack[-1][1] and stack[-1][2] is _NOTHING
                if is_key:
                    if value in stack[-1][0]:
                        raise _Unusual  # a duplicate key: reported from the nodes
                    stack[-1][2] = value
                    continue
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if len(stack) + 1 > MAX_DEPTH:
                    raise _TooDeep(event.start_mark.line + 1)
                want = _MAP if kind is yaml.MappingStartEvent else _SEQ
                if event.anchor is not None or event.tag not in (None, "!", want):
                    raise _Unusual
                if stack and stack[-1][1] and stack[-1][2] is _NOTHING:
                    raise _Unusual  # a collection as a key
                stack.append([{} if want == _MAP else [], want == _MAP, _NOTHING])
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                value = stack.pop()[0]
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Unusual
                continue
            elif kind is yaml.AliasEvent:
                raise _Unusual
            else:  # stream and document ends
                continue
            if not stack:
                root = value
            elif stack[-1][1]:
                top = stack[-1]
                top[0][top[2]] = value
                top[2] = _NOTHING
            else:
                stack[-1][0].append(value)
        return None if root is _NOTHING else root
    finally:
        helper.dispose()


def _construct(node: yaml.Node) -> Any:
    loader = _Loader("")
    try:
        try:
            return _fast_construct(node, loader)
        except _Unusual:
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
            and not n.style  # plain (PyYAML's composer: None, libyaml's: "")
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


def load_site_text(text: str, filename: str = "<site>", *, c_loader: bool = C_LOADER) -> SiteConfig:
    """The site of ``text``; ``c_loader=False`` parses with the pure-Python loader.

    With libyaml, a plain file is built straight from the parser's events; the node tree
    (for duplicate keys, unusual YAML and the lines of validation errors) is composed only
    when needed. Both paths give the same data and the same issues with the same lines."""
    node: yaml.Node | None = None
    data: Any = _NOTHING
    try:
        if c_loader and _CLoader is not None:
            with contextlib.suppress(_Unusual):
                data = _from_events(text, _CLoader)
        if data is _NOTHING:
            node = _compose(text, c_loader)
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
        if node is None:
            node = _compose(text, c_loader)  # the lines of the issues
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
