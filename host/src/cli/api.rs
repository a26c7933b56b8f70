//! What the `admin` and `owner` subcommands share: calling the server with a bearer token,
//! printing JSON, and turning every failure into one message and one exit code.
//!
//! Exit codes (documented in `docs/owner-api.md`):
//! - 0: success, the server's JSON on stdout;
//! - 1: the server refused the request: its OAuth error JSON on stderr;
//! - 2: bad input on our side (usage, a file that cannot be read, JSON that does not parse);
//! - 3: the server could not be reached or answered something that is not HTTP/JSON we know;
//! - 4: not logged in (no token, no saved credentials, or they can no longer be refreshed).

use std::process::ExitCode;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{Value, json};

/// A failure of a CLI command, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error status; `body` is its JSON (or the text it sent).
    #[error("the server answered {status}")]
    Server { status: u16, body: Value },
    /// Our own input is wrong.
    #[error("{0}")]
    Input(String),
    /// The server could not be reached, or its answer was not what HTTP/JSON should be.
    #[error("{0}")]
    Transport(String),
    /// No usable credentials.
    #[error("{0}")]
    Login(String),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Server { .. } => 1,
            CliError::Input(_) => 2,
            CliError::Transport(_) => 3,
            CliError::Login(_) => 4,
        })
    }

    /// Prints the error the way the exit code promises: the server's JSON as is, anything else
    /// as one line prefixed with the program name.
    pub fn report(&self) {
        match self {
            CliError::Server { body, .. } => eprintln!("{}", pretty(body)),
            other => eprintln!("uma-host: {other}"),
        }
    }
}

pub type CliResult<T> = std::result::Result<T, CliError>;

impl From<reqwest::Error> for CliError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display omits the cause ("error sending request for url (…)"); the cause
        // ("Connection refused") is what the user needs.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        CliError::Transport(msg)
    }
}

/// Pretty JSON (never fails for a `Value`).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Prints a successful answer on stdout.
pub fn print_json(v: &Value) {
    println!("{}", pretty(v));
}

/// The blocking HTTP client every subcommand uses. It does not follow redirects: an API call
/// that redirects is a misconfigured URL, and following it could carry the bearer token
/// elsewhere.
pub fn http_client() -> CliResult<Client> {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(CliError::from)
}

/// Sends `req` and reads its answer: the JSON body on 2xx (`{"status": N}` when the body is
/// empty, as after a DELETE), [`CliError::Server`] otherwise.
pub fn send(req: RequestBuilder) -> CliResult<Value> {
    let resp = req.send()?;
    let status = resp.status();
    let text = resp.text()?;
    answer(status, text)
}

/// What an answer means: its JSON on 2xx (`{"status": N}` when empty), [`CliError::Server`]
/// otherwise.
pub fn answer(status: reqwest::StatusCode, text: String) -> CliResult<Value> {
    let body = if text.is_empty() {
        json!({ "status": status.as_u16() })
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    if status.is_success() {
        Ok(body)
    } else {
        Err(CliError::Server {
            status: status.as_u16(),
            body,
        })
    }
}

/// A server API under `base` (e.g. `https://as.example/owner`), called with a bearer token.
pub struct Api {
    pub http: Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: String, token: String) -> CliResult<Api> {
        Ok(Api {
            http: http_client()?,
            base,
            token,
        })
    }

    /// A request to `base + path` with the bearer token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Calls `path` with an optional JSON body and returns the answer.
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> CliResult<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req)
    }

    /// Calls `path` and prints the answer on stdout.
    pub fn show(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> CliResult<()> {
        print_json(&self.call(method, path, body)?);
        Ok(())
    }
}

/// One path segment, percent-encoded (names and ids typed by the user go into URLs).
pub fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
