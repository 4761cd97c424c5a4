"""YAML as people read it: block style, keys in the order given, multi-line strings as literal blocks.

The device plugin ConfigMap holds whole YAML documents as string values; as ``|`` blocks they read (and diff) like
the files they are, instead of one line of escaped newlines.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's emitter where PyYAML was built with it (several times faster on a 2,000-workload requests file)
_Base: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_Base):  # type: ignore[valid-type,misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any, header: list[str] | None = None) -> str:
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body if header else body
