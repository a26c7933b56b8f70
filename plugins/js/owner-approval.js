// Owner-approval policy in JavaScript: the same behaviour and configuration as the Rust built-in
// `plugins/owner-approval`.
//
// Configuration:
//   {"message": "An insurer asks to read your lab reports", "scopes": ["edit"]}

const FIELDS = ["message", "scopes"];

class ConfigError extends Error {}

function parseConfig(text) {
  try {
    let config;
    try {
      config = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(e.message);
    }
    if (config === null || typeof config !== "object" || Array.isArray(config)) {
      throw new ConfigError("expected a JSON object");
    }
    for (const key of Object.keys(config)) {
      if (!FIELDS.includes(key)) {
        throw new ConfigError(`unknown field \`${key}\`, expected one of ${FIELDS.join(", ")}`);
      }
    }
    const message = config.message ?? null;
    if (message !== null && typeof message !== "string") {
      throw new ConfigError("`message` must be a string");
    }
    const scopes = config.scopes ?? null;
    if (scopes !== null && !(Array.isArray(scopes) && scopes.every((s) => typeof s === "string"))) {
      throw new ConfigError("`scopes` must be a list of strings");
    }
    return { message, scopes };
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`invalid configuration: ${e.message}`);
    throw e;
  }
}

// Bytes of the string in UTF-8 (the limit is in bytes, like Rust's `str::len`).
function utf8Length(s) {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

function decide(request, config) {
  const p = request.permission;
  const requested = p.requestedScopes;
  if (config.scopes === null || requested.some((r) => config.scopes.includes(r))) {
    const on = p.resourceName ?? p.resourceId;
    const message = config.message ??
      `client ${request.context.clientId} asks for ${requested.join(", ")} on ${on}`;
    return { tag: "defer-to-owner", val: message };
  }
  return { tag: "permit", val: [...requested] };
}

export const evaluator = {
  evaluate(request) {
    let config;
    try {
      config = parseConfig(request.config);
    } catch (e) {
      return { tag: "deny", val: String(e.message) };
    }
    return decide(request, config);
  },

  validateConfig(config) {
    let parsed;
    try {
      parsed = parseConfig(config);
    } catch (e) {
      throw String(e.message);
    }
    if (parsed.message !== null && utf8Length(parsed.message) > 1000) {
      throw "message is longer than 1000 bytes";
    }
  },
};
