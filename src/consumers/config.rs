//! `consumer.toml`: one consumer's runtime and build settings, parsed and validated once into a
//! [`ConsumerSettings`]. Every key is optional. Every finding names the file and line.
//!
//! This module reads only the text it is given (and whether the configured Dockerfile exists);
//! it never reads a secret's value: `[secrets]` holds ARNs that ECS resolves at task start.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use toml::Spanned;

use super::shape::{self, Document, Scalar, ShapeError};

use crate::consumers::fargate;
use crate::diagnostics::{line_col, Diagnostic};

/// File name of a consumer's configuration inside its folder.
pub const FILE_NAME: &str = "consumer.toml";

pub const DEFAULT_CPU: u32 = 256;
pub const DEFAULT_DESIRED_COUNT: u32 = 1;
pub const DEFAULT_STOP_TIMEOUT: u32 = 30;
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// The CPU architecture and OS the image is built for and Fargate runs it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Platform {
    #[serde(rename = "linux/amd64")]
    LinuxAmd64,
    #[serde(rename = "linux/arm64")]
    LinuxArm64,
}

impl Platform {
    pub const ALL: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a secret comes from. ECS resolves it at task start; the value is never read here.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum SecretSource {
    SsmParameter(String),
    SecretsManager(String),
}

impl SecretSource {
    pub fn kind(&self) -> &'static str {
        match self {
            SecretSource::SsmParameter(_) => "SSM parameter",
            SecretSource::SecretsManager(_) => "Secrets Manager",
        }
    }
}

/// How the image is built.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BuildSettings {
    /// Path of the Dockerfile inside the consumer's folder, `/`-separated.
    pub dockerfile: String,
    pub target: Option<String>,
    pub args: BTreeMap<String, String>,
}

/// The container health check ECS runs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HealthCheck {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`, as ECS takes it.
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    pub start_period: u32,
}

/// MSK IAM access of the consumer's task role: connect to `cluster`, read and write these topics,
/// commit offsets as `consumer_group`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MskAccess {
    /// The MSK cluster's name (an ARN in `consumer.toml` is reduced to it).
    pub cluster: String,
    pub consumer_group: Option<String>,
    pub read_topics: Vec<String>,
    pub write_topics: Vec<String>,
}

/// Scaling on MSK consumer lag (CloudWatch `SumOffsetLag`), every part resolved (from
/// `[autoscaling.kafka_lag]` or `[msk]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KafkaLagScaling {
    /// The MSK cluster's name, as CloudWatch's `Cluster Name` dimension wants it.
    pub msk_cluster: String,
    pub consumer_group: String,
    pub topic: String,
    pub target_lag: u64,
}

/// Target tracking for the service's task count.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Autoscaling {
    pub min: u32,
    pub max: u32,
    pub cpu_target: Option<u32>,
    pub memory_target: Option<u32>,
    pub kafka_lag: Option<KafkaLagScaling>,
}

/// The alarm kinds, as the module's `alarms` switches name them and `[alarms]` switches them off.
pub const ALARM_KINDS: [&str; 5] = [
    "running_below_desired",
    "tasks_stopping",
    "lag",
    "cpu",
    "memory",
];

/// `[alarms]`: this consumer's thresholds over the module's `alarm_thresholds` (`None` keeps the
/// module's), the kinds it switches off, and whether ECS rolls a deployment back when the
/// consumer runs below desired.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Alarms {
    /// Minutes below the desired count before the alarm.
    pub running_below_desired_minutes: Option<u32>,
    /// Tasks stopped by a failure within 15 minutes.
    pub tasks_stopped: Option<u32>,
    /// Messages behind, summed over the group's topics.
    pub lag_messages: Option<u64>,
    /// Minutes the lag stays above `lag_messages`.
    pub lag_minutes: Option<u32>,
    pub cpu_percent: Option<u32>,
    pub memory_percent: Option<u32>,
    /// The kinds switched off, from [`ALARM_KINDS`], in that order.
    pub off: Vec<&'static str>,
    /// ECS rolls back a deployment during which the running-below-desired alarm fires.
    pub rollback: bool,
}

/// A consumer's validated settings, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerSettings {
    pub cpu: u32,
    pub memory: u32,
    pub desired_count: u32,
    pub platform: Platform,
    pub stop_timeout: u32,
    pub environment: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub build: BuildSettings,
    pub health_check: Option<HealthCheck>,
    pub autoscaling: Option<Autoscaling>,
    /// The consumer owns its source (a replication slot): at most one task at a time, so a
    /// rollout stops the old task before it starts the new one.
    pub single_writer: bool,
    pub msk: Option<MskAccess>,
    /// `[alarms]`, when the file has it.
    pub alarms: Option<Alarms>,
    /// ECS Exec into this consumer's tasks (`aws ecs execute-command`).
    pub execute_command: bool,
}

impl ConsumerSettings {
    /// Whether the consumer's lag is watched: a consumer group that reads (`[msk]`), or lag
    /// scaling written before `[msk]` existed.
    pub fn lag_watched(&self) -> bool {
        self.msk
            .as_ref()
            .is_some_and(|m| m.consumer_group.is_some() && !m.read_topics.is_empty())
            || self
                .autoscaling
                .as_ref()
                .is_some_and(|a| a.kafka_lag.is_some())
    }

    /// The rollout limits this consumer's service takes over the module's: `(minimum healthy,
    /// maximum)` percent, `0/100` for a single writer.
    pub fn deployment_percentages(&self) -> Option<(u32, u32)> {
        self.single_writer.then_some((0, 100))
    }
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        ConsumerSettings {
            cpu: DEFAULT_CPU,
            memory: fargate::default_memory(DEFAULT_CPU).unwrap_or(512),
            desired_count: DEFAULT_DESIRED_COUNT,
            platform: Platform::LinuxAmd64,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            environment: BTreeMap::new(),
            secrets: BTreeMap::new(),
            build: BuildSettings {
                dockerfile: DEFAULT_DOCKERFILE.to_string(),
                target: None,
                args: BTreeMap::new(),
            },
            health_check: None,
            autoscaling: None,
            single_writer: false,
            msk: None,
            alarms: None,
            execute_command: false,
        }
    }
}

/// The settings, with the warnings that did not stop validation.
#[derive(Debug)]
pub struct Validated {
    pub settings: ConsumerSettings,
    pub warnings: Vec<Diagnostic>,
}

// ---- the file as written: read by `shape`, every finding collected ---------------------------

struct RawConsumer {
    cpu: Option<Spanned<u32>>,
    memory: Option<Spanned<u32>>,
    desired_count: Option<Spanned<u32>>,
    platform: Option<Spanned<String>>,
    stop_timeout: Option<Spanned<u32>>,
    environment: BTreeMap<Spanned<String>, Spanned<Scalar>>,
    secrets: BTreeMap<Spanned<String>, Spanned<String>>,
    build: Option<RawBuild>,
    health_check: Option<Spanned<RawHealthCheck>>,
    autoscaling: Option<Spanned<RawAutoscaling>>,
    single_writer: Option<Spanned<bool>>,
    msk: Option<Spanned<RawMsk>>,
    alarms: Option<Spanned<RawAlarms>>,
    execute_command: Option<Spanned<bool>>,
    /// Keys present but refused by their shape: not to be taken for absent.
    rejected: std::collections::BTreeSet<String>,
}

struct RawBuild {
    dockerfile: Option<Spanned<String>>,
    target: Option<Spanned<String>>,
    args: BTreeMap<Spanned<String>, Spanned<Scalar>>,
}

enum RawCommand {
    Shell(String),
    Exec(Vec<String>),
}

struct RawHealthCheck {
    command: Spanned<RawCommand>,
    interval: Option<Spanned<u32>>,
    timeout: Option<Spanned<u32>>,
    retries: Option<Spanned<u32>>,
    start_period: Option<Spanned<u32>>,
}

