//! A fake GitHub REST API for the tests: an in-process HTTP/1.1 server, addressed through
//! `GITHUB_API_URL`, that holds every request against GitHub's own OpenAPI description
//! (`tests/fixtures/github/contract/rest-api-subset.json`) and keeps the state a reporter reads
//! back: issue comments, check runs, deployments and their statuses, and the pull requests a test
//! seeds.
//!
//! Each request is looked up by method and path template, its path and query parameters and its
//! JSON body are validated against the operation's schemas, and the headers GitHub insists on are
//! checked. A request the real GitHub would refuse is refused here the same way (404, 401, 403,
//! 422 with GitHub's error body) and recorded as a violation; tests end with
//! [`GithubFake::assert_no_violations`]. A field GitHub silently ignores (a typo, a parameter the
//! endpoint does not take) is answered as GitHub would and recorded as a violation too. The fake
//! never answers a request GitHub would refuse with success, and its own answers are checked
//! against the contract's response schemas, so a reporter built against it reads GitHub's shapes.
//!
//! Faults are injected per method and path prefix: [`GithubFake::fail_next`] (GitHub's body for
//! that status), [`GithubFake::rate_limit_next`], [`GithubFake::delay_next`] and the general
//! [`GithubFake::inject`].

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Map, Value};

/// Where the contract lives in the repository.
pub const CONTRACT_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/github/contract/rest-api-subset.json"
);

/// The longest issue comment body GitHub takes, in characters; the description does not say so,
/// GitHub's answer does: "body is too long (maximum is 65536 characters)".
pub const COMMENT_BODY_MAX_CHARS: usize = 65_536;

/// The longest deployment status description, in characters (the contract says so in prose).
pub const DEPLOYMENT_STATUS_DESCRIPTION_MAX_CHARS: usize = 140;

/// The only REST API version GitHub accepts in `X-GitHub-Api-Version`.
pub const API_VERSION: &str = "2022-11-28";

/// The user a `GITHUB_TOKEN` acts as: comments the fake creates are this user's.
pub const BOT_LOGIN: &str = "github-actions[bot]";
const BOT_ID: u64 = 41_898_282;

/// GitHub's own ids are past `i32::MAX` (comments) and `u32::MAX` (check runs): a client that
/// truncates them breaks here as it would there.
const FIRST_COMMENT_ID: u64 = 2_500_000_001;
const FIRST_CHECK_RUN_ID: u64 = 30_000_000_001;
const FIRST_DEPLOYMENT_ID: u64 = 1_900_000_001;
const FIRST_STATUS_ID: u64 = 3_100_000_001;

// ---------------------------------------------------------------------------------------------
// What the tests see

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string, as sent (percent-encoded).
    pub path: String,
    /// Query parameters, decoded, in the order sent.
    pub query: Vec<(String, String)>,
    /// The body parsed as JSON; a body that is not JSON is kept as a JSON string.
    pub body: Option<Value>,
    /// Header names lower-cased; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The token from `Authorization: Bearer …` or `Authorization: token …`.
    pub token: Option<String>,
    /// The contract's `operationId`, when the request named one (`issues/create-comment`).
    pub operation: Option<String>,
    /// The status the fake answered with.
    pub status: u16,
}

impl Recorded {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request GitHub would refuse or ignore, or an answer of the fake's own that broke the
/// contract.
#[derive(Clone, Debug)]
pub struct Violation {
    pub method: String,
    pub path: String,
    pub operation: Option<String>,
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(op) = &self.operation {
            write!(f, " ({op})")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// An issue or pull request comment.
#[derive(Clone, Debug)]
pub struct Comment {
    pub id: u64,
    pub issue: u64,
    pub body: String,
    /// The author's login: [`BOT_LOGIN`] for comments made through the API.
    pub author: String,
    pub created_at: String,
    pub updated_at: String,
}

/// What a check run shows under its name.
#[derive(Clone, Debug, Default)]
pub struct CheckOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    /// Every annotation sent, across creates and updates (GitHub appends them).
    pub annotations: Vec<Value>,
    pub images: Vec<Value>,
}

/// A check run.
#[derive(Clone, Debug)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    /// `queued`, `in_progress` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub output: CheckOutput,
    pub actions: Vec<Value>,
    /// How many updates (`PATCH`) it received.
    pub updates: usize,
}

/// A deployment, with its statuses oldest first.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub id: u64,
    /// The `ref` it was created for.
    pub git_ref: String,
    pub sha: String,
    pub task: String,
    pub environment: String,
    pub original_environment: String,
    pub description: Option<String>,
    pub payload: Value,
    pub transient_environment: bool,
    pub production_environment: bool,
    pub auto_merge: bool,
    pub required_contexts: Option<Vec<String>>,
    pub created_at: String,
    pub updated_at: String,
    pub statuses: Vec<DeploymentStatus>,
}

/// One status of a deployment.
#[derive(Clone, Debug)]
pub struct DeploymentStatus {
    pub id: u64,
    pub state: String,
    pub description: String,
    pub environment: String,
    pub environment_url: String,
    pub log_url: String,
    pub target_url: String,
    pub created_at: String,
    /// Whether GitHub added it (`auto_inactive`) rather than a request.
    pub automatic: bool,
}

/// A pull request the fake knows (seeded by the test).
#[derive(Clone, Debug)]
pub struct Pull {
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
    /// `open` or `closed`.
    pub state: String,
    pub merged: bool,
    pub draft: bool,
    pub title: String,
}

impl Pull {
    /// An open pull request from `feature-{number}` into `main`.
    pub fn open(number: u64, head_sha: &str) -> Self {
        Pull {
            number,
            head_sha: head_sha.into(),
            head_ref: format!("feature-{number}"),
            base_ref: "main".into(),
            state: "open".into(),
            merged: false,
            draft: false,
            title: format!("Pull request {number}"),
        }
    }
}

/// How to answer a request instead of handling it.
#[derive(Clone, Debug)]
pub enum Fault {
    /// GitHub's answer for that status: 401 "Bad credentials", 403 "Resource not accessible by
    /// integration", 404 "Not Found", 409, 422, 500, 502 (an HTML page, as GitHub's front end
    /// sends), 503, 504.
    Status(u16),
    /// The primary rate limit is spent: `status` (403 or 429) with `x-ratelimit-remaining: 0`
    /// and `x-ratelimit-reset` `reset_in` from now.
    RateLimited { status: u16, reset_in: Duration },
    /// A secondary rate limit: `status` (403 or 429) with `retry-after`.
    SecondaryRateLimit { status: u16, retry_after: Duration },
    /// Any status, headers and body (sent as `content-type`, when given among the headers).
    Custom {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Handle the request normally, after this pause.
    Delay(Duration),
}

// ---------------------------------------------------------------------------------------------
// The server

/// The fake GitHub. Dropping it stops the server; it never panics on drop (call
/// [`GithubFake::assert_no_violations`]), though it prints violations nobody asserted on.
pub struct GithubFake {
    server: super::serve::Server,
    state: Arc<Mutex<State>>,
}

impl Drop for GithubFake {
    fn drop(&mut self) {
        if let Ok(st) = self.state.lock() {
            if !st.violations.is_empty() && !st.asserted {
                eprintln!("{}", describe_violations(&st.violations));
            }
        }
    }
}

impl GithubFake {
    /// A fake serving the repository `acme/cdc` (what the tests' `GITHUB_REPOSITORY` names).
    pub async fn start() -> Self {
        Self::start_for("acme/cdc").await
    }

    /// A fake serving `owner/repo`; requests for any other repository are answered 404.
    pub async fn start_for(repository: &str) -> Self {
        let (owner, repo) = repository
            .split_once('/')
            .expect("the repository is `owner/repo`");
        let _ = contract();
        // The state names the server's own address (in `url` fields), known once it is up;
        // nothing can reach the server before this returns.
        let state: Arc<Mutex<State>> = Arc::new(Mutex::new(State::new(owner, repo, "")));
        let shared = state.clone();
        let server = super::serve::serve(move |req: Request<Incoming>| {
            let state = shared.clone();
            async move { serve(req, &state).await }
        })
        .await;
        state.lock().unwrap().base = format!("http://{}", server.addr);
        GithubFake { server, state }
    }

    /// The base URL, for `GITHUB_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `owner/repo` the fake serves.
    pub fn repository(&self) -> String {
        let st = self.lock();
        format!("{}/{}", st.owner, st.repo)
    }

    /// Accept only this token (any non-empty token is accepted otherwise).
    pub fn require_token(&self, token: &str) {
        self.lock().required_token = Some(token.into());
    }

    // --- seeding

    /// A comment by [`BOT_LOGIN`] on `issue`, as an earlier run would have left it. Returns its id.
    pub fn seed_comment(&self, issue: u64, body: &str) -> u64 {
        self.seed_comment_by(issue, BOT_LOGIN, body)
    }

