// Claim-match policy in JavaScript: the same behaviour and configuration as the Rust built-in
// `plugins/claim-match`.
//
// Configuration:
//   {"claim": "email", "domain": "clinic.example", "issuer": "https://idp.example",
//    "scopes": ["view"]}

const FIELDS = [
  "claim", "equals", "one_of", "domain", "issuer", "provenance", "scopes", "friendly_name",
];
const PROVENANCES = ["server", "verified-token", "interactive", "pct", "resource-server"];

class ConfigError extends Error {}

const isString = (v) => typeof v === "string";
const isStrings = (v) => Array.isArray(v) && v.every(isString);

function optional(config, key, check, what) {
  const value = config[key];
  if (value === undefined || value === null) return null;
  if (!check(value)) throw new ConfigError(`\`${key}\` must be ${what}`);
  return value;
}

// Parse like the Rust built-in's serde: unknown fields and wrong types are errors prefixed with
// `invalid configuration: `. A JSON `null` is an absent option.
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
    if (!isString(config.claim)) {
      throw new ConfigError(
        "claim" in config ? "`claim` must be a string" : "missing field `claim`",
      );
    }
    return {
      claim: config.claim,
      equals: config.equals === undefined || config.equals === null ? undefined : config.equals,
      oneOf: optional(config, "one_of", Array.isArray, "a list"),
      domain: optional(config, "domain", isString, "a string"),
      issuer: optional(config, "issuer", isString, "a string"),
      provenance: optional(config, "provenance", isStrings, "a list of strings"),
      scopes: optional(config, "scopes", isStrings, "a list of strings"),
      friendlyName: optional(config, "friendly_name", isString, "a string"),
    };
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`invalid configuration: ${e.message}`);
    throw e;
  }
}

// serde_json's Value equality: objects compare as maps, arrays item by item.
function same(a, b) {
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length &&
      a.every((x, i) => same(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length &&
      ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]));
  }
  return a === b;
}

const asciiLower = (s) => s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));

function counts(config, claim) {
  if (claim.name !== config.claim) return false;
  const p = claim.provenance;
  if (config.issuer !== null) return p.tag === "verified-token" && p.val.issuer === config.issuer;
  if (config.provenance !== null) return config.provenance.includes(p.tag);
  return p.tag !== "resource-server";
}

function matches(config, value) {
  if (config.equals !== undefined) return same(value, config.equals);
  if (config.oneOf !== null) return config.oneOf.some((option) => same(value, option));
  if (config.domain !== null && typeof value === "string") {
    const at = value.lastIndexOf("@");
    return at > 0 && asciiLower(value.slice(at + 1)) === asciiLower(config.domain);
  }
  return false;
}

function claimJson(claim) {
  try {
    return JSON.parse(claim.value);
  } catch {
    return null;
  }
}

function decide(request, config) {
  let seen = false;
  for (const claim of request.claims) {
    if (!counts(config, claim)) continue;
    seen = true;
    const value = claimJson(claim);
    const hit = Array.isArray(value) && config.equals === undefined
      ? value.some((v) => matches(config, v))
      : matches(config, value);
    if (hit) {
      const requested = request.permission.requestedScopes;
      if (config.scopes === null) return { tag: "permit", val: [...requested] };
      return { tag: "permit", val: requested.filter((s) => config.scopes.includes(s)) };
    }
  }
  if (seen) return { tag: "deny", val: `claim \`${config.claim}\` does not match` };
  return {
    tag: "need-info",
    val: [
      {
        name: config.claim,
        friendlyName: config.friendlyName,
        claimType: null,
        claimTokenFormats: [],
        issuers: config.issuer !== null ? [config.issuer] : [],
      },
    ],
  };
}

function validate(config) {
  if (config.claim === "") throw new ConfigError("`claim` must name a claim");
  const ops = [config.equals !== undefined, config.oneOf !== null, config.domain !== null];
  if (ops.filter(Boolean).length !== 1) {
    throw new ConfigError("give exactly one of `equals`, `one_of`, `domain`");
  }
  if (config.domain !== null && (config.domain === "" || config.domain.includes("@"))) {
    throw new ConfigError("`domain` must be a bare domain such as `example.com`");
  }
  if (config.provenance !== null) {
    const bad = config.provenance.find((p) => !PROVENANCES.includes(p));
    if (bad !== undefined) {
      throw new ConfigError(`unknown provenance \`${bad}\`; use one of ${PROVENANCES.join(", ")}`);
    }
    if (config.issuer !== null) {
      throw new ConfigError("`issuer` already requires a verified token: drop `provenance`");
    }
  }
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
    try {
      validate(parseConfig(config));
    } catch (e) {
      throw String(e.message);
    }
  },
};
