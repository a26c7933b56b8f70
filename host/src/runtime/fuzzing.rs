//! Entry point for fuzzing the host's handling of plugin outputs (`fuzz/`, and the stable smoke
//! run in `host/tests/fuzz_smoke.rs`). Not an API.
//!
//! Wasmtime lifts a guest's answer into the bindings' types (the canonical ABI, fuzzed by
//! wasmtime itself, and hit with malformed answers by the hand-written fixtures); what is ours is
//! everything after: measuring the answer against the output cap and converting it into the
//! host's types. This decodes arbitrary bytes into those generated types and runs exactly the
//! conversions an evaluation runs, checking their promises.

use super::types as host;
use super::v0_1::{self, claims::exports::uma::policy::gatherer as ga};
use super::v0_1::{policy::exports::uma::policy::evaluator as ev, policy::uma::policy::types as t};

/// Reads arbitrary bytes as a stream of small choices and strings; runs out gracefully.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn string(&mut self) -> String {
        let len = (self.byte() as usize).min(self.0.len());
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        // Guests can only hand over valid UTF-8 (the canonical ABI checks it); lossy keeps the
        // bytes' shape.
        String::from_utf8_lossy(s).into_owned()
    }
    fn strings(&mut self) -> Vec<String> {
        (0..self.byte() % 8).map(|_| self.string()).collect()
    }
    fn option(&mut self) -> Option<String> {
        (self.byte() % 2 == 1).then(|| self.string())
    }
    fn required(&mut self) -> t::RequiredClaim {
        t::RequiredClaim {
            name: self.string(),
            friendly_name: self.option(),
            claim_type: self.option(),
            claim_token_formats: self.strings(),
            issuers: self.strings(),
        }
    }
    fn gathered(&mut self) -> Vec<ga::GatheredClaim> {
        (0..self.byte() % 6)
            .map(|_| ga::GatheredClaim {
                name: self.string(),
                value: self.string(),
            })
            .collect()
    }
}

/// Decode `data` into a plugin's answer and run the host's handling of it. Panics only when a
/// promise is broken: a permit wider than what was requested or with duplicates, a size that does
/// not bound the answer, a gathered claim whose value is not the JSON it was given as.
pub fn plugin_output(data: &[u8]) {
    let mut b = Bytes(data);
    let requested = b.strings();
    match b.byte() % 3 {
        0 => {
            let decision = match b.byte() % 4 {
                0 => ev::Decision::Permit(b.strings()),
                1 => ev::Decision::Deny(b.string()),
                2 => ev::Decision::NeedInfo((0..b.byte() % 4).map(|_| b.required()).collect()),
                _ => ev::Decision::DeferToOwner(b.string()),
            };
            let size = v0_1::decision_len(&decision);
            let text_bytes: usize = match &decision {
                ev::Decision::Permit(s) => s.iter().map(String::len).sum(),
                ev::Decision::Deny(r) | ev::Decision::DeferToOwner(r) => r.len(),
                ev::Decision::NeedInfo(r) => r.iter().map(|r| r.name.len()).sum(),
            };
            assert!(size >= text_bytes, "the size undercounts the answer");
            match v0_1::decision(decision, &requested) {
                host::Decision::Permit { scopes } => {
                    for (i, s) in scopes.iter().enumerate() {
                        assert!(requested.contains(s), "granted {s:?}, never requested");
                        assert!(!scopes[..i].contains(s), "granted {s:?} twice");
                    }
                }
                host::Decision::NeedInfo { required } => {
                    let _ = serde_json::to_string(&required).expect("serializable");
                }
                _ => {}
            }
        }
        1 => {
            let step = match b.byte() % 3 {
                0 => ga::Step::Ask(ga::Form {
                    title: b.string(),
                    prompt: b.string(),
                    state: b.string(),
                    fields: (0..b.byte() % 4)
                        .map(|_| ga::Field {
                            name: b.string(),
                            label: b.string(),
                            kind: match b.byte() % 6 {
                                0 => ga::FieldKind::Text,
                                1 => ga::FieldKind::Email,
                                2 => ga::FieldKind::Number,
                                3 => ga::FieldKind::Multiline,
                                4 => ga::FieldKind::Checkbox,
                                _ => ga::FieldKind::Choice(
                                    (0..b.byte() % 4)
                                        .map(|_| (b.string(), b.string()))
                                        .collect(),
                                ),
                            },
                            required: b.byte() % 2 == 0,
                            help: b.option(),
                        })
                        .collect(),
                }),
                1 => ga::Step::Done(b.gathered()),
                _ => ga::Step::Fail(b.string()),
            };
            let _ = v0_1::step_len(&step);
            let raw: Option<Vec<(String, String)>> = match &step {
                ga::Step::Done(c) => Some(
                    c.iter()
                        .map(|c| (c.name.clone(), c.value.clone()))
                        .collect(),
                ),
                _ => None,
            };
            if let (Ok(host::Step::Done { claims }), Some(raw)) = (v0_1::step(step), raw) {
                for (c, (name, value)) in claims.iter().zip(raw) {
                    assert_eq!(c.name, name);
                    let reparsed: serde_json::Value = serde_json::from_str(&value).unwrap();
                    assert_eq!(c.value, reparsed);
                }
            }
        }
        _ => {
            let claims = b.gathered();
            let n = claims.len();
            if let Ok(converted) = v0_1::gathered_claims(claims) {
                assert_eq!(converted.len(), n);
            }
        }
    }
}
