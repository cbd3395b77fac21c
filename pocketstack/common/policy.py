"""Policy enforcement in oslo.policy's rule language, without oslo.policy.

Rules are written exactly as in upstream `policy.yaml` files (`role:admin`,
`rule:admin_required`, `project_id:%(target.project.id)s`, `system_scope:all`, `@`,
`!`, `and`/`or`/`not`, parentheses, quoted literals on the left). Each service
registers its defaults (upstream's admin / member / reader personas); a `policy.yaml`
in the state dir overrides any rule. oslo.policy itself is not used because it pulls
in oslo.config and friends, which alone cost more than our whole cold start (see
docs/dependencies.md).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from pocketstack.common.errors import Forbidden



def _tokenize(rule: str) -> list[str]:
    """Split on whitespace, then peel parentheses off the ends of each chunk (as oslo does),
    so `%(target.id)s` inside a check stays whole."""
    out: list[str] = []
    for chunk in rule.split():
        lead = len(chunk) - len(chunk.lstrip("("))
        out.extend("(" * lead)
        chunk = chunk[lead:]
        # every "%(" owns one ")"; the surplus at the end closes groups
        run = len(chunk) - len(chunk.rstrip(")"))
        trail = min(run, max(0, chunk.count(")") - chunk.count("%(")))
        body = chunk[: len(chunk) - trail] if trail else chunk
        if body:
            out.append(body)
        out.extend(")" * trail)
    return out


class PolicySyntaxError(ValueError):
    pass


# ---------------------------------------------------------------------------- rule tree
class Check:
    def __call__(self, target: Mapping, creds: Mapping, enforcer: "Enforcer") -> bool:
        raise NotImplementedError


class TrueCheck(Check):
    def __call__(self, target, creds, enforcer):
        return True


class FalseCheck(Check):
    def __call__(self, target, creds, enforcer):
        return False


class AndCheck(Check):
    def __init__(self, rules):
        self.rules = rules

    def __call__(self, target, creds, enforcer):
        return all(r(target, creds, enforcer) for r in self.rules)


class OrCheck(Check):
    def __init__(self, rules):
        self.rules = rules

    def __call__(self, target, creds, enforcer):
        return any(r(target, creds, enforcer) for r in self.rules)


class NotCheck(Check):
    def __init__(self, rule):
        self.rule = rule

    def __call__(self, target, creds, enforcer):
        return not self.rule(target, creds, enforcer)


class RuleCheck(Check):
    def __init__(self, name):
        self.name = name

    def __call__(self, target, creds, enforcer):
        rule = enforcer.rules.get(self.name)
        return bool(rule and rule(target, creds, enforcer))


class RoleCheck(Check):
    def __init__(self, match):
        self.match = match

    def __call__(self, target, creds, enforcer):
        want = _interpolate(self.match, target)
        if want is None:
            return False
        return want.lower() in [r.lower() for r in creds.get("roles", ())]


class GenericCheck(Check):
    """`kind:match`: a credential attribute (or a literal) compared to a value/target field."""

    def __init__(self, kind, match):
        self.kind = kind
        self.match = match
        # A Python literal on the left ('member', True, 5) is compared as text, as oslo does
        # with ast.literal_eval; anything else names a credential.
        try:
            self.literal: str | None = str(ast.literal_eval(kind))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            self.literal = None

    def __call__(self, target, creds, enforcer):
        match = _interpolate(self.match, target)
        if match is None:
            return False
        if self.literal is not None:
            return self.literal == match
        kind = self.kind
        value = _lookup(creds, kind)
        if value is None:
            return False
        if isinstance(value, bool):
            return str(value).lower() == str(match).lower() or (match in ("1",) and value)
        if isinstance(value, (list, tuple, set)):
            return match in [str(v) for v in value]
        return str(value) == match


def _lookup(data: Mapping, dotted: str) -> Any:
    if dotted in data:
        return data[dotted]
    cur: Any = data
    for part in dotted.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        else:
            return None
    return cur


_INTERP_RE = re.compile(r"%\(([^)]+)\)s")


def _interpolate(match: str, target: Mapping) -> str | None:
    missing = False

    def repl(m):
        nonlocal missing
        value = _lookup(target, m.group(1))
        if value is None:
            missing = True
            return ""
        return str(value)

    out = _INTERP_RE.sub(repl, match)
    return None if missing else out


# ---------------------------------------------------------------------------- parser
def parse(rule: str) -> Check:
    """Parse one rule string into a check tree."""
    rule = (rule or "").strip()
    if rule in ("", "@"):
        return TrueCheck()
    if rule == "!":
        return FalseCheck()
    tokens = _tokenize(rule)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        return tok

    def or_expr():
        items = [and_expr()]
        while peek() is not None and peek().lower() == "or":
            take()
            items.append(and_expr())
        return items[0] if len(items) == 1 else OrCheck(items)

    def and_expr():
        items = [not_expr()]
        while peek() is not None and peek().lower() == "and":
            take()
            items.append(not_expr())
        return items[0] if len(items) == 1 else AndCheck(items)

    def not_expr():
        if peek() is not None and peek().lower() == "not":
            take()
            return NotCheck(not_expr())
        return atom()

    def atom():
        tok = peek()
        if tok is None:
            raise PolicySyntaxError(f"unexpected end of rule: {rule!r}")
        if tok == "(":
            take()
            inner = or_expr()
            if peek() != ")":
                raise PolicySyntaxError(f"missing ')' in rule: {rule!r}")
            take()
            return inner
        take()
        return _check(tok, rule)

    tree = or_expr()
    if pos != len(tokens):
        raise PolicySyntaxError(f"unexpected {tokens[pos]!r} in rule: {rule!r}")
    return tree


def _check(tok: str, rule: str) -> Check:
    if tok == "@":
        return TrueCheck()
    if tok == "!":
        return FalseCheck()
    if ":" not in tok:
        raise PolicySyntaxError(f"malformed check {tok!r} in rule: {rule!r}")
    kind, match = tok.split(":", 1)
    if kind == "rule":
        return RuleCheck(match)
    if kind == "role":
        return RoleCheck(match)
    return GenericCheck(kind, match)


# ---------------------------------------------------------------------------- enforcer
class Enforcer:
    """Default rules of every service, overridden by the state dir's policy.yaml."""

    def __init__(self, overrides_file: Path | None = None):
        self.defaults: dict[str, str] = {}
        self.overrides: dict[str, str] = {}
        self.rules: dict[str, Check] = {}
        self.overrides_file = overrides_file
        if overrides_file and overrides_file.exists():
            data = yaml.safe_load(overrides_file.read_text()) or {}
            if not isinstance(data, dict):
                raise PolicySyntaxError(f"{overrides_file} must map rule names to rules")
            self.overrides = {str(k): str(v) for k, v in data.items()}
            for name, text in self.overrides.items():
                self.rules[name] = parse(text)

    def register_defaults(self, defaults: Mapping[str, str]) -> None:
        for name, text in defaults.items():
            self.defaults[name] = text
            if name not in self.overrides:
                self.rules[name] = parse(text)

    def check(self, action: str, target: Mapping, creds: Mapping) -> bool:
        rule = self.rules.get(action)
        if rule is None:
            # Unknown actions fall back to the `default` rule, as oslo.policy does.
            rule = self.rules.get("default", FalseCheck())
        return bool(rule(target, creds, self))

    def enforce(self, action: str, target: Mapping, creds: Mapping) -> None:
        if not self.check(action, target, creds):
            raise Forbidden(f"You are not authorized to perform the requested action: {action}.")
