// Claim-match policy in C: the same behaviour and configuration as the Rust built-in
// `plugins/claim-match`.
//
// Configuration:
//   {"claim": "email", "domain": "clinic.example", "issuer": "https://idp.example",
//    "scopes": ["view"]}

#include "policy_util.h"

static const char *const FIELDS[] = {"claim", "equals", "one_of", "domain", "issuer", "provenance", "scopes", "friendly_name"};
static const char *const PROVENANCES[] = {"server", "verified-token", "interactive", "pct", "resource-server"};

typedef struct {
  json_value doc;
  const json_value *claim;          // a string
  const json_value *equals;         // any value but null, or NULL
  const json_value *one_of;         // an array, or NULL
  const json_value *domain;         // a string, or NULL
  const json_value *issuer;         // a string, or NULL
  const json_value *friendly_name;  // a string, or NULL
  str_list provenance, scopes;
} config_t;

static char *error(const char *fmt, const char *arg) {
  policy_string_t s;
  string_printf(&s, fmt, arg);
  return (char *)s.ptr;
}

// An optional field of the given type: NULL when absent or null.
static char *optional(const json_value *doc, const char *key, json_type type, const char *what, const json_value **out) {
  const json_value *v = json_get(doc, key);
  *out = NULL;
  if (!v || v->type == J_NULL) return NULL;
  if (v->type != type) {
    policy_string_t s;
    string_printf(&s, "`%s` must be %s", key, what);
    return (char *)s.ptr;
  }
  *out = v;
  return NULL;
}

static char *parse_config(const policy_string_t *text, config_t *c) {
  memset(c, 0, sizeof *c);
  const char *syntax = json_parse((const char *)text->ptr, text->len, &c->doc);
  if (syntax) return error("%s", syntax);
  char *err;
  if ((err = check_fields(&c->doc, FIELDS, 8))) return err;
  c->claim = json_get(&c->doc, "claim");
  if (!c->claim) return error("missing field `claim`", "");
  if (c->claim->type != J_STRING) return error("`claim` must be a string", "");
  const json_value *equals = json_get(&c->doc, "equals");
  c->equals = equals && equals->type != J_NULL ? equals : NULL;
  if ((err = optional(&c->doc, "one_of", J_ARRAY, "a list", &c->one_of)) ||
      (err = optional(&c->doc, "domain", J_STRING, "a string", &c->domain)) ||
      (err = optional(&c->doc, "issuer", J_STRING, "a string", &c->issuer)) ||
      (err = optional(&c->doc, "friendly_name", J_STRING, "a string", &c->friendly_name)) ||
      (err = read_strings(&c->doc, "provenance", true, &c->provenance)) ||
      (err = read_strings(&c->doc, "scopes", true, &c->scopes)))
    return err;
  return NULL;
}

static const char *provenance_name(uint8_t tag) {
  return tag < 5 ? PROVENANCES[tag] : "";
}

static bool counts(const config_t *c, const uma_policy_types_claim_t *claim) {
  if (!wit_eq(&claim->name, c->claim->string, c->claim->string_len)) return false;
  const uma_policy_types_provenance_t *p = &claim->provenance;
  if (c->issuer) {
    return p->tag == UMA_POLICY_TYPES_PROVENANCE_VERIFIED_TOKEN &&
           wit_eq(&p->val.verified_token.issuer, c->issuer->string, c->issuer->string_len);
  }
  const char *name = provenance_name(p->tag);
  if (c->provenance.present) return list_contains(&c->provenance, (const uint8_t *)name, strlen(name));
  return p->tag != UMA_POLICY_TYPES_PROVENANCE_RESOURCE_SERVER;
}

static char ascii_lower(char ch) {
  return ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
}

static bool matches(const config_t *c, const json_value *value) {
  if (c->equals) return json_equal(value, c->equals);
  if (c->one_of) {
    for (size_t i = 0; i < c->one_of->len; i++)
      if (json_equal(value, &c->one_of->items[i])) return true;
    return false;
  }
  if (c->domain && value->type == J_STRING) {
    // The last `@` splits the local part (non-empty) from the domain (ASCII case-insensitive).
    size_t at = value->string_len;
    while (at > 0 && value->string[at - 1] != '@') at--;
    if (at < 2) return false;
    size_t len = value->string_len - at;
    if (len != c->domain->string_len) return false;
    for (size_t i = 0; i < len; i++)
      if (ascii_lower(value->string[at + i]) != ascii_lower(c->domain->string[i])) return false;
    return true;
  }
  return false;
}

