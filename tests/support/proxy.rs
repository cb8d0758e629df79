//! A counting reverse proxy: every request the binary sends to a server passes through it and is
//! recorded (method, path, and the `X-Amz-Target` an AWS JSON call names its operation with), so a
//! test or a benchmark can assert on what the server received rather than on what the program
//! says it did.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

/// One request as the proxy saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// `AmazonEC2ContainerRegistry_V20150921.DescribeRepositories` for an ECR call.
    pub target: Option<String>,
    /// Who sent it: `cdc-deploy/…`, the Docker engine, an AWS SDK.
    pub user_agent: String,
}

impl Recorded {
    /// The AWS operation, `DescribeRepositories`, when the request is an AWS JSON call.
    pub fn operation(&self) -> Option<&str> {
        self.target
            .as_deref()
            .map(|t| t.rsplit('.').next().unwrap_or(t))
    }

    /// Whether the request can change what the server holds.
    pub fn writes(&self) -> bool {
        match self.operation() {
            Some(op) => !["Describe", "Get", "List", "BatchGet", "BatchCheck"]
                .iter()
                .any(|p| op.starts_with(p)),
            None => !matches!(self.method.as_str(), "GET" | "HEAD"),
        }
    }
}

/// Every `every`th AWS JSON call whose `X-Amz-Target` starts with `target` is answered with
/// `ThrottlingException` instead of being passed on.
#[derive(Debug, Default)]
struct Throttle {
    target: String,
    every: usize,
    seen: usize,
    throttled: usize,
}

impl Throttle {
    /// Whether this call, of `target`, is one to throttle.
    fn hits(&mut self, target: Option<&str>) -> bool {
        if self.every == 0 || !target.is_some_and(|t| t.starts_with(&self.target)) {
            return false;
        }
        self.seen += 1;
        let hit = self.seen % self.every == 0;
        self.throttled += usize::from(hit);
        hit
    }
}

/// The next `times` requests of `method` whose path contains `path` are answered `429 Too Many
/// Requests` with `Retry-After: retry_after` instead of being passed on, as a registry past its
/// rate does.
#[derive(Debug, Default)]
struct TooMany {
    method: String,
    path: String,
    retry_after: u64,
    times: usize,
    answered: usize,
}

impl TooMany {
    fn hits(&mut self, method: &str, path: &str) -> bool {
        let hit = self.answered < self.times && method == self.method && path.contains(&self.path);
        self.answered += usize::from(hit);
        hit
    }
}

/// A proxy in front of `upstream`, serving on a free loopback port until dropped.
pub struct CountingProxy {
    server: super::serve::Server,
    log: Arc<Mutex<Vec<Recorded>>>,
    throttle: Arc<Mutex<Throttle>>,
    too_many: Arc<Mutex<TooMany>>,
}

impl CountingProxy {
    /// Start a proxy for `upstream` (`http://127.0.0.1:PORT`) on the current tokio runtime.
    pub async fn start(upstream: &str) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let throttle = Arc::new(Mutex::new(Throttle::default()));
        let too_many = Arc::new(Mutex::new(TooMany::default()));
        let upstream = upstream.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let shared = log.clone();
        let throttling = throttle.clone();
        let refusing = too_many.clone();
        let server = super::serve::serve(move |req: Request<Incoming>| {
            let log = shared.clone();
            let throttle = throttling.clone();
            let too_many = refusing.clone();
            let upstream = upstream.clone();
            let http = http.clone();
            async move { forward(req, &upstream, &http, &log, &throttle, &too_many).await }
        })
        .await;
        CountingProxy {
            server,
            log,
            throttle,
            too_many,
        }
    }

    /// From now on, answer the next `times` requests of `method` whose path contains `path`
    /// with `429 Too Many Requests` and `Retry-After: retry_after` (seconds).
    pub fn too_many(&self, method: &str, path: &str, retry_after: u64, times: usize) {
        *self.too_many.lock().unwrap() = TooMany {
            method: method.to_string(),
            path: path.to_string(),
            retry_after,
            times,
            answered: 0,
        };
    }

    /// How many requests were answered with 429.
    pub fn answered_too_many(&self) -> usize {
        self.too_many.lock().unwrap().answered
    }

    /// From now on, answer every `every`th call whose `X-Amz-Target` starts with `target`
    /// (`AmazonEC2ContainerRegistry_`) with `ThrottlingException`, as AWS does past a rate.
    pub fn throttle_every(&self, target: &str, every: usize) {
        *self.throttle.lock().unwrap() = Throttle {
            target: target.to_string(),
            every,
            ..Throttle::default()
        };
    }

    /// How many calls were answered with `ThrottlingException`.
    pub fn throttled(&self) -> usize {
        self.throttle.lock().unwrap().throttled
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.server.addr.to_string()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Requests by AWS operation (or `METHOD` for plain HTTP), counted.
    pub fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        let mut out = std::collections::BTreeMap::new();
        for r in self.requests() {
            let key = r
                .operation()
                .map(str::to_string)
                .unwrap_or_else(|| r.method.clone());
            *out.entry(key).or_insert(0) += 1;
        }
        out
    }
}

async fn forward(
    req: Request<Incoming>,
    upstream: &str,
    http: &reqwest::Client,
    log: &Mutex<Vec<Recorded>>,
    throttle: &Mutex<Throttle>,
    too_many: &Mutex<TooMany>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let refused = {
        let mut t = too_many.lock().unwrap();
        t.hits(parts.method.as_str(), &path)
            .then_some(t.retry_after)
    };
    if let Some(after) = refused {
        return Response::builder()
            .status(429)
            .header("content-type", "application/json")
            .header("retry-after", after.to_string())
            .body(Full::new(Bytes::from_static(
                br#"{"errors":[{"code":"TOOMANYREQUESTS","message":"Rate exceeded","detail":null}]}"#,
            )))
            .unwrap();
    }
    if throttle.lock().unwrap().hits(target.as_deref()) {
        return Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amzn-errortype", "ThrottlingException")
            .body(Full::new(Bytes::from_static(
                br#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
            )))
            .unwrap();
    }
    log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        target,
        user_agent: parts
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    });
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut out = http.request(method, format!("{upstream}{path}"));
    for (k, v) in &parts.headers {
        // The host is passed on, so a registry's upload URLs point back through the proxy.
        if !matches!(k.as_str(), "content-length" | "connection") {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let answer = match out.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            return Response::builder()
                .status(502)
                .body(Full::new(Bytes::from(e.to_string())))
                .unwrap()
        }
    };
    let head = parts.method == hyper::Method::HEAD;
    let mut resp = Response::builder().status(answer.status().as_u16());
    for (k, v) in answer.headers() {
        // A HEAD answer's length is the resource's, which a registry client reads.
        let length = k.as_str() == "content-length";
        if (head || !length) && !matches!(k.as_str(), "transfer-encoding" | "connection") {
            resp = resp.header(k.as_str(), v.as_bytes());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    resp.body(Full::new(bytes)).unwrap()
}
