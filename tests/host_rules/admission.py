"""Evaluate a ValidatingAdmissionPolicy from deploy/ the way the API server does, with real CEL.

cel-python evaluates the expressions. Kubernetes' CEL library functions the policies use
(``isCIDR``, ``cidr``, ``ip``, ``.containsCIDR``, ``.ip``, ``.family``) are implemented here
after their documented semantics (k8s.io/apiserver/pkg/cel/library/cidr.go and ip.go: a
CIDR contains another only within one IP family). Matching follows the admission
documentation: ``matchConstraints.resourceRules`` (``*`` is every resource, ``*/*`` every
subresource, ``pods/status`` one), then ``matchConditions``, then ``variables`` in order,
then each validation.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import celpy
import yaml
from celpy import celtypes

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class CIDR(celtypes.StringType):
    """A CEL ``net.CIDR`` value."""

    @property
    def net(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(str(self), strict=False)


class IP(celtypes.StringType):
    """A CEL ``net.IP`` value."""


def _is_cidr(value: Any) -> celtypes.BoolType:
    try:
        ipaddress.ip_network(str(value), strict=False)
        return celtypes.BoolType("/" in str(value))
    except ValueError:
        return celtypes.BoolType(False)


def _cidr(value: Any) -> CIDR:
    if not _is_cidr(value):
        raise ValueError(f"network address parse error during conversion from string: {value}")
    return CIDR(str(value))


def _contains_cidr(outer: CIDR, inner: Any) -> celtypes.BoolType:
    other = inner if isinstance(inner, CIDR) else _cidr(inner)
    a, b = outer.net, other.net
    return celtypes.BoolType(a.version == b.version and b.subnet_of(a))  # type: ignore[arg-type]


def _ip(value: Any) -> IP:
    if isinstance(value, CIDR):
        return IP(str(value.net.network_address if "/" not in str(value)
                      else ipaddress.ip_interface(str(value)).ip))  # fmt: skip
    return IP(str(ipaddress.ip_address(str(value))))


def _family(value: IP) -> celtypes.IntType:
    return celtypes.IntType(ipaddress.ip_address(str(value)).version)


class ObjectMap(celtypes.MapType):
    """An admission object. CEL compares any value with null; cel-python 0.5's MapType
    handles ``== null`` but raises on ``!= null``, which is all this adds."""

    def __ne__(self, other: Any) -> bool:
        return True if other is None else super().__ne__(other)

    def __eq__(self, other: Any) -> bool:
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


def _object(value: dict[str, Any] | None) -> ObjectMap | None:
    return None if value is None else ObjectMap(celpy.json_to_cel(value))


FUNCTIONS = {"isCIDR": _is_cidr, "cidr": _cidr, "containsCIDR": _contains_cidr, "ip": _ip,
             "family": _family}  # fmt: skip
_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def cel(expression: str, activation: dict[str, Any]) -> Any:
    prog = _PROGRAMS.get(expression)
    if prog is None:
        prog = _PROGRAMS[expression] = _ENV.program(_ENV.compile(expression), functions=FUNCTIONS)
    result = prog.evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


def load_policies(name: str = "host-admission.yaml") -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all((DEPLOY / name).read_text())
            if d["kind"] == "ValidatingAdmissionPolicy"}  # fmt: skip


@dataclass
class Request:
    """One admission request, as the API server would describe it."""

    operation: str  # CREATE | UPDATE | DELETE
    resource: str  # plural, e.g. "statefulsets"
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    username: str = "system:serviceaccount:kepler-system:kepler-station"
    object: dict[str, Any] | None = None
    old_object: dict[str, Any] | None = None
    namespace_object: dict[str, Any] | None = None


def _rule_matches(rule: dict[str, Any], req: Request) -> bool:
    if req.operation not in rule.get("operations", []) and "*" not in rule.get("operations", []):
        return False
    if not ({"*", req.group} & set(rule.get("apiGroups", []))):
        return False
    for res in rule.get("resources", []):
        main, _, sub = res.partition("/")
        if main not in ("*", req.resource):
            continue
        if (not sub and not req.subresource) or sub == "*" or (sub and sub == req.subresource):
            return True
    return False


def evaluate(policy: dict[str, Any], req: Request) -> list[str] | None:
    """None if the policy does not apply; else the messages of the failed validations."""
    spec = policy["spec"]
    if not any(_rule_matches(r, req) for r in spec["matchConstraints"]["resourceRules"]):
        return None
    request = {
        "operation": req.operation, "namespace": req.namespace, "name": req.name,
        "resource": {"group": req.group, "version": "v1", "resource": req.resource},
        "subResource": req.subresource, "userInfo": {"username": req.username},
    }  # fmt: skip
    act: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": _object(req.object),
        "oldObject": _object(req.old_object),
        "namespaceObject": _object(req.namespace_object),
    }  # fmt: skip
    for cond in spec.get("matchConditions", []):
        if not cel(cond["expression"], act):
            return None
    variables: dict[str, Any] = {}
    for var in spec.get("variables", []):
        act["variables"] = celtypes.MapType(variables)
        variables[celtypes.StringType(var["name"])] = cel(var["expression"], act)
    act["variables"] = celtypes.MapType(variables)
    return [v.get("message", v["expression"]) for v in spec["validations"]
            if not cel(v["expression"], act)]  # fmt: skip
