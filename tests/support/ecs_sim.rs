//! A scripted ECS: an in-process HTTP server speaking the ECS JSON 1.1 protocol for the calls the
//! rollout stage makes, because moto's deployments never progress. Each service follows a script
//! of frames: every `DescribeServices` that names it shows the next frame (the last one stays).
//! It counts every call, and can answer chosen calls with `ThrottlingException`. Stopped tasks
//! (`ListTasks`, `DescribeTasks`) and task definitions' log settings (`DescribeTaskDefinition`)
//! are scripted too, for rollout evidence.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};

/// One deployment in a frame.
#[derive(Clone, Debug)]
pub struct Dep {
    pub id: &'static str,
    pub status: &'static str,
    pub task_definition: String,
    pub rollout_state: &'static str,
    pub reason: Option<&'static str>,
    pub desired: i32,
    pub running: i32,
    pub failed: i32,
    /// Epoch seconds.
    pub created_at: f64,
}

impl Dep {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "taskDefinition": self.task_definition,
            "rolloutState": self.rollout_state,
            "rolloutStateReason": self.reason,
            "desiredCount": self.desired,
            "runningCount": self.running,
            "pendingCount": (self.desired - self.running).max(0),
            "failedTasks": self.failed,
            "createdAt": self.created_at,
        })
    }
}

/// What a service looks like at one poll.
#[derive(Clone, Debug)]
pub enum Frame {
    Service {
        status: &'static str,
        deployments: Vec<Dep>,
    },
    Missing,
}

/// What a service does once a deployment is registered for it (`POST /register`, as a Terraform
/// fixture's `local-exec` does when it "creates" a task definition).
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// In progress for this many polls, then completed.
    CompletesAfter(usize),
    /// In progress for this many polls, then the circuit breaker fails it.
    FailsAfter(usize),
    /// In progress for this many polls, then the circuit breaker rolls it back: the deployment
    /// is gone and the family's previous revision is primary again (completed), as ECS shows a
    /// rollback.
    RollsBackAfter(usize),
    /// In progress for ever.
    Stalls,
}

/// A container of a stopped task: name, exit code, reason.
pub type SimContainer = (String, Option<i32>, Option<String>);

/// The ARN of task `id` of `cluster`, as ECS names it.
fn task_arn(cluster: &str, id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{id}")
}

/// A stopped task.
#[derive(Clone, Debug)]
pub struct SimTask {
    pub id: String,
    pub task_definition: String,
    pub stopped_reason: &'static str,
    pub stop_code: &'static str,
    /// Epoch seconds.
    pub stopped_at: f64,
    pub containers: Vec<SimContainer>,
}

impl SimTask {
    fn arn(&self, cluster: &str) -> String {
        task_arn(cluster, &self.id)
    }