struct RawAutoscaling {
    min: Spanned<u32>,
    max: Spanned<u32>,
    cpu_target: Option<Spanned<u32>>,
    memory_target: Option<Spanned<u32>>,
    kafka_lag: Option<Spanned<RawKafkaLag>>,
}

struct RawKafkaLag {
    /// Before `[msk]` existed these named the cluster and group; `[msk]` does now.
    msk_cluster: Option<Spanned<String>>,
    consumer_group: Option<Spanned<String>>,
    topic: Option<Spanned<String>>,
    target_lag: Spanned<u64>,
}

type Strings = Spanned<Vec<Spanned<String>>>;

struct RawMsk {
    cluster: Spanned<String>,
    consumer_group: Option<Spanned<String>>,
    read_topics: Option<Strings>,
    write_topics: Option<Strings>,
}

/// An alarm threshold as written: absent, a number, or `false` (`Some(None)`) to switch it off.
type Threshold = Option<Spanned<Option<u64>>>;

/// `[alarms]` as written.
struct RawAlarms {
    running_below_desired: Threshold,
    tasks_stopped: Threshold,
    lag: Threshold,
    lag_minutes: Option<Spanned<u32>>,
    cpu: Threshold,
    memory: Threshold,
    rollback: Option<Spanned<bool>>,
}

/// The keys each table takes.
const TOP_KEYS: &[&str] = &[
    "cpu",
    "memory",
    "desired_count",
    "platform",
    "stop_timeout",
    "environment",
    "secrets",
    "build",
    "health_check",
    "autoscaling",
    "single_writer",
    "msk",
    "alarms",
    "execute_command",
];
const BUILD_KEYS: &[&str] = &["dockerfile", "target", "args"];
const HEALTH_KEYS: &[&str] = &["command", "interval", "timeout", "retries", "start_period"];
const AUTOSCALING_KEYS: &[&str] = &["min", "max", "cpu_target", "memory_target", "kafka_lag"];
const KAFKA_LAG_KEYS: &[&str] = &["target_lag", "topic", "msk_cluster", "consumer_group"];
const MSK_KEYS: &[&str] = &["cluster", "consumer_group", "read_topics", "write_topics"];
const ALARM_KEYS: &[&str] = &[
    "running_below_desired",
    "tasks_stopped",
    "lag",
    "lag_minutes",
    "cpu",
    "memory",
    "rollback",
];

/// Read the document into its raw settings, finding every problem of shape on the way. Syntax
/// errors leave nothing to read; other problems leave out just the value concerned.
fn read(text: &str) -> (Option<RawConsumer>, Vec<ShapeError>) {
    let (doc, syntax) = shape::parse(text);
    if !syntax.is_empty() {
        return (None, syntax);
    }
    let t = doc.get_ref();
    let mut d = shape::new_document();
    d.unknown_keys(t, "", TOP_KEYS);
    let mut raw = RawConsumer {
        cpu: d.small_number(t, "", "cpu", 512),
        memory: d.small_number(t, "", "memory", 1024),
        desired_count: d.small_number(t, "", "desired_count", 1),
        platform: d.string(t, "", "platform", "linux/amd64"),
        stop_timeout: d.small_number(t, "", "stop_timeout", 30),
        environment: BTreeMap::new(),
        secrets: BTreeMap::new(),
        build: None,
        health_check: None,
        autoscaling: None,
        single_writer: d.boolean(t, "", "single_writer"),
        msk: None,
        alarms: None,
        execute_command: d.boolean(t, "", "execute_command"),
        rejected: Default::default(),
    };
    if let Some((a, span)) = d.table(t, "", "alarms") {
        d.unknown_keys(a, "alarms", ALARM_KEYS);
        raw.alarms = Some(Spanned::new(
            span,
            RawAlarms {
                running_below_desired: d.threshold(a, "alarms", "running_below_desired", 5),
                tasks_stopped: d.threshold(a, "alarms", "tasks_stopped", 3),
                lag: d.threshold(a, "alarms", "lag", 100_000),
                lag_minutes: d.small_number(a, "alarms", "lag_minutes", 10),
                cpu: d.threshold(a, "alarms", "cpu", 90),
                memory: d.threshold(a, "alarms", "memory", 90),
                rollback: d.boolean(a, "alarms", "rollback"),
            },
        ));
    }
    if let Some((m, span)) = d.table(t, "", "msk") {
        d.unknown_keys(m, "msk", MSK_KEYS);
        let cluster = d.string(m, "msk", "cluster", "cdc-msk");
        d.require(m, span.clone(), "msk", "cluster", "\"cdc-msk\"");
        let consumer_group = d.string(m, "msk", "consumer_group", "orders-cdc");
        let read_topics = d.strings(m, "msk", "read_topics", "dbserver1.public.orders");
        let write_topics = d.strings(m, "msk", "write_topics", "orders.outbox");
        match cluster {
            Some(cluster) => {
                raw.msk = Some(Spanned::new(
                    span,
                    RawMsk {
                        cluster,
                        consumer_group,
                        read_topics,
                        write_topics,
                    },
                ))
            }
            None => d.reject("", "msk"),
        }
    }
    if let Some((env, _)) = d.table(t, "", "environment") {
        raw.environment = Document::scalars(env);
    }
    if let Some((secrets, _)) = d.table(t, "", "secrets") {
        for (k, _) in secrets.iter() {
            let name: &str = k.get_ref();
            let example = "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME";
            if let Some(v) = d.string(secrets, "secrets", name, example) {
                raw.secrets
                    .insert(Spanned::new(k.span(), name.to_string()), v);
            }
        }
    }
    if let Some((b, _)) = d.table(t, "", "build") {
        d.unknown_keys(b, "build", BUILD_KEYS);
        raw.build = Some(RawBuild {
            dockerfile: d.string(b, "build", "dockerfile", "Dockerfile"),
            target: d.string(b, "build", "target", "runtime"),
            args: d
                .table(b, "build", "args")
                .map(|(a, _)| Document::scalars(a))
                .unwrap_or_default(),
        });
    }
    if let Some((h, span)) = d.table(t, "", "health_check") {
        d.unknown_keys(h, "health_check", HEALTH_KEYS);
        let command = d.command(h, "health_check", "command");
        d.require(
            h,
            span.clone(),
            "health_check",
            "command",
            "\"test -f /tmp/heartbeat\"",
        );
        let (interval, timeout, retries, start_period) = (
            d.small_number(h, "health_check", "interval", 30),
            d.small_number(h, "health_check", "timeout", 5),
            d.small_number(h, "health_check", "retries", 3),
            d.small_number(h, "health_check", "start_period", 60),
        );
        if let Some(command) = command {
            let cmd_span = command.span();
            let command = match command.into_inner() {
                Ok(shell) => RawCommand::Shell(shell),
                Err(exec) => RawCommand::Exec(exec),
            };
            raw.health_check = Some(Spanned::new(
                span,
                RawHealthCheck {
                    command: Spanned::new(cmd_span, command),
                    interval,
                    timeout,
                    retries,
                    start_period,
                },
            ));
        }
    }
    if let Some((a, span)) = d.table(t, "", "autoscaling") {
        d.unknown_keys(a, "autoscaling", AUTOSCALING_KEYS);
        let min = d.small_number(a, "autoscaling", "min", 1);
        let max = d.small_number(a, "autoscaling", "max", 4);
        for (key, example) in [("min", "1"), ("max", "4")] {
            d.require(a, span.clone(), "autoscaling", key, example);
        }
        let cpu_target = d.small_number(a, "autoscaling", "cpu_target", 70);
        let memory_target = d.small_number(a, "autoscaling", "memory_target", 80);
        let kafka_lag = d
            .table(a, "autoscaling", "kafka_lag")
            .and_then(|(k, kspan)| {
                d.unknown_keys(k, "autoscaling.kafka_lag", KAFKA_LAG_KEYS);
                let name = "autoscaling.kafka_lag";
                let target_lag = d.number(k, name, "target_lag", 1000);
                d.require(k, kspan.clone(), name, "target_lag", "1000");
                let (topic, msk_cluster, consumer_group) = (
                    d.string(k, name, "topic", "dbserver1.public.orders"),
                    d.string(k, name, "msk_cluster", "cdc-msk"),
                    d.string(k, name, "consumer_group", "orders-cdc"),
                );
                match target_lag {
                    Some(target_lag) => Some(Spanned::new(
                        kspan,
                        RawKafkaLag {
                            msk_cluster,
                            consumer_group,
                            topic,
                            target_lag,
                        },
                    )),
                    None => {
                        d.reject("autoscaling", "kafka_lag");
                        None
                    }
                }
            });
        if let (Some(min), Some(max)) = (min, max) {
            raw.autoscaling = Some(Spanned::new(
                span,
                RawAutoscaling {
                    min,
                    max,
                    cpu_target,
                    memory_target,
                    kafka_lag,
                },
            ));
        }
    }
    raw.rejected = std::mem::take(&mut d.rejected);
    (Some(raw), d.errors)
}

