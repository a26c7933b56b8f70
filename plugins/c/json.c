#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128  // serde_json's recursion limit

typedef struct {
  const char *p;
  const char *end;
  int depth;
  const char *error;
} parser;

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static bool fail(parser *ps, const char *message) {
  if (!ps->error) ps->error = message;
  return false;
}

static bool literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail(ps, "expected value");
  ps->p += n;
  return true;
}

static int hex4(const char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static size_t put_utf8(char *out, uint32_t cp) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xC0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F)); return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (char)(0x80 | (cp & 0x3F)); return 4;
}

// Parses a string starting at the opening quote. The decoded text is never longer than the
// escaped one, so one allocation of the raw length suffices.
static bool parse_string(parser *ps, char **out, size_t *out_len) {
  ps->p++;  // opening quote
  const char *start = ps->p;
  while (ps->p < ps->end && *ps->p != '"') {
    if (*ps->p == '\\') ps->p++;
    ps->p++;
  }
  if (ps->p >= ps->end) return fail(ps, "EOF while parsing a string");
  size_t raw = (size_t)(ps->p - start);
  char *buf = malloc(raw + 1);
  if (!buf) return fail(ps, "out of memory");
  size_t n = 0;
  for (const char *q = start; q < ps->p; q++) {
    unsigned char c = (unsigned char)*q;
    if (c < 0x20) { free(buf); return fail(ps, "control character (\\u0000-\\u001F) found while parsing a string"); }
    if (c != '\\') { buf[n++] = (char)c; continue; }
    q++;
    switch (*q) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u': {
        if (ps->p - q < 5) { free(buf); return fail(ps, "invalid escape"); }
        int cp = hex4(q + 1);
        if (cp < 0) { free(buf); return fail(ps, "invalid escape"); }
        q += 4;
        uint32_t code = (uint32_t)cp;
        if (code >= 0xD800 && code <= 0xDBFF) {
          if (ps->p - q < 7 || q[1] != '\\' || q[2] != 'u') { free(buf); return fail(ps, "lone leading surrogate in hex escape"); }
          int lo = hex4(q + 3);
          if (lo < 0xDC00 || lo > 0xDFFF) { free(buf); return fail(ps, "lone leading surrogate in hex escape"); }
          code = 0x10000 + ((code - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
          q += 6;
        } else if (code >= 0xDC00 && code <= 0xDFFF) {
          free(buf);
          return fail(ps, "unexpected end of hex escape");
        }
        n += put_utf8(buf + n, code);
        break;
      }
      default: free(buf); return fail(ps, "invalid escape");
    }
  }
  buf[n] = 0;
  ps->p++;  // closing quote
  *out = buf;
  *out_len = n;
  return true;
}