    fn json(&self, cluster: &str) -> Value {
        let arn = self.arn(cluster);
        json!({
            "taskArn": arn,
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
            "taskDefinitionArn": self.task_definition,
            "lastStatus": "STOPPED",
            "desiredStatus": "STOPPED",
            "stoppedReason": self.stopped_reason,
            "stopCode": self.stop_code,
            "stoppedAt": self.stopped_at,
            "launchType": "FARGATE",
            "containers": self.containers.iter().map(|(name, code, reason)| json!({
                "containerArn": format!("{arn}/{name}"),
                "taskArn": arn,
                "name": name,
                "lastStatus": "STOPPED",
                "exitCode": code,
                "reason": reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// A running task: its container, whether ECS Exec is on for it, and its Exec agent's state.
#[derive(Clone, Debug)]
pub struct SimRunning {
    pub id: String,
    pub task_definition: String,
    pub container: String,
    pub exec: bool,
    /// `RUNNING`, `PENDING`, …; `None`: no Exec agent.
    pub agent: Option<&'static str>,
}

impl SimRunning {
    fn arn(&self, cluster: &str) -> String {
        task_arn(cluster, &self.id)
    }

    fn json(&self, cluster: &str) -> Value {
        let arn = self.arn(cluster);
        json!({
            "taskArn": arn,
            "clusterArn": format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
            "taskDefinitionArn": self.task_definition,
            "lastStatus": "RUNNING",
            "desiredStatus": "RUNNING",
            "enableExecuteCommand": self.exec,
            "startedAt": 1_764_900_000.0,
            "launchType": "FARGATE",
            "containers": [{
                "containerArn": format!("{arn}/{}", self.container),
                "taskArn": arn,
                "name": self.container,
                "lastStatus": "RUNNING",
                "managedAgents": self.agent.map(|a| vec![json!({"name": "ExecuteCommandAgent", "lastStatus": a})]).unwrap_or_default(),
            }],
        })
    }
}

/// A container of a task definition: its image, and how it logs (`awslogs` group, stream
/// prefix; no group: no log configuration).
#[derive(Clone, Debug, Default)]
pub struct SimLog {
    pub container: String,
    pub image: Option<String>,
    pub group: String,
    pub prefix: Option<String>,
}

#[derive(Default)]
struct State {
    /// Stopped tasks by (cluster, service).
    stopped: BTreeMap<(String, String), Vec<SimTask>>,
    /// Running tasks by (cluster, service).
    running: BTreeMap<(String, String), Vec<SimRunning>>,
    /// Task definitions' containers with their log settings, by ARN.
    task_definitions: BTreeMap<String, Vec<SimLog>>,
    /// Each family's revisions (ARNs), oldest first, as registered.
    families: BTreeMap<String, Vec<String>>,
    scripts: BTreeMap<(String, String), (Vec<Frame>, usize)>,
    /// What each service does with its next registrations, in order; the last one stays.
    behaviours: BTreeMap<String, Vec<Behaviour>>,
    /// Every registration: service and task definition, in order.
    registered: Vec<(String, String)>,
    /// Events each service lists, newest first: epoch seconds and message.
    events: BTreeMap<String, Vec<(f64, String)>>,
    /// Every call: operation and how many services it named.
    calls: Vec<(String, usize)>,
    /// Call numbers (from 1) answered with `ThrottlingException`.
    throttle: BTreeSet<usize>,
}

impl State {
    fn add_task_definition(&mut self, arn: &str, containers: Vec<SimLog>) {
        self.task_definitions.insert(arn.into(), containers);
        let family = family(arn);
        let revisions = self.families.entry(family).or_default();
        revisions.retain(|a| a != arn);
        revisions.push(arn.into());
    }
}

/// `family` of `…:task-definition/family:revision`.
fn family(arn: &str) -> String {
    let tail = arn.rsplit_once("task-definition/").map_or(arn, |(_, t)| t);
    tail.rsplit_once(':').map_or(tail, |(f, _)| f).to_string()
}

pub struct EcsSimulator {
    server: super::serve::Server,
    state: Arc<Mutex<State>>,
}

impl EcsSimulator {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let server = super::serve::serve(move |req: Request<Incoming>| {
            let state = shared.clone();
            async move { answer(req, &state).await }
        })
        .await;
        EcsSimulator { server, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Script `service` of `cluster`.
    pub fn script(&self, cluster: &str, service: &str, frames: Vec<Frame>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert((cluster.into(), service.into()), (frames, 0));
    }

    /// How `service` rolls out once a deployment is registered for it.
    pub fn behave(&self, service: &str, b: Behaviour) {
        self.behave_in_turn(service, vec![b]);
    }

    /// How `service` rolls out for each of its next registrations, in turn; the last one stays
    /// for any further registration.
    pub fn behave_in_turn(&self, service: &str, b: Vec<Behaviour>) {
        assert!(!b.is_empty());
        self.state
            .lock()
            .unwrap()
            .behaviours
            .insert(service.into(), b);
    }

    /// Every deployment registered so far: service and task definition, in order.
    pub fn registered(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().registered.clone()
    }

    /// The events `service` lists, newest first (epoch seconds, message).
    pub fn events(&self, service: &str, events: Vec<(f64, String)>) {
        self.state
            .lock()
            .unwrap()
            .events
            .insert(service.into(), events);
    }

    /// The stopped tasks `ListTasks` lists for `service` of `cluster`.
    pub fn stopped_tasks(&self, cluster: &str, service: &str, tasks: Vec<SimTask>) {
        self.state
            .lock()
            .unwrap()
            .stopped
            .insert((cluster.into(), service.into()), tasks);
    }

    /// The running tasks `ListTasks` lists for `service` of `cluster`.
    pub fn running_tasks(&self, cluster: &str, service: &str, tasks: Vec<SimRunning>) {
        self.state
            .lock()
            .unwrap()
            .running
            .insert((cluster.into(), service.into()), tasks);
    }

    /// The containers of a task definition and where they log; registered as its family's
    /// newest revision.
    pub fn task_definition(&self, arn: &str, containers: Vec<SimLog>) {
        self.state
            .lock()
            .unwrap()
            .add_task_definition(arn, containers);
    }

    /// Answer these calls (counted from 1) with `ThrottlingException`.
    pub fn throttle(&self, calls: &[usize]) {
        self.state.lock().unwrap().throttle.extend(calls);
    }

    /// Every call received: operation and number of services named.
    pub fn calls(&self) -> Vec<(String, usize)> {
        self.state.lock().unwrap().calls.clone()
    }
}

/// `{"cluster", "service", "task_definition"}`: a new deployment of that revision, now, that
/// follows the service's behaviour.
fn register(input: &Value, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let field = |k: &str| input[k].as_str().unwrap_or_default().to_string();
    let (cluster, service, td) = (field("cluster"), field("service"), field("task_definition"));
    let image = field("image");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let mut st = state.lock().unwrap();
    st.registered.push((service.clone(), td.clone()));
    // The revision the service ran before this one: what a rollback goes back to.
    let previous = st
        .families
        .get(&family(&td))
        .and_then(|r| r.iter().rev().find(|a| **a != td).cloned());
    st.add_task_definition(
        &td,
        vec![SimLog {
            container: service.clone(),
            image: (!image.is_empty()).then(|| image.clone()),
            group: format!("/ecs/sim/{cluster}/{service}"),
            prefix: Some("ecs".into()),
        }],
    );
    let behaviour = match st.behaviours.get_mut(&service) {
        Some(queue) if queue.len() > 1 => queue.remove(0),
        Some(queue) => queue[0],
        None => Behaviour::CompletesAfter(1),
    };
    let dep = |state: &'static str, running: i32, reason: Option<&'static str>| Dep {
        id: "ecs-svc/registered",
        status: "PRIMARY",
        task_definition: td.clone(),
        rollout_state: state,
        reason,
        desired: 1,
        running,
        failed: if state == "FAILED" { 2 } else { 0 },
        created_at: now,
    };
    let (k, last) = match behaviour {
        Behaviour::CompletesAfter(k) => (k, dep("COMPLETED", 1, None)),
        Behaviour::FailsAfter(k) => (
            k,
            dep(
                "FAILED",
                0,
                Some("ECS deployment circuit breaker: tasks failed to start."),
            ),
        ),
        Behaviour::Stalls => (0, dep("IN_PROGRESS", 0, None)),
        Behaviour::RollsBackAfter(k) => (
            k,
            Dep {
                id: "ecs-svc/rollback",
                status: "PRIMARY",
                task_definition: previous
                    .clone()
                    .expect("a rollback needs a revision to go back to"),
                rollout_state: "COMPLETED",
                reason: None,
                desired: 1,
                running: 1,
                failed: 0,
                created_at: now,
            },
        ),
    };
    let mut frames: Vec<Frame> = (0..k)
        .map(|_| Frame::Service {
            status: "ACTIVE",
            deployments: vec![dep("IN_PROGRESS", 0, None)],
        })
        .collect();
    frames.push(Frame::Service {
        status: "ACTIVE",
        deployments: vec![last],
    });
    if let Behaviour::FailsAfter(_) | Behaviour::RollsBackAfter(_) = behaviour {
        let tasks = (1..=2)
            .map(|i| SimTask {
                id: format!("{service}-task-{i}"),
                task_definition: td.clone(),
                stopped_reason: "Essential container in task exited",
                stop_code: "EssentialContainerExited",
                stopped_at: now - f64::from(i),
                containers: vec![(service.clone(), Some(1), None)],
            })
            .collect();
        st.stopped.insert((cluster.clone(), service.clone()), tasks);
        st.events.insert(
            service.clone(),
            vec![
                (
                    now,
                    format!("(service {service}) rolling back to the previous task definition."),
                ),
                (
                    now,
                    format!("(service {service}) deployment failed: tasks failed to start."),
                ),
                (
                    now - 86_400.0,
                    format!("(service {service}) has reached a steady state."),
                ),
            ],
        );
    }
    st.scripts.insert((cluster, service), (frames, 0));
    reply(200, json!({}))
}

fn reply(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn answer(req: Request<Incoming>, state: &Mutex<State>) -> Response<Full<Bytes>> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if path == "/register" {
        return register(&input, state);
    }
    let Some(op) = target.strip_prefix("AmazonEC2ContainerServiceV20141113.") else {
        return reply(
            400,
            json!({"__type": "UnknownOperationException", "message": target}),
        );
    };
    let mut st = state.lock().unwrap();
    let names: Vec<String> = input["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let tasks_named = input["tasks"].as_array().map_or(0, Vec::len);
    st.calls
        .push((op.to_string(), names.len().max(tasks_named)));
    let n = st.calls.len();
    if st.throttle.contains(&n) {
        return reply(
            400,
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"}),
        );
    }
    let cluster = input["cluster"].as_str().unwrap_or("default").to_string();
    match op {
        "ListTasks" => {
            let service = input["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let key = (cluster.clone(), service);
            let arns: Vec<String> = match input["desiredStatus"].as_str() {
                Some("STOPPED") => st
                    .stopped
                    .get(&key)
                    .map(|ts| ts.iter().map(|t| t.arn(&cluster)).collect())
                    .unwrap_or_default(),
                Some("RUNNING") => st
                    .running
                    .get(&key)
                    .map(|ts| ts.iter().map(|t| t.arn(&cluster)).collect())
                    .unwrap_or_default(),
                other => panic!("ListTasks with desiredStatus {other:?}: {input}"),
            };
            return reply(200, json!({"taskArns": arns}));
        }
        "DescribeTasks" => {
            let wanted: Vec<&str> = input["tasks"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if wanted.is_empty() || wanted.len() > 100 {
                return reply(
                    400,
                    json!({"__type": "InvalidParameterException", "message": "tasks must name 1 to 100 tasks"}),
                );
            }
            let mut tasks: Vec<Value> = st
                .stopped
                .iter()
                .filter(|((c, _), _)| *c == cluster)
                .flat_map(|(_, ts)| ts)
                .filter(|t| wanted.contains(&t.arn(&cluster).as_str()))
                .map(|t| t.json(&cluster))
                .collect();
            tasks.extend(
                st.running
                    .iter()
                    .filter(|((c, _), _)| *c == cluster)
                    .flat_map(|(_, ts)| ts)
                    .filter(|t| wanted.contains(&t.arn(&cluster).as_str()))
                    .map(|t| t.json(&cluster)),
            );
            return reply(200, json!({"tasks": tasks, "failures": []}));
        }
        "ListTaskDefinitions" => {
            let prefix = input["familyPrefix"].as_str().unwrap_or_default();
            let mut arns: Vec<String> = if input["status"].as_str().unwrap_or("ACTIVE") == "ACTIVE"
            {
                st.families
                    .iter()
                    .filter(|(f, _)| f.starts_with(prefix))
                    .flat_map(|(_, a)| a.clone())
                    .collect()
            } else {
                Vec::new()
            };
            if input["sort"] == "DESC" {
                arns.reverse();
            }
            return reply(200, json!({"taskDefinitionArns": arns}));
        }
        "DescribeTaskDefinition" => {
            let arn = input["taskDefinition"].as_str().unwrap_or_default();
            let Some(containers) = st.task_definitions.get(arn) else {
                return reply(
                    400,
                    json!({"__type": "ClientException", "message": "Unable to describe task definition."}),
                );
            };
            return reply(
                200,
                json!({"taskDefinition": {
                    "taskDefinitionArn": arn,
                    "containerDefinitions": containers.iter().map(|c| {
                        let mut options = serde_json::Map::new();
                        options.insert("awslogs-group".into(), json!(c.group));
                        options.insert("awslogs-region".into(), json!("us-east-1"));
                        if let Some(p) = &c.prefix {
                            options.insert("awslogs-stream-prefix".into(), json!(p));
                        }
                        json!({
                            "name": c.container,
                            "image": c.image.as_deref().unwrap_or("example"),
                            "essential": true,
                            "logConfiguration": (!c.group.is_empty()).then(|| json!({"logDriver": "awslogs", "options": options})),
                        })
                    }).collect::<Vec<_>>(),
                }}),
            );
        }
        _ => {}
    }
    if op != "DescribeServices" {
        return reply(
            400,
            json!({"__type": "InvalidParameterException", "message": format!("the simulator does not script {op}")}),
        );
    }
    if names.len() > 10 {
        return reply(
            400,
            json!({"__type": "InvalidParameterException", "message": "services can have at most 10 items"}),
        );
    }
    let mut services = Vec::new();
    let mut failures = Vec::new();
    for name in names {
        let arn = format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/{name}");
        let frame = match st.scripts.get_mut(&(cluster.clone(), name.clone())) {
            Some((frames, at)) => {
                let f = frames[(*at).min(frames.len() - 1)].clone();
                *at += 1;
                f
            }
            None => Frame::Missing,
        };
        match frame {
            Frame::Missing => failures.push(json!({"arn": arn, "reason": "MISSING"})),
            Frame::Service {
                status,
                deployments,
            } => {
                let primary = deployments.iter().find(|d| d.status == "PRIMARY");
                services.push(json!({
                    "serviceName": name,
                    "serviceArn": arn,
                    "status": status,
                    "desiredCount": primary.map_or(0, |d| d.desired),
                    "runningCount": deployments.iter().map(|d| d.running).sum::<i32>(),
                    "deployments": deployments.iter().map(Dep::json).collect::<Vec<_>>(),
                    "events": st.events.get(&name).map(|e| e.iter().enumerate().map(|(i, (at, m))| json!({
                        "id": format!("event-{i}"), "createdAt": at, "message": m,
                    })).collect::<Vec<_>>()).unwrap_or_default(),
                }));
            }
        }
    }
    reply(200, json!({"services": services, "failures": failures}))
}
