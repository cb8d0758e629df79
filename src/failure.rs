//! Failures as a person reads them: why something failed, in words a person can act on, and what
//! to do. Errors from the AWS SDK and from HTTP clients are classified here, once, at the edge of
//! the clients that meet them (connection refused, a name that does not resolve, TLS spoken to a
//! plain-HTTP server, no credentials, credentials refused, not allowed, throttled, a server
//! error), and rendered as one line. The SDK's debug dumps never reach that line; the program's
//! log at debug level keeps the whole chain.

use std::fmt;

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};

/// Why something failed, as far as the person who must fix it cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// A setting is missing or wrong.
    Configuration,
    /// No credentials, or credentials the service does not accept.
    Credentials,
    /// Authenticated, but not allowed to do this.
    Permission,
    /// The endpoint could not be reached: refused, unresolved, timed out.
    Network,
    /// The TLS handshake failed.
    Tls,
    /// The service asked to slow down, and the retries ran out.
    Throttled,
    /// The service failed (5xx).
    Server,
    /// What was asked for does not exist.
    NotFound,
    /// The service refused the request as it was made.
    Rejected,
}

impl Cause {
    /// Whether asking again later may succeed: the service asked to slow down, failed on its
    /// side, or could not be reached. The one rule every retry in the action follows.
    pub fn is_transient(self) -> bool {
        matches!(self, Cause::Throttled | Cause::Server | Cause::Network)
    }
}

/// One failure, classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub cause: Cause,
    /// What happened, in one line: `connection refused by `http://127.0.0.1:9``.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(cause: Cause, message: impl Into<String>) -> Self {
        Failure {
            cause,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// Service error codes that mean the credentials were not accepted, without their
/// `Exception` suffix (the JSON protocols add it, the query protocols do not).
const CREDENTIAL_CODES: &[&str] = &[
    "InvalidClientTokenId",
    "UnrecognizedClient",
    "ExpiredToken",
    "InvalidSignature",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
];
const PERMISSION_CODES: &[&str] = &["AccessDenied"];
const THROTTLING_CODES: &[&str] = &["Throttling", "TooManyRequests", "RequestLimitExceeded"];

/// Characters of a server's own words kept in a message.
const SAID: usize = 120;

/// A duration as people say it: `45 s`, `5 min`, `1 h 30 min`, `2 min 5 s`.
pub fn spoken(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let parts: Vec<String> = [(h, "h"), (m, "min"), (s, "s")]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n} {unit}"))
        .collect();
    if parts.is_empty() {
        "0 s".into()
    } else {
        parts.join(" ")
    }
}

/// A message from outside, cut to one line of reasonable length.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::report::md::truncate(&flat, max)
}

/// ` (what the server said)`, or nothing when it said nothing.
fn said(code: &str, detail: &str) -> String {
    match (code.is_empty(), detail.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({code})"),
        (true, false) => format!(" ({detail})"),
        (false, false) => format!(" ({code}: {detail})"),
    }
}

/// The text of the first `<name>…</name>` in an XML error body.
fn element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = start + body[start..].find(&format!("</{name}>"))?;
    Some(body[start..end].trim().to_string())
}

/// Every message in an error's source chain, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}

/// The first `T` in an error's source chain.
fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = current {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        current = c.source();
    }
    None
}

fn timed_out(endpoint: &str) -> Failure {
    Failure::new(
        Cause::Network,
        format!("`{endpoint}` did not answer in time"),
    )
    .hint("check that the endpoint is reachable from the runner")
}

