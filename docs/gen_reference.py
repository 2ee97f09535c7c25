"""Write docs/reference.md from the public API's docstrings.

Run ``python docs/gen_reference.py`` after changing a public docstring or signature;
``tests/unit/test_reference_doc.py`` fails while the page is out of date.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

PAGE = Path(__file__).with_name("reference.md")
MODULES = [
    ("engagequeue", "The core: values, errors, stores, the scheduler, test transports."),
    ("engagequeue.transports", "Gateway transports and session-status webhooks (`[gateways]`)."),
    ("engagequeue.compose", "The AI post composer (`[ai]`)."),
    ("engagequeue.http", "The moderation endpoints as a FastAPI router (`[http]`)."),
    ("engagequeue.testing", "The store conformance suite, for a store of your own (`[testing]`)."),
]


def _signature(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    # Defaults that are other libraries' objects print reprs that change between their
    # releases (and memory addresses): show them as <...> to keep the page stable.
    return re.sub(r"<(?!MediaType\.|TaskStatus\.)[^<>]*>", "<...>", text)


def _doc(obj: object) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _members(cls: type) -> list[tuple[str, object]]:
    """The class's public methods and properties, then those it inherits from private bases.

    A private base (such as the stores' ``StoreBase``) has no section of its own, so what
    it gives the class is listed under the class.
    """
    import engagequeue

    public = {getattr(engagequeue, n) for n in engagequeue.__all__}
    private_bases = [
        base
        for base in cls.__mro__[1:]
        if base.__module__.startswith("engagequeue.") and base not in public
    ]
    out, seen = [], set()
    for owner in (cls, *private_bases):
        for name, member in vars(owner).items():
            public_member = inspect.isfunction(member) or isinstance(member, property)
            if name.startswith("_") or not public_member or name in seen:
                continue
            seen.add(name)
            out.append((name, member))
    return out


def render() -> str:
    """The reference page as Markdown."""
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `docs/gen_reference.py`; do not edit by hand.",
        "",
    ]
    for module_name, summary in MODULES:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", "", summary, ""]
        for name in sorted(getattr(module, "__all__", [])):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                kind = "class"
            elif inspect.isfunction(obj):
                kind = "function"
            else:
                kind = "constant" if isinstance(obj, int | str) else "type"
                lines += [f"### {kind} `{name}`", "", f"`{name} = {obj!r}`", ""]
                continue
            sig = _signature(obj) if kind == "function" or not issubclass(obj, BaseException) else ""
            lines += [f"### {kind} `{name}{sig}`", "", _doc(obj), ""]
            if kind == "class" and not issubclass(obj, BaseException):
                for member_name, member in _members(obj):
                    if isinstance(member, property):
                        lines += [f"- **`{member_name}`** (property): {_doc(member).splitlines()[0]}"]
                    else:
                        first = _doc(member).splitlines()[0]
                        lines += [f"- **`{member_name}{_signature(member)}`**: {first}"]
                lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