    /// A comment by `login` on `issue` (someone else's, say). Returns its id.
    pub fn seed_comment_by(&self, issue: u64, login: &str, body: &str) -> u64 {
        let mut st = self.lock();
        let now = now();
        st.add_comment(issue, login, body, &now)
    }

    /// An open pull request `number` whose head is `sha`, associated with that commit.
    pub fn pull_for_commit(&self, sha: &str, number: u64) {
        self.seed_pull(Pull::open(number, sha));
    }

    /// A pull request, associated with its head commit.
    pub fn seed_pull(&self, pull: Pull) {
        let mut st = self.lock();
        let shas = st.commit_pulls.entry(pull.head_sha.clone()).or_default();
        if !shas.contains(&pull.number) {
            shas.push(pull.number);
        }
        st.pulls.insert(pull.number, pull);
    }

    /// What `ref` (a branch or tag name) points at, for deployments created from a ref that is
    /// not a SHA. Unknown refs resolve to a SHA made from their name.
    pub fn seed_ref(&self, git_ref: &str, sha: &str) {
        self.lock().refs.insert(git_ref.into(), sha.into());
    }

    // --- faults

    /// Answer the next `n` requests whose method is `method` (`*` for any) and whose path starts
    /// with `path_prefix` with `status` and GitHub's body for it.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, n: usize) {
        self.inject(method, path_prefix, Fault::Status(status), n);
    }

    /// Answer the next `n` matching requests with a spent primary rate limit: 403,
    /// `x-ratelimit-remaining: 0`, `x-ratelimit-reset` a minute from now.
    pub fn rate_limit_next(&self, method: &str, path_prefix: &str, n: usize) {
        self.inject(
            method,
            path_prefix,
            Fault::RateLimited {
                status: 403,
                reset_in: Duration::from_secs(60),
            },
            n,
        );
    }

    /// Handle the next `n` matching requests after a pause.
    pub fn delay_next(&self, method: &str, path_prefix: &str, delay: Duration, n: usize) {
        self.inject(method, path_prefix, Fault::Delay(delay), n);
    }

    /// Answer the next `n` matching requests with `fault`. Faults apply in the order injected;
    /// a request that breaks the contract is refused for that and consumes no fault.
    pub fn inject(&self, method: &str, path_prefix: &str, fault: Fault, n: usize) {
        self.lock().faults.push(FaultRule {
            method: method.to_ascii_uppercase(),
            prefix: path_prefix.into(),
            fault,
            left: n,
        });
    }

    // --- reading back

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests with this method (`*` for any) whose path starts with `path_prefix`.
    pub fn requests_to(&self, method: &str, path_prefix: &str) -> Vec<Recorded> {
        let method = method.to_ascii_uppercase();
        self.lock()
            .requests
            .iter()
            .filter(|r| (method == "*" || r.method == method) && r.path.starts_with(path_prefix))
            .cloned()
            .collect()
    }

    /// The comments on `issue`, oldest first.
    pub fn comments(&self, issue: u64) -> Vec<Comment> {
        self.lock()
            .comments
            .values()
            .filter(|c| c.issue == issue)
            .cloned()
            .collect()
    }

    /// Every check run, oldest first.
    pub fn check_runs(&self) -> Vec<CheckRun> {
        self.lock().check_runs.values().cloned().collect()
    }

    /// Every deployment, oldest first.
    pub fn deployments(&self) -> Vec<Deployment> {
        self.lock().deployments.values().cloned().collect()
    }

    /// Every violation so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// The violations so far, forgotten by the fake (for a test that expects some).
    pub fn take_violations(&self) -> Vec<Violation> {
        std::mem::take(&mut self.lock().violations)
    }

    /// Panic, listing them, if any request broke the contract.
    pub fn assert_no_violations(&self) {
        let mut st = self.lock();
        st.asserted = true;
        if !st.violations.is_empty() {
            let text = describe_violations(&st.violations);
            drop(st);
            panic!("{text}");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn describe_violations(violations: &[Violation]) -> String {
    let mut text = format!(
        "the fake GitHub saw {} contract violation(s):",
        violations.len()
    );
    for (i, v) in violations.iter().enumerate() {
        text.push_str(&format!("\n  {}. {v}", i + 1));
    }
    text
}

// ---------------------------------------------------------------------------------------------
// State

struct FaultRule {
    method: String,
    prefix: String,
    fault: Fault,
    left: usize,
}

impl FaultRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        self.left > 0
            && (self.method == "*" || self.method == method)
            && path.starts_with(&self.prefix)
    }
}

struct State {
    owner: String,
    repo: String,
    base: String,
    required_token: Option<String>,
    comments: BTreeMap<u64, Comment>,
    check_runs: BTreeMap<u64, CheckRun>,
    deployments: BTreeMap<u64, Deployment>,
    pulls: BTreeMap<u64, Pull>,
    commit_pulls: BTreeMap<String, Vec<u64>>,
    refs: BTreeMap<String, String>,
    /// Authors other than the bot, with the ids the fake gave them.
    users: BTreeMap<String, u64>,
    next_comment: u64,
    next_check_run: u64,
    next_deployment: u64,
    next_status: u64,
    requests: Vec<Recorded>,
    violations: Vec<Violation>,
    faults: Vec<FaultRule>,
    rate_used: u64,
    rate_reset: u64,
    asserted: bool,
}

impl State {
    fn new(owner: &str, repo: &str, base: &str) -> Self {
        State {
            owner: owner.into(),
            repo: repo.into(),
            base: base.into(),
            required_token: None,
            comments: BTreeMap::new(),
            check_runs: BTreeMap::new(),
            deployments: BTreeMap::new(),
            pulls: BTreeMap::new(),
            commit_pulls: BTreeMap::new(),
            refs: BTreeMap::new(),
            users: BTreeMap::new(),
            next_comment: FIRST_COMMENT_ID,
            next_check_run: FIRST_CHECK_RUN_ID,
            next_deployment: FIRST_DEPLOYMENT_ID,
            next_status: FIRST_STATUS_ID,
            requests: Vec::new(),
            violations: Vec::new(),
            faults: Vec::new(),
            rate_used: 0,
            rate_reset: epoch_seconds() + 3600,
            asserted: false,
        }
    }

    fn api(&self) -> String {
        format!("{}/repos/{}/{}", self.base, self.owner, self.repo)
    }

    fn add_comment(&mut self, issue: u64, login: &str, body: &str, now: &str) -> u64 {
        let id = self.next_comment;
        self.next_comment += 1;
        if login != BOT_LOGIN && !self.users.contains_key(login) {
            let id = 5_000_000 + self.users.len() as u64;
            self.users.insert(login.into(), id);
        }
        self.comments.insert(
            id,
            Comment {
                id,
                issue,
                body: body.into(),
                author: login.into(),
                created_at: now.into(),
                updated_at: now.into(),
            },
        );
        id
    }
}

// ---------------------------------------------------------------------------------------------
// The contract

struct Operation {
    method: String,
    template: String,
    segments: Vec<Segment>,
    id: String,
    spec: Value,
}

impl Operation {
    fn doc_url(&self) -> String {
        self.spec["externalDocs"]["url"]
            .as_str()
            .unwrap_or("https://docs.github.com/rest")
            .to_string()
    }

    fn parameters(&self) -> impl Iterator<Item = &Value> {
        self.spec["parameters"].as_array().into_iter().flatten()
    }

    fn body_schema(&self) -> Option<&Value> {
        self.spec
            .get("requestBody")
            .map(|b| &b["content"]["application/json"]["schema"])
    }

    /// The example answer GitHub documents for `status` (the one named `name`, or the first).
    fn example(&self, status: u16, name: Option<&str>) -> Value {
        let examples =
            &self.spec["responses"][status.to_string()]["content"]["application/json"]["examples"];
        let example = match name {
            Some(n) => &examples[n],
            None => examples
                .as_object()
                .and_then(|o| o.values().next())
                .unwrap_or(&Value::Null),
        };
        assert!(
            !example.is_null(),
            "the contract has no example {name:?} for {status} of {}",
            self.id
        );
        example["value"].clone()
    }
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

struct Contract {
    operations: Vec<Operation>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let text = std::fs::read_to_string(CONTRACT_PATH)
            .unwrap_or_else(|e| panic!("cannot read the GitHub contract `{CONTRACT_PATH}`: {e}"));
        let doc: Value = serde_json::from_str(&text).expect("the GitHub contract is JSON");
        let mut operations = Vec::new();
        for (template, item) in doc["paths"].as_object().expect("paths") {
            for (method, spec) in item.as_object().expect("a path item") {
                if !["get", "put", "post", "patch", "delete"].contains(&method.as_str()) {
                    continue;
                }
                let segments = template
                    .trim_start_matches('/')
                    .split('/')
                    .map(
                        |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                            Some(name) => Segment::Param(name.into()),
                            None => Segment::Literal(s.into()),
                        },
                    )
                    .collect();
                operations.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    segments,
                    id: spec["operationId"].as_str().unwrap_or_default().into(),
                    spec: spec.clone(),
                });
            }
        }
        Contract { operations }
    })
}

