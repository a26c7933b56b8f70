// Allow-list policy in C: the same behaviour and configuration as the Rust built-in
// `plugins/allow-list`.
//
// Configuration:
//   {"subjects": ["alice"], "emails": ["doctor@clinic.example"], "client_ids": ["portal"],
//    "scopes": ["view"], "issuers": ["https://idp.example"]}

#include "policy_util.h"

static const char *const FIELDS[] = {"subjects", "emails", "client_ids", "scopes", "issuers"};

typedef struct {
  json_value doc;
  str_list subjects, emails, client_ids, scopes, issuers;
} config_t;

// Parse a configuration; on error returns the message (without the prefix), allocated.
static char *parse_config(const policy_string_t *text, config_t *c) {
  memset(c, 0, sizeof *c);
  const char *syntax = json_parse((const char *)text->ptr, text->len, &c->doc);
  char *err;
  if (syntax) {
    policy_string_t s;
    string_printf(&s, "%s", syntax);
    return (char *)s.ptr;
  }
  if ((err = check_fields(&c->doc, FIELDS, 5)) ||
      (err = read_strings(&c->doc, "subjects", false, &c->subjects)) ||
      (err = read_strings(&c->doc, "emails", false, &c->emails)) ||
      (err = read_strings(&c->doc, "client_ids", false, &c->client_ids)) ||
      (err = read_strings(&c->doc, "scopes", true, &c->scopes)) ||
      (err = read_strings(&c->doc, "issuers", true, &c->issuers)))
    return err;
  return NULL;
}

static bool trusted(const config_t *c, const uma_policy_types_claim_t *claim) {
  const uma_policy_types_provenance_t *p = &claim->provenance;
  if (c->issuers.present) {
    return p->tag == UMA_POLICY_TYPES_PROVENANCE_VERIFIED_TOKEN &&
           list_contains(&c->issuers, p->val.verified_token.issuer.ptr, p->val.verified_token.issuer.len);
  }
  return p->tag != UMA_POLICY_TYPES_PROVENANCE_RESOURCE_SERVER;
}

// Whether the claim's value (a string, or an array of strings) names someone on `list`.
static bool value_listed(const uma_policy_types_claim_t *claim, const str_list *list) {
  json_value v;
  if (json_parse((const char *)claim->value.ptr, claim->value.len, &v)) return false;
  bool hit = false;
  if (v.type == J_STRING) hit = list_contains(list, (const uint8_t *)v.string, v.string_len);
  if (v.type == J_ARRAY)
    for (size_t i = 0; i < v.len && !hit; i++)
      if (v.items[i].type == J_STRING)
        hit = list_contains(list, (const uint8_t *)v.items[i].string, v.items[i].string_len);
  json_free(&v);
  return hit;
}

static void decide(const exports_uma_policy_evaluator_request_t *request, const config_t *c,
                   exports_uma_policy_evaluator_decision_t *ret) {
  const policy_string_t *client = &request->context.client_id;
  if (list_contains(&c->client_ids, client->ptr, client->len)) return permit_where(request, &c->scopes, ret);
  bool identified = false;
  for (size_t i = 0; i < request->claims.len; i++) {
    const uma_policy_types_claim_t *claim = &request->claims.ptr[i];
    if (!trusted(c, claim)) continue;
    const str_list *list;
    if (wit_eq(&claim->name, "sub", 3)) list = &c->subjects;
    else if (wit_eq(&claim->name, "email", 5)) list = &c->emails;
    else continue;
    identified = true;
    if (value_listed(claim, list)) return permit_where(request, &c->scopes, ret);
  }
  if (!identified && (c->subjects.len > 0 || c->emails.len > 0)) {
    bool email = c->emails.len > 0;
    uma_policy_types_required_claim_t *rc = calloc(1, sizeof *rc);
    policy_string_dup(&rc->name, email ? "email" : "sub");
    rc->friendly_name.is_some = true;
    policy_string_dup(&rc->friendly_name.val, email ? "E-mail address" : "Subject");
    rc->issuers.ptr = malloc((c->issuers.len ? c->issuers.len : 1) * sizeof(policy_string_t));
    for (size_t i = 0; i < c->issuers.len; i++)
      policy_string_dup_n(&rc->issuers.ptr[i], c->issuers.items[i].string, c->issuers.items[i].string_len);
    rc->issuers.len = c->issuers.len;
    ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_NEED_INFO;
    ret->val.need_info.ptr = rc;
    ret->val.need_info.len = 1;
    return;
  }
  deny(ret, "the requesting party is not on the allow-list");
}

static char *validate(const config_t *c) {
  policy_string_t s = {0};
  if (c->subjects.len == 0 && c->emails.len == 0 && c->client_ids.len == 0)
    policy_string_dup(&s, "the allow-list is empty: give at least one of subjects, emails, client_ids");
  else if (c->issuers.present && c->issuers.len == 0)
    policy_string_dup(&s, "issuers, when given, must name at least one issuer");
  return (char *)s.ptr;
}

void exports_uma_policy_evaluator_evaluate(exports_uma_policy_evaluator_request_t *request,
                                           exports_uma_policy_evaluator_decision_t *ret) {
  config_t c;
  char *err = parse_config(&request->config, &c);
  if (err) {
    // The host validated the config when the policy was created; failing closed here covers a
    // module whose validation and evaluation disagree.
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
