"""The scheduler's capabilities filter: does the backend satisfy a volume type's extra specs?

Cinder's rules, so types written for Cinder place volumes the same way: an unscoped key
(`storage_protocol`) or one in the `capabilities:` scope names a capability the backend
reports (nested with more `:`); other scoped keys (`RESKEY:...`, `vendor:...`) are for
drivers and ignored. A named capability the backend does not report fails the filter.
A value is compared as a string unless it starts with an operator: `<is> True`,
`<in> text`, `<or> a <or> b`, numeric `= == != >= <=` and string `s== s!= s< s<= s> s>=`.
No matching backend means the volume ends in `error` with a user message (No valid host).
"""
from __future__ import annotations

import operator

TRUE = {"1", "t", "true", "on", "y", "yes"}


def _bool(value) -> bool:
    return str(value).strip().lower() in TRUE


def _numeric(fn):
    return lambda have, want: fn(float(have), float(want))


OPERATORS = {
    "=": _numeric(operator.ge), "==": _numeric(operator.eq), "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge), "<=": _numeric(operator.le),
    "<in>": lambda have, want: want in str(have), "<is>": lambda have, want: _bool(have) is _bool(want),
    "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le, "s>": operator.gt,
    "s>=": operator.ge,
}


def match(have, want: str | None) -> bool:
    """One reported value against one requirement."""
    if want is None:
        return have is None
    words = want.split()
    op = words[0] if words else None
    if op == "<or>":
        choices = words[1::2]  # `<or> a <or> b` -> a, b
        return have is not None and str(have) in choices
    fn = OPERATORS.get(op)
    if fn is None:  # a plain value: the same text (a reported True reads "True")
        return str(have) == want
    if have is None or len(words) < 2:
        return False
    try:
        return bool(fn(str(have) if op.startswith("s") else have, words[1]))
    except (TypeError, ValueError):
        return False


def backend_passes(specs: dict[str, str], capabilities: dict) -> tuple[bool, str]:
    """(True, "") or (False, why) for a volume type's extra specs."""
    for key, want in specs.items():
        scope = key.split(":")
        if len(scope) > 1 and scope[0] != "capabilities":
            continue
        if scope[0] == "capabilities":
            scope = scope[1:]
        have = capabilities
        for part in scope:
            if not isinstance(have, dict) or part not in have:
                return False, f"the backend does not report the capability '{key}'"
            have = have[part]
        values = have if isinstance(have, list) else [have]
        if not any(match(v, want) for v in values):
            return False, f"extra spec {key}={want} does not match the backend's {have!r}"
    return True, ""
