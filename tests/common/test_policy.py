"""The oslo.policy rule language: parsing, precedence, checks, references and overrides."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pocketstack.common.errors import Forbidden
from pocketstack.common.policy import (
    AndCheck,
    Enforcer,
    FalseCheck,
    NotCheck,
    OrCheck,
    PolicySyntaxError,
    TrueCheck,
    parse,
)

ADMIN = {"roles": ["admin", "member", "reader"], "user_id": "u1", "project_id": "p1", "system_scope": None,
         "is_admin": False, "domain_id": None}
MEMBER = {"roles": ["member", "reader"], "user_id": "u2", "project_id": "p1", "is_admin": False}
READER = {"roles": ["reader"], "user_id": "u3", "project_id": "p2", "is_admin": False}
NOBODY = {"roles": [], "user_id": "u4", "project_id": None, "is_admin": False}


def allowed(rule: str, creds: dict, target: dict | None = None, rules: dict | None = None) -> bool:
    enf = Enforcer()
    enf.register_defaults({"the_rule": rule, **(rules or {})})
    return enf.check("the_rule", target or {}, creds)


# ---------------------------------------------------------------------------- trivial rules
@pytest.mark.parametrize("rule", ["", "@", "  ", " @ "])
def test_empty_and_at_always_allow(rule):
    assert isinstance(parse(rule), TrueCheck)
    assert allowed(rule, NOBODY)


def test_bang_always_denies():
    assert isinstance(parse("!"), FalseCheck)
    assert not allowed("!", ADMIN)


def test_at_and_bang_inside_expressions():
    assert allowed("@ and role:admin", ADMIN)
    assert not allowed("@ and role:admin", MEMBER)
    assert not allowed("! or role:nobody", ADMIN)
    assert allowed("! or role:admin", ADMIN)
    assert allowed("not !", NOBODY)
    assert not allowed("not @", ADMIN)


# ---------------------------------------------------------------------------- role checks
def test_role_check_is_case_insensitive():
    assert allowed("role:admin", ADMIN)
    assert allowed("role:ADMIN", ADMIN)
    assert allowed("role:Admin", {"roles": ["aDmIn"]})
    assert not allowed("role:admin", MEMBER)
    assert not allowed("role:admin", {})


def test_role_check_with_interpolated_target():
    target = {"target": {"role": {"name": "member"}}}
    assert allowed("role:%(target.role.name)s", MEMBER, target)
    assert not allowed("role:%(target.role.name)s", READER, target)
    # a missing target field never matches
    assert not allowed("role:%(target.missing)s", ADMIN, target)


# ---------------------------------------------------------------------------- boolean operators
def test_and_binds_tighter_than_or():
    # a or b and c  ==  a or (b and c)
    rule = "role:reader or role:member and role:admin"
    tree = parse(rule)
    assert isinstance(tree, OrCheck) and isinstance(tree.rules[1], AndCheck)
    assert allowed(rule, READER)            # a alone
    assert allowed(rule, ADMIN)
    assert not allowed(rule, {"roles": ["member"]})  # b without c, and not a
    assert allowed(rule, {"roles": ["member", "admin"]})
    # (a or b) and c differs
    assert not allowed("(role:reader or role:member) and role:admin", READER)


def test_not_binds_tighter_than_and_and_or():
    # not a and b  ==  (not a) and b
    rule = "not role:admin and role:member"
    tree = parse(rule)
    assert isinstance(tree, AndCheck) and isinstance(tree.rules[0], NotCheck)
    assert allowed(rule, MEMBER)
    assert not allowed(rule, ADMIN)
    assert not allowed(rule, READER)
    # not (a and b)
    assert allowed("not (role:admin and role:member)", READER)
    assert not allowed("not (role:admin and role:member)", ADMIN)
    # not a or b == (not a) or b
    assert allowed("not role:admin or role:member", ADMIN)
    assert allowed("not role:admin or role:member", NOBODY)
    assert not allowed("not role:reader or role:admin", READER)


def test_double_not():
    assert allowed("not not role:admin", ADMIN)
    assert not allowed("not not role:admin", MEMBER)


def test_keywords_are_case_insensitive():
    assert allowed("role:nobody OR role:admin", ADMIN)
    assert not allowed("role:admin AND role:nobody", ADMIN)
    assert allowed("NOT role:nobody", ADMIN)


@pytest.mark.parametrize("rule,who,expected", [
    ("(role:admin)", ADMIN, True),
    ("((role:admin))", ADMIN, True),
    ("( role:admin )", ADMIN, True),
    ("(role:admin or role:member) and project_id:p1", MEMBER, True),
    ("(role:admin or role:member) and project_id:p1", READER, False),
    ("role:reader and (project_id:p2 or (role:admin and not role:member))", READER, True),
    ("role:reader and (project_id:p9 or (role:admin and not role:member))", READER, False),
    ("((role:admin or role:member) and (project_id:p1 or project_id:p2))", MEMBER, True),
])
def test_parentheses(rule, who, expected):
    assert allowed(rule, who) is expected


def test_parentheses_glued_to_interpolations_stay_whole():
    rule = "(project_id:%(target.project.id)s or user_id:%(target.user.id)s)"
    assert allowed(rule, MEMBER, {"target": {"project": {"id": "p1"}, "user": {"id": "x"}}})
    assert allowed(rule, MEMBER, {"target": {"project": {"id": "p9"}, "user": {"id": "u2"}}})
    assert not allowed(rule, MEMBER, {"target": {"project": {"id": "p9"}, "user": {"id": "x"}}})
    assert allowed("(role:admin or (project_id:%(target.project.id)s))", MEMBER,
                   {"target": {"project": {"id": "p1"}}})


# ---------------------------------------------------------------------------- rule references
def test_rule_references_resolve_through_the_enforcer():
    rules = {"admin_required": "role:admin", "owner": "user_id:%(user_id)s",
             "admin_or_owner": "rule:admin_required or rule:owner"}
    assert allowed("rule:admin_or_owner", ADMIN, {"user_id": "zz"}, rules)
    assert allowed("rule:admin_or_owner", MEMBER, {"user_id": "u2"}, rules)
    assert not allowed("rule:admin_or_owner", MEMBER, {"user_id": "zz"}, rules)


def test_unknown_rule_reference_denies():
    assert not allowed("rule:does_not_exist", ADMIN)
    assert allowed("rule:does_not_exist or role:admin", ADMIN)


def test_unknown_action_falls_back_to_default_rule():
    enf = Enforcer()
    assert not enf.check("identity:unknown", {}, ADMIN)  # no default rule: deny
    enf.register_defaults({"default": "role:admin"})
    assert enf.check("identity:unknown", {}, ADMIN)
    assert not enf.check("identity:unknown", {}, MEMBER)


# ---------------------------------------------------------------------------- generic checks
def test_generic_check_against_credentials():
    assert allowed("project_id:p1", MEMBER)
    assert not allowed("project_id:p2", MEMBER)
    assert not allowed("project_id:p1", NOBODY)  # None never matches
    assert not allowed("no_such_cred:x", ADMIN)


def test_generic_check_with_target_interpolation():
    rule = "project_id:%(target.project.id)s"
    assert allowed(rule, MEMBER, {"target": {"project": {"id": "p1"}}})
    assert not allowed(rule, MEMBER, {"target": {"project": {"id": "p2"}}})
    assert not allowed(rule, MEMBER, {})  # missing target field: deny, never error
    assert not allowed(rule, MEMBER, {"target": {"project": None}})


def test_interpolation_accepts_flat_dotted_target_keys():
    # upstream passes targets like {"target.project.id": ...} as flat keys
    assert allowed("project_id:%(target.project.id)s", MEMBER, {"target.project.id": "p1"})
    assert allowed("user_id:%(user_id)s", MEMBER, {"user_id": "u2"})


def test_interpolation_inside_a_longer_match():
    assert allowed("user_id:prefix-%(x)s-suffix", {"user_id": "prefix-7-suffix"}, {"x": 7})
    assert allowed("user_id:%(a)s%(b)s", {"user_id": "12"}, {"a": 1, "b": "2"})
    assert not allowed("user_id:%(a)s%(b)s", {"user_id": "1"}, {"a": 1})


def test_generic_check_on_nested_credentials():
    creds = {"token": {"project": {"domain": {"id": "d1"}}}, "roles": []}
    assert allowed("token.project.domain.id:d1", creds)
    assert allowed("token.project.domain.id:%(target.domain.id)s", creds, {"target": {"domain": {"id": "d1"}}})
    assert not allowed("token.project.domain.id:d2", creds)


def test_generic_check_on_boolean_and_list_credentials():
    assert allowed("is_admin:True", {"is_admin": True})
    assert allowed("is_admin:true", {"is_admin": True})
    assert allowed("is_admin:1", {"is_admin": True})
    assert not allowed("is_admin:True", {"is_admin": False})
    assert allowed("is_admin:False", {"is_admin": False})
    assert allowed("groups:g2", {"groups": ["g1", "g2"]})
    assert not allowed("groups:g3", {"groups": ["g1", "g2"]})


def test_system_scope_check():
    assert allowed("role:admin and system_scope:all", {"roles": ["admin"], "system_scope": "all"})
    assert not allowed("role:admin and system_scope:all", {"roles": ["admin"], "system_scope": None})


def test_literals_on_the_left():
    target = {"target": {"role": {"name": "member"}, "enabled": True, "count": 5}}
    assert allowed("'member':%(target.role.name)s", NOBODY, target)
    assert allowed('"member":%(target.role.name)s', NOBODY, target)
    assert not allowed("'admin':%(target.role.name)s", NOBODY, target)
    assert allowed("True:%(target.enabled)s", NOBODY, target)
    assert not allowed("False:%(target.enabled)s", NOBODY, target)
    assert not allowed("'member':%(target.missing)s", NOBODY, target)
    # oslo.policy evaluates any Python literal on the left (ast.literal_eval), numbers too
    assert allowed("5:%(target.count)s", NOBODY, target)
    assert not allowed("6:%(target.count)s", NOBODY, target)


def test_upstream_style_rules():
    rules = {
        "admin_required": "role:admin or is_admin:1",
        "service_role": "role:service",
        "service_or_admin": "rule:admin_required or rule:service_role",
        "owner": "user_id:%(user_id)s",
        "admin_or_owner": "rule:admin_required or rule:owner",
        "token_subject": "user_id:%(target.token.user_id)s",
        "domain_managed_target_role": "'member':%(target.role.name)s or 'reader':%(target.role.name)s",
    }
    rule = ("(role:admin and system_scope:all) or (role:manager and "
            "token.project.domain.id:%(target.domain.id)s and rule:domain_managed_target_role)")
    manager = {"roles": ["manager"], "token": {"project": {"domain": {"id": "d1"}}}}
    target = {"target": {"domain": {"id": "d1"}, "role": {"name": "member"}}}
    assert allowed(rule, manager, target, rules)
    assert not allowed(rule, manager, {"target": {"domain": {"id": "d1"}, "role": {"name": "admin"}}}, rules)
    assert not allowed(rule, manager, {"target": {"domain": {"id": "d2"}, "role": {"name": "member"}}}, rules)
    assert allowed(rule, {"roles": ["admin"], "system_scope": "all"}, {}, rules)
    assert allowed("rule:service_or_admin", {"roles": ["service"]}, {}, rules)
    assert allowed("rule:token_subject", {"user_id": "u"}, {"target": {"token": {"user_id": "u"}}}, rules)


# ---------------------------------------------------------------------------- syntax errors
@pytest.mark.parametrize("rule", [
    "role:admin or",
    "or role:admin",
    "role:admin and",
    "role:admin and and role:member",
    "not",
    "(role:admin",
    "role:admin)",
    "((role:admin)",
    "()",
    "admin",
    "role:admin member",
    "role:admin (role:member)",
])
def test_syntax_errors_raise(rule):
    with pytest.raises(PolicySyntaxError):
        parse(rule)


def test_policy_syntax_error_is_a_value_error():
    assert issubclass(PolicySyntaxError, ValueError)


# ---------------------------------------------------------------------------- enforcer + overrides
def test_enforce_raises_forbidden_with_the_action():
    enf = Enforcer()
    enf.register_defaults({"identity:get_user": "role:admin"})
    enf.enforce("identity:get_user", {}, ADMIN)
    with pytest.raises(Forbidden) as exc:
        enf.enforce("identity:get_user", {}, MEMBER)
    assert exc.value.code == 403
    assert "identity:get_user" in exc.value.message


def test_policy_yaml_overrides_defaults(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "# operators' overrides\n"
        '"identity:get_user": "role:reader"\n'
        '"identity:delete_user": "!"\n'
        '"custom_rule": "project_id:%(target.project.id)s"\n'
        '"identity:list_users": "rule:custom_rule"\n'
    )
    enf = Enforcer(path)
    enf.register_defaults({"identity:get_user": "role:admin", "identity:delete_user": "role:admin",
                           "identity:create_user": "role:admin", "identity:list_users": "role:admin"})
    assert enf.check("identity:get_user", {}, READER)          # loosened by the override
    assert not enf.check("identity:delete_user", {}, ADMIN)    # closed by the override
    assert enf.check("identity:create_user", {}, ADMIN)        # untouched default
    assert not enf.check("identity:create_user", {}, READER)
    assert enf.check("identity:list_users", {"target": {"project": {"id": "p2"}}}, READER)
    assert not enf.check("identity:list_users", {"target": {"project": {"id": "p1"}}}, READER)
    # registering defaults again (another service) never replaces an override
    enf.register_defaults({"identity:get_user": "role:admin"})
    assert enf.check("identity:get_user", {}, READER)
    assert enf.defaults["identity:get_user"] == "role:admin"


def test_missing_or_empty_policy_yaml(tmp_path):
    enf = Enforcer(tmp_path / "absent.yaml")
    enf.register_defaults({"a": "role:admin"})
    assert enf.check("a", {}, ADMIN)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Enforcer(empty).overrides == {}


def test_bad_policy_yaml_raises_syntax_error(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(PolicySyntaxError):
        Enforcer(path)
    path.write_text('"identity:get_user": "role:admin or"\n')
    with pytest.raises(PolicySyntaxError):
        Enforcer(path)


def test_bad_default_rule_raises_syntax_error():
    with pytest.raises(PolicySyntaxError):
        Enforcer().register_defaults({"x": "role:admin and (role:member"})


# ---------------------------------------------------------------------------- properties
_ROLES = ["admin", "member", "reader"]
_atoms = st.sampled_from(["role:admin", "role:member", "role:reader", "@", "!"])


def _expr(depth=0):
    if depth > 3:
        return _atoms
    sub = st.deferred(lambda: _expr(depth + 1))
    return st.one_of(
        _atoms,
        st.tuples(st.just("not"), sub),
        st.tuples(sub, st.sampled_from(["and", "or"]), sub),
        st.tuples(st.just("("), sub, st.just(")")),
    )


def _render(e) -> str:
    if isinstance(e, str):
        return e
    if e[0] == "not":
        return f"not {_render(e[1])}"
    if e[0] == "(":
        return f"({_render(e[1])})"
    return f"{_render(e[0])} {e[1]} {_render(e[2])}"


def _python(e) -> str:
    """The same expression as Python source: Python's not/and/or precedence equals oslo's."""
    if isinstance(e, str):
        return {"@": "True", "!": "False"}.get(e) or repr(e.split(":", 1)[1]) + " in roles"
    if e[0] == "not":
        return f"not {_python(e[1])}"
    if e[0] == "(":
        return f"({_python(e[1])})"
    return f"{_python(e[0])} {e[1]} {_python(e[2])}"


@settings(max_examples=300, deadline=None)
@given(expr=_expr(), roles=st.sets(st.sampled_from(_ROLES)))
def test_precedence_matches_pythons_boolean_operators(expr, roles):
    rule = _render(expr)
    expected = eval(_python(expr), {}, {"roles": roles})  # noqa: S307 - generated from a closed grammar
    assert allowed(rule, {"roles": sorted(roles)}) is bool(expected), rule


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parser_only_ever_raises_policy_syntax_error(text):
    try:
        check = parse(text)
    except PolicySyntaxError:
        return
    # whatever parsed evaluates without raising
    enf = Enforcer()
    enf.rules["x"] = check
    enf.check("x", {"target": {}}, ADMIN)