static ENV_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z0-9_]*$").expect("static regex"));
static SSM_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-cn|-us-gov)?:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9_./-]+$")
        .expect("static regex")
});
static SECRETS_MANAGER_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws(-cn|-us-gov)?:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+(:[^:]*:[^:]*:[^:]*)?$")
        .expect("static regex")
});
static MSK_CLUSTER_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^arn:aws(-cn|-us-gov)?:kafka:[a-z0-9-]+:\d{12}:cluster/([A-Za-z0-9-]+)/[A-Za-z0-9-]+$",
    )
    .expect("static regex")
});
static MSK_CLUSTER_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z][A-Za-z0-9-]{0,63}$").expect("static regex"));

/// Words in an `[environment]` key that suggest the value is a secret.
const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "PRIVATE_KEY",
];

/// Whether an `[environment]` key looks like it names a secret (`DB_PASSWORD`, `API_TOKEN`):
/// the plan warns about it, and the run hides its value from everything it writes.
pub fn looks_secret(key: &str) -> bool {
    let upper = key.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Collects findings against one file.
struct Checker<'a> {
    text: &'a str,
    file: &'a str,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn diag(&self, span: Range<usize>, message: String) -> Diagnostic {
        let (line, col) = line_col(self.text, span.start);
        Diagnostic::error(self.file, message).at(line, col)
    }

    fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let mut d = self.diag(span, message);
        d.help = help;
        self.errors.push(d);
    }

    fn warn(&mut self, span: Range<usize>, message: String, help: String) {
        let mut d = self.diag(span, message).help(help);
        d.severity = crate::diagnostics::Severity::Warning;
        self.warnings.push(d);
    }

    fn range(&mut self, key: &str, v: &Spanned<u32>, min: u32, max: u32, unit: &str) -> u32 {
        let value = *v.get_ref();
        if value < min || value > max {
            self.error(
                v.span(),
                format!("`{key}` is {value}{unit}, outside the range ECS accepts"),
                Some(format!("use a value from {min} to {max}{unit}")),
            );
        }
        value
    }

    /// An environment value or build argument: strings, numbers and booleans are taken as text.
    fn scalar(&mut self, key: &str, v: &Spanned<Scalar>) -> Option<String> {
        match v.get_ref() {
            Scalar::Text(t) => Some(t.clone()),
            Scalar::Other(kind) => {
                self.error(
                    v.span(),
                    format!("`{key}` is {kind}, but a variable holds one piece of text"),
                    Some(format!("write `{key} = \"...\"`")),
                );
                None
            }
        }
    }
}

