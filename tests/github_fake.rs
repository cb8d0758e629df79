//! The fake GitHub itself: it answers as GitHub does and refuses, and records, what GitHub would
//! refuse. The reporter's tests trust it, so these pin its behaviour down through a real HTTP
//! client.

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::github::{check_contract_examples, check_request_body, Fault, GithubFake, BOT_LOGIN};

const SHA: &str = "ce587453ced02b1526dfb4cb910479d431683101";
const TOKEN: &str = "ghs_0123456789abcdefghijklmnopqrstuvwxyz";

/// What the fake answered.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
    json: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }

    /// The `<url>` of the `Link` entry with `rel`.
    fn link(&self, rel: &str) -> Option<String> {
        self.header("link").split(", ").find_map(|part| {
            let (url, r) = part.split_once("; ")?;
            (r == format!("rel=\"{rel}\"")).then(|| url.trim_matches(['<', '>']).to_string())
        })
    }
}

/// A client that sends what a well-behaved GitHub client sends.
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(fake: &GithubFake) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: fake.url(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = self
            .http
            .request(method, url)
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("user-agent", "cdc-deploy-tests")
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("the fake answers");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        text,
        json,
    }
}

fn check_run(name: &str) -> Value {
    json!({"name": name, "head_sha": SHA, "status": "in_progress", "output": {"title": "Plan", "summary": "2 changed"}})
}