/// A failure to connect, read from an error's causes (never its own message, which may hold a
/// URL whose words would mislead): refused, a name that does not resolve, TLS, a timeout.
/// `None` when the causes say none of these.
fn connection(e: &(dyn std::error::Error + 'static), endpoint: &str) -> Option<Failure> {
    if let Some(io) = find::<std::io::Error>(e) {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return Some(
                    Failure::new(
                        Cause::Network,
                        format!("`{endpoint}` refused the connection"),
                    )
                    .hint("check that the endpoint is right and the service is up"),
                )
            }
            std::io::ErrorKind::TimedOut => return Some(timed_out(endpoint)),
            _ => {}
        }
    }
    let causes = chain(e)
        .into_iter()
        .skip(1)
        .collect::<Vec<_>>()
        .join(": ")
        .to_ascii_lowercase();
    if causes.contains("dns error") || causes.contains("failed to lookup address") {
        return Some(
            Failure::new(
                Cause::Network,
                format!("the name in `{endpoint}` does not resolve"),
            )
            .hint("check the host name, and that the runner can reach it"),
        );
    }
    // A plain-HTTP server answering a TLS hello.
    let plain = [
        "invalidcontenttype",
        "corrupt message",
        "wrong version number",
    ];
    if plain.iter().any(|t| causes.contains(t)) {
        return Some(
            Failure::new(
                Cause::Tls,
                format!("the TLS handshake with `{endpoint}` failed"),
            )
            .hint("if it speaks plain HTTP, write its address as `http://HOST:PORT`"),
        );
    }
    let certificate = [
        "invalid peer certificate",
        "unknownissuer",
        "certificate verify",
        "notvalidforname",
    ];
    if certificate.iter().any(|t| causes.contains(t)) {
        return Some(
            Failure::new(
                Cause::Tls,
                format!("`{endpoint}` presented a certificate the runner does not trust"),
            )
            .hint("check the host name, and the CA certificates the runner trusts"),
        );
    }
    None
}

/// An AWS SDK error, classified. `action` is the IAM action the call needs (`ecr:DescribeRepositories`),
/// named when permission is what is missing; `endpoint` where the call went.
pub fn from_sdk<E>(e: &SdkError<E, HttpResponse>, action: &str, endpoint: &str) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    tracing::debug!(error = ?e, action, "AWS call failed");
    if let SdkError::ServiceError(s) = e {
        let err = s.err();
        let status = s.raw().status().as_u16();
        // An answer in another protocol than the SDK expects (an XML error where JSON was due)
        // leaves the code empty: it is read from the body then.
        let body = s
            .raw()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let code = match err.code() {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => element(&body, "Code").unwrap_or_default(),
        };
        let code = code.as_str();
        let base = code.trim_end_matches("Exception");
        let detail = one_line(
            err.message()
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .or_else(|| element(&body, "Message"))
                .as_deref()
                .unwrap_or(""),
            SAID,
        );
        let said = said(code, &detail);
        return if CREDENTIAL_CODES.contains(&base) {
            Failure::new(
                Cause::Credentials,
                format!("AWS refused the credentials{said}"),
            )
            .hint("check that the job's credentials are for the right account and have not expired")
        } else if PERMISSION_CODES.contains(&base) || status == 403 {
            Failure::new(Cause::Permission, format!("not allowed{said}"))
                .hint(format!("allow `{action}` to the job's role"))
        } else if THROTTLING_CODES.contains(&base) || status == 429 {
            Failure::new(Cause::Throttled, format!("AWS throttled the calls{said}"))
                .hint("run again later, or with a lower `build-concurrency`")
        } else if base.ends_with("NotFound") || status == 404 {
            Failure::new(Cause::NotFound, format!("not found{said}"))
        } else if status >= 500 {
            Failure::new(
                Cause::Server,
                format!("AWS failed with HTTP {status}{said}"),
            )
            .hint("run again; if it persists, check the AWS Health Dashboard")
        } else {
            Failure::new(Cause::Rejected, format!("AWS refused the request{said}"))
        };
    }
    let dyn_e: &(dyn std::error::Error + 'static) = e;
    if let Some(c) = find::<aws_credential_types::provider::error::CredentialsError>(dyn_e) {
        // The chain ends with instance metadata: when it fails too (refused, or nothing there),
        // no provider had credentials.
        let not_found = matches!(
            c,
            aws_credential_types::provider::error::CredentialsError::CredentialsNotLoaded(_)
        ) || chain(dyn_e).join(" ").contains("IMDS");
        return if not_found {
            Failure::new(Cause::Credentials, "no AWS credentials were found")
                .hint("add an `aws-actions/configure-aws-credentials` step before this one, or set `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or `AWS_PROFILE`)")
        } else {
            Failure::new(
                Cause::Credentials,
                format!(
                    "the AWS credentials could not be loaded ({})",
                    one_line(&chain(c).join(": "), SAID)
                ),
            )
            .hint("check the credentials the job is given (profile, web identity token, role)")
        };
    }
    if let SdkError::DispatchFailure(d) = e {
        if d.as_connector_error().is_some_and(|c| c.is_timeout()) {
            return timed_out(endpoint);
        }
    }
    if let Some(f) = connection(dyn_e, endpoint) {
        return f;
    }
    match e {
        SdkError::TimeoutError(_) => Failure::new(
            Cause::Network,
            format!("`{endpoint}` did not answer in time"),
        )
        .hint("check that the endpoint is reachable from the runner"),
        SdkError::ConstructionFailure(_) => Failure::new(
            Cause::Configuration,
            format!(
                "the request could not be made ({})",
                one_line(&chain(dyn_e).join(": "), SAID)
            ),
        ),
        _ => Failure::new(
            Cause::Network,
            format!(
                "the call to `{endpoint}` failed ({})",
                one_line(chain(dyn_e).last().map_or("", String::as_str), SAID)
            ),
        ),
    }
}