/// Parse and validate `text`, the contents of `file` (its path relative to the repository root,
/// used in findings). `context_dir` is the consumer's folder, where the Dockerfile must exist.
/// Every finding is returned, in file order.
pub fn validate(text: &str, file: &str, context_dir: &Path) -> Result<Validated, Vec<Diagnostic>> {
    let (raw, shape_errors) = read(text);
    let mut c = Checker {
        text,
        file,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for e in shape_errors {
        c.error(e.span, e.message, e.help);
    }
    let settings = match raw {
        Some(raw) => check(&mut c, raw, context_dir),
        None => ConsumerSettings::default(),
    };
    if c.errors.is_empty() {
        Ok(Validated {
            settings,
            warnings: c.warnings,
        })
    } else {
        c.errors.sort_by_key(|d| (d.line, d.column));
        Err(c.errors)
    }
}

fn check(c: &mut Checker<'_>, raw: RawConsumer, context_dir: &Path) -> ConsumerSettings {
    let mut s = ConsumerSettings::default();

    // cpu and memory: a valid Fargate pair.
    if let Some(cpu) = &raw.cpu {
        s.cpu = *cpu.get_ref();
        if fargate::memory_sizes(s.cpu).is_none() {
            let sizes: Vec<String> = fargate::cpu_sizes().iter().map(u32::to_string).collect();
            c.error(
                cpu.span(),
                format!("`cpu` {} is not a Fargate CPU size", s.cpu),
                Some(format!(
                    "use one of {} (CPU units, 1024 = 1 vCPU)",
                    sizes.join(", ")
                )),
            );
        }
    }
    let cpu_refused = raw.rejected.contains("cpu");
    match &raw.memory {
        Some(memory) => {
            s.memory = *memory.get_ref();
            if !cpu_refused
                && fargate::memory_sizes(s.cpu).is_some()
                && !fargate::is_valid(s.cpu, s.memory)
            {
                let mut help = format!(
                    "with `cpu` {} Fargate accepts `memory` {}",
                    s.cpu,
                    fargate::describe_memory(s.cpu).unwrap_or_default()
                );
                let cpus = fargate::cpus_for_memory(s.memory);
                if !cpus.is_empty() {
                    let cpus: Vec<String> = cpus.iter().map(u32::to_string).collect();
                    help.push_str(&format!(
                        "; {} MiB fits `cpu` {}",
                        s.memory,
                        crate::consumers::fargate::one_of(&cpus)
                    ));
                }
                let message = if raw.cpu.is_some() {
                    format!(
                        "`cpu` {} with `memory` {} is not a valid Fargate task size",
                        s.cpu, s.memory
                    )
                } else {
                    format!(
                        "`memory` {} does not fit the default `cpu` {} (`cpu` is not set)",
                        s.memory, s.cpu
                    )
                };
                c.error(memory.span(), message, Some(help));
            }
        }
        None => s.memory = fargate::default_memory(s.cpu).unwrap_or(s.memory),
    }

    if let Some(v) = &raw.desired_count {
        s.desired_count = c.range("desired_count", v, 0, 1000, "");
    }
    if let Some(v) = &raw.stop_timeout {
        s.stop_timeout = c.range("stop_timeout", v, 2, 120, " seconds");
    }
    if let Some(p) = &raw.platform {
        match Platform::ALL.iter().find(|x| x.as_str() == p.get_ref()) {
            Some(platform) => s.platform = *platform,
            None => c.error(
                p.span(),
                format!("`platform` `{}` is not one Fargate runs", p.get_ref()),
                Some("use `linux/amd64` or `linux/arm64`".into()),
            ),
        }
    }

    for (key, value) in &raw.environment {
        let name = key.get_ref();
        check_env_name(c, "environment", key);
        if let Some(text) = c.scalar(name, value) {
            if looks_secret(name) && !text.is_empty() {
                c.warn(
                    key.span(),
                    format!("`{name}` looks like a secret but is set in plain text in `[environment]`"),
                    "move it to `[secrets]` with the ARN of an SSM parameter or a Secrets Manager secret".into(),
                );
            }
            s.environment.insert(name.clone(), text);
        }
    }
    for (key, value) in &raw.secrets {
        let name = key.get_ref();
        check_env_name(c, "secrets", key);
        if s.environment.contains_key(name) {
            c.error(
                key.span(),
                format!("`{name}` is set in both `[environment]` and `[secrets]`"),
                Some("keep it in one of the two tables".into()),
            );
        }
        let arn = value.get_ref();
        let source = if SSM_ARN.is_match(arn) {
            Some(SecretSource::SsmParameter(arn.clone()))
        } else if SECRETS_MANAGER_ARN.is_match(arn) {
            Some(SecretSource::SecretsManager(arn.clone()))
        } else {
            c.error(
                value.span(),
                format!("secret `{name}` is not the ARN of an SSM parameter or a Secrets Manager secret"),
                Some("write `arn:aws:ssm:REGION:ACCOUNT:parameter/NAME` or `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`; never the secret's value".into()),
            );
            None
        };
        if let Some(source) = source {
            s.secrets.insert(name.clone(), source);
        }
    }

    if let Some(build) = &raw.build {
        let dockerfile_refused = raw.rejected.contains("build.dockerfile");
        check_build(c, build, context_dir, dockerfile_refused, &mut s.build);
    } else if !raw.rejected.contains("build") && !context_dir.join(DEFAULT_DOCKERFILE).is_file() {
        missing_dockerfile(c);
    }

    if let Some(hc) = &raw.health_check {
        s.health_check = Some(check_health(c, hc));
    }
    if let Some(m) = &raw.msk {
        s.msk = Some(check_msk(c, m.get_ref()));
    }
    if let Some(a) = &raw.autoscaling {
        let policy_refused = ["cpu_target", "memory_target", "kafka_lag"]
            .iter()
            .any(|k| raw.rejected.contains(&format!("autoscaling.{k}")));
        s.autoscaling = Some(check_autoscaling(
            c,
            a,
            &raw.desired_count,
            s.desired_count,
            policy_refused,
            s.msk.as_ref(),
            raw.rejected.contains("msk"),
        ));
    }
    if let Some(sw) = raw.single_writer.as_ref().filter(|v| *v.get_ref()) {
        s.single_writer = true;
        check_single_writer(c, &raw, sw, &s);
    }
    s.execute_command = raw.execute_command.as_ref().is_some_and(|v| *v.get_ref());
    if let Some(a) = &raw.alarms {
        s.alarms = Some(check_alarms(c, a.get_ref(), &s, raw.single_writer.as_ref()));
    }
    s
}

/// `[alarms]`: each threshold in the range CloudWatch and the metric allow; `rollback` only where
/// the running-below-desired alarm means a failed deployment.
fn check_alarms(
    c: &mut Checker<'_>,
    a: &RawAlarms,
    s: &ConsumerSettings,
    single_writer: Option<&Spanned<bool>>,
) -> Alarms {
    let mut out = Alarms::default();
    let within =
        |c: &mut Checker<'_>, key: &str, v: &Spanned<u64>, max: u64, unit: &str, why: &str| {
            let n = *v.get_ref();
            if (1..=max).contains(&n) {
                u32::try_from(n).ok()
            } else {
                c.error(
                    v.span(),
                    format!("`alarms.{key}` is {n}{unit}, outside 1 to {max}{unit}: {why}"),
                    Some(format!(
                    "write a whole number from 1 to {max}, or `{} = false` to switch the alarm off",
                    key.trim_end_matches("_minutes")
                )),
                );
                None
            }
        };
    // Each threshold: its value, or the kind switched off.
    let thresholds: [(&str, &str, &Threshold); 5] = [
        (
            "running_below_desired",
            "running_below_desired",
            &a.running_below_desired,
        ),
        ("tasks_stopped", "tasks_stopping", &a.tasks_stopped),
        ("lag", "lag", &a.lag),
        ("cpu", "cpu", &a.cpu),
        ("memory", "memory", &a.memory),
    ];
    for (key, kind, value) in thresholds {
        let Some(v) = value else { continue };
        let Some(n) = v.get_ref() else {
            out.off.push(kind);
            continue;
        };
        let n = Spanned::new(v.span(), *n);
        match key {
            "running_below_desired" => {
                out.running_below_desired_minutes = within(
                    c,
                    key,
                    &n,
                    1440,
                    " minutes",
                    "CloudWatch evaluates at most a day",
                )
            }
            "tasks_stopped" => {
                out.tasks_stopped = within(c, key, &n, 1000, " tasks", "counted within 15 minutes")
            }
            "lag" => {
                if *n.get_ref() == 0 {
                    c.error(
                        n.span(),
                        "`alarms.lag` is 0 messages: the alarm would never be OK".into(),
                        Some("write the messages behind that need someone, like `lag = 100000`, or `lag = false`".into()),
                    );
                }
                out.lag_messages = Some(*n.get_ref()).filter(|n| *n > 0);
            }
            "cpu" => out.cpu_percent = within(c, key, &n, 100, "%", "a share of the task's CPU"),
            _ => out.memory_percent = within(c, key, &n, 100, "%", "a share of the task's memory"),
        }
    }
    out.off
        .sort_by_key(|k| ALARM_KINDS.iter().position(|x| x == k));
    if let Some(m) = &a.lag_minutes {
        let n = Spanned::new(m.span(), u64::from(*m.get_ref()));
        out.lag_minutes = within(
            c,
            "lag_minutes",
            &n,
            1440,
            " minutes",
            "CloudWatch evaluates at most a day",
        );
        if out.off.contains(&"lag") {
            c.warn(
                m.span(),
                "`alarms.lag_minutes` has no effect: `lag = false` switches the lag alarm off"
                    .into(),
                "remove `lag_minutes`, or give `lag` a number of messages".into(),
            );
        }
    }
    let lag_set = out.lag_messages.is_some() || a.lag_minutes.is_some();
    if lag_set && !s.lag_watched() {
        let span = a
            .lag
            .as_ref()
            .map(Spanned::span)
            .or_else(|| a.lag_minutes.as_ref().map(Spanned::span))
            .unwrap_or(0..0);
        c.warn(
            span,
            "the lag alarm's threshold has no effect: the consumer reads no topic as a consumer group, so there is no lag to watch".into(),
            "add `[msk]` with `consumer_group` and `read_topics`, or remove the lag threshold".into(),
        );
    }
    if let Some(r) = a.rollback.as_ref().filter(|r| *r.get_ref()) {
        out.rollback = true;
        if single_writer.is_some_and(|v| *v.get_ref()) {
            c.error(
                r.span(),
                "`alarms.rollback` cannot watch a `single_writer` consumer: its old task stops before the new one starts, so it runs below desired during every rollout and each would be rolled back".into(),
                Some("remove `rollback`; the deployment circuit breaker still rolls back a task that does not start".into()),
            );
        }
        if out.off.contains(&"running_below_desired") {
            c.error(
                r.span(),
                "`alarms.rollback` rolls back on the running-below-desired alarm, which `running_below_desired = false` switches off".into(),
                Some("give `running_below_desired` a number of minutes, or remove `rollback`".into()),
            );
        }
    }
    out
}

/// A single writer owns its source: one task at a time, stopped cleanly before the next starts.
fn check_single_writer(
    c: &mut Checker<'_>,
    raw: &RawConsumer,
    sw: &Spanned<bool>,
    s: &ConsumerSettings,
) {
    if s.desired_count > 1 {
        let span = raw.desired_count.as_ref().map_or(sw.span(), Spanned::span);
        c.error(
            span,
            format!(
                "`desired_count` is {} but `single_writer = true` allows one task: a second task on the same replication slot or lock fails (\"replication slot ... is active for PID ...\")",
                s.desired_count
            ),
            Some("set `desired_count = 1` (or 0 to stop it), or remove `single_writer` if the consumer shares its work through a Kafka consumer group".into()),
        );
    }
    if let Some(a) = &raw.autoscaling {
        c.error(
            a.span(),
            "`[autoscaling]` cannot scale a `single_writer` consumer: it runs one task at most, and a scale-out would start a second writer on its source".into(),
            Some("remove `[autoscaling]`; size the one task with `cpu` and `memory`".into()),
        );
    }
    if s.stop_timeout < 30 {
        let span = raw.stop_timeout.as_ref().map_or(sw.span(), Spanned::span);
        c.warn(
            span,
            format!(
                "`stop_timeout` is {} seconds for a `single_writer` consumer: it must release its replication slot cleanly before ECS kills it, or the next task waits for the server to time the old connection out",
                s.stop_timeout
            ),
            "give it 30 seconds or more (Fargate allows up to 120)".into(),
        );
    }
}

