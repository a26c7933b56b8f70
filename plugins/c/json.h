// A small strict JSON parser (RFC 8259) for policies written in C: what the Rust built-ins get
// from serde_json, enough to read a policy's configuration and claim values.
#ifndef UMA_JSON_H
#define UMA_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { J_NULL, J_BOOL, J_INT, J_FLOAT, J_STRING, J_ARRAY, J_OBJECT } json_type;

typedef struct json_value {
  json_type type;
  bool boolean;          // J_BOOL
  bool negative;         // J_INT: the sign; `magnitude` holds the absolute value
  uint64_t magnitude;    // J_INT
  double number;         // J_FLOAT
  char *string;          // J_STRING: decoded UTF-8, NUL-terminated (may contain NULs)
  size_t string_len;     // J_STRING
  struct json_value *items;  // J_ARRAY items, or J_OBJECT values
  char **keys;           // J_OBJECT keys (decoded, NUL-terminated)
  size_t *key_lens;      // J_OBJECT key lengths
  size_t len;            // J_ARRAY / J_OBJECT entry count
} json_value;

// Parse `len` bytes of JSON text into `out`. Returns NULL on success, or a static message
// describing the first error (and leaves `out` as null).
const char *json_parse(const char *text, size_t len, json_value *out);

// Release what json_parse allocated.
void json_free(json_value *v);

// serde_json's `Value` equality: same type and value; integers and floats never equal each
// other; objects compare as maps (order does not matter).
bool json_equal(const json_value *a, const json_value *b);

// The value under `key` in an object (the last one if the key repeats), or NULL.
const json_value *json_get(const json_value *object, const char *key);

// Whether a string value equals `s`.
bool json_is_string(const json_value *v, const char *s, size_t len);

#endif
