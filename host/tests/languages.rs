//! The portable behavioural suite: the allow-list, claim-match and owner-approval policies
//! written in Rust (the built-ins), Python, JavaScript and C, each run through the real runtime
//! (ingest, then a fresh sandboxed instance per evaluation) against one table of
//! request, claims, config → expected decision. Every language must give the same decisions,
//! required claims and reasons, reject the same bad configurations in its own validation, and
//! fail closed when its infinite-loop fixture runs out of fuel.
//!
//! The Python, JavaScript and C components are built by `scripts/build-lang-plugins` into
//! `target/lang-plugins/<language>/` (`scripts/test` builds them, then runs every test). When
//! they are missing the suite fails under CI (`CI` set) and explains itself elsewhere.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Value, json};
use uma_host::plugins::{self, fixtures};
use uma_host::runtime::*;

const NOW_MS: u64 = 1_767_268_800_000;
const LANGUAGES: &[&str] = &["rust", "python", "js", "c"];
const POLICIES: &[&str] = &["allow-list", "claim-match", "owner-approval", "fx-loop"];
const IDP: &str = "https://idp.example";

/// The server's defaults, except: Python components take seconds to compile and the tests
/// compile many at once on two cores, so the compile timeout is generous, and compiled
/// artifacts are cached next to the components so later runs load them in milliseconds.
fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            compile_timeout: std::time::Duration::from_secs(600),
            cache_dir: Some(artifacts_dir().join("compiled")),
            ..RuntimeConfig::default()
        })
        .expect("runtime")
    })
}

/// Where the language builds are: `UMA_LANG_PLUGINS`, or `<target>/lang-plugins`.
fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("UMA_LANG_PLUGINS") {
        return dir.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
        .join("lang-plugins")
}

/// The component bytes of `policy` in `language`, or why there are none.
fn component(language: &str, policy: &str) -> Result<Vec<u8>, String> {
    if language == "rust" {
        return Ok(match policy {
            "fx-loop" => std::fs::read(fixtures::FX_LOOP).map_err(|e| e.to_string())?,
            name => plugins::builtin(name).expect("built-in").bytes.to_vec(),
        });
    }
    let path = artifacts_dir()
        .join(language)
        .join(format!("{policy}.wasm"));
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether every language's build is there. Missing builds fail the suite under CI, so a CI
/// that forgot to build them cannot pass by skipping.
fn all_built() -> bool {
    let missing: Vec<String> = LANGUAGES
        .iter()
        .flat_map(|l| POLICIES.iter().map(move |p| (l, p)))
        .filter_map(|(l, p)| component(l, p).err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "the Python, JavaScript and C policies are not built ({} missing, e.g. {}); run \
         scripts/build-lang-plugins (or scripts/test, which builds them and runs every test)",
        missing.len(),
        missing[0]
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    false
}

/// Modules by (language, policy), each ingested once.
type Modules = Mutex<HashMap<(String, String), Arc<Module>>>;

fn module(language: &str, policy: &str) -> Arc<Module> {
    static MODULES: OnceLock<Modules> = OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    let key = (language.to_string(), policy.to_string());
    // Held while compiling: one compilation at a time, each module compiled once.
    let mut modules = modules.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = modules.get(&key) {
        return m.clone();
    }
    let bytes = component(language, policy).unwrap();
    let m = runtime()
        .ingest(&bytes)
        .unwrap_or_else(|e| panic!("{language} {policy} must pass ingest: {e}"));
    modules.insert(key, m.clone());
    m
}

fn claim(name: &str, value: Value, provenance: Provenance) -> Claim {
    Claim {
        name: name.into(),
        value,
        provenance,
    }
}

fn verified(issuer: &str) -> Provenance {
    Provenance::VerifiedToken {
        issuer: issuer.into(),
        format: "http://openid.net/specs/openid-connect-core-1_0.html#IDToken".into(),
    }
}

fn interactive() -> Provenance {
    Provenance::Interactive {
        source: "login".into(),
    }
}

/// What a case must produce, in every language.
#[derive(Debug)]
enum Expect {
    Permit(&'static [&'static str]),
    /// Denied with exactly this reason.
    Deny(&'static str),
    /// Denied with a reason starting so (parse errors word their detail per language).
    DenyStarting(&'static str),
    NeedInfo(Vec<RequiredClaim>),
    Defer(&'static str),
}

struct Case {
    name: &'static str,
    policy: &'static str,
    config: Value,
    client_id: &'static str,
    requested: &'static [&'static str],
    resource_name: Option<&'static str>,
    claims: Vec<Claim>,
    expect: Expect,
}

fn case(name: &'static str, policy: &'static str, config: Value, expect: Expect) -> Case {
    Case {
        name,
        policy,
        config,
        client_id: "doctor-app",
        requested: &["view", "edit"],
        resource_name: Some("Blood test"),
        claims: Vec::new(),
        expect,
    }
}

impl Case {
    fn claims(mut self, claims: Vec<Claim>) -> Self {
        self.claims = claims;
        self
    }
    fn client(mut self, client_id: &'static str) -> Self {
        self.client_id = client_id;
        self
    }
    fn requested(mut self, scopes: &'static [&'static str]) -> Self {
        self.requested = scopes;
        self
    }
    fn unnamed_resource(mut self) -> Self {
        self.resource_name = None;
        self
    }

    fn input(&self) -> PolicyInput {
        PolicyInput {
            permission: Permission {
                resource_id: "lab-report-1".into(),
                owner: "patient".into(),
                resource_server: "lab-rs".into(),
                resource_type: Some("https://lab.example/report".into()),
                resource_name: self.resource_name.map(String::from),
                registered_scopes: vec!["view".into(), "edit".into(), "share".into()],
                requested_scopes: self.requested.iter().map(|s| s.to_string()).collect(),
            },
            context: ServerContext {
                now_ms: NOW_MS,
                client_id: self.client_id.into(),
                issuer: "https://as.example".into(),
            },
            claims: self.claims.clone(),
            config: self.config.to_string(),
        }
    }

    fn check(&self, language: &str, decision: &Decision) -> Result<(), String> {
        let ok = match (&self.expect, decision) {
            (Expect::Permit(want), Decision::Permit { scopes }) => scopes == want,
            (Expect::Deny(want), Decision::Deny { reason }) => reason == want,
            (Expect::DenyStarting(want), Decision::Deny { reason }) => reason.starts_with(want),
            (Expect::NeedInfo(want), Decision::NeedInfo { required }) => required == want,
            (Expect::Defer(want), Decision::DeferToOwner { message }) => message == want,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{language} {}: case `{}` expected {:?}, got {decision:?}",
                self.policy, self.name, self.expect
            ))
        }
    }
}