static bool parse_number(parser *ps, json_value *out) {
  const char *start = ps->p;
  bool negative = false, integer = true;
  if (ps->p < ps->end && *ps->p == '-') { negative = true; ps->p++; }
  if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "invalid number");
  if (*ps->p == '0') ps->p++;
  else while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  if (ps->p < ps->end && *ps->p == '.') {
    integer = false;
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "invalid number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    integer = false;
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail(ps, "invalid number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  size_t n = (size_t)(ps->p - start);
  char tmp[400];
  if (n >= sizeof tmp) return fail(ps, "number too long");
  memcpy(tmp, start, n);
  tmp[n] = 0;
  if (integer) {
    // Like serde_json: u64 if it fits, else i64 if it fits, else a float.
    uint64_t m = 0;
    bool fits = true;
    for (const char *d = tmp + (negative ? 1 : 0); *d; d++) {
      uint64_t digit = (uint64_t)(*d - '0');
      if (m > (UINT64_MAX - digit) / 10) { fits = false; break; }
      m = m * 10 + digit;
    }
    if (fits && negative && m > (uint64_t)INT64_MAX + 1) fits = false;
    if (fits) {
      out->type = J_INT;
      out->negative = negative && m != 0;
      out->magnitude = m;
      return true;
    }
  }
  out->type = J_FLOAT;
  out->number = strtod(tmp, NULL);
  if (isinf(out->number)) return fail(ps, "number out of range");
  return true;
}

static bool parse_value(parser *ps, json_value *out);

static bool push(json_value *v, size_t *cap) {
  if (v->len < *cap) return true;
  size_t next = *cap ? *cap * 2 : 4;
  json_value *items = realloc(v->items, next * sizeof *items);
  if (!items) return false;
  v->items = items;
  if (v->type == J_OBJECT) {
    char **keys = realloc(v->keys, next * sizeof *keys);
    if (!keys) return false;
    v->keys = keys;
    size_t *lens = realloc(v->key_lens, next * sizeof *lens);
    if (!lens) return false;
    v->key_lens = lens;
  }
  *cap = next;
  return true;
}

static bool parse_value(parser *ps, json_value *out) {
  memset(out, 0, sizeof *out);
  skip_ws(ps);
  if (ps->p >= ps->end) return fail(ps, "EOF while parsing a value");
  switch (*ps->p) {
    case 'n': out->type = J_NULL; return literal(ps, "null");
    case 't': out->type = J_BOOL; out->boolean = true; return literal(ps, "true");
    case 'f': out->type = J_BOOL; out->boolean = false; return literal(ps, "false");
    case '"': out->type = J_STRING; return parse_string(ps, &out->string, &out->string_len);
    case '[':
    case '{': {
      bool object = *ps->p == '{';
      char close = object ? '}' : ']';
      if (++ps->depth > MAX_DEPTH) return fail(ps, "recursion limit exceeded");
      out->type = object ? J_OBJECT : J_ARRAY;
      ps->p++;
      size_t cap = 0;
      skip_ws(ps);
      if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return true; }
      for (;;) {
        if (!push(out, &cap)) return fail(ps, "out of memory");
        size_t i = out->len;
        skip_ws(ps);
        if (object) {
          if (ps->p >= ps->end || *ps->p != '"') return fail(ps, "key must be a string");
          if (!parse_string(ps, &out->keys[i], &out->key_lens[i])) return false;
          skip_ws(ps);
          if (ps->p >= ps->end || *ps->p != ':') { free(out->keys[i]); return fail(ps, "expected `:`"); }
          ps->p++;
        }
        if (!parse_value(ps, &out->items[i])) {
          if (object) free(out->keys[i]);
          json_free(&out->items[i]);
          return false;
        }
        out->len++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return true; }
        return fail(ps, object ? "expected `,` or `}`" : "expected `,` or `]`");
      }
    }
    default:
      return parse_number(ps, out);
  }
}

const char *json_parse(const char *text, size_t len, json_value *out) {
  parser ps = {text, text + len, 0, NULL};
  bool ok = parse_value(&ps, out);
  if (ok) {
    skip_ws(&ps);
    if (ps.p != ps.end) ok = fail(&ps, "trailing characters");
  }
  if (!ok) {
    json_free(out);
    return ps.error;
  }
  return NULL;
}

void json_free(json_value *v) {
  if (v->type == J_STRING) free(v->string);
  for (size_t i = 0; i < v->len; i++) {
    json_free(&v->items[i]);
    if (v->type == J_OBJECT) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->key_lens);
  memset(v, 0, sizeof *v);
}

static const json_value *get_n(const json_value *object, const char *key, size_t len) {
  if (object->type != J_OBJECT) return NULL;
  for (size_t i = object->len; i-- > 0;)
    if (object->key_lens[i] == len && memcmp(object->keys[i], key, len) == 0) return &object->items[i];
  return NULL;
}

const json_value *json_get(const json_value *object, const char *key) {
  return get_n(object, key, strlen(key));
}

bool json_is_string(const json_value *v, const char *s, size_t len) {
  return v->type == J_STRING && v->string_len == len && memcmp(v->string, s, len) == 0;
}

// Distinct keys of an object, counting the last occurrence of each (as a map does).
static size_t distinct_keys(const json_value *o) {
  size_t n = 0;
  for (size_t i = 0; i < o->len; i++)
    if (get_n(o, o->keys[i], o->key_lens[i]) == &o->items[i]) n++;
  return n;
}

bool json_equal(const json_value *a, const json_value *b) {
  if (a->type != b->type) return false;
  switch (a->type) {
    case J_NULL: return true;
    case J_BOOL: return a->boolean == b->boolean;
    case J_INT: return a->negative == b->negative && a->magnitude == b->magnitude;
    case J_FLOAT: return a->number == b->number;
    case J_STRING: return json_is_string(b, a->string, a->string_len);
    case J_ARRAY:
      if (a->len != b->len) return false;
      for (size_t i = 0; i < a->len; i++)
        if (!json_equal(&a->items[i], &b->items[i])) return false;
      return true;
    case J_OBJECT:
      if (distinct_keys(a) != distinct_keys(b)) return false;
      for (size_t i = 0; i < a->len; i++) {
        const json_value *other = get_n(b, a->keys[i], a->key_lens[i]);
        if (!other || !json_equal(get_n(a, a->keys[i], a->key_lens[i]), other)) return false;
      }
      return true;
  }
  return false;
}
