//! Combining the decisions of several policies on one resource, scope by scope.
//!
//! A binding decides only the scopes it is bound to (all, by default). For each requested scope
//! the policies that decide it vote: a permit that includes the scope is a yes; a deny, or a
//! permit without the scope, is a no; need-info and defer-to-owner are "not yet". The owner's
//! strategy turns votes into a grant. A scope no policy decides is never granted (default deny,
//! security-lessons S14).
//!
//! When some requested scope is not granted, the permission's outcome says what could still
//! change that: missing claims (need-info) first, then the owner's approval (defer), else deny.

use std::collections::BTreeSet;

use crate::runtime::{Decision, RequiredClaim};
use crate::store::policy::Strategy;

/// One policy's answer, restricted to the scopes it decides.
pub struct Vote<'a> {
    /// The requested scopes this policy was asked about.
    pub scopes: &'a [String],
    pub decision: &'a Decision,
}

/// The combined outcome for one permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Combined {
    /// Every requested scope granted.
    Permit { scopes: Vec<String> },
    /// Some scopes granted and nothing more can be obtained: the UMA grant may issue a partial
    /// RPT (Grant §3.3.4, "CandidateGrantedScopes").
    Partial { scopes: Vec<String> },
    /// More claims could change the outcome.
    NeedInfo {
        granted: Vec<String>,
        required: Vec<RequiredClaim>,
    },
    /// The owner's approval could change the outcome.
    DeferToOwner {
        granted: Vec<String>,
        messages: Vec<String>,
    },
    /// Nothing granted, and nothing would change that.
    Deny,
}

impl Combined {
    /// The short name recorded in the audit log.
    pub fn label(&self) -> &'static str {
        match self {
            Combined::Permit { .. } => "permit",
            Combined::Partial { .. } => "partial",
            Combined::NeedInfo { .. } => "need-info",
            Combined::DeferToOwner { .. } => "defer-to-owner",
            Combined::Deny => "deny",
        }
    }

    /// Scopes granted so far.
    pub fn granted(&self) -> &[String] {
        match self {
            Combined::Permit { scopes } | Combined::Partial { scopes } => scopes,
            Combined::NeedInfo { granted, .. } | Combined::DeferToOwner { granted, .. } => granted,
            Combined::Deny => &[],
        }
    }
}

#[derive(Default)]
struct Tally {
    yes: usize,
    no: usize,
    pending: usize,
}

