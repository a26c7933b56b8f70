"""Allow-list policy in Python: the same behaviour and configuration as the Rust built-in
`plugins/allow-list`.

Configuration:
    {"subjects": ["alice"], "emails": ["doctor@clinic.example"], "client_ids": ["portal"],
     "scopes": ["view"], "issuers": ["https://idp.example"]}
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
from wit_world.imports.types import Provenance_ResourceServer, Provenance_VerifiedToken, RequiredClaim

FIELDS = ("subjects", "emails", "client_ids", "scopes", "issuers")


class ConfigError(Exception):
    pass


def _strings(config, key, optional):
    """A list of strings under `key`: [] when absent (None for optional keys)."""
    value = config.get(key)
    if value is None:
        if key in config and not optional:
            raise ConfigError(f"invalid type: null, expected a sequence for `{key}`")
        return None if optional else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"`{key}` must be a list of strings")
    return value


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


def parse_config(text):
    """Parse like the Rust built-in's serde: unknown or duplicate fields and wrong types are
    errors prefixed with `invalid configuration: `."""
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
        return {
            "subjects": _strings(config, "subjects", False),
            "emails": _strings(config, "emails", False),
            "client_ids": _strings(config, "client_ids", False),
            "scopes": _strings(config, "scopes", True),
            "issuers": _strings(config, "issuers", True),
        }
    except ConfigError as e:
        raise ConfigError(f"invalid configuration: {e}")


def trusted(config, claim):
    if config["issuers"] is not None:
        p = claim.provenance
        return isinstance(p, Provenance_VerifiedToken) and p.value.issuer in config["issuers"]
    return not isinstance(claim.provenance, Provenance_ResourceServer)


def claim_strings(claim):
    try:
        value = json.loads(claim.value)
    except ValueError:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def grant(config, request):
    requested = request.permission.requested_scopes
    if config["scopes"] is None:
        return Decision_Permit(list(requested))
    return Decision_Permit([s for s in requested if s in config["scopes"]])


def decide(request, config):
    if request.context.client_id in config["client_ids"]:
        return grant(config, request)
    identified = False
    for claim in request.claims:
        if not trusted(config, claim):
            continue
        if claim.name == "sub":
            listed = config["subjects"]
        elif claim.name == "email":
            listed = config["emails"]
        else:
            continue
        identified = True
        if any(v in listed for v in claim_strings(claim)):
            return grant(config, request)
    if not identified and (config["subjects"] or config["emails"]):
        name = "email" if config["emails"] else "sub"
        return Decision_NeedInfo(
            [
                RequiredClaim(
                    name=name,
                    friendly_name="E-mail address" if name == "email" else "Subject",
                    claim_type=None,
                    claim_token_formats=[],
                    issuers=list(config["issuers"] or []),
                )
            ]
        )
    return Decision_Deny("the requesting party is not on the allow-list")


def validate(config):
    if not config["subjects"] and not config["emails"] and not config["client_ids"]:
        raise ConfigError(
            "the allow-list is empty: give at least one of subjects, emails, client_ids"
        )
    if config["issuers"] is not None and not config["issuers"]:
        raise ConfigError("issuers, when given, must name at least one issuer")


class Evaluator(exports.Evaluator):
    def evaluate(self, request: Request):
        try:
            config = parse_config(request.config)
        except ConfigError as e:
            # The host validated the config when the policy was created; failing closed here
            # covers a module whose validation and evaluation disagree.
            return Decision_Deny(str(e))
        return decide(request, config)

    def validate_config(self, config: str) -> None:
        try:
            validate(parse_config(config))
        except ConfigError as e:
            raise Err(str(e))


# componentize-py runs this module while it snapshots the interpreter: one pass through the
# configuration parser here leaves what CPython builds on a first call (attribute caches,
# interned names, the JSON scanner's state) in the snapshot, instead of every fresh instance
# building it again.
_warm = parse_config('{"subjects": ["alice"], "emails": [], "scopes": ["view"], "issuers": null}')
validate(_warm)
json.loads('"alice"')
del _warm
