"""Writing the spec text: an imported spec (plain dicts and lists) as YAML a person would write.

Sections are blocks; each input, layer and edge sits on one line in flow
style, or, when that line is too long, one key a line with long mappings
wrapped between their entries.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..spec.load import FLOAT_RESOLVER

__all__ = ["render"]

# A one-line edge longer than this is written as a block, one key a line.
LINE_WIDTH = 100


class _Dumper(yaml.SafeDumper):
    """Flow YAML that kspec reads back as written: never aliases, `1e3` strings quoted."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# kspec reads `1e-3` as a float, so such strings need quotes.
_Dumper.add_implicit_resolver(*FLOAT_RESOLVER)


def _flow(value: Any) -> str:
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, sort_keys=False,
                     width=1 << 30, allow_unicode=True).strip()
    return text[:-3].rstrip() if text.endswith("\n...") else text


def render(spec: dict[str, Any]) -> str:
    """The spec as text: sections as blocks, each input, layer and edge on one line."""
    lines = _render_model(spec, 0, top=True)
    return "\n".join(lines).rstrip() + "\n"


def _render_model(spec: dict[str, Any], indent: int, top: bool) -> list[str]:
    pad = "  " * indent
    lines: list[str] = []
    for key, value in spec.items():
        if key == "models":
            lines.append(f"{pad}models:")
            for name, sub in value.items():
                lines.append(f"{pad}  {_flow(name)}:")
                lines += _render_model(sub, indent + 2, top=False)
        elif key == "blocks":
            lines.append(f"{pad}blocks:")
            for name, block in value.items():
                lines.append(f"{pad}  {_flow(name)}:")
                lines += _render_model(block, indent + 2, top=False)
        elif key in ("inputs", "layers", "edges") and isinstance(value, dict):  # a block's `inputs: x` is a name
            lines.append(f"{pad}{key}:")
            for name, entry in value.items():
                lines += _entry(name, entry, indent + 1)
        elif key == "sequential":
            lines.append(f"{pad}sequential:")
            for item in value:  # `- Conv2D: {...}`, or `- Flatten` for a class without arguments
                lines += _wrapped(f"{pad}  - ", item, f"{pad}      ") if isinstance(item, str) else \
                    _wrapped(f"{pad}  - {_flow(next(iter(item)))}: ", next(iter(item.values())), f"{pad}      ")
        else:
            lines.append(f"{pad}{key}: {_flow(value)}")
        if top and key not in ("optimizer", "loss", "loss_weights"):  # compile settings stay together
            lines.append("")
    return lines


def _entry(name: str, entry: Any, indent: int) -> list[str]:
    """`name: {...}` on one line, or, when too long, one line per key, long mappings wrapped."""
    pad = "  " * indent
    line = f"{pad}{_flow(name)}: {_flow(entry)}"
    if len(line) <= LINE_WIDTH or not isinstance(entry, dict):
        return [line]
    lines = [f"{pad}{_flow(name)}:"]
    for key, value in entry.items():
        lines += _wrapped(f"{pad}  {_flow(key)}: ", value, f"{pad}    ")
    return lines


def _wrapped(start: str, value: Any, pad: str, close: str = "") -> list[str]:
    """`start`, a flow value and `close`, wrapped between the value's entries onto lines indented by `pad`."""
    line = start + _flow(value) + close
    if len(line) <= LINE_WIDTH or not isinstance(value, dict) or not value:
        return [line]
    if len(value) == 1:  # {Conv2D: {...}}: wrap the class's arguments
        ((key, inner),) = value.items()
        if isinstance(inner, dict) and inner:
            return _wrapped(f"{start}{{{_flow(key)}: ", inner, pad, "}" + close)
        return [line]
    parts = [f"{_flow(key)}: {_flow(item)}" for key, item in value.items()]
    lines, current = [], start + "{" + parts[0]
    for part in parts[1:]:
        if len(current) + len(part) + 2 > LINE_WIDTH:
            lines.append(current + ",")
            current = pad + part
        else:
            current += ", " + part
    return lines + [current + "}" + close]
