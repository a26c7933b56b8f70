// Helpers shared by the C policies: reading the configuration like the Rust built-ins' serde
// does, and building answers whose memory the generated bindings free after the call.
#ifndef UMA_POLICY_UTIL_H
#define UMA_POLICY_UTIL_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "policy.h"

// A list of strings from the configuration; `present` is false when the key is absent or null.
typedef struct {
  bool present;
  const json_value *items;
  size_t len;
} str_list;

// Format into a freshly allocated WIT string (freed by the bindings after the call returns).
// Understands `%s` and `%%` only, on purpose: stdio's printf family links wasi-libc's stream
// code, whose exit-time flush imports WASI's fd_write, fd_seek and fd_close; those imports
// make the component need the WASI preview1 adapter, and instantiating the adapter beside the
// policy makes every fresh evaluation slower (see docs/policies/c.md, "Keep it small").
static inline void string_printf(policy_string_t *out, const char *fmt, ...) {
  va_list ap;
  size_t n = 0;
  va_start(ap, fmt);
  for (const char *f = fmt; *f; f++) {
    if (f[0] == '%' && f[1] == 's') n += strlen(va_arg(ap, const char *)), f++;
    else if (f[0] == '%' && f[1] == '%') n++, f++;
    else n++;
  }
  va_end(ap);
  char *buf = malloc(n + 1), *at = buf;
  va_start(ap, fmt);
  for (const char *f = fmt; *f; f++) {
    if (f[0] == '%' && f[1] == 's') {
      const char *arg = va_arg(ap, const char *);
      size_t len = strlen(arg);
      memcpy(at, arg, len);
      at += len, f++;
    } else if (f[0] == '%' && f[1] == '%') *at++ = '%', f++;
    else *at++ = *f;
  }
  va_end(ap);
  *at = 0;
  out->ptr = (uint8_t *)buf;
  out->len = n;
}

// Append `len` bytes at `buf + n`; returns the new length. The caller sized `buf`.
static inline size_t append(char *buf, size_t n, const void *s, size_t len) {
  memcpy(buf + n, s, len);
  return n + len;
}

static inline bool wit_eq(const policy_string_t *a, const char *s, size_t len) {
  return a->len == len && memcmp(a->ptr, s, len) == 0;
}

static inline bool list_contains(const str_list *list, const uint8_t *s, size_t len) {
  for (size_t i = 0; i < list->len; i++)
    if (json_is_string(&list->items[i], (const char *)s, len)) return true;
  return false;
}

// Check the top level of a configuration: an object whose keys are all in `fields` and appear
// once. Returns an error (allocated) or NULL.
static inline char *check_fields(const json_value *config, const char *const *fields, size_t n) {
  char *err = NULL;
  if (config->type != J_OBJECT) {
    policy_string_t s;
    string_printf(&s, "expected a JSON object");
    return (char *)s.ptr;
  }
  for (size_t i = 0; i < config->len; i++) {
    bool known = false;
    for (size_t f = 0; f < n; f++)
      if (strlen(fields[f]) == config->key_lens[i] && memcmp(fields[f], config->keys[i], config->key_lens[i]) == 0)
        known = true;
    policy_string_t s;
    if (!known) {
      string_printf(&s, "unknown field `%s`", config->keys[i]);
      return (char *)s.ptr;
    }
    for (size_t j = 0; j < i; j++)
      if (config->key_lens[j] == config->key_lens[i] && memcmp(config->keys[j], config->keys[i], config->key_lens[i]) == 0) {
        string_printf(&s, "duplicate field `%s`", config->keys[i]);
        return (char *)s.ptr;
      }
  }
  return err;
}

// Read a list of strings. `null` is accepted only for optional fields (Rust's `Option<Vec<_>>`).
static inline char *read_strings(const json_value *config, const char *key, bool optional, str_list *out) {
  const json_value *v = json_get(config, key);
  memset(out, 0, sizeof *out);
  policy_string_t s;
  if (!v || (v->type == J_NULL && optional)) return NULL;
  if (v->type != J_ARRAY) {
    string_printf(&s, "`%s` must be a list of strings", key);
    return (char *)s.ptr;
  }
  for (size_t i = 0; i < v->len; i++)
    if (v->items[i].type != J_STRING) {
      string_printf(&s, "`%s` must be a list of strings", key);
      return (char *)s.ptr;
    }
  out->present = true;
  out->items = v->items;
  out->len = v->len;
  return NULL;
}

// Prefix a configuration error like the Rust SDK does.
static inline void config_error(policy_string_t *out, char *message) {
  string_printf(out, "invalid configuration: %s", message);
  free(message);
}

// Permit the requested scopes that are in `allowed` (every requested scope if it is absent).
static inline void permit_where(const exports_uma_policy_evaluator_request_t *request, const str_list *allowed,
                                exports_uma_policy_evaluator_decision_t *ret) {
  const policy_list_string_t *requested = &request->permission.requested_scopes;
  ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_PERMIT;
  ret->val.permit.ptr = malloc((requested->len ? requested->len : 1) * sizeof(policy_string_t));
  ret->val.permit.len = 0;
  for (size_t i = 0; i < requested->len; i++) {
    const policy_string_t *scope = &requested->ptr[i];
    if (allowed->present && !list_contains(allowed, scope->ptr, scope->len)) continue;
    policy_string_dup_n(&ret->val.permit.ptr[ret->val.permit.len++], (const char *)scope->ptr, scope->len);
  }
}

static inline void deny(exports_uma_policy_evaluator_decision_t *ret, const char *reason) {
  ret->tag = EXPORTS_UMA_POLICY_EVALUATOR_DECISION_DENY;
  policy_string_dup(&ret->val.deny, reason);
}

#endif
