"""The config rendered for people: commented TOML (`spinesense config show`) and the
reference page docs/config.md, both generated from the schema in `spinesense.config`."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from spinesense.config import SECTION_TYPES, Config


def to_toml(cfg: Config, *, with_docs: bool = True, redact: bool = True) -> str:
    """Render a config as commented TOML (what `spinesense config show` prints)."""
    lines: list[str] = []
    values = cfg.to_dict(redact=redact)
    for sname, cls in SECTION_TYPES.items():
        lines.append(f"[{sname}]")
        for f in dataclasses.fields(cls):
            if with_docs:
                lines.append(f"# {f.metadata['doc']}")
            value = values[sname][f.name]
            if redact and f.metadata.get("secret_env") and value:
                # commented out, so that `config show > my.toml` never reads back a fake secret
                lines.append(f"# {f.name}: set (hidden; {f.metadata['secret_env']} or "
                             f"{f.name}_file keep it out of this file)")
                continue
            lines.append(f"{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_markdown() -> str:
    """The config reference (docs/config.md), generated so it cannot drift from the schema."""
    out = ["# Configuration reference", "",
           "One TOML file configures every stage; every key is optional. "
           "`spinesense config show` prints the effective config, "
           "`spinesense config check FILE` validates one. Secrets can come from the "
           "environment or a file instead of the TOML.", "",
           "This page is generated from the schema in `spinesense/config.py` "
           "(`python -m spinesense.config_render > docs/config.md`); a test keeps it in sync.", ""]
    for sname, cls in SECTION_TYPES.items():
        out += [f"## [{sname}]", "", "| key | default | allowed | meaning |",
                "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            m = f.metadata
            if m.get("choices"):
                allowed = ", ".join(map(str, m["choices"]))
            elif m.get("lo") is not None or m.get("hi") is not None:
                rel = ">" if m.get("lo_open") else "≥"
                lo = "" if m.get("lo") is None else f"{rel} {m['lo']:g}"
                hi = "" if m.get("hi") is None else f"≤ {m['hi']:g}"
                allowed = ", ".join(x for x in (lo, hi) if x)
            else:
                allowed = get_type_hints(cls)[f.name].__name__
            doc = m["doc"] + (f" Env: `{m['secret_env']}`." if m.get("secret_env") else "")
            out.append(f"| `{f.name}` | `{_toml_value(f.default)}` | {allowed} | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(to_markdown(), end="")