fn required(name: &str, friendly_name: Option<&str>, issuers: &[&str]) -> Vec<RequiredClaim> {
    vec![RequiredClaim {
        name: name.into(),
        friendly_name: friendly_name.map(String::from),
        claim_type: None,
        claim_token_formats: Vec::new(),
        issuers: issuers.iter().map(|s| s.to_string()).collect(),
    }]
}

/// The table. Every row runs in every language.
fn cases() -> Vec<Case> {
    use Expect::*;
    let not_listed = "the requesting party is not on the allow-list";
    vec![
        // allow-list
        case("listed client gets every requested scope", "allow-list",
            json!({"client_ids": ["doctor-app"]}), Permit(&["view", "edit"])),
        case("listed client gets the configured scopes only", "allow-list",
            json!({"client_ids": ["doctor-app"], "scopes": ["view", "share"]}), Permit(&["view"])),
        case("listed subject from a verified token", "allow-list",
            json!({"subjects": ["alice"]}), Permit(&["view", "edit"]))
            .claims(vec![claim("sub", json!("alice"), verified(IDP))]),
        case("subject not on the list is denied", "allow-list",
            json!({"subjects": ["alice"]}), Deny(not_listed))
            .claims(vec![claim("sub", json!("bob"), interactive())]),
        case("no identifying claim asks for the subject", "allow-list",
            json!({"subjects": ["alice"]}), NeedInfo(required("sub", Some("Subject"), &[]))),
        case("e-mail lists ask for the e-mail address", "allow-list",
            json!({"subjects": ["alice"], "emails": ["doc@clinic.example"], "issuers": [IDP]}),
            NeedInfo(required("email", Some("E-mail address"), &[IDP]))),
        case("one address of an array of e-mails is enough", "allow-list",
            json!({"emails": ["doc@clinic.example"]}), Permit(&["view", "edit"]))
            .claims(vec![claim("email", json!(["x@y.example", "doc@clinic.example"]), interactive())]),
        case("claims pushed by the resource server do not count", "allow-list",
            json!({"subjects": ["alice"]}), NeedInfo(required("sub", Some("Subject"), &[])))
            .claims(vec![claim("sub", json!("alice"), Provenance::ResourceServer)]),
        case("with issuers only their verified tokens count", "allow-list",
            json!({"subjects": ["alice"], "issuers": [IDP]}), NeedInfo(required("sub", Some("Subject"), &[IDP])))
            .claims(vec![claim("sub", json!("alice"), verified("https://other.example")),
                         claim("sub", json!("alice"), interactive())]),
        case("a client not listed with only client lists is denied", "allow-list",
            json!({"client_ids": ["portal"]}), Deny(not_listed)).client("other-app"),
        case("a non-string subject never matches", "allow-list",
            json!({"subjects": ["1"]}), Deny(not_listed))
            .claims(vec![claim("sub", json!(1), Provenance::Pct)]),
        case("a configuration that fails to parse denies", "allow-list",
            json!({"subjects": ["alice"], "colour": "red"}), DenyStarting("invalid configuration: ")),
        // claim-match
        case("equal value permits", "claim-match",
            json!({"claim": "role", "equals": "doctor"}), Permit(&["view", "edit"]))
            .claims(vec![claim("role", json!("doctor"), interactive())]),
        case("a different value is denied", "claim-match",
            json!({"claim": "role", "equals": "doctor"}), Deny("claim `role` does not match"))
            .claims(vec![claim("role", json!("nurse"), interactive())]),
        case("an array claim matches by item", "claim-match",
            json!({"claim": "roles", "one_of": ["doctor", "admin"], "scopes": ["view"]}), Permit(&["view"]))
            .claims(vec![claim("roles", json!(["nurse", "admin"]), Provenance::Server)]),
        case("equals compares whole values, objects as maps", "claim-match",
            json!({"claim": "org", "equals": {"id": 7, "kind": "clinic"}}), Permit(&["view", "edit"]))
            .claims(vec![claim("org", json!({"kind": "clinic", "id": 7}), interactive())]),
        case("true is not 1", "claim-match",
            json!({"claim": "level", "equals": 1}), Deny("claim `level` does not match"))
            .claims(vec![claim("level", json!(true), interactive())]),
        case("equals an array compares the whole array", "claim-match",
            json!({"claim": "roles", "equals": ["a", "b"]}), Deny("claim `roles` does not match"))
            .claims(vec![claim("roles", json!(["b", "a"]), interactive())]),
        case("domain matches ASCII case-insensitively", "claim-match",
            json!({"claim": "email", "domain": "clinic.example"}), Permit(&["view", "edit"]))
            .claims(vec![claim("email", json!("Doc@CLINIC.Example"), interactive())]),
        case("domain needs a local part", "claim-match",
            json!({"claim": "email", "domain": "clinic.example"}), Deny("claim `email` does not match"))
            .claims(vec![claim("email", json!("@clinic.example"), interactive())]),
        case("a subdomain is not the domain", "claim-match",
            json!({"claim": "email", "domain": "clinic.example"}), Deny("claim `email` does not match"))
            .claims(vec![claim("email", json!("a@x.clinic.example"), interactive())]),
        case("missing claim asks for it with its friendly name and issuer", "claim-match",
            json!({"claim": "email", "domain": "clinic.example", "issuer": IDP, "friendly_name": "Work e-mail"}),
            NeedInfo(required("email", Some("Work e-mail"), &[IDP])))
            .claims(vec![claim("email", json!("doc@clinic.example"), interactive())]),
        case("issuer requires that issuer's verified token", "claim-match",
            json!({"claim": "email", "domain": "clinic.example", "issuer": IDP}), Permit(&["view", "edit"]))
            .claims(vec![claim("email", json!("doc@clinic.example"), verified(IDP))]),
        case("pushed claims count only when provenance allows them", "claim-match",
            json!({"claim": "dept", "equals": "lab", "provenance": ["resource-server"]}), Permit(&["view", "edit"]))
            .claims(vec![claim("dept", json!("lab"), Provenance::ResourceServer)]),
        case("pushed claims do not count by default", "claim-match",
            json!({"claim": "dept", "equals": "lab"}), NeedInfo(required("dept", None, &[])))
            .claims(vec![claim("dept", json!("lab"), Provenance::ResourceServer)]),
        case("null equals is no equals", "claim-match",
            json!({"claim": "email", "equals": null, "domain": "clinic.example"}), Permit(&["view", "edit"]))
            .claims(vec![claim("email", json!("a@clinic.example"), Provenance::Pct)]),
        // owner-approval
        case("defers to the owner with a generated message", "owner-approval",
            json!({}), Defer("client doctor-app asks for view, edit on Blood test")),
        case("the generated message names the resource id without a name", "owner-approval",
            json!({}), Defer("client doctor-app asks for view on lab-report-1"))
            .requested(&["view"]).unnamed_resource(),
        case("defers with the owner's message", "owner-approval",
            json!({"message": "An insurer asks", "scopes": ["edit"]}), Defer("An insurer asks")),
        case("scopes that need no approval are permitted", "owner-approval",
            json!({"scopes": ["edit"]}), Permit(&["view"])).requested(&["view"]),
        case("a wrong type in the configuration denies", "owner-approval",
            json!({"message": 5}), DenyStarting("invalid configuration: ")),
    ]
}

