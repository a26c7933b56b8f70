// Allow-list policy in JavaScript: the same behaviour and configuration as the Rust built-in
// `plugins/allow-list`.
//
// Configuration:
//   {"subjects": ["alice"], "emails": ["doctor@clinic.example"], "client_ids": ["portal"],
//    "scopes": ["view"], "issuers": ["https://idp.example"]}

const FIELDS = ["subjects", "emails", "client_ids", "scopes", "issuers"];

class ConfigError extends Error {}

// A list of strings under `key`: [] when absent (null for optional keys).
function strings(config, key, optional) {
  const value = config[key];
  if (value === undefined || value === null) {
    if (value === null && !optional) {
      throw new ConfigError(`invalid type: null, expected a sequence for \`${key}\``);
    }
    return optional ? null : [];
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new ConfigError(`\`${key}\` must be a list of strings`);
  }
  return value;
}

// Parse like the Rust built-in's serde: unknown fields and wrong types are errors prefixed with
// `invalid configuration: `.
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
    return {
      subjects: strings(config, "subjects", false),
      emails: strings(config, "emails", false),
      clientIds: strings(config, "client_ids", false),
      scopes: strings(config, "scopes", true),
      issuers: strings(config, "issuers", true),
    };
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`invalid configuration: ${e.message}`);
    throw e;
  }
}

function trusted(config, claim) {
  const p = claim.provenance;
  if (config.issuers !== null) {
    return p.tag === "verified-token" && config.issuers.includes(p.val.issuer);
  }
  return p.tag !== "resource-server";
}

function claimStrings(claim) {
  let value;
  try {
    value = JSON.parse(claim.value);
  } catch {
    return [];
  }
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v) => typeof v === "string");
  return [];
}

function grant(config, request) {
  const requested = request.permission.requestedScopes;
  if (config.scopes === null) return { tag: "permit", val: [...requested] };
  return { tag: "permit", val: requested.filter((s) => config.scopes.includes(s)) };
}

function decide(request, config) {
  if (config.clientIds.includes(request.context.clientId)) return grant(config, request);
  let identified = false;
  for (const claim of request.claims) {
    if (!trusted(config, claim)) continue;
    let listed;
    if (claim.name === "sub") listed = config.subjects;
    else if (claim.name === "email") listed = config.emails;
    else continue;
    identified = true;
    if (claimStrings(claim).some((v) => listed.includes(v))) return grant(config, request);
  }
  if (!identified && (config.subjects.length > 0 || config.emails.length > 0)) {
    const name = config.emails.length > 0 ? "email" : "sub";
    return {
      tag: "need-info",
      val: [
        {
          name,
          friendlyName: name === "email" ? "E-mail address" : "Subject",
          claimType: null,
          claimTokenFormats: [],
          issuers: [...(config.issuers ?? [])],
        },
      ],
    };
  }
  return { tag: "deny", val: "the requesting party is not on the allow-list" };
}

function validate(config) {
  if (config.subjects.length === 0 && config.emails.length === 0 && config.clientIds.length === 0) {
    throw new ConfigError(
      "the allow-list is empty: give at least one of subjects, emails, client_ids",
    );
  }
  if (config.issuers !== null && config.issuers.length === 0) {
    throw new ConfigError("issuers, when given, must name at least one issuer");
  }
}

export const evaluator = {
  evaluate(request) {
    let config;
    try {
      config = parseConfig(request.config);
    } catch (e) {
      // The host validated the config when the policy was created; failing closed here covers
      // a module whose validation and evaluation disagree.
      return { tag: "deny", val: String(e.message) };
    }
    return decide(request, config);
  },

  // A thrown string is the `err` of `result<_, string>`.
  validateConfig(config) {
    try {
      validate(parseConfig(config));
    } catch (e) {
      throw String(e.message);
    }
  },
};
