//! Body extractors that answer bad input with precise OAuth/UMA errors instead of axum's
//! plain-text rejections: form bodies (RFC 6749 §3.2 rules) and strict JSON (duplicate keys are
//! an error, unknown members are ignored).

use std::collections::HashMap;
use std::fmt;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};

use super::AppState;
use crate::error::{Error, Result};

/// Reads the whole body, refusing more than `limit` bytes with [`Error::PayloadTooLarge`].
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(Error::PayloadTooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // `to_bytes` reports the limit through a boxed `LengthLimitError` source.
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return Error::PayloadTooLarge;
            }
            source = s.source();
        }
        Error::invalid_request("could not read the request body")
    })
}

/// The credentials of the request's `Authorization` header when it uses `scheme`
/// (case-insensitive): `Ok(None)` without the header or with another scheme. Two headers, or
/// one that is not visible ASCII, are a malformed request (RFC 6750 §3.1 `invalid_request`).
pub fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Result<Option<&'a str>> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::invalid_request("more than one Authorization header"));
    }
    let v = v
        .to_str()
        .map_err(|_| Error::invalid_request("malformed Authorization header"))?;
    let (s, credentials) = v.split_once(' ').unwrap_or((v, ""));
    Ok(s.eq_ignore_ascii_case(scheme).then(|| credentials.trim()))
}

/// The media type of the request without parameters, lowercased.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(v.split(';').next()?.trim().to_ascii_lowercase())
}

/// Parameters of an `application/x-www-form-urlencoded` body: no parameter twice, empty values
/// treated as absent (RFC 6749 §3.1, §3.2), unknown parameters simply never asked for.
#[derive(Debug, Default, Clone)]
pub struct FormParams(HashMap<String, String>);

impl FormParams {
    pub fn parse(bytes: &[u8]) -> Result<FormParams> {
        let mut map = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if !seen.insert(k.to_string()) {
                return Err(Error::invalid_request(format!(
                    "parameter {k} is included more than once"
                )));
            }
            if !v.is_empty() {
                map.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(FormParams(map))
    }

    /// Reads and parses a form body; any charset parameter of the content type is accepted.
    pub async fn from_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<FormParams> {
        if media_type(headers).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(Error::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        Self::parse(&read_body(headers, body, limit).await?)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name)
            .ok_or_else(|| Error::invalid_request(format!("missing parameter {name}")))
    }
}

impl FromRequest<AppState> for FormParams {
    type Rejection = Error;
    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let (parts, body) = req.into_parts();
        FormParams::from_body(&parts.headers, body, state.config.max_body_bytes).await
    }
}

/// A JSON body deserialized into `T`: `Content-Type` must be JSON, duplicate object keys are
/// refused (RR-22), unknown members are ignored (RR-8), and errors name the offending path.
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for StrictJson<T> {
    type Rejection = Error;
    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let json = media_type(&parts.headers).is_some_and(|m| {
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        });
        if !json {
            return Err(Error::invalid_request(
                "Content-Type must be application/json",
            ));
        }
        let bytes = read_body(&parts.headers, body, state.config.max_body_bytes).await?;
        parse_strict(&bytes).map(StrictJson)
    }
}

/// Parses JSON text into `T`, refusing duplicate keys anywhere in the document.
pub fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = NoDuplicates::deserialize_value(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| Error::invalid_request(format!("malformed JSON: {e}")))?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::invalid_request(inner.to_string())
        } else {
            Error::invalid_request(format!("{path}: {inner}"))
        }
    })
}

/// A visitor building a `serde_json::Value` that errors on a repeated object key.
struct NoDuplicates;

impl NoDuplicates {
    fn deserialize_value<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(NoDuplicates)
    }
}

struct Element(serde_json::Value);
impl<'de> serde::Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NoDuplicates::deserialize_value(d).map(Element)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = serde_json::Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut v = Vec::new();
        while let Some(Element(e)) = seq.next_element()? {
            v.push(e);
        }
        Ok(v.into())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if m.contains_key(&k) {
                return Err(de::Error::custom(format_args!("duplicate key `{k}`")));
            }
            let Element(v) = map.next_value()?;
            m.insert(k, v);
        }
        Ok(m.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict::<serde_json::Value>(br#"{"a":1,"a":2}"#).is_err());
        assert!(parse_strict::<serde_json::Value>(br#"[{"b":{"c":1,"c":1}}]"#).is_err());
        assert!(parse_strict::<serde_json::Value>(br#"{"a":1} x"#).is_err());
        let v: serde_json::Value = parse_strict(br#"{"a":[1,2.5,"x",null,true]}"#).unwrap();
        assert_eq!(v["a"][1], 2.5);
    }

    #[test]
    fn form_rules() {
        let p = FormParams::parse(b"a=1&b=&c=x+y%21").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y!"));
        assert!(FormParams::parse(b"a=1&a=2").is_err());
    }
}