fn operation(id: &str) -> &'static Operation {
    contract()
        .operations
        .iter()
        .find(|o| o.id == id)
        .unwrap_or_else(|| panic!("the contract has no operation `{id}`"))
}

/// Path parameters by name if `path` (split at `/`, still percent-encoded) fits `segments`. A
/// `{ref}` may span several segments (`heads/main`), as GitHub documents for refs.
fn match_segments(segments: &[Segment], path: &[&str]) -> Option<Vec<(String, String)>> {
    match segments.split_first() {
        None => path.is_empty().then(Vec::new),
        Some((Segment::Literal(l), rest)) => {
            let (first, tail) = path.split_first()?;
            if first != l {
                return None;
            }
            match_segments(rest, tail)
        }
        Some((Segment::Param(name), rest)) => {
            let most = if name == "ref" {
                path.len()
            } else {
                path.len().min(1)
            };
            for take in 1..=most {
                if path[..take].iter().any(|s| s.is_empty()) {
                    break;
                }
                if let Some(mut found) = match_segments(rest, &path[take..]) {
                    found.insert(0, (name.clone(), percent_decode(&path[..take].join("/"))));
                    return Some(found);
                }
            }
            None
        }
    }
}

/// Check `body` against the request schema of `method template` the way the fake does; returns
/// the problems GitHub would refuse the body for. For tests of the validator itself.
pub fn check_request_body(method: &str, template: &str, body: &Value) -> Vec<String> {
    let op = contract()
        .operations
        .iter()
        .find(|o| o.method == method.to_ascii_uppercase() && o.template == template)
        .unwrap_or_else(|| panic!("the contract has no `{method} {template}`"));
    let mut problems = Vec::new();
    check(
        op.body_schema().expect("the operation takes a body"),
        body,
        "",
        &mut problems,
    );
    problems
        .into_iter()
        .filter(|p| p.severity != Severity::Ignored)
        .map(|p| p.message)
        .collect()
}

/// Check the example responses of the contract against their own schemas; returns the problems.
/// For tests of the validator itself.
pub fn check_contract_examples() -> Vec<String> {
    let mut out = Vec::new();
    for op in &contract().operations {
        let requests = op.spec["requestBody"]["content"]["application/json"]["examples"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, ex)| (format!("request example `{name}`"), op.body_schema(), ex));
        let responses = op.spec["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .flat_map(|(status, r)| {
                let content = &r["content"]["application/json"];
                content["examples"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(move |(name, ex)| {
                        (
                            format!("{status} example `{name}`"),
                            Some(&content["schema"]),
                            ex,
                        )
                    })
            });
        for (what, schema, ex) in requests.chain(responses) {
            let mut problems = Vec::new();
            check(schema.unwrap(), &ex["value"], "", &mut problems);
            for p in problems
                .into_iter()
                .filter(|p| p.severity != Severity::Ignored)
            {
                out.push(format!(
                    "{} {} {what}: {}",
                    op.method, op.template, p.message
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The schema validator: the OpenAPI 3.0 subset GitHub's description uses

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Severity {
    /// GitHub answers 422.
    Refused,
    /// GitHub ignores it (an unknown field): answered normally, recorded as a violation.
    Ignored,
    /// The schema says something the fake does not understand: recorded so it gets taught.
    FakeLimit,
}

#[derive(Clone, Debug)]
struct Problem {
    field: String,
    /// GitHub's error code: `missing_field`, `invalid` or `custom`.
    code: &'static str,
    message: String,
    severity: Severity,
}

impl Problem {
    fn refused(field: &str, code: &'static str, message: String) -> Self {
        Problem {
            field: field.into(),
            code,
            message,
            severity: Severity::Refused,
        }
    }
}

/// Keywords that describe and do not constrain.
const ANNOTATION_KEYWORDS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "externalDocs",
];

/// Keywords the validator enforces.
const VALIDATION_KEYWORDS: &[&str] = &[
    "type",
    "nullable",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "format",
];

fn field_at(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.into()
    } else {
        format!("{at}.{name}")
    }
}

fn shown(at: &str) -> String {
    if at.is_empty() {
        "the body".into()
    } else {
        format!("`{at}`")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    match ty {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        // Strict: 2.0 is not an integer here, though JSON Schema would let it pass.
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Check `value` at `at` against `schema`, adding what is wrong to `out`.
fn check(schema: &Value, value: &Value, at: &str, out: &mut Vec<Problem>) {
    let Some(s) = schema.as_object() else {
        return;
    };
    for key in s.keys() {
        if !ANNOTATION_KEYWORDS.contains(&key.as_str())
            && !VALIDATION_KEYWORDS.contains(&key.as_str())
            && !key.starts_with("x-")
        {
            out.push(Problem {
                field: at.into(),
                code: "invalid",
                message: format!(
                    "the fake does not understand the schema keyword `{key}` at {}: teach tests/support/github.rs",
                    shown(at)
                ),
                severity: Severity::FakeLimit,
            });
        }
    }
    let types: Vec<&str> = match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if value.is_null() && (s.get("nullable") == Some(&Value::Bool(true)) || types.contains(&"null"))
    {
        return;
    }
    if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
        out.push(Problem::refused(
            at,
            "invalid",
            format!(
                "{} is {}, not {}",
                shown(at),
                kind(value),
                types.join(" or ")
            ),
        ));
        return;
    }
    if let Some(allowed) = s.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push(Problem::refused(
                at,
                "invalid",
                format!(
                    "{} is {value}, which is not one of [{}]",
                    shown(at),
                    list.join(", ")
                ),
            ));
        }
    }
    // GitHub's schemas default some `uri` fields to "": the default is taken as valid.
    if let Some(format) = s.get("format").and_then(Value::as_str) {
        if s.get("default") != Some(value) {
            check_format(format, value, at, out);
        }
    }
    match value {
        Value::String(text) => {
            let chars = text.chars().count();
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if chars as u64 > max {
                    out.push(Problem::refused(
                        at,
                        "custom",
                        format!(
                            "{} is too long ({chars} characters; the maximum is {max})",
                            shown(at)
                        ),
                    ));
                }
            }
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if (chars as u64) < min {
                    out.push(Problem::refused(
                        at,
                        "custom",
                        format!(
                            "{} is too short ({chars} characters; the minimum is {min})",
                            shown(at)
                        ),
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
                if items.len() as u64 > max {
                    out.push(Problem::refused(
                        at,
                        "custom",
                        format!(
                            "{} has {} items; the maximum is {max}",
                            shown(at),
                            items.len()
                        ),
                    ));
                }
            }
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    out.push(Problem::refused(
                        at,
                        "custom",
                        format!(
                            "{} has {} items; the minimum is {min}",
                            shown(at),
                            items.len()
                        ),
                    ));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{at}[{i}]"), out);
                }
            }
        }
        Value::Object(fields) => check_object(s, fields, at, out),
        _ => {}
    }
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            check(sub, value, at, out);
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let tried: Vec<Vec<Problem>> = any.iter().map(|sub| branch(sub, value, at)).collect();
        if !tried.iter().any(|p| refusals(p) == 0) {
            out.push(none_matched("anyOf", at, &tried));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let tried: Vec<Vec<Problem>> = one.iter().map(|sub| branch(sub, value, at)).collect();
        match tried.iter().filter(|p| refusals(p) == 0).count() {
            0 => out.push(none_matched("oneOf", at, &tried)),
            1 => {}
            n => out.push(Problem::refused(
                at,
                "invalid",
                format!(
                    "{} fits {n} of the shapes `oneOf` allows; it must fit exactly one",
                    shown(at)
                ),
            )),
        }
    }
}

fn branch(schema: &Value, value: &Value, at: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    check(schema, value, at, &mut problems);
    problems
}

fn refusals(problems: &[Problem]) -> usize {
    problems
        .iter()
        .filter(|p| p.severity == Severity::Refused)
        .count()
}

fn none_matched(keyword: &str, at: &str, tried: &[Vec<Problem>]) -> Problem {
    let reasons: Vec<String> = tried
        .iter()
        .enumerate()
        .map(|(i, ps)| {
            let why: Vec<&str> = ps
                .iter()
                .filter(|p| p.severity == Severity::Refused)
                .map(|p| p.message.as_str())
                .collect();
            format!("({}) {}", i + 1, why.join("; "))
        })
        .collect();
    Problem::refused(
        at,
        "invalid",
        format!(
            "{} fits none of the shapes `{keyword}` allows: {}",
            shown(at),
            reasons.join(" ")
        ),
    )
}

fn check_object(
    s: &Map<String, Value>,
    fields: &Map<String, Value>,
    at: &str,
    out: &mut Vec<Problem>,
) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                let field = field_at(at, name);
                out.push(Problem::refused(
                    &field,
                    "missing_field",
                    format!("`{field}` wasn't supplied"),
                ));
            }
        }
    }
    let properties = s.get("properties").and_then(Value::as_object);
    for (name, v) in fields {
        let field = field_at(at, name);
        if let Some(sub) = properties.and_then(|p| p.get(name)) {
            check(sub, v, &field, out);
            continue;
        }
        match s.get("additionalProperties") {
            Some(Value::Bool(false)) => out.push(Problem::refused(
                &field,
                "invalid",
                format!("`{field}` is not a field this takes"),
            )),
            Some(extra @ Value::Object(_)) => check(extra, v, &field, out),
            Some(_) => {}
            None if properties.is_some() => out.push(Problem {
                field: field.clone(),
                code: "invalid",
                message: format!("`{field}` is not a field GitHub knows here; GitHub ignores it"),
                severity: Severity::Ignored,
            }),
            None => {}
        }
    }
}