/// Combine `votes` for the `requested` scopes under `strategy`.
pub fn combine(strategy: Strategy, requested: &[String], votes: &[Vote<'_>]) -> Combined {
    let mut granted = Vec::new();
    let mut open = false; // some scope could still be granted with claims or approval
    for scope in requested {
        let mut t = Tally::default();
        for v in votes.iter().filter(|v| v.scopes.contains(scope)) {
            match v.decision {
                Decision::Permit { scopes } if scopes.contains(scope) => t.yes += 1,
                Decision::Permit { .. } | Decision::Deny { .. } => t.no += 1,
                Decision::NeedInfo { .. } | Decision::DeferToOwner { .. } => t.pending += 1,
            }
        }
        let deciders = t.yes + t.no + t.pending;
        let (grant, could) = match strategy {
            _ if deciders == 0 => (false, false),
            Strategy::Unanimous => (t.yes == deciders, t.no == 0),
            Strategy::Affirmative => (t.yes > 0, t.pending > 0),
            Strategy::Consensus => (t.yes > t.no, t.yes + t.pending > t.no),
        };
        if grant {
            granted.push(scope.clone());
        } else if could {
            open = true;
        }
    }

    if granted.len() == requested.len() && !requested.is_empty() {
        return Combined::Permit { scopes: granted };
    }
    if open {
        let mut required: Vec<RequiredClaim> = Vec::new();
        let mut messages = BTreeSet::new();
        for v in votes {
            match v.decision {
                Decision::NeedInfo { required: r } => {
                    for c in r {
                        if !required.contains(c) {
                            required.push(c.clone());
                        }
                    }
                }
                Decision::DeferToOwner { message } => {
                    messages.insert(message.clone());
                }
                _ => {}
            }
        }
        if !required.is_empty() {
            return Combined::NeedInfo { granted, required };
        }
        if !messages.is_empty() {
            return Combined::DeferToOwner {
                granted,
                messages: messages.into_iter().collect(),
            };
        }
    }
    if granted.is_empty() {
        Combined::Deny
    } else {
        Combined::Partial { scopes: granted }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }
    fn permit(v: &[&str]) -> Decision {
        Decision::Permit { scopes: s(v) }
    }
    fn deny() -> Decision {
        Decision::Deny {
            reason: "no".into(),
        }
    }
    fn need(name: &str) -> Decision {
        Decision::NeedInfo {
            required: vec![RequiredClaim {
                name: name.into(),
                friendly_name: None,
                claim_type: None,
                claim_token_formats: vec![],
                issuers: vec![],
            }],
        }
    }
    fn defer() -> Decision {
        Decision::DeferToOwner {
            message: "ask".into(),
        }
    }

    fn run(strategy: Strategy, requested: &[&str], votes: &[(&[&str], Decision)]) -> Combined {
        let scopes: Vec<Vec<String>> = votes.iter().map(|(sc, _)| s(sc)).collect();
        let votes: Vec<Vote> = votes
            .iter()
            .zip(&scopes)
            .map(|((_, d), sc)| Vote {
                scopes: sc,
                decision: d,
            })
            .collect();
        combine(strategy, &s(requested), &votes)
    }

    const VE: &[&str] = &["view", "edit"];

    #[test]
    fn no_policy_grants_nothing() {
        for st in [
            Strategy::Unanimous,
            Strategy::Affirmative,
            Strategy::Consensus,
        ] {
            assert_eq!(run(st, VE, &[]), Combined::Deny);
        }
    }

    #[test]
    fn unanimous_needs_every_policy() {
        let mixed = [(VE, permit(VE)), (VE, permit(&["view"]))];
        assert_eq!(
            run(Strategy::Unanimous, VE, &mixed),
            Combined::Partial {
                scopes: s(&["view"])
            }
        );
        let with_deny = [(VE, permit(VE)), (VE, deny())];
        assert_eq!(run(Strategy::Unanimous, VE, &with_deny), Combined::Deny);
        let with_need = [(VE, permit(VE)), (VE, need("email"))];
        assert!(matches!(
            run(Strategy::Unanimous, VE, &with_need),
            Combined::NeedInfo { ref granted, .. } if granted.is_empty()
        ));
        // A deny ends it even when another policy asks for claims: more claims cannot help.
        let deny_and_need = [(VE, deny()), (VE, need("email"))];
        assert_eq!(run(Strategy::Unanimous, VE, &deny_and_need), Combined::Deny);
    }

    #[test]
    fn affirmative_needs_one_policy() {
        let mixed = [(VE, deny()), (VE, permit(VE))];
        assert_eq!(
            run(Strategy::Affirmative, VE, &mixed),
            Combined::Permit { scopes: s(VE) }
        );
        let deny_and_defer = [(VE, deny()), (VE, defer())];
        assert_eq!(
            run(Strategy::Affirmative, VE, &deny_and_defer),
            Combined::DeferToOwner {
                granted: vec![],
                messages: s(&["ask"])
            }
        );
        assert_eq!(
            run(Strategy::Affirmative, VE, &[(VE, deny()), (VE, deny())]),
            Combined::Deny
        );
    }

    #[test]
    fn consensus_counts_votes() {
        let two_to_one = [(VE, permit(VE)), (VE, permit(VE)), (VE, deny())];
        assert_eq!(
            run(Strategy::Consensus, VE, &two_to_one),
            Combined::Permit { scopes: s(VE) }
        );
        let tie = [(VE, permit(VE)), (VE, deny())];
        assert_eq!(run(Strategy::Consensus, VE, &tie), Combined::Deny);
        let tie_with_need = [(VE, permit(VE)), (VE, deny()), (VE, need("email"))];
        assert!(matches!(
            run(Strategy::Consensus, VE, &tie_with_need),
            Combined::NeedInfo { .. }
        ));
    }

    #[test]
    fn per_scope_bindings_decide_only_their_scopes() {
        // view: allow-list; edit: owner approval.
        let votes = [(&["view"][..], permit(&["view"])), (&["edit"][..], defer())];
        assert_eq!(
            run(Strategy::Unanimous, VE, &votes),
            Combined::DeferToOwner {
                granted: s(&["view"]),
                messages: s(&["ask"])
            }
        );
        // A scope no binding covers is never granted.
        let only_view = [(&["view"][..], permit(&["view"]))];
        assert_eq!(
            run(Strategy::Unanimous, VE, &only_view),
            Combined::Partial {
                scopes: s(&["view"])
            }
        );
    }
}