/// A topic name MSK takes (a `*` is an IAM wildcard, in the topics a role may use).
fn valid_topic(t: &str, wildcard: bool) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t.chars().all(|ch| {
            ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-') || (wildcard && ch == '*')
        })
}

/// Why a consumer group name cannot have lag metrics, if it cannot: MSK publishes none for a
/// name with `:` or characters outside printable ASCII.
fn group_problem(g: &str) -> Option<String> {
    if g.trim().is_empty() {
        return Some("is empty".into());
    }
    if g.len() > 255 {
        return Some("is longer than 255 characters".into());
    }
    if g.trim() != g {
        return Some("starts or ends with a space".into());
    }
    if g.contains(':') {
        return Some("contains `:`, and MSK publishes no lag metrics for such a group".into());
    }
    if !g.chars().all(|ch| (' '..='~').contains(&ch)) {
        return Some("has characters outside printable ASCII, and MSK publishes no lag metrics for such a group".into());
    }
    None
}

fn check_group(c: &mut Checker<'_>, key: &str, g: &Spanned<String>) {
    if let Some(problem) = group_problem(g.get_ref()) {
        let help = if g.get_ref().trim().is_empty() {
            "name the consumer group: the `group.id` the consumer commits offsets as"
        } else {
            "use printable ASCII letters, digits, `.`, `_` or `-`, such as \"orders-cdc\""
        };
        c.error(g.span(), format!("`{key}` {problem}"), Some(help.into()));
    }
}

/// An MSK cluster's name, from its name or ARN.
fn msk_cluster_name(c: &mut Checker<'_>, key: &str, v: &Spanned<String>) -> String {
    let cluster = v.get_ref();
    if let Some(caps) = MSK_CLUSTER_ARN.captures(cluster) {
        return caps[2].to_string();
    }
    if !MSK_CLUSTER_NAME.is_match(cluster) {
        c.error(
            v.span(),
            format!("`{key}` `{cluster}` is neither an MSK cluster name nor its ARN"),
            Some(
                "write the cluster's name or `arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID`"
                    .into(),
            ),
        );
    }
    cluster.clone()
}

fn check_msk(c: &mut Checker<'_>, m: &RawMsk) -> MskAccess {
    let cluster = msk_cluster_name(c, "msk.cluster", &m.cluster);
    if let Some(g) = &m.consumer_group {
        check_group(c, "msk.consumer_group", g);
    }
    let mut topics = |key: &str, list: &Option<Strings>| -> Vec<String> {
        let Some(list) = list else { return Vec::new() };
        for t in list.get_ref() {
            if !valid_topic(t.get_ref(), true) {
                c.error(
                    t.span(),
                    format!("`msk.{key}` has `{}`, which is not a Kafka topic name", t.get_ref()),
                    Some("use letters, digits, `.`, `_` and `-` (at most 249), with `*` as a wildcard".into()),
                );
            }
        }
        let mut v: Vec<String> = list.get_ref().iter().map(|t| t.get_ref().clone()).collect();
        v.sort();
        v.dedup();
        v
    };
    let read_topics = topics("read_topics", &m.read_topics);
    let write_topics = topics("write_topics", &m.write_topics);
    let span = m.cluster.span();
    if read_topics.is_empty() && write_topics.is_empty() {
        c.error(
            span.clone(),
            "`[msk]` names no topic: the task role would connect and do nothing".into(),
            Some("add `read_topics = [\"...\"]` (what it consumes) and/or `write_topics = [\"...\"]` (what it produces)".into()),
        );
    } else if !read_topics.is_empty() && m.consumer_group.is_none() {
        c.error(
            m.read_topics.as_ref().map_or(span, Spanned::span),
            "`[msk]` reads topics but names no `consumer_group`: the task role may commit offsets only as a group it names".into(),
            Some("add `consumer_group = \"...\"`, the group.id the consumer uses".into()),
        );
    }
    MskAccess {
        cluster,
        consumer_group: m.consumer_group.as_ref().map(|g| g.get_ref().clone()),
        read_topics,
        write_topics,
    }
}

fn missing_dockerfile(c: &mut Checker<'_>) {
    c.errors.push(
        Diagnostic::error(c.file, format!("the consumer has no `{DEFAULT_DOCKERFILE}`"))
            .help("add a Dockerfile to the consumer's folder, or name one with `[build] dockerfile = \"...\"`"),
    );
}

fn check_env_name(c: &mut Checker<'_>, table: &str, key: &Spanned<String>) {
    if !ENV_NAME.is_match(key.get_ref()) {
        c.error(
            key.span(),
            format!(
                "`{}` in `[{table}]` is not a valid environment variable name",
                key.get_ref()
            ),
            Some("use letters, digits and `_`, not starting with a digit".into()),
        );
    }
}

fn check_build(
    c: &mut Checker<'_>,
    raw: &RawBuild,
    context_dir: &Path,
    dockerfile_refused: bool,
    out: &mut BuildSettings,
) {
    if let Some(df) = &raw.dockerfile {
        let path = df.get_ref();
        let escapes = Path::new(path).is_absolute()
            || path.split(['/', '\\']).any(|part| part == "..")
            || path.is_empty();
        if escapes {
            c.error(
                df.span(),
                format!("`dockerfile` `{path}` is outside the consumer's folder"),
                Some("give a path inside the consumer's folder, such as `Dockerfile` or `docker/Dockerfile.prod`".into()),
            );
        } else {
            out.dockerfile = path.trim_start_matches("./").replace('\\', "/");
            if !context_dir.join(&out.dockerfile).is_file() {
                c.error(
                    df.span(),
                    format!("`dockerfile` `{path}` does not exist in the consumer's folder"),
                    Some("create it or fix the path".into()),
                );
            }
        }
    } else if !dockerfile_refused && !context_dir.join(DEFAULT_DOCKERFILE).is_file() {
        missing_dockerfile(c);
    }
    if let Some(t) = &raw.target {
        if t.get_ref().trim().is_empty() {
            c.error(
                t.span(),
                "`target` is empty".into(),
                Some("name a build stage or remove the key".into()),
            );
        } else {
            out.target = Some(t.get_ref().clone());
        }
    }
    for (key, value) in &raw.args {
        if let Some(text) = c.scalar(key.get_ref(), value) {
            out.args.insert(key.get_ref().clone(), text);
        }
    }
}

fn check_health(c: &mut Checker<'_>, hc: &Spanned<RawHealthCheck>) -> HealthCheck {
    let raw = hc.get_ref();
    let command = match raw.command.get_ref() {
        RawCommand::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
        RawCommand::Exec(v) if v.first().is_some_and(|f| f == "CMD" || f == "CMD-SHELL") => {
            v.clone()
        }
        RawCommand::Exec(v) => std::iter::once("CMD".to_string())
            .chain(v.iter().cloned())
            .collect(),
    };
    if command.len() < 2 || command[1..].iter().all(|a| a.trim().is_empty()) {
        c.error(
            raw.command.span(),
            "`health_check.command` is empty".into(),
            Some("give a command that fails when the consumer is stuck, such as a heartbeat-file age check".into()),
        );
    }
    HealthCheck {
        command,
        interval: raw.interval.as_ref().map_or(30, |v| {
            c.range("health_check.interval", v, 5, 300, " seconds")
        }),
        timeout: raw
            .timeout
            .as_ref()
            .map_or(5, |v| c.range("health_check.timeout", v, 2, 60, " seconds")),
        retries: raw
            .retries
            .as_ref()
            .map_or(3, |v| c.range("health_check.retries", v, 1, 10, "")),
        start_period: raw.start_period.as_ref().map_or(0, |v| {
            c.range("health_check.start_period", v, 0, 300, " seconds")
        }),
    }
}

