//! What the host hands plugins and gets back, in the host's own types. Each WIT version's
//! bindings convert from and to these, so the rest of the server never sees a versioned type.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a claim came from (security-lessons S15).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Provenance {
    /// Asserted by this server.
    Server,
    /// From a claim token the host verified.
    VerifiedToken { issuer: String, format: String },
    /// Gathered interactively by the named source.
    Interactive { source: String },
    /// Persisted in a PCT.
    Pct,
    /// Pushed by the resource server, unverified.
    ResourceServer,
}

/// A claim about the requesting party.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub name: String,
    pub value: serde_json::Value,
    pub provenance: Provenance,
}

/// Facts the host asserts; never taken from claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerContext {
    pub now_ms: u64,
    pub client_id: String,
    pub issuer: String,
}

/// The permission a policy decides.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Permission {
    pub resource_id: String,
    pub owner: String,
    pub resource_server: String,
    pub resource_type: Option<String>,
    pub resource_name: Option<String>,
    pub registered_scopes: Vec<String>,
    pub requested_scopes: Vec<String>,
}

/// Everything a policy evaluation gets.
#[derive(Clone, Debug)]
pub struct PolicyInput {
    pub permission: Permission,
    pub context: ServerContext,
    pub claims: Vec<Claim>,
    /// The owner's configuration document (JSON text).
    pub config: String,
}

/// A claim the requesting party still has to supply (UMA `required_claims`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredClaim {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub friendly_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim_type: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub claim_token_formats: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub issuers: Vec<String>,
}

/// A policy's outcome for one permission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Decision {
    /// Grant these scopes (already cut down to the requested ones by the host).
    Permit { scopes: Vec<String> },
    /// Refuse, with a reason for the owner.
    Deny { reason: String },
    /// These claims are missing.
    NeedInfo { required: Vec<RequiredClaim> },
    /// Ask the owner, telling them why.
    DeferToOwner { message: String },
}

/// Why an evaluation failed; each becomes a denial (fail closed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "kebab-case")]
pub enum Failure {
    /// The instruction budget ran out.
    OutOfFuel { fuel: u64 },
    /// The wall-clock deadline passed.
    Deadline { millis: u64 },
    /// Linear memory or tables would grow past the limit.
    MemoryLimit { limit_bytes: usize },
    /// Tables would grow past the limit.
    TableLimit { limit_elements: usize },
    /// The plugin called `log` more often than allowed.
    LogLimit { limit_calls: usize },
    /// The Wasm stack overflowed.
    StackOverflow,
    /// The answer was larger than allowed.
    OutputTooLarge { bytes: usize, limit_bytes: usize },
    /// The guest trapped (a panic, an unreachable, a bad memory access…).
    Trap { message: String },
    /// The guest answered something the contract forbids.
    InvalidOutput { message: String },
    /// The module could not be instantiated.
    Instantiation { message: String },
    /// Not run: the module exhausted its budget on too many evaluations in a row and is
    /// paused for this many more seconds.
    Suspended { seconds: u64 },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::OutOfFuel { fuel } => {
                write!(
                    f,
                    "out of fuel: the plugin used its whole budget of {fuel} instructions"
                )
            }
            Failure::Deadline { millis } => {
                write!(
                    f,
                    "deadline exceeded: the plugin ran longer than {millis} ms"
                )
            }
            Failure::MemoryLimit { limit_bytes } => write!(
                f,
                "memory limit exceeded: the plugin tried to use more than {limit_bytes} bytes of linear memory"
            ),
            Failure::TableLimit { limit_elements } => write!(
                f,
                "table limit exceeded: the plugin tried to grow its tables past {limit_elements} elements"
            ),
            Failure::LogLimit { limit_calls } => write!(
                f,
                "log limit exceeded: the plugin called `log` more than {limit_calls} times"
            ),
            Failure::StackOverflow => write!(f, "stack overflow: the plugin recursed too deeply"),
            Failure::OutputTooLarge { bytes, limit_bytes } => write!(
                f,
                "output too large: the plugin answered {bytes} bytes, the limit is {limit_bytes}"
            ),
            Failure::Trap { message } => write!(f, "trap: {message}"),
            Failure::InvalidOutput { message } => write!(f, "invalid output: {message}"),
            Failure::Instantiation { message } => write!(f, "instantiation failed: {message}"),
            Failure::Suspended { seconds } => write!(
                f,
                "suspended: the plugin ran out of fuel or time on too many evaluations in a row; it runs again in {seconds} s"
            ),
        }
    }
}

/// A line the plugin logged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error`, or `stdout`/`stderr` for captured output.
    pub level: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub fields: Vec<(String, String)>,
}

/// How an evaluation went, for dry-runs and the audit log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel_used: u64,
    /// Wall-clock time from instantiation to the answer.
    #[serde(with = "micros")]
    pub elapsed: Duration,
    /// Peak linear memory, summed over memories.
    pub memory_bytes: usize,
    pub logs: Vec<LogLine>,
    /// Log lines dropped past the limits.
    pub logs_dropped: usize,
}

/// The result of a policy evaluation: a decision always, and why it failed if it did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyOutcome {
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub usage: Usage,
}

/// A claim produced by a claims plugin (the host adds provenance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatheredClaim {
    pub name: String,
    pub value: serde_json::Value,
}

/// What a form field takes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FieldKind {
    Text,
    Email,
    Number,
    Multiline,
    Checkbox,
    Choice { options: Vec<(String, String)> },
}

/// One form field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
    pub help: Option<String>,
}

/// A form of the claims dialogue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Form {
    pub title: String,
    pub prompt: String,
    pub fields: Vec<Field>,
    /// The plugin's opaque state, kept server-side.
    pub state: String,
}

/// Where a claims dialogue stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    Ask { form: Form },
    Done { claims: Vec<GatheredClaim> },
    Fail { reason: String },
}

/// What a claims dialogue starts from.
#[derive(Clone, Debug)]
pub struct InteractionInput {
    pub context: ServerContext,
    pub required: Vec<RequiredClaim>,
    pub config: String,
}

/// A call to a claims plugin.
#[derive(Clone, Debug)]
pub enum ClaimsCall {
    /// List the token formats it verifies.
    TokenFormats,
    /// Verify a token.
    VerifyToken {
        format: String,
        token: String,
        config: String,
        context: ServerContext,
    },
    /// Start a dialogue.
    Start(InteractionInput),
    /// Continue a dialogue.
    Submit {
        interaction: InteractionInput,
        state: String,
        answers: Vec<(String, String)>,
    },
}

impl ClaimsCall {
    /// The token format of a `VerifyToken` call ("" otherwise).
    pub fn format(&self) -> &str {
        match self {
            ClaimsCall::VerifyToken { format, .. } => format,
            _ => "",
        }
    }
}

/// What a claims plugin answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClaimsAnswer {
    TokenFormats(Vec<String>),
    Verified(Result<Vec<GatheredClaim>, String>),
    Step(Step),
}

mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(d)?))
    }
}