#[tokio::test]
async fn comment_create_update_list_round_trip() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let theirs = fake.seed_comment_by(7, "octocat", "LGTM");

    let created = gh
        .post(
            "/repos/acme/cdc/issues/7/comments",
            json!({"body": "<!-- cdc-deploy -->\nplan: 2 changed"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["id"].as_u64().unwrap();
    assert!(id > i32::MAX as u64, "ids are as large as GitHub's: {id}");
    assert_eq!(created.json["user"]["login"], BOT_LOGIN);
    assert_eq!(created.json["user"]["type"], "Bot");
    assert_eq!(
        created.header("location"),
        format!("{}/repos/acme/cdc/issues/comments/{id}", fake.url())
    );
    assert!(created.json["html_url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/acme/cdc/issues/7#issuecomment-{id}")));

    let updated = gh
        .patch(
            &format!("/repos/acme/cdc/issues/comments/{id}"),
            json!({"body": "<!-- cdc-deploy -->\nplan: 3 changed"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["body"], "<!-- cdc-deploy -->\nplan: 3 changed");

    let listed = gh.get("/repos/acme/cdc/issues/7/comments").await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let bodies: Vec<(&str, &str)> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["user"]["login"].as_str().unwrap(),
                c["body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bodies,
        [
            ("octocat", "LGTM"),
            (BOT_LOGIN, "<!-- cdc-deploy -->\nplan: 3 changed")
        ]
    );
    assert_eq!(listed.header("link"), "", "one page needs no Link");

    let got = gh
        .get(&format!("/repos/acme/cdc/issues/comments/{theirs}"))
        .await;
    assert_eq!(got.json["body"], "LGTM");

    let deleted = gh
        .call(
            Method::DELETE,
            &format!("/repos/acme/cdc/issues/comments/{id}"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 204);
    let left: Vec<String> = fake.comments(7).into_iter().map(|c| c.body).collect();
    assert_eq!(left, ["LGTM"]);
    let gone = gh
        .get(&format!("/repos/acme/cdc/issues/comments/{id}"))
        .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json["message"], "Not Found");

    let requests = fake.requests();
    assert_eq!(requests.len(), 6);
    assert!(requests.iter().all(|r| r.token.as_deref() == Some(TOKEN)));
    assert_eq!(
        requests[1].operation.as_deref(),
        Some("issues/update-comment")
    );
    assert_eq!(
        requests[0].body.as_ref().unwrap()["body"],
        "<!-- cdc-deploy -->\nplan: 2 changed"
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn check_run_with_an_unknown_conclusion_is_refused() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let r = gh
        .post(
            "/repos/acme/cdc/check-runs",
            json!({"name": "cdc-deploy", "head_sha": SHA, "status": "completed", "conclusion": "passed"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["message"], "Validation Failed");
    assert_eq!(r.json["errors"][0]["field"], "conclusion");
    assert_eq!(r.json["errors"][0]["code"], "invalid");
    assert_eq!(r.json["errors"][0]["resource"], "CheckRun");
    assert!(r.json["documentation_url"]
        .as_str()
        .unwrap()
        .contains("create-a-check-run"));
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(
        violations[0].problem.contains("\"passed\""),
        "{}",
        violations[0]
    );
    assert_eq!(violations[0].operation.as_deref(), Some("checks/create"));
    assert!(fake.check_runs().is_empty());
}

#[tokio::test]
async fn check_run_summary_over_65535_characters_is_refused() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    // Characters, not bytes: 65535 two-byte characters fit.
    let mut body = check_run("cdc-deploy");
    body["output"]["summary"] = json!("é".repeat(65_535));
    let fits = gh.post("/repos/acme/cdc/check-runs", body.clone()).await;
    assert_eq!(fits.status, 201, "{}", fits.text);
    fake.assert_no_violations();

    body["output"]["summary"] = json!("a".repeat(65_536));
    let r = gh.post("/repos/acme/cdc/check-runs", body).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["errors"][0]["field"], "output.summary");
    let violations = fake.take_violations();
    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert!(violations[0].problem.contains("65536 characters"));
    assert_eq!(fake.check_runs().len(), 1);
}

#[tokio::test]
async fn comment_body_over_65536_characters_is_refused() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let fits = gh
        .post(
            "/repos/acme/cdc/issues/3/comments",
            json!({"body": "ü".repeat(65_536)}),
        )
        .await;
    assert_eq!(fits.status, 201, "{}", fits.text);
    fake.assert_no_violations();

    let r = gh
        .post(
            "/repos/acme/cdc/issues/3/comments",
            json!({"body": "ü".repeat(65_537)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.json["message"], "Validation Failed");
    assert_eq!(r.json["errors"][0]["resource"], "IssueComment");
    assert_eq!(r.json["errors"][0]["field"], "body");
    assert!(r.json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("body is too long (maximum is 65536 characters"));
    assert_eq!(fake.take_violations().len(), 1);
    assert_eq!(fake.comments(3).len(), 1);

    // The same limit on an edit.
    let id = fake.comments(3)[0].id;
    let r = gh
        .patch(
            &format!("/repos/acme/cdc/issues/comments/{id}"),
            json!({"body": "x".repeat(70_000)}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(fake.take_violations().len(), 1);
}

#[tokio::test]
async fn unknown_path_is_a_violation() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let r = gh.get("/repos/acme/cdc/issues/7/reactions").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["message"], "Not Found");
    let r = gh
        .call(
            Method::PUT,
            "/repos/acme/cdc/issues/comments/1",
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = gh.get("/repos/someone/else/issues/7/comments").await;
    assert_eq!(r.status, 404);

    let violations = fake.take_violations();
    let problems: Vec<&str> = violations.iter().map(|v| v.problem.as_str()).collect();
    assert_eq!(violations.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("no operation in the GitHub contract"));
    assert!(problems[1].contains("DELETE, GET, PATCH only, not PUT"));
    assert!(problems[2].contains("`someone/else` is not the one the fake serves"));
}

#[tokio::test]
async fn missing_authorization_is_a_violation() {
    let fake = GithubFake::start().await;
    let http = reqwest::Client::new();
    let r = send(
        http.get(format!("{}/repos/acme/cdc/issues/7/comments", fake.url()))
            .header("user-agent", "cdc-deploy-tests"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["message"], "Requires authentication");
    let r = send(
        http.get(format!("{}/repos/acme/cdc/issues/7/comments", fake.url()))
            .header("user-agent", "cdc-deploy-tests")
            .basic_auth("x-access-token", Some(TOKEN)),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["message"], "Bad credentials");

    let violations = fake.take_violations();
    assert_eq!(violations.len(), 2, "{violations:#?}");
    assert!(violations[0].problem.contains("no `Authorization` header"));
    assert_eq!(
        violations[0].operation.as_deref(),
        Some("issues/list-comments")
    );
    assert!(fake.requests().iter().all(|r| r.token.is_none()));
}

#[tokio::test]
async fn headers_github_insists_on_are_checked() {
    let fake = GithubFake::start().await;
    fake.require_token(TOKEN);
    let http = reqwest::Client::new();
    let url = format!("{}/rate_limit", fake.url());
    let r = send(http.get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(r.status, 403, "no User-Agent");
    let r = send(
        http.get(&url)
            .bearer_auth(TOKEN)
            .header("user-agent", "t")
            .header("accept", "text/html"),
    )
    .await;
    assert_eq!(r.status, 415);
    let r = send(
        http.get(&url)
            .bearer_auth(TOKEN)
            .header("user-agent", "t")
            .header("x-github-api-version", "2021-01-01"),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = send(
        http.get(&url)
            .header("authorization", "token not-the-one")
            .header("user-agent", "t"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(fake.take_violations().len(), 4);

    // `token …` and `*/*` are as good as `Bearer …` and GitHub's media type.
    let r = send(
        http.get(&url)
            .header("authorization", format!("token {TOKEN}"))
            .header("user-agent", "t")
            .header("accept", "*/*"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["resources"]["core"]["limit"], 5000);
    assert_eq!(
        fake.requests().last().unwrap().token.as_deref(),
        Some(TOKEN)
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn comments_paginate_with_a_link_header_like_github() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    for i in 0..35 {
        fake.seed_comment(12, &format!("comment {i}"));
    }
    let first = gh
        .get("/repos/acme/cdc/issues/12/comments?per_page=30")
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json.as_array().unwrap().len(), 30);
    let base = format!("{}/repos/acme/cdc/issues/12/comments", fake.url());
    assert_eq!(
        first.header("link"),
        format!(
            "<{base}?per_page=30&page=2>; rel=\"next\", <{base}?per_page=30&page=2>; rel=\"last\""
        )
    );

    let second = gh.get(&first.link("next").unwrap()).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let bodies: Vec<&str> = second
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "comment 30",
            "comment 31",
            "comment 32",
            "comment 33",
            "comment 34"
        ]
    );
    assert_eq!(
        second.header("link"),
        format!(
            "<{base}?per_page=30&page=1>; rel=\"prev\", <{base}?per_page=30&page=1>; rel=\"first\""
        )
    );
    assert_eq!(second.link("next"), None);

    // GitHub's default is 30 a page, and it serves 100 at most whatever is asked.
    let default = gh.get("/repos/acme/cdc/issues/12/comments").await;
    assert_eq!(default.json.as_array().unwrap().len(), 30);
    let capped = gh
        .get("/repos/acme/cdc/issues/12/comments?per_page=500")
        .await;
    assert_eq!(capped.json.as_array().unwrap().len(), 35);
    fake.assert_no_violations();
}

#[tokio::test]
async fn fail_next_answers_502_once_then_200() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    fake.fail_next("POST", "/repos/acme/cdc/issues/", 502, 1);
    let body = json!({"body": "plan"});
    let failed = gh
        .post("/repos/acme/cdc/issues/1/comments", body.clone())
        .await;
    assert_eq!(failed.status, 502);
    assert!(failed.header("content-type").starts_with("text/html"));
    assert!(failed.text.contains("Unicorn!"));
    assert!(
        fake.comments(1).is_empty(),
        "a failed request changes nothing"
    );
    let ok = gh.post("/repos/acme/cdc/issues/1/comments", body).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 201]);
    assert_eq!(fake.comments(1).len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn faults_answer_with_github_bodies_and_rate_limit_headers() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    fake.fail_next("*", "/repos/acme/cdc/check-runs", 403, 1);
    let r = gh
        .post("/repos/acme/cdc/check-runs", check_run("cdc-deploy"))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json["message"], "Resource not accessible by integration");
    assert!(r.json["documentation_url"].is_string());

    fake.rate_limit_next("GET", "/repos/acme/cdc/deployments", 1);
    let r = gh.get("/repos/acme/cdc/deployments").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-ratelimit-remaining"), "0");
    let reset: u64 = r.header("x-ratelimit-reset").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 61, "{reset} vs {now}");
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .starts_with("API rate limit exceeded"));

    fake.inject(
        "GET",
        "/repos/acme/cdc/deployments",
        Fault::SecondaryRateLimit {
            status: 429,
            retry_after: Duration::from_secs(30),
        },
        1,
    );
    let r = gh.get("/repos/acme/cdc/deployments").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), "30");
    let r = gh.get("/repos/acme/cdc/deployments").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-ratelimit-limit"), "5000");

    // An invalid request is refused for that, and the fault waits for a valid one.
    fake.fail_next("POST", "/repos/acme/cdc/check-runs", 500, 1);
    let r = gh
        .post("/repos/acme/cdc/check-runs", json!({"name": "x"}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(fake.take_violations().len(), 1);
    let r = gh
        .post("/repos/acme/cdc/check-runs", check_run("cdc-deploy"))
        .await;
    assert_eq!(r.status, 500);
    fake.assert_no_violations();
}

#[tokio::test]
async fn delay_next_holds_the_answer() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    fake.delay_next("GET", "/rate_limit", Duration::from_millis(300), 1);
    let started = std::time::Instant::now();
    let r = gh.get("/rate_limit").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    fake.assert_no_violations();
}

#[tokio::test]
async fn check_run_lifecycle_and_list_for_a_ref() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let created = gh
        .post("/repos/acme/cdc/check-runs", check_run("cdc-deploy / plan"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json["status"], "in_progress");
    assert_eq!(created.json["conclusion"], Value::Null);
    let id = created.json["id"].as_u64().unwrap();
    assert!(id > u32::MAX as u64, "ids are as large as GitHub's: {id}");
    let other = gh
        .post("/repos/acme/cdc/check-runs", check_run("lint"))
        .await;
    assert_eq!(other.status, 201);

    // Completing without a verdict is refused: the contract's `anyOf` says so.
    let path = format!("/repos/acme/cdc/check-runs/{id}");
    let r = gh.patch(&path, json!({"status": "completed"})).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(fake.take_violations().len(), 1);

    let annotation = json!({"path": "consumer_scripts/orders/consumer.toml", "start_line": 4, "end_line": 4,
        "annotation_level": "failure", "message": "unknown field `cpu`"});
    let r = gh
        .patch(
            &path,
            json!({"conclusion": "failure", "output": {"title": "1 failed", "summary": "orders failed", "annotations": [annotation]}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "completed", "a conclusion completes it");
    assert_eq!(r.json["output"]["annotations_count"], 1);
    assert!(r.json["completed_at"].is_string());

    let listed = gh
        .get(&format!(
            "/repos/acme/cdc/commits/{SHA}/check-runs?check_name=cdc-deploy%20%2F%20plan"
        ))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.json["total_count"], 1);
    assert_eq!(listed.json["check_runs"][0]["id"], id);
    assert_eq!(listed.json["check_runs"][0]["conclusion"], "failure");
    let all = gh
        .get(&format!("/repos/acme/cdc/commits/{SHA}/check-runs"))
        .await;
    assert_eq!(all.json["total_count"], 2);
    let got = gh.get(&path).await;
    assert_eq!(got.json["output"]["summary"], "orders failed");

    let runs = fake.check_runs();
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    assert_eq!(runs[0].updates, 1);
    assert_eq!(runs[0].output.annotations.len(), 1);

    // A check run names a commit by its full SHA, as GitHub requires.
    let r = gh
        .post(
            "/repos/acme/cdc/check-runs",
            json!({"name": "x", "head_sha": "main"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(fake.take_violations().len(), 1);
    fake.assert_no_violations();
}

#[tokio::test]
async fn deployments_and_their_statuses() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let d = gh
            .post(
                "/repos/acme/cdc/deployments",
                json!({"ref": SHA, "environment": "staging", "auto_merge": false,
                    "required_contexts": [], "payload": {"consumers": ["orders"]}}),
            )
            .await;
        assert_eq!(d.status, 201, "{}", d.text);
        assert_eq!(d.json["sha"], SHA);
        assert_eq!(d.json["production_environment"], false);
        let id = d.json["id"].as_u64().unwrap();
        let s = gh
            .post(
                &format!("/repos/acme/cdc/deployments/{id}/statuses"),
                json!({"state": "success", "log_url": "https://github.com/acme/cdc/actions/runs/42",
                    "environment_url": "https://orders.example.com"}),
            )
            .await;
        assert_eq!(s.status, 201, "{}", s.text);
        assert_eq!(
            s.json["target_url"],
            "https://github.com/acme/cdc/actions/runs/42"
        );
        ids.push(id);
    }
    // The second success made the first deployment inactive (`auto_inactive`).
    let statuses = gh
        .get(&format!("/repos/acme/cdc/deployments/{}/statuses", ids[0]))
        .await;
    assert_eq!(statuses.status, 200, "{}", statuses.text);
    let states: Vec<&str> = statuses
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["inactive", "success"]);

    let listed = gh
        .get("/repos/acme/cdc/deployments?environment=staging")
        .await;
    let listed_ids: Vec<u64> = listed
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed_ids, [ids[1], ids[0]], "newest first");
    let none = gh
        .get("/repos/acme/cdc/deployments?environment=production")
        .await;
    assert_eq!(none.json, json!([]));

    let r = gh
        .post(
            &format!("/repos/acme/cdc/deployments/{}/statuses", ids[1]),
            json!({"state": "failure", "description": "d".repeat(141)}),
        )
        .await;
    assert_eq!(r.status, 422, "a description over 140 characters");
    let r = gh
        .post(
            &format!("/repos/acme/cdc/deployments/{}/statuses", ids[1]),
            json!({"state": "done"}),
        )
        .await;
    assert_eq!(r.status, 422, "a state GitHub does not know");
    let v = fake.take_violations();
    assert_eq!(v.len(), 2, "{v:#?}");

    let deployments = fake.deployments();
    assert_eq!(deployments.len(), 2);
    assert_eq!(deployments[0].payload, json!({"consumers": ["orders"]}));
    assert!(deployments[0].statuses[1].automatic);
    fake.assert_no_violations();
}

#[tokio::test]
async fn pull_requests_come_from_what_the_test_seeded() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    fake.pull_for_commit(SHA, 12);
    let r = gh
        .get(&format!("/repos/acme/cdc/commits/{SHA}/pulls"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[0]["number"], 12);
    assert_eq!(r.json[0]["head"]["sha"], SHA);
    assert_eq!(r.json[0]["state"], "open");
    let r = gh
        .get("/repos/acme/cdc/commits/0000000000000000000000000000000000000000/pulls")
        .await;
    assert_eq!(r.json, json!([]));
    let r = gh.get("/repos/acme/cdc/pulls/12").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["html_url"], "https://github.com/acme/cdc/pull/12");
    assert_eq!(r.json["merged"], false);
    assert_eq!(gh.get("/repos/acme/cdc/pulls/13").await.status, 404);

    // A check run on that commit names the pull request, as GitHub's do.
    let r = gh
        .post("/repos/acme/cdc/check-runs", check_run("cdc-deploy"))
        .await;
    assert_eq!(r.json["pull_requests"][0]["number"], 12);
    // A comment on a pull request links to it.
    let r = gh
        .post(
            "/repos/acme/cdc/issues/12/comments",
            json!({"body": "plan"}),
        )
        .await;
    assert!(r.json["html_url"]
        .as_str()
        .unwrap()
        .contains("/acme/cdc/pull/12#issuecomment-"));
    fake.assert_no_violations();
}

#[tokio::test]
async fn ignored_fields_and_bad_parameters_are_violations() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    // GitHub takes the comment and ignores the typo: answered so, recorded all the same.
    let r = gh
        .post(
            "/repos/acme/cdc/issues/1/comments",
            json!({"body": "plan", "sticky": true}),
        )
        .await;
    assert_eq!(r.status, 201);
    let v = fake.take_violations();
    assert_eq!(v.len(), 1);
    assert!(v[0].problem.contains("`sticky`"), "{}", v[0]);

    let r = gh.get("/repos/acme/cdc/issues/one/comments").await;
    assert_eq!(r.status, 404, "an issue number must be an integer");
    let r = gh
        .get("/repos/acme/cdc/issues/1/comments?per_page=ten")
        .await;
    assert_eq!(r.status, 422);
    let r = gh
        .get(&format!(
            "/repos/acme/cdc/commits/{SHA}/check-runs?status=done"
        ))
        .await;
    assert_eq!(r.status, 422);
    let r = gh
        .get("/repos/acme/cdc/issues/1/comments?since=yesterday")
        .await;
    assert_eq!(r.status, 422);
    let r = gh
        .get("/repos/acme/cdc/issues/1/comments?sort=created")
        .await;
    assert_eq!(r.status, 200, "GitHub ignores it");
    let r = gh
        .post("/repos/acme/cdc/check-runs", json!({"head_sha": SHA}))
        .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["errors"][0]["code"], "missing_field");
    assert_eq!(r.json["errors"][0]["field"], "name");
    let r = gh
        .call(Method::POST, "/repos/acme/cdc/issues/1/comments", None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(fake.take_violations().len(), 7);
    fake.assert_no_violations();
}

#[tokio::test]
async fn editing_someone_elses_comment_is_a_violation() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    let theirs = fake.seed_comment_by(4, "octocat", "please deploy");
    let r = gh
        .patch(
            &format!("/repos/acme/cdc/issues/comments/{theirs}"),
            json!({"body": "plan"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let v = fake.take_violations();
    assert_eq!(v.len(), 1);
    assert!(v[0].problem.contains("`octocat`"), "{}", v[0]);
}

#[tokio::test]
async fn since_lists_comments_updated_after_a_time() {
    let fake = GithubFake::start().await;
    let gh = Client::new(&fake);
    fake.seed_comment(9, "old");
    let r = gh
        .get("/repos/acme/cdc/issues/9/comments?since=2000-01-01T00:00:00Z")
        .await;
    assert_eq!(r.json.as_array().unwrap().len(), 1);
    let r = gh
        .get("/repos/acme/cdc/issues/9/comments?since=2999-01-01T00:00:00%2B01:00")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([]));
    fake.assert_no_violations();
}

#[test]
fn the_validator_accepts_every_example_in_the_contract() {
    // Save one slip in GitHub's own examples: a requested team without the `type` its schema
    // requires.
    let problems = check_contract_examples();
    assert_eq!(
        problems,
        [
            "GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls 200 example `default`: `[0].requested_teams[0].type` wasn't supplied",
            "GET /repos/{owner}/{repo}/pulls/{pull_number} 200 example `default`: `requested_teams[0].type` wasn't supplied",
        ]
    );
}

#[test]
fn the_validator_knows_the_keywords_the_contract_uses() {
    let create = "/repos/{owner}/{repo}/check-runs";
    let ok = json!({"name": "n", "head_sha": SHA, "started_at": "2024-02-29T23:59:59+01:00"});
    assert_eq!(
        check_request_body("POST", create, &ok),
        Vec::<String>::new()
    );
    let cases = [
        // type: integer, not a number with a fraction
        json!({"name": "n", "head_sha": SHA, "output": {"title": "t", "summary": "s",
            "annotations": [{"path": "p", "start_line": 1.5, "end_line": 2, "annotation_level": "notice", "message": "m"}]}}),
        // maxItems: 50 annotations a request
        json!({"name": "n", "head_sha": SHA, "output": {"title": "t", "summary": "s",
            "annotations": vec![json!({"path": "p", "start_line": 1, "end_line": 1, "annotation_level": "notice", "message": "m"}); 51]}}),
        // format: date-time
        json!({"name": "n", "head_sha": SHA, "started_at": "2024-02-30T00:00:00Z"}),
        json!({"name": "n", "head_sha": SHA, "started_at": "yesterday"}),
        // required inside items
        json!({"name": "n", "head_sha": SHA, "actions": [{"label": "Fix", "identifier": "fix"}]}),
        // maxLength inside items
        json!({"name": "n", "head_sha": SHA, "actions": [{"label": "Fix", "identifier": "fix", "description": "d".repeat(41)}]}),
        // type: object
        json!("not an object"),
    ];
    for case in cases {
        assert!(
            !check_request_body("POST", create, &case).is_empty(),
            "accepted {case}"
        );
    }
    let deployments = "/repos/{owner}/{repo}/deployments";
    // oneOf: an object or a string, nothing else; nullable description.
    for payload in [json!({"a": 1}), json!("text")] {
        let body = json!({"ref": "main", "payload": payload, "description": null});
        assert_eq!(
            check_request_body("POST", deployments, &body),
            Vec::<String>::new()
        );
    }
    assert!(
        !check_request_body("POST", deployments, &json!({"ref": "main", "payload": 3})).is_empty()
    );
    assert!(!check_request_body(
        "POST",
        deployments,
        &json!({"ref": "main", "required_contexts": [1]})
    )
    .is_empty());
}
