"""Claim-match policy in Python: the same behaviour and configuration as the Rust built-in
`plugins/claim-match`.

Configuration:
    {"claim": "email", "domain": "clinic.example", "issuer": "https://idp.example",
     "scopes": ["view"]}
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.evaluator import (
    Decision_Deny,
    Decision_NeedInfo,
    Decision_Permit,
    Request,
)
from wit_world.imports.types import (
    Provenance_Interactive,
    Provenance_Pct,
    Provenance_ResourceServer,
    Provenance_Server,
    Provenance_VerifiedToken,
    RequiredClaim,
)

FIELDS = ("claim", "equals", "one_of", "domain", "issuer", "provenance", "scopes", "friendly_name")
PROVENANCES = ("server", "verified-token", "interactive", "pct", "resource-server")
PROVENANCE_NAMES = {
    Provenance_Server: "server",
    Provenance_VerifiedToken: "verified-token",
    Provenance_Interactive: "interactive",
    Provenance_Pct: "pct",
    Provenance_ResourceServer: "resource-server",
}
ABSENT = object()


class ConfigError(Exception):
    pass


def _not_json(name):
    """JSON has no NaN or Infinity (Python's json module would accept them)."""
    raise ConfigError(f"`{name}` is not JSON")


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ConfigError(f"duplicate field `{key}`")
        seen[key] = value
    return seen


def _optional(config, key, check, what):
    value = config.get(key)
    if value is None:
        return None
    if not check(value):
        raise ConfigError(f"`{key}` must be {what}")
    return value


def _is_strings(v):
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


def parse_config(text):
    """Parse like the Rust built-in's serde: unknown or duplicate fields and wrong types are
    errors prefixed with `invalid configuration: `. A JSON `null` is an absent option."""
    try:
        try:
            config = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_not_json)
        except ValueError as e:
            raise ConfigError(str(e))
        if not isinstance(config, dict):
            raise ConfigError("expected a JSON object")
        for key in config:
            if key not in FIELDS:
                raise ConfigError(f"unknown field `{key}`, expected one of {', '.join(FIELDS)}")
        if not isinstance(config.get("claim"), str):
            raise ConfigError("missing field `claim`" if "claim" not in config else "`claim` must be a string")
        return {
            "claim": config["claim"],
            "equals": ABSENT if config.get("equals") is None else config["equals"],
            "one_of": _optional(config, "one_of", lambda v: isinstance(v, list), "a list"),
            "domain": _optional(config, "domain", lambda v: isinstance(v, str), "a string"),
            "issuer": _optional(config, "issuer", lambda v: isinstance(v, str), "a string"),
            "provenance": _optional(config, "provenance", _is_strings, "a list of strings"),
            "scopes": _optional(config, "scopes", _is_strings, "a list of strings"),
            "friendly_name": _optional(config, "friendly_name", lambda v: isinstance(v, str), "a string"),
        }
    except ConfigError as e:
        raise ConfigError(f"invalid configuration: {e}")


def same(a, b):
    """serde_json's Value equality: Python's `==` would take `true` for `1` and `1` for `1.0`."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def ascii_lower(s):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def counts(config, claim):
    if claim.name != config["claim"]:
        return False
    if config["issuer"] is not None:
        p = claim.provenance
        return isinstance(p, Provenance_VerifiedToken) and p.value.issuer == config["issuer"]
    name = PROVENANCE_NAMES[type(claim.provenance)]
    if config["provenance"] is not None:
        return name in config["provenance"]
    return name != "resource-server"


def matches(config, value):
    if config["equals"] is not ABSENT:
        return same(value, config["equals"])
    if config["one_of"] is not None:
        return any(same(value, option) for option in config["one_of"])
    if config["domain"] is not None and isinstance(value, str):
        local, at, domain = value.rpartition("@")
        return bool(at) and local != "" and ascii_lower(domain) == ascii_lower(config["domain"])
    return False


def claim_json(claim):
    try:
        return json.loads(claim.value)
    except ValueError:
        return None


def decide(request, config):
    seen = False
    for claim in request.claims:
        if not counts(config, claim):
            continue
        seen = True
        value = claim_json(claim)
        if isinstance(value, list) and config["equals"] is ABSENT:
            hit = any(matches(config, v) for v in value)
        else:
            hit = matches(config, value)
        if hit:
            requested = request.permission.requested_scopes
            if config["scopes"] is None:
                return Decision_Permit(list(requested))
            return Decision_Permit([s for s in requested if s in config["scopes"]])
    if seen:
        return Decision_Deny(f"claim `{config['claim']}` does not match")
    return Decision_NeedInfo(
        [
            RequiredClaim(
                name=config["claim"],
                friendly_name=config["friendly_name"],
                claim_type=None,
                claim_token_formats=[],
                issuers=[config["issuer"]] if config["issuer"] is not None else [],
            )
        ]
    )


def validate(config):
    if config["claim"] == "":
        raise ConfigError("`claim` must name a claim")
    ops = [config["equals"] is not ABSENT, config["one_of"] is not None, config["domain"] is not None]
    if ops.count(True) != 1:
        raise ConfigError("give exactly one of `equals`, `one_of`, `domain`")
    domain = config["domain"]
    if domain is not None and (domain == "" or "@" in domain):
        raise ConfigError("`domain` must be a bare domain such as `example.com`")
    if config["provenance"] is not None:
        for p in config["provenance"]:
            if p not in PROVENANCES:
                raise ConfigError(f"unknown provenance `{p}`; use one of {', '.join(PROVENANCES)}")
        if config["issuer"] is not None:
            raise ConfigError("`issuer` already requires a verified token: drop `provenance`")


class Evaluator(exports.Evaluator):
    def evaluate(self, request: Request):
        try:
            config = parse_config(request.config)
        except ConfigError as e:
            return Decision_Deny(str(e))
        return decide(request, config)

    def validate_config(self, config: str) -> None:
        try:
            validate(parse_config(config))
        except ConfigError as e:
            raise Err(str(e))


# componentize-py runs this module while it snapshots the interpreter: one pass through the
# configuration parser and the matchers here leaves what CPython builds on a first call
# (attribute caches, interned names, the JSON scanner's state) in the snapshot, instead of every
# fresh instance building it again.
_warm = parse_config('{"claim": "email", "domain": "example.com", "provenance": ["server"], "scopes": ["view"]}')
validate(_warm)
matches(_warm, json.loads('"someone@Example.com"'))
del _warm
