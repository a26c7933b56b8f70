// Owner-approval policy in C: the same behaviour and configuration as the Rust built-in
// `plugins/owner-approval`.
//
// Configuration:
//   {"message": "An insurer asks to read your lab reports", "scopes": ["edit"]}

#include "policy_util.h"

static const char *const FIELDS[] = {"message", "scopes"};

typedef struct {
  json_value doc;
  const json_value *message;  // a string, or NULL
  str_list scopes;
} config_t;

static char *parse_config(const policy_string_t *text, config_t *c) {
  memset(c, 0, sizeof *c);
  policy_string_t s;
  const char *syntax = json_parse((const char *)text->ptr, text->len, &c->doc);
  if (syntax) {
    string_printf(&s, "%s", syntax);
    return (char *)s.ptr;
  }
  char *err;
  if ((err = check_fields(&c->doc, FIELDS, 2))) return err;
  const json_value *m = json_get(&c->doc, "message");
  if (m && m->type != J_NULL) {
    if (m->type != J_STRING) {
      string_printf(&s, "`message` must be a string");
      return (char *)s.ptr;
    }
    c->message = m;
  }
  return read_strings(&c->doc, "scopes", true, &c->scopes);
}

static void decide(const exports_uma_policy_evaluator_request_t *request, const config_t *c,
                   exports_uma_policy_evaluator_decision_t *ret) {
  const exports_uma_policy_evaluator_permission_t *p = &request->permission;
  bool needs_approval = !c->scopes.present;
  for (size_t i = 0; i < p->requested_scopes.len && !needs_approval; i++)
    needs_approval = list_contains(&c->scopes, p->requested_scopes.ptr[i].ptr, p->requested_scopes.ptr[i].len);
  if (!needs_approval) {
    str_list all = {0};
    return permit_where(request, &all, ret);
  }
  ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_DEFER_TO_OWNER;
  if (c->message) {
    policy_string_dup_n(&ret->val.defer_to_owner, c->message->string, c->message->string_len);
    return;
  }
  // "client <id> asks for <a, b> on <name or id>"
  size_t len = 64 + request->context.client_id.len;
  for (size_t i = 0; i < p->requested_scopes.len; i++) len += p->requested_scopes.ptr[i].len + 2;
  const policy_string_t *on = p->resource_name.is_some ? &p->resource_name.val : &p->resource_id;
  len += on->len;
  char *buf = malloc(len);
  size_t n = append(buf, 0, "client ", 7);
  n = append(buf, n, request->context.client_id.ptr, request->context.client_id.len);
  n = append(buf, n, " asks for ", 10);
  for (size_t i = 0; i < p->requested_scopes.len; i++) {
    if (i) n = append(buf, n, ", ", 2);
    n = append(buf, n, p->requested_scopes.ptr[i].ptr, p->requested_scopes.ptr[i].len);
  }
  n = append(buf, n, " on ", 4);
  n = append(buf, n, on->ptr, on->len);
  ret->val.defer_to_owner.ptr = (uint8_t *)buf;
  ret->val.defer_to_owner.len = n;
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
  } else if (c.message && c.message->string_len > 1000) {
    policy_string_dup(err, "message is longer than 1000 bytes");
    ok = false;
  }
  json_free(&c.doc);
  policy_string_free(config);
  return ok;
}