/// `[autoscaling]`.
fn check_autoscaling(
    c: &mut Checker<'_>,
    a: &Spanned<RawAutoscaling>,
    desired_raw: &Option<Spanned<u32>>,
    desired: u32,
    policy_refused: bool,
    msk: Option<&MskAccess>,
    msk_refused: bool,
) -> Autoscaling {
    let raw = a.get_ref();
    let (min, max) = (*raw.min.get_ref(), *raw.max.get_ref());
    if max == 0 {
        c.error(
            raw.max.span(),
            "`autoscaling.max` is 0".into(),
            Some("allow at least one task".into()),
        );
    }
    if min > max {
        c.error(
            raw.min.span(),
            format!("`autoscaling.min` {min} is above `autoscaling.max` {max}"),
            Some("make `min` at most `max`".into()),
        );
    }
    if let Some(d) = desired_raw {
        if desired < min || desired > max {
            c.error(
                d.span(),
                format!("`desired_count` {desired} is outside `autoscaling` {min} to {max}"),
                Some("set `desired_count` within the autoscaling range, or remove it".into()),
            );
        }
    }
    let cpu_target = raw
        .cpu_target
        .as_ref()
        .map(|v| c.range("autoscaling.cpu_target", v, 1, 100, "%"));
    let memory_target = raw
        .memory_target
        .as_ref()
        .map(|v| c.range("autoscaling.memory_target", v, 1, 100, "%"));
    let kafka_lag = raw.kafka_lag.as_ref().and_then(|k| {
        if min == 0 {
            c.error(
                raw.min.span(),
                "`autoscaling.min` is 0 with `[autoscaling.kafka_lag]`: lag per running task has no value while no task runs, so the consumer would never scale out again".into(),
                Some("set `min = 1` or more; a CDC consumer at 0 tasks only lets its lag grow".into()),
            );
        }
        check_kafka_lag(c, k, msk, msk_refused)
    });
    if cpu_target.is_none() && memory_target.is_none() && raw.kafka_lag.is_none() && !policy_refused
    {
        c.error(
            a.span(),
            "`[autoscaling]` has no scaling policy".into(),
            Some("set `cpu_target`, `memory_target` or `[autoscaling.kafka_lag]`".into()),
        );
    }
    Autoscaling {
        min,
        max,
        cpu_target,
        memory_target,
        kafka_lag,
    }
}

/// `[autoscaling.kafka_lag]` with every part resolved: the cluster and group from `[msk]` (or,
/// written before `[msk]` existed, from its own `msk_cluster` and `consumer_group`: the module
/// then gives the task role access to that topic as that group, as it did before `[msk]`, and the
/// entry stays as it was, so a held consumer stays held), the topic from its `topic` or `[msk]`'s
/// only read topic. `None` when a part is missing (said in a finding).
fn check_kafka_lag(
    c: &mut Checker<'_>,
    k: &Spanned<RawKafkaLag>,
    msk: Option<&MskAccess>,
    msk_refused: bool,
) -> Option<KafkaLagScaling> {
    let span = k.span();
    let k = k.get_ref();
    if *k.target_lag.get_ref() == 0 {
        c.error(
            k.target_lag.span(),
            "`kafka_lag.target_lag` is 0: the service would scale out on any lag at all".into(),
            Some(
                "set the number of unprocessed messages one task should carry, such as 1000".into(),
            ),
        );
    }
    if let Some(t) = &k.topic {
        if !valid_topic(t.get_ref(), false) {
            c.error(
                t.span(),
                format!(
                    "`kafka_lag.topic` `{}` is not a Kafka topic name",
                    t.get_ref()
                ),
                Some("name one topic: letters, digits, `.`, `_` and `-`, no wildcard".into()),
            );
        }
    }
    if let Some(g) = &k.consumer_group {
        check_group(c, "kafka_lag.consumer_group", g);
    }
    let legacy_cluster = k
        .msk_cluster
        .as_ref()
        .map(|v| (v, msk_cluster_name(c, "kafka_lag.msk_cluster", v)));
    if msk_refused {
        return None;
    }
    match msk {
        Some(m) => {
            // `[msk]` is the one place: the old keys may repeat it, not contradict it.
            if let Some((v, name)) = &legacy_cluster {
                if *name != m.cluster {
                    c.error(
                        v.span(),
                        format!("`kafka_lag.msk_cluster` `{name}` is not `[msk]`'s cluster `{}`", m.cluster),
                        Some("remove `msk_cluster` from `[autoscaling.kafka_lag]`: lag scaling uses `[msk]`".into()),
                    );
                }
            }
            if let Some(g) = &k.consumer_group {
                if Some(g.get_ref()) != m.consumer_group.as_ref() {
                    c.error(
                        g.span(),
                        "`kafka_lag.consumer_group` is not `[msk]`'s `consumer_group`".into(),
                        Some("remove `consumer_group` from `[autoscaling.kafka_lag]`: lag scaling uses `[msk]`".into()),
                    );
                }
            }
            let Some(group) = m.consumer_group.clone() else {
                c.error(
                    span,
                    "`[autoscaling.kafka_lag]` scales on a consumer group's lag, but `[msk]` names no `consumer_group`".into(),
                    Some("add `consumer_group = \"...\"` to `[msk]`".into()),
                );
                return None;
            };
            let topic = match &k.topic {
                Some(t) => {
                    let known = m.read_topics.iter().any(|r| wildcard_match(r, t.get_ref()));
                    if !known {
                        c.error(
                            t.span(),
                            format!(
                                "`kafka_lag.topic` `{}` is not among `[msk]` `read_topics`",
                                t.get_ref()
                            ),
                            Some("scale on the lag of a topic the consumer reads".into()),
                        );
                    }
                    t.get_ref().clone()
                }
                None => match m.read_topics.as_slice() {
                    [one] if valid_topic(one, false) => one.clone(),
                    _ => {
                        c.error(
                            span,
                            "`[autoscaling.kafka_lag]` needs `topic`: MSK reports lag per topic, and `[msk]` does not read exactly one topic without a wildcard".into(),
                            Some("add `topic = \"...\"`, the topic whose lag to scale on".into()),
                        );
                        return None;
                    }
                },
            };
            Some(KafkaLagScaling {
                msk_cluster: m.cluster.clone(),
                consumer_group: group,
                topic,
                target_lag: *k.target_lag.get_ref(),
            })
        }
        None => {
            // Written before `[msk]`: its own cluster, group and topic, or nothing to go on.
            let (Some((_, cluster)), Some(group), Some(topic)) =
                (legacy_cluster, &k.consumer_group, &k.topic)
            else {
                c.error(
                    span,
                    "`[autoscaling.kafka_lag]` needs the MSK cluster, consumer group and topic whose lag it scales on".into(),
                    Some("add an `[msk]` table with `cluster`, `consumer_group` and `read_topics`".into()),
                );
                return None;
            };
            c.warn(
                span,
                "`msk_cluster` and `consumer_group` in `[autoscaling.kafka_lag]` are from before `[msk]`: the task role's MSK access is now `[msk]`, independent of autoscaling".into(),
                format!(
                    "move them to an `[msk]` table: `cluster = \"{cluster}\"`, `consumer_group = \"{}\"`, `read_topics = [\"{}\"]`",
                    group.get_ref(),
                    topic.get_ref()
                ),
            );
            Some(KafkaLagScaling {
                msk_cluster: cluster,
                consumer_group: group.get_ref().clone(),
                topic: topic.get_ref().clone(),
                target_lag: *k.target_lag.get_ref(),
            })
        }
    }
}