static void decide(const exports_uma_policy_evaluator_request_t *request, const config_t *c,
                   exports_uma_policy_evaluator_decision_t *ret) {
  bool seen = false;
  for (size_t i = 0; i < request->claims.len; i++) {
    const uma_policy_types_claim_t *claim = &request->claims.ptr[i];
    if (!counts(c, claim)) continue;
    seen = true;
    json_value value;
    // A claim whose text is not JSON counts as `null`, as in the Rust SDK.
    if (json_parse((const char *)claim->value.ptr, claim->value.len, &value)) memset(&value, 0, sizeof value);
    bool hit = false;
    if (value.type == J_ARRAY && !c->equals) {
      for (size_t j = 0; j < value.len && !hit; j++) hit = matches(c, &value.items[j]);
    } else {
      hit = matches(c, &value);
    }
    json_free(&value);
    if (hit) return permit_where(request, &c->scopes, ret);
  }
  if (seen) {
    ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_DENY;
    string_printf(&ret->val.deny, "claim `%s` does not match", c->claim->string);
    return;
  }
  uma_policy_types_required_claim_t *rc = calloc(1, sizeof *rc);
  policy_string_dup_n(&rc->name, c->claim->string, c->claim->string_len);
  if (c->friendly_name) {
    rc->friendly_name.is_some = true;
    policy_string_dup_n(&rc->friendly_name.val, c->friendly_name->string, c->friendly_name->string_len);
  }
  if (c->issuer) {
    rc->issuers.ptr = malloc(sizeof(policy_string_t));
    policy_string_dup_n(&rc->issuers.ptr[0], c->issuer->string, c->issuer->string_len);
    rc->issuers.len = 1;
  }
  ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_NEED_INFO;
  ret->val.need_info.ptr = rc;
  ret->val.need_info.len = 1;
}

static char *validate(const config_t *c) {
  if (c->claim->string_len == 0) return error("`claim` must name a claim", "");
  int ops = (c->equals != NULL) + (c->one_of != NULL) + (c->domain != NULL);
  if (ops != 1) return error("give exactly one of `equals`, `one_of`, `domain`", "");
  if (c->domain && (c->domain->string_len == 0 || memchr(c->domain->string, '@', c->domain->string_len)))
    return error("`domain` must be a bare domain such as `example.com`", "");
  if (c->provenance.present) {
    for (size_t i = 0; i < c->provenance.len; i++) {
      const json_value *p = &c->provenance.items[i];
      bool known = false;
      for (size_t k = 0; k < 5; k++) known |= json_is_string(p, PROVENANCES[k], strlen(PROVENANCES[k]));
      if (!known)
        return error("unknown provenance `%s`; use one of server, verified-token, interactive, pct, resource-server",
                     p->string);
    }
    if (c->issuer) return error("`issuer` already requires a verified token: drop `provenance`", "");
  }
  return NULL;
}

void exports_uma_policy_evaluator_evaluate(exports_uma_policy_evaluator_request_t *request,
                                           exports_uma_policy_evaluator_decision_t *ret) {
  config_t c;
  char *err = parse_config(&request->config, &c);
  if (err) {
    ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_DENY;
    config_error(&ret->val.deny, err);
  } else {
    decide(request, &c, ret);
  }
  json_free(&c.doc);
  exports_uma_policy_evaluator_request_free(request);
}

bool exports_uma_policy_evaluator_validate_config(policy_string_t *config, policy_string_t *err) {
  config_t c;
  char *message = parse_config(config, &c);
  bool ok = true;
  if (message) {
    config_error(err, message);
    ok = false;
  } else if ((message = validate(&c))) {
    err->ptr = (uint8_t *)message;
    err->len = strlen(message);
    ok = false;
  }
  json_free(&c.doc);
  policy_string_free(config);
  return ok;
}
