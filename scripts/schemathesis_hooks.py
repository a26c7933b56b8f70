"""Schemathesis checks for uma-host (loaded through SCHEMATHESIS_HOOKS by schemathesis.sh).

RFC 6750 §3.1: a request with no credentials at all gets 401 with a bare `WWW-Authenticate:
Bearer` challenge and no error information, so no body. The description documents the 401 of a
bearer-protected operation as the JSON error (`invalid_token` when a token was sent), and says
the bare case has an empty body, which OpenAPI cannot express per case. These two checks are
Schemathesis' own content-type and body-schema checks, except for exactly that response: 401,
empty body, a `Bearer` challenge without `error=`. Every other response is checked unchanged.
"""

import schemathesis
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)


def _bare_bearer_challenge(response) -> bool:
    if response.status_code != 401 or response.content:
        return False
    challenge = response.headers.get("www-authenticate") or response.headers.get("WWW-Authenticate")
    if isinstance(challenge, list):
        challenge = challenge[0] if challenge else None
    return bool(challenge) and challenge.startswith("Bearer") and "error=" not in challenge


@schemathesis.check
def uma_content_type_conformance(ctx, response, case):
    """Content type as documented (the bare RFC 6750 401 has no body and so no type)."""
    if _bare_bearer_challenge(response):
        return None
    return content_type_conformance(ctx, response, case)


@schemathesis.check
def uma_response_schema_conformance(ctx, response, case):
    """Body as documented (the bare RFC 6750 401 has no body)."""
    if _bare_bearer_challenge(response):
        return None
    return response_schema_conformance(ctx, response, case)