/// Whether `topic` is one an IAM topic pattern with `*` wildcards allows.
fn wildcard_match(pattern: &str, topic: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == topic;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !topic.starts_with(first) || topic.len() < first.len() + last.len() || !topic.ends_with(last)
    {
        return false;
    }
    let mut rest = &topic[first.len()..topic.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const FILE: &str = "consumer_scripts/orders/consumer.toml";

    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        dir
    }

    fn check(text: &str) -> Result<Validated, Vec<Diagnostic>> {
        let dir = folder();
        validate(text, FILE, dir.path())
    }

    #[test]
    fn an_empty_file_means_every_default() {
        let v = check("").unwrap();
        assert_eq!(v.settings, ConsumerSettings::default());
        assert_eq!((v.settings.cpu, v.settings.memory), (256, 512));
    }

    #[test]
    fn a_full_file_is_read() {
        let text = r#"
cpu = 1024
memory = 3072
desired_count = 2
platform = "linux/arm64"
stop_timeout = 90

[environment]
KAFKA_TOPICS = "dbserver1.inventory.orders"
BATCH_SIZE = 500
DRY_RUN = false

[secrets]
DB_PASSWORD = "arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db-AbCdEf"
KAFKA_SASL = "arn:aws:ssm:us-east-1:123456789012:parameter/cdc/kafka/sasl"

[build]
dockerfile = "docker/Dockerfile.prod"
target = "runtime"
args = { PYTHON_VERSION = "3.12", REVISION = 7 }

[health_check]
command = "test $(( $(date +%s) - $(stat -c %Y /tmp/heartbeat) )) -lt 60"
interval = 15
start_period = 45

[autoscaling]
min = 1
max = 6
cpu_target = 70

[autoscaling.kafka_lag]
msk_cluster = "arn:aws:kafka:us-east-1:123456789012:cluster/cdc-msk/6f1c0c2e-1111-2222-3333-444455556666-2"
consumer_group = "orders-cdc"
topic = "dbserver1.inventory.orders"
target_lag = 1000
"#;
        let dir = folder();
        fs::create_dir(dir.path().join("docker")).unwrap();
        fs::write(dir.path().join("docker/Dockerfile.prod"), "FROM scratch\n").unwrap();
        let s = validate(text, FILE, dir.path()).unwrap().settings;
        assert_eq!(
            (s.cpu, s.memory, s.desired_count, s.stop_timeout),
            (1024, 3072, 2, 90)
        );
        assert_eq!(s.platform, Platform::LinuxArm64);
        assert_eq!(s.environment["BATCH_SIZE"], "500");
        assert_eq!(s.environment["DRY_RUN"], "false");
        assert_eq!(s.secrets["KAFKA_SASL"].kind(), "SSM parameter");
        assert_eq!(s.build.dockerfile, "docker/Dockerfile.prod");
        assert_eq!(s.build.args["REVISION"], "7");
        let hc = s.health_check.unwrap();
        assert_eq!(hc.command[0], "CMD-SHELL");
        assert_eq!(
            (hc.interval, hc.timeout, hc.retries, hc.start_period),
            (15, 5, 3, 45)
        );
        let a = s.autoscaling.unwrap();
        assert_eq!(
            a.kafka_lag.unwrap().msk_cluster,
            "cdc-msk",
            "the ARN is reduced to the cluster name"
        );
    }

    #[test]
    fn cpu_alone_picks_the_smallest_memory() {
        assert_eq!(check("cpu = 2048").unwrap().settings.memory, 4096);
    }

    #[test]
    fn exec_health_checks_get_cmd_prepended() {
        let s = check("[health_check]\ncommand = [\"python3\", \"-m\", \"app.health\"]")
            .unwrap()
            .settings;
        assert_eq!(
            s.health_check.unwrap().command,
            vec!["CMD", "python3", "-m", "app.health"]
        );
    }

    #[test]
    fn plain_text_secrets_are_a_warning() {
        let v = check("[environment]\nDB_PASSWORD = \"hunter2\"\n").unwrap();
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].line, Some(2));
        assert!(
            !v.warnings[0].to_string().contains("hunter2"),
            "the value is never repeated"
        );
    }

    #[test]
    fn alarms_take_thresholds_or_false_and_rollback() {
        let msk =
            "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"g\"\nread_topics = [\"orders\"]\n";
        let v = check(&format!(
            "execute_command = true\n{msk}[alarms]\nrunning_below_desired = 10\ntasks_stopped = false\nlag = 5_000\nlag_minutes = 30\ncpu = false\nmemory = 80\nrollback = true\n"
        ))
        .unwrap();
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert!(v.settings.execute_command);
        assert_eq!(
            v.settings.alarms,
            Some(Alarms {
                running_below_desired_minutes: Some(10),
                tasks_stopped: None,
                lag_messages: Some(5000),
                lag_minutes: Some(30),
                cpu_percent: None,
                memory_percent: Some(80),
                off: vec!["tasks_stopping", "cpu"],
                rollback: true,
            })
        );
        // No `[alarms]`: nothing written, the module's thresholds.
        assert_eq!(check("").unwrap().settings.alarms, None);
        // A lag threshold with no group reading: said, not refused.
        let v = check("[alarms]\nlag = 10\n").unwrap();
        assert_eq!(v.warnings.len(), 1);
        assert!(
            v.warnings[0].to_string().contains("no lag to watch"),
            "{}",
            v.warnings[0]
        );
        assert_eq!(v.warnings[0].line, Some(2));
        // Minutes for a lag alarm switched off: said.
        let v = check(&format!("{msk}[alarms]\nlag = false\nlag_minutes = 5\n")).unwrap();
        assert!(v.warnings[0].to_string().contains("has no effect"));
    }

    /// Every kind of bad input gives a clear error with the file and line, and none panics.
    #[test]
    fn bad_input_table() {
        let cases: &[(&str, &str)] = &[
            ("malformed TOML", "cpu = 256\nmemory = \n"),
            ("unterminated table header", "[build\ntarget = \"x\"\n"),
            ("unknown key", "cpu = 256\ncpuu = 512\n"),
            ("unknown nested key", "[autoscaling]\nmin = 1\nmax = 2\ncpu_target = 50\n[autoscaling.kafka_lag]\nmsk_cluster = \"c\"\nconsumer_group = \"g\"\ntopic = \"t\"\ntarget_lag = 5\nlag = 3\n"),
            ("wrong type", "cpu = \"256\"\n"),
            ("negative number", "desired_count = -1\n"),
            ("duplicate key", "cpu = 256\ncpu = 512\n"),
            ("bad cpu/memory pair", "cpu = 256\nmemory = 4096\n"),
            ("cpu that is not a size", "cpu = 300\n"),
            ("bad platform", "platform = \"windows/amd64\"\n"),
            ("out of range", "stop_timeout = 600\n"),
            ("secret that is not an ARN", "[secrets]\nDB_PASSWORD = \"hunter2\"\n"),
            ("secret also in environment", "[environment]\nX = \"1\"\n[secrets]\nX = \"arn:aws:ssm:us-east-1:123456789012:parameter/x\"\n"),
            ("bad environment name", "[environment]\n\"1BAD-NAME\" = \"x\"\n"),
            ("environment value that is a table", "[environment]\nX = { a = 1 }\n"),
            ("missing Dockerfile", "[build]\ndockerfile = \"Dockerfile.missing\"\n"),
            ("Dockerfile outside the folder", "[build]\ndockerfile = \"../other/Dockerfile\"\n"),
            ("empty health check", "[health_check]\ncommand = []\n"),
            ("autoscaling min above max", "desired_count = 9\n[autoscaling]\nmin = 5\nmax = 2\ncpu_target = 60\n"),
            ("autoscaling without a policy", "[autoscaling]\nmin = 1\nmax = 2\n"),
            ("kafka lag target of zero", "[autoscaling]\nmin = 1\nmax = 2\n[autoscaling.kafka_lag]\nmsk_cluster = \"bad name!\"\nconsumer_group = \"\"\ntopic = \"t\"\ntarget_lag = 0\n"),
            ("single writer with two tasks", "single_writer = true\ndesired_count = 2\n"),
            ("single writer with autoscaling", "single_writer = true\n[autoscaling]\nmin = 1\nmax = 2\ncpu_target = 60\n"),
            ("single writer that is not a boolean", "single_writer = \"true\"\n"),
            ("consumer group with a colon", "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"orders:cdc\"\nread_topics = [\"orders\"]\n"),
            ("consumer group outside ASCII", "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"commandes-été\"\nread_topics = [\"orders\"]\n"),
            ("lag scaling from zero tasks", "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"g\"\nread_topics = [\"orders\"]\n[autoscaling]\nmin = 0\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 100\n"),
            ("msk without topics", "[msk]\ncluster = \"cdc-msk\"\n"),
            ("msk with empty topic lists", "[msk]\ncluster = \"cdc-msk\"\nread_topics = []\nwrite_topics = []\n"),
            ("msk reading without a group", "[msk]\ncluster = \"cdc-msk\"\nread_topics = [\"orders\", \"bad topic\"]\n"),
            ("lag on a topic not read", "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"g\"\nread_topics = [\"orders\", \"payments\"]\n[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 100\ntopic = \"refunds\"\n"),
            ("lag without a topic among several", "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"g\"\nread_topics = [\"orders\", \"payments\"]\n[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 100\n"),
            ("lag without msk", "[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 100\n"),
            ("alarm threshold true", "[alarms]\nlag = true\n"),
            ("alarm threshold as text", "[alarms]\ncpu = \"90\"\n"),
            ("alarm percent over 100", "[alarms]\nmemory = 120\nrunning_below_desired = 0\n"),
            ("alarm minutes past a day", "[alarms]\nlag_minutes = 2000\nrunning_below_desired = 1441\n"),
            ("lag alarm of zero", "[alarms]\nlag = 0\n"),
            ("unknown alarm", "[alarms]\nlatency = 5\n"),
            ("rollback of a single writer", "single_writer = true\n[alarms]\nrollback = true\n"),
            ("rollback without its alarm", "[alarms]\nrunning_below_desired = false\nrollback = true\n"),
            ("execute_command that is not a boolean", "execute_command = \"yes\"\n"),
        ];
        let mut out = String::new();
        for (name, text) in cases {
            let errors = check(text)
                .err()
                .unwrap_or_else(|| panic!("`{name}` was accepted"));
            out.push_str(&format!("## {name}\n"));
            for e in &errors {
                assert_eq!(e.file, FILE);
                assert!(e.line.is_some(), "`{name}` has no line: {e}");
                out.push_str(&format!("{e}\n"));
            }
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn every_mistake_is_found_in_one_run_in_file_order() {
        let text = "memroy = 1024\ncpu = \"512\"\n[enviroment]\nKAFKA_TOPIC = \"x\"\n[autoscaling]\nmin = -1\nmax = 3\ncpu_target = 60\n";
        let errors = check(text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(1), "`memroy` is not a setting; did you mean `memory`?"),
                (
                    Some(2),
                    "`cpu` must be a whole number like 512, not a string"
                ),
                (
                    Some(3),
                    "`enviroment` is not a setting; did you mean `environment`?"
                ),
                (Some(6), "`autoscaling.min` must be 0 or more, not -1"),
            ]
        );
        assert_eq!(
            errors[1].help.as_deref(),
            Some("write `cpu = 512`, without quotes")
        );
    }

    #[test]
    fn a_refused_value_is_not_taken_for_an_absent_one() {
        let errors = check("cpu = \"1024\"\nmemory = 4096\n").unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let errors = check("[autoscaling]\nmin = 1\nmax = 2\ncpu_target = \"70\"\n").unwrap_err();
        assert_eq!(errors.len(), 1, "no `no scaling policy` on top: {errors:?}");
        let errors =
            check("[autoscaling]\nmin = 1\nmax = 2\n[autoscaling.kafka_lag]\ntopic = \"t\"\n")
                .unwrap_err();
        assert!(
            errors
                .iter()
                .all(|e| !e.message.contains("no scaling policy")),
            "{errors:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let errors = validate("[build]\ndockerfile = 5\n", FILE, dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn a_single_writer_rolls_out_with_0_and_100_and_a_short_stop_timeout_is_a_warning() {
        let v = check("single_writer = true\ndesired_count = 1\nstop_timeout = 10\n").unwrap();
        assert!(v.settings.single_writer);
        assert_eq!(v.settings.deployment_percentages(), Some((0, 100)));
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert_eq!(v.warnings[0].line, Some(3));
        assert!(v.warnings[0]
            .message
            .contains("release its replication slot"));
        let quiet = check("single_writer = true\ndesired_count = 0\nstop_timeout = 60\n").unwrap();
        assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
        let group = check("desired_count = 3\nsingle_writer = false\n").unwrap();
        assert_eq!(group.settings.deployment_percentages(), None);
    }

    #[test]
    fn msk_access_stands_alone_and_lag_scaling_takes_its_parts_from_it() {
        let fixed = check("[msk]\ncluster = \"arn:aws:kafka:us-east-1:123456789012:cluster/cdc-msk/6f1c0c2e-1111-2222-3333-444455556666-2\"\nwrite_topics = [\"outbox.orders\", \"outbox.orders\"]\n")
            .unwrap()
            .settings;
        let msk = fixed.msk.unwrap();
        assert_eq!(msk.cluster, "cdc-msk");
        assert_eq!(msk.write_topics, ["outbox.orders"]);
        assert_eq!(
            (msk.consumer_group, fixed.autoscaling),
            (None, None),
            "no autoscaling needed"
        );
        let scaled = check("[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"orders-cdc\"\nread_topics = [\"dbserver1.public.orders\"]\n[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 500\n")
            .unwrap();
        assert!(scaled.warnings.is_empty());
        let lag = scaled.settings.autoscaling.unwrap().kafka_lag.unwrap();
        assert_eq!(
            (
                lag.msk_cluster.as_str(),
                lag.consumer_group.as_str(),
                lag.topic.as_str(),
                lag.target_lag
            ),
            ("cdc-msk", "orders-cdc", "dbserver1.public.orders", 500)
        );
        // A topic among wildcard read topics is known.
        assert!(check("[msk]\ncluster = \"c\"\nconsumer_group = \"g\"\nread_topics = [\"db.public.*\"]\n[autoscaling]\nmin = 1\nmax = 2\n[autoscaling.kafka_lag]\ntarget_lag = 5\ntopic = \"db.public.orders\"\n").is_ok());
        assert!(wildcard_match("a*c*e", "abcde") && !wildcard_match("a*c*e", "abde"));
    }

    #[test]
    fn lag_scaling_written_before_msk_keeps_its_entry_with_a_warning() {
        let v = check("[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\nmsk_cluster = \"cdc-msk\"\nconsumer_group = \"orders-cdc\"\ntopic = \"orders\"\ntarget_lag = 100\n")
            .unwrap();
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].help.as_deref().unwrap().contains("`[msk]`"));
        // The entry stays as it was written before `[msk]` (a held consumer stays held); the
        // module gives the task role the access its kafka_lag names.
        assert_eq!(v.settings.msk, None);
        let lag = v.settings.autoscaling.unwrap().kafka_lag.unwrap();
        assert_eq!(
            (
                lag.msk_cluster.as_str(),
                lag.consumer_group.as_str(),
                lag.topic.as_str()
            ),
            ("cdc-msk", "orders-cdc", "orders")
        );
    }

    #[test]
    fn a_memory_size_names_the_default_cpu_it_does_not_fit() {
        let errors = check("memory = 1000\n").unwrap_err();
        assert_eq!(
            errors[0].message,
            "`memory` 1000 does not fit the default `cpu` 256 (`cpu` is not set)"
        );
    }

    #[test]
    fn a_folder_without_a_dockerfile_is_an_error_without_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let errors = validate("cpu = 256\n", FILE, dir.path()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].message.contains("no `Dockerfile`"));
        assert_eq!(errors[0].line, None);
    }
}