fn check_format(format: &str, value: &Value, at: &str, out: &mut Vec<Problem>) {
    let ok = match (format, value) {
        ("date-time", Value::String(s)) => parse_date_time(s).is_some(),
        ("uri", Value::String(s)) => has_scheme(s),
        ("int64", v) => !v.is_number() || v.is_i64(),
        ("int32", v) => !v.is_number() || v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ("date-time" | "uri", _) => true,
        (other, _) => {
            out.push(Problem {
                field: at.into(),
                code: "invalid",
                message: format!(
                    "the fake does not understand the format `{other}` at {}: teach tests/support/github.rs",
                    shown(at)
                ),
                severity: Severity::FakeLimit,
            });
            true
        }
    };
    if !ok {
        let hint = if format == "date-time" {
            " (ISO 8601: YYYY-MM-DDTHH:MM:SSZ)"
        } else {
            ""
        };
        out.push(Problem::refused(
            at,
            "invalid",
            format!("{} is {value}, not a valid {format}{hint}", shown(at)),
        ));
    }
}

fn has_scheme(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// Seconds since the epoch of an RFC 3339 date-time (the ISO 8601 profile GitHub takes), or
/// `None` when `s` is not one.
fn parse_date_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut at = 19;
    if b[at] == b'.' {
        let n = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    let offset = match &b[at..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let sign = if *sign == b'+' { 1 } else { -1 };
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

// ---------------------------------------------------------------------------------------------
// Serving a request

/// What the fake answers.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<String>,
    content_type: &'static str,
    /// The JSON answered, for checking it against the contract.
    json: Option<Value>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(body.to_string()),
            content_type: "application/json; charset=utf-8",
            json: Some(body),
        }
    }

    fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: None,
            content_type: "application/json; charset=utf-8",
            json: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// GitHub's error body.
fn error(status: u16, message: &str, doc: &str) -> Reply {
    Reply::json(
        status,
        json!({"message": message, "documentation_url": doc, "status": status.to_string()}),
    )
}

/// GitHub's 422 body for `problems`.
fn validation_failed(resource: &str, problems: &[Problem], doc: &str) -> Reply {
    let errors: Vec<Value> = problems
        .iter()
        .map(|p| json!({"resource": resource, "code": p.code, "field": p.field, "message": p.message}))
        .collect();
    Reply::json(
        422,
        json!({"message": "Validation Failed", "errors": errors, "documentation_url": doc, "status": "422"}),
    )
}

/// GitHub's answer for `status`, as a fault.
fn fault_reply(fault: &Fault, doc: &str) -> Reply {
    match fault {
        Fault::Status(502) => Reply {
            status: 502,
            headers: Vec::new(),
            body: Some(
                "<!DOCTYPE html>\n<html>\n  <head><title>Unicorn! &middot; GitHub</title></head>\n  <body>\n    <p><strong>We had issues producing the response to your request.</strong></p>\n    <p>Sorry about that. Please try refreshing and contact us if the problem persists.</p>\n  </body>\n</html>\n"
                    .into(),
            ),
            content_type: "text/html; charset=utf-8",
            json: None,
        },
        Fault::Status(status) => {
            let message = match status {
                400 => "Problems parsing JSON",
                401 => "Bad credentials",
                403 => "Resource not accessible by integration",
                404 => "Not Found",
                409 => "Conflict",
                410 => "Gone",
                422 => "Validation Failed",
                500 => "Server Error",
                503 => "Service Unavailable",
                504 => "We couldn't respond to your request in time. Sorry about that. Please try resubmitting your request and contact us if the problem persists.",
                _ => "Fault injected by the test",
            };
            error(*status, message, doc)
        }
        Fault::RateLimited { status, reset_in } => error(
            *status,
            "API rate limit exceeded for installation ID 1. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
        )
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-used", "5000")
        .header("x-ratelimit-reset", (epoch_seconds() + reset_in.as_secs()).to_string())
        .header("x-ratelimit-resource", "core"),
        Fault::SecondaryRateLimit { status, retry_after } => error(
            *status,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:0000000:0000000:00000000.",
            "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
        )
        .header("retry-after", retry_after.as_secs().to_string()),
        Fault::Custom { status, headers, body } => {
            let mut reply = Reply {
                status: *status,
                headers: Vec::new(),
                body: Some(body.clone()),
                content_type: "application/json; charset=utf-8",
                json: None,
            };
            for (k, v) in headers {
                if k.eq_ignore_ascii_case("content-type") {
                    reply.content_type = "";
                }
                reply.headers.push((k.clone(), v.clone()));
            }
            reply
        }
        Fault::Delay(_) => unreachable!("delays are served before the request is handled"),
    }
}

/// A request, read and checked.
struct Call<'a> {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: &'a BTreeMap<String, String>,
    body_text: String,
    op: Option<&'static Operation>,
    params: BTreeMap<String, String>,
}

impl Call<'_> {
    fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    fn number(&self, name: &str) -> u64 {
        self.param(name).parse().unwrap_or(0)
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn serve(req: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_ascii_uppercase();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or_default());
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body_text = String::from_utf8_lossy(&bytes).into_owned();
    let body_json = if body_text.is_empty() {
        None
    } else {
        Some(serde_json::from_str(&body_text).unwrap_or_else(|_| Value::String(body_text.clone())))
    };

    let delay = {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.faults
            .iter_mut()
            .find(|f| matches!(f.fault, Fault::Delay(_)) && f.matches(&method, &path))
            .map(|f| {
                f.left -= 1;
                match f.fault {
                    Fault::Delay(d) => d,
                    _ => unreachable!(),
                }
            })
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }

    let mut call = Call {
        method,
        path,
        query,
        headers: &headers,
        body_text,
        op: None,
        params: BTreeMap::new(),
    };
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let reply = handle(&mut st, &mut call);
    if (200..300).contains(&reply.status) {
        if let (Some(op), Some(answered)) = (call.op, &reply.json) {
            check_own_answer(&mut st, &call, op, reply.status, answered);
        }
    }
    if call.op.is_some_and(|o| o.id != "rate-limit/get") {
        st.rate_used += 1;
    }
    let token = headers.get("authorization").and_then(|a| token_of(a));
    st.requests.push(Recorded {
        method: call.method.clone(),
        path: call.path.clone(),
        query: call.query.clone(),
        body: body_json,
        headers: headers.clone(),
        token,
        operation: call.op.map(|o| o.id.clone()),
        status: reply.status,
    });
    let remaining = 5000u64.saturating_sub(st.rate_used);
    let (used, reset) = (st.rate_used, st.rate_reset);
    drop(st);

    let mut response = Response::builder().status(reply.status);
    let custom: BTreeSet<String> = reply
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    let defaults = [
        ("x-github-media-type", "github.v3; format=json".to_string()),
        ("x-github-api-version-selected", API_VERSION.to_string()),
        (
            "x-github-request-id",
            "0000:0000:0000000:0000000:00000000".to_string(),
        ),
        ("x-ratelimit-limit", "5000".to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-used", used.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
    ];
    for (k, v) in defaults {
        if !custom.contains(k) {
            response = response.header(k, v);
        }
    }
    if reply.body.is_some() && !reply.content_type.is_empty() {
        response = response.header("content-type", reply.content_type);
    }
    for (k, v) in &reply.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    response
        .body(Full::new(Bytes::from(reply.body.unwrap_or_default())))
        .unwrap()
}

/// Whether comment `id` exists; a request that `verb`s (edits, deletes) one the action did not
/// write is a violation.
fn own_comment(st: &mut State, call: &Call, id: u64, verb: &str) -> bool {
    let Some(author) = st.comments.get(&id).map(|c| c.author.clone()) else {
        return false;
    };
    if author != BOT_LOGIN {
        violation(
            st,
            call,
            format!("{verb} a comment by `{author}`; the action must only touch its own comments"),
        );
    }
    true
}

fn violation(st: &mut State, call: &Call, problem: String) {
    st.violations.push(Violation {
        method: call.method.clone(),
        path: call.path.clone(),
        operation: call.op.map(|o| o.id.clone()),
        problem,
    });
}

fn token_of(authorization: &str) -> Option<String> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (["bearer", "token"].contains(&scheme.to_ascii_lowercase().as_str()) && !token.is_empty())
        .then(|| token.to_string())
}