/// A `reqwest` error that left no answer, classified.
pub fn from_http(e: &reqwest::Error, endpoint: &str) -> Failure {
    tracing::debug!(error = ?e, endpoint, "HTTP request failed");
    let dyn_e: &(dyn std::error::Error + 'static) = e;
    if e.is_timeout() {
        return timed_out(endpoint);
    }
    connection(dyn_e, endpoint).unwrap_or_else(|| {
        Failure::new(
            Cause::Network,
            format!(
                "the request to `{endpoint}` failed ({})",
                one_line(chain(dyn_e).last().map_or("", String::as_str), SAID)
            ),
        )
    })
}

/// An HTTP answer that is an error, classified by its status.
pub fn from_status(status: u16, endpoint: &str, body: &str) -> Failure {
    let said = one_line(body, SAID);
    let with = |what: String| {
        if said.is_empty() {
            what
        } else {
            format!("{what}: {said}")
        }
    };
    match status {
        401 => Failure::new(
            Cause::Credentials,
            with(format!("`{endpoint}` refused the credentials (HTTP 401)")),
        )
        .hint("check that the registry token is for this registry"),
        403 => Failure::new(
            Cause::Permission,
            with(format!("`{endpoint}` does not allow this (HTTP 403)")),
        ),
        404 => Failure::new(
            Cause::NotFound,
            with(format!("`{endpoint}` has no such thing (HTTP 404)")),
        ),
        429 => Failure::new(
            Cause::Throttled,
            with(format!("`{endpoint}` throttled the requests (HTTP 429)")),
        )
        .hint("run again later, or with a lower `build-concurrency`"),
        s if s >= 500 => Failure::new(
            Cause::Server,
            with(format!("`{endpoint}` failed (HTTP {s})")),
        )
        .hint("run again; if it persists, check the registry's status"),
        s => Failure::new(
            Cause::Rejected,
            with(format!("`{endpoint}` refused the request (HTTP {s})")),
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_spoken_in_their_largest_units() {
        let said = |s: u64| super::spoken(std::time::Duration::from_secs(s));
        assert_eq!(said(0), "0 s");
        assert_eq!(said(45), "45 s");
        assert_eq!(said(300), "5 min");
        assert_eq!(said(125), "2 min 5 s");
        assert_eq!(said(5400), "1 h 30 min");
    }

    use super::*;

    #[test]
    fn statuses_read_as_causes() {
        assert_eq!(from_status(401, "r", "").cause, Cause::Credentials);
        assert_eq!(from_status(403, "r", "").cause, Cause::Permission);
        assert_eq!(from_status(429, "r", "").cause, Cause::Throttled);
        assert_eq!(from_status(503, "r", "").cause, Cause::Server);
        let f = from_status(400, "r", "{\n \"errors\": [1]\n}");
        assert_eq!(
            f.to_string(),
            "`r` refused the request (HTTP 400): { \"errors\": [1] }"
        );
    }

    #[test]
    fn xml_error_bodies_are_read() {
        let body = "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
        assert_eq!(
            element(body, "Code").as_deref(),
            Some("InvalidClientTokenId")
        );
        assert_eq!(
            element(body, "Message").as_deref(),
            Some("The security token included in the request is invalid.")
        );
        assert_eq!(element("{}", "Code"), None);
    }

    #[test]
    fn messages_stay_on_one_short_line() {
        let long = format!("a\nb {}", "x".repeat(500));
        let line = one_line(&long, 200);
        assert!(
            !line.contains('\n') && line.chars().count() <= 201,
            "{line}"
        );
        assert_eq!(said("", ""), "");
        assert_eq!(said("Throttling", ""), " (Throttling)");
    }
}