/// What `validate-config` must say, in every language.
enum Valid {
    Yes,
    /// Rejected with exactly this message.
    No(&'static str),
    /// Rejected as unparsable (`invalid configuration: …`, detail worded per language).
    Unparsable,
}

fn validations() -> Vec<(&'static str, &'static str, Valid)> {
    use Valid::*;
    vec![
        (
            "allow-list",
            r#"{"subjects":["alice"],"issuers":["https://idp.example"]}"#,
            Yes,
        ),
        (
            "allow-list",
            r#"{}"#,
            No("the allow-list is empty: give at least one of subjects, emails, client_ids"),
        ),
        (
            "allow-list",
            r#"{"client_ids":["a"],"issuers":[]}"#,
            No("issuers, when given, must name at least one issuer"),
        ),
        (
            "allow-list",
            r#"{"subjects":["alice"],"colour":"red"}"#,
            Unparsable,
        ),
        ("allow-list", r#"{"subjects":"alice"}"#, Unparsable),
        ("allow-list", r#"{"subjects":null}"#, Unparsable),
        ("allow-list", r#"{"subjects":["alice"],"scopes":null}"#, Yes),
        ("allow-list", r#"{"subjects":["alice"]"#, Unparsable),
        ("allow-list", r#"["alice"]"#, Unparsable),
        ("claim-match", r#"{"claim":"role","equals":"doctor"}"#, Yes),
        (
            "claim-match",
            r#"{"claim":"","equals":"doctor"}"#,
            No("`claim` must name a claim"),
        ),
        (
            "claim-match",
            r#"{"claim":"role"}"#,
            No("give exactly one of `equals`, `one_of`, `domain`"),
        ),
        (
            "claim-match",
            r#"{"claim":"role","equals":1,"one_of":[1]}"#,
            No("give exactly one of `equals`, `one_of`, `domain`"),
        ),
        (
            "claim-match",
            r#"{"claim":"email","domain":"a@b.example"}"#,
            No("`domain` must be a bare domain such as `example.com`"),
        ),
        (
            "claim-match",
            r#"{"claim":"email","domain":""}"#,
            No("`domain` must be a bare domain such as `example.com`"),
        ),
        (
            "claim-match",
            r#"{"claim":"r","equals":1,"provenance":["psychic"]}"#,
            No(
                "unknown provenance `psychic`; use one of server, verified-token, interactive, pct, resource-server",
            ),
        ),
        (
            "claim-match",
            r#"{"claim":"r","equals":1,"provenance":["pct"],"issuer":"https://idp.example"}"#,
            No("`issuer` already requires a verified token: drop `provenance`"),
        ),
        ("claim-match", r#"{"equals":1}"#, Unparsable),
        (
            "claim-match",
            r#"{"claim":"r","equals":1,"one_of":"x"}"#,
            Unparsable,
        ),
        ("claim-match", r#"{"claim":"r","equals":NaN}"#, Unparsable),
        ("owner-approval", r#"{}"#, Yes),
        (
            "owner-approval",
            r#"{"message":null,"scopes":["edit"]}"#,
            Yes,
        ),
        (
            "owner-approval",
            &*Box::leak(format!(r#"{{"message":"{}"}}"#, "é".repeat(501)).into_boxed_str()),
            No("message is longer than 1000 bytes"),
        ),
        (
            "owner-approval",
            r#"{"message":"ok","extra":1}"#,
            Unparsable,
        ),
    ]
}

#[test]
fn every_language_decides_every_case_like_the_table() {
    if !all_built() {
        return;
    }
    let mut failures = Vec::new();
    let cases = cases();
    for language in LANGUAGES {
        for case in &cases {
            let m = module(language, case.policy);
            let outcome = runtime().evaluate_policy_blocking(&m, &case.input());
            if let Some(f) = &outcome.failure {
                failures.push(format!(
                    "{language} {}: case `{}` failed: {f}",
                    case.policy, case.name
                ));
                continue;
            }
            if let Err(e) = case.check(language, &outcome.decision) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_language_rejects_the_same_bad_configurations_in_its_own_validation() {
    if !all_built() {
        return;
    }
    let mut failures = Vec::new();
    let limits = runtime().config().default_limits();
    for language in LANGUAGES {
        for (policy, config, want) in validations() {
            let m = module(language, policy);
            let got = runtime()
                .validate_config_limited(&m, config, NOW_MS, limits)
                .unwrap_or_else(|f| panic!("{language} {policy} failed validating {config}: {f}"));
            let ok = match (&want, &got) {
                (Valid::Yes, Ok(())) => true,
                (Valid::No(msg), Err(e)) => e == msg,
                (Valid::Unparsable, Err(e)) => e.starts_with("invalid configuration: "),
                _ => false,
            };
            if !ok {
                failures.push(format!("{language} {policy} {config}: got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_languages_infinite_loop_runs_out_of_fuel_and_is_denied() {
    if !all_built() {
        return;
    }
    let input = cases().remove(0).input();
    for language in LANGUAGES {
        let m = module(language, "fx-loop");
        let out = runtime().evaluate_policy_blocking(&m, &input);
        let fuel = runtime().config().fuel;
        assert_eq!(
            out.failure,
            Some(Failure::OutOfFuel { fuel }),
            "{language}: {:?}",
            out.decision
        );
        assert!(
            matches!(&out.decision, Decision::Deny { reason } if reason.starts_with("out of fuel")),
            "{language}: {:?}",
            out.decision
        );
        assert_eq!(out.usage.fuel_used, fuel, "{language}");
    }
}

#[test]
fn per_module_limits_apply_and_usage_is_reported_for_every_language() {
    if !all_built() {
        return;
    }
    let config = runtime().config();
    let input = cases().remove(0).input();
    for language in LANGUAGES {
        let m = module(language, "allow-list");
        let roomy = config.default_limits();
        let ok = runtime().evaluate_policy_limited(&m, &input, roomy);
        assert_eq!(ok.failure, None, "{language}");
        let used = ok.usage.fuel_used;
        assert!(
            used > 0 && ok.usage.memory_bytes > 0,
            "{language}: {:?}",
            ok.usage
        );
        eprintln!(
            "{language:>6} allow-list: fuel {used}, peak memory {} bytes, {:?}",
            ok.usage.memory_bytes, ok.usage.elapsed
        );

        // Half the fuel it needs stops it, and the failure names that budget. (Fuel is checked
        // at loop heads and calls, so a budget just under the total may still finish.)
        let tight = Limits {
            fuel: used / 2,
            ..roomy
        };
        let out = runtime().evaluate_policy_limited(&m, &input, tight);
        assert_eq!(
            out.failure,
            Some(Failure::OutOfFuel { fuel: used / 2 }),
            "{language}"
        );

        // Memory below what it touched stops it, naming the module's own cap.
        let small = Limits {
            memory_bytes: ok.usage.memory_bytes - 1,
            ..roomy
        };
        let out = runtime().evaluate_policy_limited(&m, &input, small);
        assert_eq!(
            out.failure,
            Some(Failure::MemoryLimit {
                limit_bytes: ok.usage.memory_bytes - 1
            }),
            "{language}"
        );
    }
}

#[test]
fn language_components_import_no_network_but_pythons_refused_sockets() {
    if !all_built() {
        return;
    }
    for language in LANGUAGES {
        for policy in POLICIES {
            let m = module(language, policy);
            assert_eq!(m.world, World::Policy, "{language} {policy}");
            for import in &m.imports {
                assert!(
                    import.starts_with("uma:policy/") || import.starts_with("wasi:"),
                    "{language} {policy} imports {import}"
                );
                assert!(
                    !import.starts_with("wasi:http"),
                    "{language} {policy} imports {import}"
                );
                // CPython imports wasi:sockets whatever the policy does (the sandbox refuses
                // every socket); the other languages' components do not import it at all.
                assert!(
                    *language == "python" || !import.starts_with("wasi:sockets"),
                    "{language} {policy} imports {import}"
                );
            }
        }
    }
}