/// The media types GitHub serves JSON for.
fn acceptable_media_type(item: &str) -> bool {
    let ty = item
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ty == "*/*"
        || ty == "application/json"
        || ty == "application/*"
        || ty == "application/vnd.github+json"
        || (ty.starts_with("application/vnd.github.") && ty.ends_with("+json"))
}

fn handle(st: &mut State, call: &mut Call) -> Reply {
    const GENERAL_DOC: &str = "https://docs.github.com/rest";
    // The route first, so violations name the operation.
    let segments: Vec<&str> = call
        .path
        .strip_prefix('/')
        .unwrap_or(&call.path)
        .split('/')
        .collect();
    let matches: Vec<(&'static Operation, Vec<(String, String)>)> = contract()
        .operations
        .iter()
        .filter_map(|o| match_segments(&o.segments, &segments).map(|p| (o, p)))
        .collect();
    let chosen = matches.iter().find(|(o, _)| o.method == call.method);
    if let Some((op, params)) = chosen {
        call.op = Some(*op);
        call.params = params.iter().cloned().collect();
    }

    // Headers GitHub insists on.
    if call
        .headers
        .get("user-agent")
        .is_none_or(|ua| ua.trim().is_empty())
    {
        violation(
            st,
            call,
            "no `User-Agent` header: GitHub refuses requests without one".into(),
        );
        return error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header (https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required). Check https://developer.github.com for other possible causes.",
            GENERAL_DOC,
        );
    }
    if let Some(version) = call.headers.get("x-github-api-version") {
        if version.trim() != API_VERSION {
            violation(
                st,
                call,
                format!("`X-GitHub-Api-Version: {version}` is not a version GitHub supports ({API_VERSION})"),
            );
            return error(
                400,
                &format!("API version '{version}' is not supported."),
                GENERAL_DOC,
            );
        }
    }
    if let Some(accept) = call.headers.get("accept") {
        if !accept.split(',').all(acceptable_media_type) {
            violation(
                st,
                call,
                format!("`Accept: {accept}` is not a GitHub JSON media type (`application/vnd.github+json`) or `*/*`"),
            );
            return error(
                415,
                &format!("Unsupported 'Accept' header: {accept}"),
                "https://docs.github.com/rest/overview/media-types",
            );
        }
    }
    match call.headers.get("authorization") {
        None => {
            violation(
                st,
                call,
                "no `Authorization` header: the action must send its token".into(),
            );
            return error(401, "Requires authentication", GENERAL_DOC);
        }
        Some(a) => match token_of(a) {
            None => {
                violation(
                    st,
                    call,
                    "`Authorization` is not `Bearer <token>` or `token <token>`".into(),
                );
                return error(401, "Bad credentials", GENERAL_DOC);
            }
            Some(t) if st.required_token.as_ref().is_some_and(|r| *r != t) => {
                violation(
                    st,
                    call,
                    "the token is not the one the test gave the action".into(),
                );
                return error(401, "Bad credentials", GENERAL_DOC);
            }
            Some(_) => {}
        },
    }

    let Some(op) = call.op else {
        let problem = if matches.is_empty() {
            "no operation in the GitHub contract has this path".to_string()
        } else {
            let methods: BTreeSet<&str> = matches.iter().map(|(o, _)| o.method.as_str()).collect();
            let methods: Vec<&str> = methods.into_iter().collect();
            format!(
                "the contract has this path for {} only, not {}",
                methods.join(", "),
                call.method
            )
        };
        violation(st, call, problem);
        return error(404, "Not Found", GENERAL_DOC);
    };
    let doc = op.doc_url();

    // Path parameters.
    for p in op.parameters().filter(|p| p["in"] == "path") {
        let name = p["name"].as_str().unwrap_or_default();
        let raw = call.param(name).to_string();
        let value = typed(&p["schema"], &raw);
        let mut problems = Vec::new();
        check(&p["schema"], &value, name, &mut problems);
        if refusals(&problems) > 0 {
            let why: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            violation(st, call, format!("path parameter: {}", why.join("; ")));
            return error(404, "Not Found", &doc);
        }
    }
    if call.params.contains_key("owner")
        && (!call.param("owner").eq_ignore_ascii_case(&st.owner)
            || !call.param("repo").eq_ignore_ascii_case(&st.repo))
    {
        let problem = format!(
            "the repository `{}/{}` is not the one the fake serves (`{}/{}`)",
            call.param("owner"),
            call.param("repo"),
            st.owner,
            st.repo
        );
        violation(st, call, problem);
        return error(404, "Not Found", &doc);
    }

    // Query parameters.
    let mut refused = Vec::new();
    for (name, raw) in call.query.clone() {
        let Some(p) = op
            .parameters()
            .find(|p| p["in"] == "query" && p["name"] == name.as_str())
        else {
            violation(
                st,
                call,
                format!(
                    "`{name}` is not a query parameter of {}; GitHub ignores it",
                    op.id
                ),
            );
            continue;
        };
        let value = typed(&p["schema"], &raw);
        check(&p["schema"], &value, &name, &mut refused);
    }
    refused.retain(|p| p.severity == Severity::Refused);
    if !refused.is_empty() {
        for p in &refused {
            violation(st, call, format!("query parameter: {}", p.message));
        }
        return validation_failed(resource_of(op), &refused, &doc);
    }

    // The body.
    let mut body = Value::Null;
    if let Some(schema) = op.body_schema() {
        if call.body_text.trim().is_empty() {
            violation(
                st,
                call,
                "no body; this operation requires a JSON body".into(),
            );
            return error(400, "Problems parsing JSON", &doc);
        }
        match serde_json::from_str::<Value>(&call.body_text) {
            Err(e) => {
                violation(st, call, format!("the body is not JSON ({e})"));
                return error(400, "Problems parsing JSON", &doc);
            }
            Ok(v) => body = v,
        }
        let mut problems = Vec::new();
        check(schema, &body, "", &mut problems);
        rules(st, op, call, &body, &mut problems);
        for p in &problems {
            let what = match p.severity {
                Severity::Refused => "refused",
                Severity::Ignored => "ignored",
                Severity::FakeLimit => "fake",
            };
            violation(st, call, format!("body ({what}): {}", p.message));
        }
        let refused: Vec<Problem> = problems
            .into_iter()
            .filter(|p| p.severity == Severity::Refused)
            .collect();
        if !refused.is_empty() {
            return validation_failed(resource_of(op), &refused, &doc);
        }
    } else if !call.body_text.trim().is_empty() {
        violation(
            st,
            call,
            format!("a body was sent, but {} takes none", op.id),
        );
    }

    // Injected faults, once the request is known to be one GitHub would take.
    if let Some(rule) = st
        .faults
        .iter_mut()
        .find(|f| !matches!(f.fault, Fault::Delay(_)) && f.matches(&call.method, &call.path))
    {
        rule.left -= 1;
        let fault = rule.fault.clone();
        return fault_reply(&fault, &doc);
    }

    answer(st, op, call, body, &doc)
}

/// The JSON a parameter's text stands for under its schema (an integer if it reads as one).
fn typed(schema: &Value, raw: &str) -> Value {
    let is_integer = schema["type"] == "integer"
        || schema["type"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "integer"));
    if is_integer {
        if let Ok(n) = raw.parse::<i64>() {
            return json!(n);
        }
    }
    if schema["type"] == "boolean" && (raw == "true" || raw == "false") {
        return json!(raw == "true");
    }
    Value::String(raw.into())
}

fn resource_of(op: &Operation) -> &'static str {
    match op.id.as_str() {
        id if id.starts_with("issues/") => "IssueComment",
        id if id.starts_with("checks/") => "CheckRun",
        "repos/create-deployment-status" => "DeploymentStatus",
        id if id.starts_with("repos/") => "Deployment",
        _ => "Resource",
    }
}

