"""Owner-approval policy in Python: the same behaviour and configuration as the Rust built-in
`plugins/owner-approval`.

Configuration:
    {"message": "An insurer asks to read your lab reports", "scopes": ["edit"]}
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.evaluator import Decision_DeferToOwner, Decision_Deny, Decision_Permit

FIELDS = ("message", "scopes")


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


def parse_config(text):
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
        message = config.get("message")
        if message is not None and not isinstance(message, str):
            raise ConfigError("`message` must be a string")
        scopes = config.get("scopes")
        if scopes is not None and not (
            isinstance(scopes, list) and all(isinstance(s, str) for s in scopes)
        ):
            raise ConfigError("`scopes` must be a list of strings")
        return {"message": message, "scopes": scopes}
    except ConfigError as e:
        raise ConfigError(f"invalid configuration: {e}")


def decide(request, config):
    requested = request.permission.requested_scopes
    if config["scopes"] is None or any(r in config["scopes"] for r in requested):
        message = config["message"]
        if message is None:
            p = request.permission
            on = p.resource_name if p.resource_name is not None else p.resource_id
            message = f"client {request.context.client_id} asks for {', '.join(requested)} on {on}"
        return Decision_DeferToOwner(message)
    return Decision_Permit(list(requested))


class Evaluator(exports.Evaluator):
    def evaluate(self, request):
        try:
            config = parse_config(request.config)
        except ConfigError as e:
            return Decision_Deny(str(e))
        return decide(request, config)

    def validate_config(self, config: str) -> None:
        try:
            parsed = parse_config(config)
        except ConfigError as e:
            raise Err(str(e))
        if parsed["message"] is not None and len(parsed["message"].encode()) > 1000:
            raise Err("message is longer than 1000 bytes")