/// What GitHub refuses that the schema does not say: limits stated in prose, or in GitHub's
/// answers only.
fn rules(st: &State, op: &Operation, call: &Call, body: &Value, out: &mut Vec<Problem>) {
    match op.id.as_str() {
        "issues/create-comment" | "issues/update-comment" => {
            if let Some(text) = body["body"].as_str() {
                let chars = text.chars().count();
                if chars > COMMENT_BODY_MAX_CHARS {
                    out.push(Problem::refused(
                        "body",
                        "custom",
                        format!("body is too long (maximum is {COMMENT_BODY_MAX_CHARS} characters; this one has {chars})"),
                    ));
                }
                if text.trim().is_empty() {
                    out.push(Problem::refused(
                        "body",
                        "missing_field",
                        "body cannot be blank".into(),
                    ));
                }
            }
        }
        "repos/create-deployment-status" => {
            if let Some(text) = body["description"].as_str() {
                let chars = text.chars().count();
                if chars > DEPLOYMENT_STATUS_DESCRIPTION_MAX_CHARS {
                    out.push(Problem::refused(
                        "description",
                        "custom",
                        format!("description is too long (maximum is {DEPLOYMENT_STATUS_DESCRIPTION_MAX_CHARS} characters; this one has {chars})"),
                    ));
                }
            }
        }
        "repos/create-deployment" if body["ref"].as_str().is_some_and(|r| r.trim().is_empty()) => {
            out.push(Problem::refused(
                "ref",
                "missing_field",
                "`ref` is empty".into(),
            ));
        }
        "checks/create" | "checks/update" => {
            let creating = op.id == "checks/create";
            if creating {
                if let Some(sha) = body["head_sha"].as_str() {
                    if sha.len() != 40 || !sha.bytes().all(|c| c.is_ascii_hexdigit()) {
                        out.push(Problem::refused(
                            "head_sha",
                            "invalid",
                            format!("No commit found for SHA: {sha} (`head_sha` must be a full 40-character commit SHA)"),
                        ));
                    }
                }
                if body["status"] == "completed" && body.get("conclusion").is_none() {
                    out.push(Problem::refused(
                        "conclusion",
                        "missing_field",
                        "`conclusion` is required when `status` is `completed`".into(),
                    ));
                }
            } else if !st.check_runs.contains_key(&call.number("check_run_id")) {
                // A missing run is answered 404 later; no rule applies to it.
                return;
            }
            if body.get("completed_at").is_some() && body.get("conclusion").is_none() {
                out.push(Problem::refused(
                    "conclusion",
                    "missing_field",
                    "`conclusion` is required when `completed_at` is given".into(),
                ));
            }
            if body["conclusion"] == "stale" {
                out.push(Problem::refused(
                    "conclusion",
                    "invalid",
                    "only GitHub can set `conclusion` to `stale`".into(),
                ));
            }
            let output = &body["output"];
            if !creating && output.is_object() && output.get("title").is_none() {
                out.push(Problem::refused(
                    "output.title",
                    "missing_field",
                    "`output.title` wasn't supplied (the contract marks it **Required**)".into(),
                ));
            }
            for (i, a) in output["annotations"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = format!("output.annotations[{i}]");
                if a["title"].as_str().is_some_and(|t| t.chars().count() > 255) {
                    out.push(Problem::refused(
                        &format!("{at}.title"),
                        "custom",
                        format!("`{at}.title` is longer than 255 characters"),
                    ));
                }
                for field in ["message", "raw_details"] {
                    if a[field].as_str().is_some_and(|t| t.len() > 64 * 1024) {
                        out.push(Problem::refused(
                            &format!("{at}.{field}"),
                            "custom",
                            format!("`{at}.{field}` is larger than 64 KB"),
                        ));
                    }
                }
                let columns = a.get("start_column").is_some() || a.get("end_column").is_some();
                if columns && a["start_line"] != a["end_line"] {
                    out.push(Problem::refused(
                        &at,
                        "invalid",
                        format!("`{at}` gives columns, which GitHub takes only when `start_line` equals `end_line`"),
                    ));
                }
            }
        }
        _ => {}
    }
}

/// Check an answer of the fake's own against the contract's response schema.
fn check_own_answer(st: &mut State, call: &Call, op: &Operation, status: u16, answered: &Value) {
    let schema = &op.spec["responses"][status.to_string()]["content"]["application/json"]["schema"];
    let mut problems = Vec::new();
    if schema.is_null() {
        violation(
            st,
            call,
            format!("the fake answered {status}, which the contract does not list with a JSON body: a bug in tests/support/github.rs"),
        );
        return;
    }
    check(schema, answered, "", &mut problems);
    for p in problems
        .into_iter()
        .filter(|p| p.severity != Severity::Ignored)
    {
        violation(
            st,
            call,
            format!(
                "the fake's own answer breaks the contract (a bug in tests/support/github.rs): {}",
                p.message
            ),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

fn answer(st: &mut State, op: &Operation, call: &Call, body: Value, doc: &str) -> Reply {
    match op.id.as_str() {
        "rate-limit/get" => rate_limit(st, op),
        "issues/list-comments" => list_comments(st, op, call),
        "issues/create-comment" => {
            let issue = call.number("issue_number");
            if issue == 0 {
                return error(404, "Not Found", doc);
            }
            let id = st.add_comment(
                issue,
                BOT_LOGIN,
                body["body"].as_str().unwrap_or_default(),
                &now(),
            );
            let json = comment_json(st, op, &st.comments[&id]);
            let location = json["url"].as_str().unwrap_or_default().to_string();
            Reply::json(201, json).header("location", location)
        }
        "issues/get-comment" => match st.comments.get(&call.number("comment_id")) {
            Some(c) => Reply::json(200, comment_json(st, op, c)),
            None => error(404, "Not Found", doc),
        },
        "issues/update-comment" => {
            let id = call.number("comment_id");
            if !own_comment(st, call, id, "edits") {
                return error(404, "Not Found", doc);
            }
            let c = st.comments.get_mut(&id).unwrap();
            c.body = body["body"].as_str().unwrap_or_default().into();
            c.updated_at = now();
            Reply::json(200, comment_json(st, op, &st.comments[&id]))
        }
        "issues/delete-comment" => {
            let id = call.number("comment_id");
            if !own_comment(st, call, id, "deletes") {
                return error(404, "Not Found", doc);
            }
            st.comments.remove(&id);
            Reply::empty(204)
        }
        "checks/create" => create_check_run(st, op, body),
        "checks/get" => match st.check_runs.get(&call.number("check_run_id")) {
            Some(run) => Reply::json(200, check_run_json(st, run)),
            None => error(404, "Not Found", doc),
        },
        "checks/update" => update_check_run(st, call, body, doc),
        "checks/list-for-ref" => list_check_runs(st, op, call),
        "repos/list-pull-requests-associated-with-commit" => {
            let numbers = st
                .commit_pulls
                .get(call.param("commit_sha"))
                .cloned()
                .unwrap_or_default();
            let pulls: Vec<Value> = numbers
                .iter()
                .filter_map(|n| st.pulls.get(n))
                .map(|p| pull_json(st, p, true))
                .collect();
            paginated(st, op, call, pulls, Value::Array)
        }
        "pulls/get" => match st.pulls.get(&call.number("pull_number")) {
            Some(p) => Reply::json(200, pull_json(st, p, false)),
            None => error(404, "Not Found", doc),
        },
        "repos/create-deployment" => create_deployment(st, body),
        "repos/list-deployments" => {
            let filter = |name: &str| call.query(name).filter(|v| *v != "none");
            let list: Vec<Value> = st
                .deployments
                .values()
                .rev()
                .filter(|d| filter("sha").is_none_or(|v| v == d.sha))
                .filter(|d| filter("ref").is_none_or(|v| v == d.git_ref))
                .filter(|d| filter("task").is_none_or(|v| v == d.task))
                .filter(|d| filter("environment").is_none_or(|v| v == d.environment))
                .map(|d| deployment_json(st, d))
                .collect();
            paginated(st, op, call, list, Value::Array)
        }
        "repos/create-deployment-status" => create_deployment_status(st, call, body, doc),
        "repos/list-deployment-statuses" => {
            let Some(d) = st.deployments.get(&call.number("deployment_id")) else {
                return error(404, "Not Found", doc);
            };
            let list: Vec<Value> = d
                .statuses
                .iter()
                .rev()
                .map(|s| status_json(st, d, s))
                .collect();
            paginated(st, op, call, list, Value::Array)
        }
        other => {
            violation(
                st,
                call,
                format!("the fake has no answer for `{other}` yet: teach tests/support/github.rs"),
            );
            error(404, "Not Found", doc)
        }
    }
}

/// One page of `items` under GitHub's `per_page` and `page`, with its `Link` header.
fn paginated(
    st: &State,
    _op: &Operation,
    call: &Call,
    items: Vec<Value>,
    wrap: impl Fn(Vec<Value>) -> Value,
) -> Reply {
    let read = |name: &str, default: usize| {
        call.query(name)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(default)
    };
    // GitHub serves at most 100 a page, whatever is asked.
    let per_page = read("per_page", 30).min(100);
    let page = read("page", 1);
    let last = items.len().div_ceil(per_page).max(1);
    let shown: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let mut reply = Reply::json(200, wrap(shown));
    if last > 1 {
        let kept: Vec<String> = call
            .query
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        let link = |n: usize, rel: &str| {
            let mut q = kept.clone();
            q.push(format!("page={n}"));
            format!("<{}{}?{}>; rel=\"{rel}\"", st.base, call.path, q.join("&"))
        };
        let mut links = Vec::new();
        if page > 1 {
            links.push(link((page - 1).min(last), "prev"));
        }
        if page < last {
            links.push(link(page + 1, "next"));
            links.push(link(last, "last"));
        }
        if page > 1 {
            links.push(link(1, "first"));
        }
        reply = reply.header("link", links.join(", "));
    }
    reply
}

fn rate_limit(st: &State, op: &Operation) -> Reply {
    let mut v = op.example(200, None);
    let remaining = 5000u64.saturating_sub(st.rate_used);
    let core = json!({"limit": 5000, "remaining": remaining, "reset": st.rate_reset, "used": st.rate_used});
    v["rate"] = core.clone();
    v["resources"]["core"] = core;
    Reply::json(200, v)
}

/// An example of the contract with GitHub's sample repository, users and host made the fake's.
fn localised(st: &State, example: Value, replacements: &[(&str, &str)]) -> Value {
    let mut text = example.to_string();
    let repo = format!("{}/{}", st.owner, st.repo);
    for (from, to) in [
        ("https://api.github.com", st.base.as_str()),
        ("octocat/Hello-World", repo.as_str()),
        ("octocat/example", repo.as_str()),
        ("github/hello-world", repo.as_str()),
    ]
    .iter()
    .chain(replacements)
    {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

fn user_json(st: &State, login: &str) -> Value {
    let (id, kind) = if login == BOT_LOGIN {
        (BOT_ID, "Bot")
    } else {
        (st.users.get(login).copied().unwrap_or(5_000_000), "User")
    };
    let in_url = percent_encode(login);
    let example = operation("issues/get-comment").example(200, None)["user"].clone();
    let mut user = localised(
        st,
        example,
        &[
            ("users/octocat", &format!("users/{in_url}")),
            ("github.com/octocat", &format!("github.com/{in_url}")),
        ],
    );
    user["login"] = json!(login);
    user["id"] = json!(id);
    user["node_id"] = json!(format!("MDQ6VXNlcj{id}"));
    user["type"] = json!(kind);
    user["avatar_url"] = json!(format!("https://avatars.githubusercontent.com/u/{id}?v=4"));
    user
}

fn comment_json(st: &State, op: &Operation, c: &Comment) -> Value {
    let example = match op.id.as_str() {
        "issues/create-comment" => op.example(201, None),
        "issues/list-comments" => op.example(200, None)[0].clone(),
        _ => operation("issues/get-comment").example(200, None),
    };
    let mut v = localised(st, example, &[]);
    let kind = if st.pulls.contains_key(&c.issue) {
        "pull"
    } else {
        "issues"
    };
    v["id"] = json!(c.id);
    v["node_id"] = json!(format!("IC_kwDOfake{}", c.id));
    v["body"] = json!(c.body);
    v["user"] = user_json(st, &c.author);
    v["author_association"] = json!(if c.author == BOT_LOGIN {
        "NONE"
    } else {
        "MEMBER"
    });
    v["created_at"] = json!(c.created_at);
    v["updated_at"] = json!(c.updated_at);
    v["url"] = json!(format!("{}/issues/comments/{}", st.api(), c.id));
    v["issue_url"] = json!(format!("{}/issues/{}", st.api(), c.issue));
    v["html_url"] = json!(format!(
        "https://github.com/{}/{}/{kind}/{}#issuecomment-{}",
        st.owner, st.repo, c.issue, c.id
    ));
    v
}

fn list_comments(st: &State, op: &Operation, call: &Call) -> Reply {
    let issue = call.number("issue_number");
    let since = call.query("since").and_then(parse_date_time);
    let list: Vec<Value> = st
        .comments
        .values()
        .filter(|c| c.issue == issue)
        .filter(|c| since.is_none_or(|s| parse_date_time(&c.updated_at).unwrap_or(0) >= s))
        .map(|c| comment_json(st, op, c))
        .collect();
    paginated(st, op, call, list, Value::Array)
}

fn create_check_run(st: &mut State, _op: &Operation, body: Value) -> Reply {
    let id = st.next_check_run;
    st.next_check_run += 1;
    let now = now();
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let conclusion = text("conclusion");
    let status = if conclusion.is_some() {
        "completed".to_string()
    } else {
        text("status").unwrap_or_else(|| "queued".into())
    };
    let completed_at =
        (status == "completed").then(|| text("completed_at").unwrap_or_else(|| now.clone()));
    let mut output = CheckOutput::default();
    merge_output(&mut output, &body["output"]);
    let run = CheckRun {
        id,
        name: text("name").unwrap_or_default(),
        head_sha: text("head_sha").unwrap_or_default().to_ascii_lowercase(),
        status,
        conclusion,
        started_at: Some(text("started_at").unwrap_or(now)),
        completed_at,
        details_url: text("details_url"),
        external_id: text("external_id"),
        output,
        actions: body["actions"].as_array().cloned().unwrap_or_default(),
        updates: 0,
    };
    let json = check_run_json(st, &run);
    st.check_runs.insert(id, run);
    Reply::json(201, json)
}

fn merge_output(output: &mut CheckOutput, given: &Value) {
    let Some(o) = given.as_object() else {
        return;
    };
    for (field, slot) in [
        ("title", &mut output.title),
        ("summary", &mut output.summary),
        ("text", &mut output.text),
    ] {
        if let Some(v) = o.get(field).and_then(Value::as_str) {
            *slot = Some(v.into());
        }
    }
    if let Some(a) = o.get("annotations").and_then(Value::as_array) {
        output.annotations.extend(a.iter().cloned());
    }
    if let Some(i) = o.get("images").and_then(Value::as_array) {
        output.images = i.clone();
    }
}

fn update_check_run(st: &mut State, call: &Call, body: Value, doc: &str) -> Reply {
    let id = call.number("check_run_id");
    let Some(run) = st.check_runs.get_mut(&id) else {
        return error(404, "Not Found", doc);
    };
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let now = now();
    run.updates += 1;
    if let Some(v) = text("name") {
        run.name = v;
    }
    if let Some(v) = text("details_url") {
        run.details_url = Some(v);
    }
    if let Some(v) = text("external_id") {
        run.external_id = Some(v);
    }
    if let Some(v) = text("started_at") {
        run.started_at = Some(v);
    }
    if let Some(c) = text("conclusion") {
        run.conclusion = Some(c);
        run.status = "completed".into();
        run.completed_at = Some(text("completed_at").unwrap_or_else(|| now.clone()));
    } else if let Some(s) = text("status") {
        // Back to queued or in progress: GitHub forgets the earlier verdict.
        run.status = s;
        run.conclusion = None;
        run.completed_at = None;
    }
    merge_output(&mut run.output, &body["output"]);
    if let Some(a) = body["actions"].as_array() {
        run.actions = a.clone();
    }
    let run = run.clone();
    Reply::json(200, check_run_json(st, &run))
}

fn check_run_json(st: &State, run: &CheckRun) -> Value {
    let op = operation("checks/get");
    let mut v = localised(st, op.example(200, None), &[]);
    let url = format!("{}/check-runs/{}", st.api(), run.id);
    v["id"] = json!(run.id);
    v["node_id"] = json!(format!("CR_kwDOfake{}", run.id));
    v["name"] = json!(run.name);
    v["head_sha"] = json!(run.head_sha);
    v["status"] = json!(run.status);
    v["conclusion"] = json!(run.conclusion);
    v["started_at"] = json!(run.started_at);
    v["completed_at"] = json!(run.completed_at);
    v["details_url"] = json!(run.details_url);
    v["external_id"] = json!(run.external_id);
    v["url"] = json!(url);
    v["html_url"] = json!(format!(
        "https://github.com/{}/{}/runs/{}",
        st.owner, st.repo, run.id
    ));
    v["check_suite"] = json!({"id": 7_000_000_000u64 + u64::from(run.head_sha.bytes().map(u32::from).sum::<u32>())});
    v["output"] = json!({
        "title": run.output.title,
        "summary": run.output.summary,
        "text": run.output.text,
        "annotations_count": run.output.annotations.len(),
        "annotations_url": format!("{url}/annotations"),
    });
    v["app"]["id"] = json!(15368);
    v["app"]["slug"] = json!("github-actions");
    v["app"]["name"] = json!("GitHub Actions");
    v["app"]["node_id"] = json!("MDM6QXBwMTUzNjg=");
    v["app"]["html_url"] = json!("https://github.com/apps/github-actions");
    let pulls: Vec<Value> = st
        .pulls
        .values()
        .filter(|p| p.state == "open" && p.head_sha == run.head_sha)
        .map(|p| {
            let repo = json!({"id": 1296269, "name": st.repo, "url": st.api()});
            json!({
                "id": 100_000 + p.number,
                "number": p.number,
                "url": format!("{}/pulls/{}", st.api(), p.number),
                "head": {"ref": p.head_ref, "sha": p.head_sha, "repo": repo},
                "base": {"ref": p.base_ref, "sha": BASE_SHA, "repo": repo},
            })
        })
        .collect();
    v["pull_requests"] = Value::Array(pulls);
    v
}

fn list_check_runs(st: &State, op: &Operation, call: &Call) -> Reply {
    let wanted = call.param("ref");
    let sha = resolve_ref(st, wanted);
    let mut runs: Vec<&CheckRun> = st
        .check_runs
        .values()
        .rev()
        .filter(|r| r.head_sha == sha || r.head_sha == wanted.to_ascii_lowercase())
        .filter(|r| call.query("check_name").is_none_or(|n| n == r.name))
        .filter(|r| call.query("status").is_none_or(|s| s == r.status))
        .collect();
    if call.query("filter").unwrap_or("latest") == "latest" {
        let mut seen = BTreeSet::new();
        runs.retain(|r| seen.insert(r.name.clone()));
    }
    let total = runs.len();
    let list: Vec<Value> = runs.into_iter().map(|r| check_run_json(st, r)).collect();
    paginated(
        st,
        op,
        call,
        list,
        |items| json!({"total_count": total, "check_runs": items}),
    )
}

const BASE_SHA: &str = "e7fdf7640066d71ad16a86fbcbb9c6a10a18af4f";

fn pull_json(st: &State, p: &Pull, simple: bool) -> Value {
    let example = if simple {
        operation("repos/list-pull-requests-associated-with-commit").example(200, None)[0].clone()
    } else {
        operation("pulls/get").example(200, None)
    };
    let number = format!("/{}", p.number);
    let mut v = localised(
        st,
        example,
        &[
            ("/1347", number.as_str()),
            (
                "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                p.head_sha.as_str(),
            ),
        ],
    );
    let closed = p.state == "closed";
    let stamp = "2024-01-02T03:04:05Z";
    v["number"] = json!(p.number);
    v["id"] = json!(100_000 + p.number);
    v["node_id"] = json!(format!("PR_kwDOfake{}", p.number));
    v["state"] = json!(p.state);
    v["title"] = json!(p.title);
    v["draft"] = json!(p.draft);
    v["locked"] = json!(false);
    v["active_lock_reason"] = Value::Null;
    v["closed_at"] = if closed { json!(stamp) } else { Value::Null };
    v["merged_at"] = if p.merged { json!(stamp) } else { Value::Null };
    // The fake knows no reviewers (and GitHub's example team lacks the `type` its schema
    // requires).
    v["requested_reviewers"] = json!([]);
    v["requested_teams"] = json!([]);
    v["head"]["sha"] = json!(p.head_sha);
    v["head"]["ref"] = json!(p.head_ref);
    v["head"]["label"] = json!(format!("{}:{}", st.owner, p.head_ref));
    v["base"]["sha"] = json!(BASE_SHA);
    v["base"]["ref"] = json!(p.base_ref);
    v["base"]["label"] = json!(format!("{}:{}", st.owner, p.base_ref));
    if !simple {
        v["merged"] = json!(p.merged);
    }
    v
}

/// The SHA a ref names: itself when it is one, what the test seeded, or one made from its name.
fn resolve_ref(st: &State, git_ref: &str) -> String {
    if git_ref.len() == 40 && git_ref.bytes().all(|c| c.is_ascii_hexdigit()) {
        return git_ref.to_ascii_lowercase();
    }
    let short = git_ref
        .trim_start_matches("refs/")
        .trim_start_matches("heads/")
        .trim_start_matches("tags/");
    if let Some(sha) = st.refs.get(git_ref).or_else(|| st.refs.get(short)) {
        return sha.clone();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(short.as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

fn create_deployment(st: &mut State, body: Value) -> Reply {
    let id = st.next_deployment;
    st.next_deployment += 1;
    let now = now();
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let git_ref = text("ref").unwrap_or_default();
    let environment = text("environment").unwrap_or_else(|| "production".into());
    let d = Deployment {
        id,
        sha: resolve_ref(st, &git_ref),
        git_ref,
        task: text("task").unwrap_or_else(|| "deploy".into()),
        original_environment: environment.clone(),
        production_environment: body["production_environment"]
            .as_bool()
            .unwrap_or(environment == "production"),
        environment,
        description: text("description"),
        payload: match &body["payload"] {
            Value::Null => json!({}),
            // GitHub parses a payload given as a JSON string.
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| json!(s)),
            other => other.clone(),
        },
        transient_environment: body["transient_environment"].as_bool().unwrap_or(false),
        auto_merge: body["auto_merge"].as_bool().unwrap_or(true),
        required_contexts: body["required_contexts"].as_array().map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        }),
        created_at: now.clone(),
        updated_at: now,
        statuses: Vec::new(),
    };
    let json = deployment_json(st, &d);
    st.deployments.insert(id, d);
    Reply::json(201, json)
}

fn deployment_json(st: &State, d: &Deployment) -> Value {
    let mut v = localised(
        st,
        operation("repos/create-deployment").example(201, None),
        &[],
    );
    let url = format!("{}/deployments/{}", st.api(), d.id);
    v["id"] = json!(d.id);
    v["node_id"] = json!(format!("DE_kwDOfake{}", d.id));
    v["url"] = json!(url);
    v["statuses_url"] = json!(format!("{url}/statuses"));
    v["repository_url"] = json!(st.api());
    v["sha"] = json!(d.sha);
    v["ref"] = json!(d.git_ref);
    v["task"] = json!(d.task);
    v["payload"] = d.payload.clone();
    v["environment"] = json!(d.environment);
    v["original_environment"] = json!(d.original_environment);
    v["description"] = json!(d.description);
    v["creator"] = user_json(st, BOT_LOGIN);
    v["created_at"] = json!(d.created_at);
    v["updated_at"] = json!(d.updated_at);
    v["transient_environment"] = json!(d.transient_environment);
    v["production_environment"] = json!(d.production_environment);
    v
}

fn create_deployment_status(st: &mut State, call: &Call, body: Value, doc: &str) -> Reply {
    let id = call.number("deployment_id");
    if !st.deployments.contains_key(&id) {
        return error(404, "Not Found", doc);
    }
    let text = |k: &str| body[k].as_str().map(str::to_string);
    let now = now();
    let state = text("state").unwrap_or_default();
    // `log_url` replaces `target_url`; either sets both.
    let log_url = text("log_url")
        .or_else(|| text("target_url"))
        .unwrap_or_default();
    let target_url = text("target_url")
        .or_else(|| text("log_url"))
        .unwrap_or_default();
    let status_id = st.next_status;
    st.next_status += 1;
    let d = st.deployments.get_mut(&id).unwrap();
    if let Some(env) = text("environment") {
        d.environment = env;
    }
    d.updated_at = now.clone();
    let environment = d.environment.clone();
    d.statuses.push(DeploymentStatus {
        id: status_id,
        state: state.clone(),
        description: text("description").unwrap_or_default(),
        environment: environment.clone(),
        environment_url: text("environment_url").unwrap_or_default(),
        log_url,
        target_url,
        created_at: now.clone(),
        automatic: false,
    });
    if state == "success" && body["auto_inactive"].as_bool().unwrap_or(true) {
        let earlier: Vec<u64> = st
            .deployments
            .values()
            .filter(|o| {
                o.id < id
                    && o.environment == environment
                    && !o.transient_environment
                    && !o.production_environment
                    && o.statuses.last().is_some_and(|s| s.state == "success")
            })
            .map(|o| o.id)
            .collect();
        for other in earlier {
            let sid = st.next_status;
            st.next_status += 1;
            let o = st.deployments.get_mut(&other).unwrap();
            o.statuses.push(DeploymentStatus {
                id: sid,
                state: "inactive".into(),
                description: String::new(),
                environment: environment.clone(),
                environment_url: String::new(),
                log_url: String::new(),
                target_url: String::new(),
                created_at: now.clone(),
                automatic: true,
            });
        }
    }
    let d = &st.deployments[&id];
    let json = status_json(st, d, d.statuses.last().unwrap());
    let location = json["url"].as_str().unwrap_or_default().to_string();
    Reply::json(201, json).header("location", location)
}

fn status_json(st: &State, d: &Deployment, s: &DeploymentStatus) -> Value {
    let mut v = localised(
        st,
        operation("repos/create-deployment-status").example(201, None),
        &[],
    );
    let deployment_url = format!("{}/deployments/{}", st.api(), d.id);
    v["id"] = json!(s.id);
    v["node_id"] = json!(format!("DES_kwDOfake{}", s.id));
    v["url"] = json!(format!("{deployment_url}/statuses/{}", s.id));
    v["deployment_url"] = json!(deployment_url);
    v["repository_url"] = json!(st.api());
    v["state"] = json!(s.state);
    v["description"] = json!(s.description);
    v["environment"] = json!(s.environment);
    v["environment_url"] = json!(s.environment_url);
    v["log_url"] = json!(s.log_url);
    v["target_url"] = json!(s.target_url);
    v["creator"] = user_json(st, BOT_LOGIN);
    v["created_at"] = json!(s.created_at);
    v["updated_at"] = json!(s.created_at);
    v
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Now, as GitHub writes times: `2024-01-02T03:04:05Z`.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
