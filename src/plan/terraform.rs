//! A saved Terraform plan, read from `terraform show -json`, as changes per consumer, and the
//! destroy guard that stops a plan which would take a consumer's running service or data away.
//!
//! Pure: it reads the JSON it is given and the names of the consumers; it never runs Terraform.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What Terraform will do to one resource instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Create,
    /// Update in place.
    Update,
    /// Destroy and create again (in either order).
    Replace,
    Destroy,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Create,
        ChangeKind::Update,
        ChangeKind::Replace,
        ChangeKind::Destroy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Update => "update in place",
            ChangeKind::Replace => "replace",
            ChangeKind::Destroy => "destroy",
        }
    }

    fn from_actions(actions: &[String]) -> Option<ChangeKind> {
        let has = |a: &str| actions.iter().any(|x| x == a);
        match (has("create"), has("delete"), has("update")) {
            (true, true, _) => Some(ChangeKind::Replace),
            (true, false, _) => Some(ChangeKind::Create),
            (false, true, _) => Some(ChangeKind::Destroy),
            (false, false, true) => Some(ChangeKind::Update),
            _ => None,
        }
    }
}

/// One resource instance that changes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ResourceChange {
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub kind: ChangeKind,
    /// The consumer the resource belongs to: the `for_each` key in its address that names one.
    pub consumer: Option<String>,
    /// Terraform's reason, when it gives one (`replace_because_cannot_update`, ...).
    pub reason: Option<String>,
    /// For an ECS service updated in place: what makes ECS start a new deployment of it (every
    /// task replaced), such as `network_configuration` or `force_new_deployment`; empty when the
    /// update starts none (tags, rollout limits, AZ rebalancing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub starts_deployment: Vec<String>,
    /// A destroy that only removes the resource from the state and leaves it in AWS (a log group
    /// with `skip_destroy`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forget_only: bool,
}

/// Arguments of `aws_ecs_service` whose change makes ECS start a new deployment on its own
/// (UpdateService: "This parameter triggers a new service deployment"); the others (rollout
/// limits, desired count, tags, AZ rebalancing, ECS Exec) change the service and leave its tasks
/// running.
/// https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html
pub const DEPLOYMENT_STARTING: [&str; 9] = [
    "task_definition",
    "network_configuration",
    "platform_version",
    "capacity_provider_strategy",
    "load_balancer",
    "service_registries",
    "service_connect_configuration",
    "volume_configuration",
    "vpc_lattice_configurations",
];

/// What in a service's update starts a new deployment: each argument of
/// [`DEPLOYMENT_STARTING`] that changes (or holds a value not known until apply), and
/// `force_new_deployment` when it is on and the update is more than tags (the provider sends it
/// with every `UpdateService`, and calls none for tags alone).
fn deployment_causes(
    before: &serde_json::Value,
    after: &serde_json::Value,
    unknown: &serde_json::Value,
) -> Vec<String> {
    let mut causes: Vec<String> = DEPLOYMENT_STARTING
        .iter()
        .filter(|k| before.get(**k) != after.get(**k) || unknown.get(**k).is_some_and(any_unknown))
        .map(|k| k.to_string())
        .collect();
    let more_than_tags = match (before.as_object(), after.as_object()) {
        (Some(b), Some(a)) => b
            .keys()
            .chain(a.keys())
            .filter(|k| *k != "tags" && *k != "tags_all")
            .any(|k| b.get(k) != a.get(k) || unknown.get(k).is_some_and(any_unknown)),
        _ => true,
    };
    if after.get("force_new_deployment") == Some(&serde_json::Value::Bool(true)) && more_than_tags {
        causes.push("force_new_deployment".into());
    }
    causes
}

/// Whether an `after_unknown` value marks anything unknown: Terraform writes the shape of every
/// list and object there (`[]`, `[{"subnets": [false]}]`) and `true` only where a value is not
/// known until apply.
fn any_unknown(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Array(a) => a.iter().any(any_unknown),
        serde_json::Value::Object(m) => m.values().any(any_unknown),
        _ => false,
    }
}

/// How many resources change, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Totals {
    /// Count one more change of `kind`.
    pub fn count(&mut self, kind: ChangeKind) {
        match kind {
            ChangeKind::Create => self.create += 1,
            ChangeKind::Update => self.update += 1,
            ChangeKind::Replace => self.replace += 1,
            ChangeKind::Destroy => self.destroy += 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Totals::default()
    }
}

impl fmt::Display for Totals {
    /// `2 to create, 1 to update in place, 1 to replace, 0 to destroy`, the parts that are not
    /// zero; `no changes` when all are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            (self.create, "to create"),
            (self.update, "to update in place"),
            (self.replace, "to replace"),
            (self.destroy, "to destroy"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if parts.is_empty() {
            f.write_str("no changes")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A saved plan, as the action reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct InfraPlan {
    /// Every resource instance that changes (no-ops and reads left out), in plan order.
    pub changes: Vec<ResourceChange>,
    /// Root outputs whose value changes.
    pub output_changes: Vec<String>,
}

impl InfraPlan {
    /// Read `terraform show -json <plan>`. `consumers` are the names resources are attributed
    /// to: those in the map now and those applied before.
    pub fn parse(json: &str, consumers: &BTreeSet<String>) -> Result<InfraPlan, String> {
        #[derive(serde::Deserialize)]
        struct Show {
            #[serde(default)]
            resource_changes: Vec<Rc>,
            #[serde(default)]
            output_changes: BTreeMap<String, Oc>,
        }
        #[derive(serde::Deserialize)]
        struct Rc {
            address: String,
            #[serde(default)]
            index: Option<serde_json::Value>,
            #[serde(default)]
            mode: String,
            #[serde(rename = "type")]
            resource_type: String,
            change: Change,
            #[serde(default)]
            action_reason: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Change {
            actions: Vec<String>,
            #[serde(default)]
            before: serde_json::Value,
            #[serde(default)]
            after: serde_json::Value,
            #[serde(default)]
            after_unknown: serde_json::Value,
        }
        #[derive(serde::Deserialize)]
        struct Oc {
            actions: Vec<String>,
        }
        let show: Show = serde_json::from_str(json).map_err(|e| e.to_string())?;
        // A resource is a consumer's when any of its instances (changed or not: `show -json`
        // lists no-ops too) is keyed by a consumer's name; then each of its string keys names
        // a consumer, also one gone from the folder and from the `consumers` output.
        let string_key = |r: &Rc| {
            r.index
                .as_ref()
                .and_then(|i| i.as_str())
                .map(str::to_string)
        };
        let per_consumer: BTreeSet<String> = show
            .resource_changes
            .iter()
            .filter(|r| string_key(r).is_some_and(|k| consumers.contains(&k)))
            .map(|r| resource_of(&r.address).to_string())
            .collect();
        let changes = show
            .resource_changes
            .iter()
            .filter(|r| r.mode != "data")
            .filter_map(|r| {
                let kind = ChangeKind::from_actions(&r.change.actions)?;
                let by_key =
                    string_key(r).filter(|_| per_consumer.contains(resource_of(&r.address)));
                let starts_deployment =
                    if kind == ChangeKind::Update && r.resource_type == "aws_ecs_service" {
                        let c = &r.change;
                        deployment_causes(&c.before, &c.after, &c.after_unknown)
                    } else {
                        Vec::new()
                    };
                // The provider keeps a log group with `skip_destroy` and only forgets it.
                let forget_only = kind == ChangeKind::Destroy
                    && r.change.before.get("skip_destroy") == Some(&serde_json::Value::Bool(true));
                Some(ResourceChange {
                    consumer: by_key.or_else(|| consumer_of(&r.address, consumers)),
                    address: r.address.clone(),
                    resource_type: r.resource_type.clone(),
                    kind,
                    reason: r.action_reason.clone(),
                    starts_deployment,
                    forget_only,
                })
            })
            .collect();
        let output_changes = show
            .output_changes
            .into_iter()
            .filter(|(_, o)| o.actions.iter().any(|a| a != "no-op"))
            .map(|(n, _)| n)
            .collect();
        Ok(InfraPlan {
            changes,
            output_changes,
        })
    }

    /// Whether applying the plan would change anything at all.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.output_changes.is_empty()
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for c in &self.changes {
            t.count(c.kind);
        }
        t
    }

    /// The changes to one consumer's resources.
    pub fn of<'a>(&'a self, consumer: &'a str) -> impl Iterator<Item = &'a ResourceChange> + 'a {
        self.changes
            .iter()
            .filter(move |c| c.consumer.as_deref() == Some(consumer))
    }

    /// Consumers whose service an apply of this plan restarts without a new task definition
    /// revision (every task replaced by a deployment ECS starts), with what starts it.
    pub fn restarts(&self) -> BTreeMap<&str, Vec<&str>> {
        self.changes
            .iter()
            .filter(|c| {
                !c.starts_deployment.is_empty()
                    && !c.starts_deployment.iter().any(|a| a == "task_definition")
            })
            .filter_map(|c| {
                let name = c.consumer.as_deref()?;
                Some((
                    name,
                    c.starts_deployment.iter().map(String::as_str).collect(),
                ))
            })
            .collect()
    }

    /// Totals by consumer; resources no consumer owns (the cluster, the network) under `None`.
    pub fn totals_by_consumer(&self) -> BTreeMap<Option<&str>, Totals> {
        let mut m: BTreeMap<Option<&str>, Totals> = BTreeMap::new();
        for c in &self.changes {
            m.entry(c.consumer.as_deref()).or_default().count(c.kind);
        }
        m
    }
}

/// The resource an instance address belongs to: the address without its final `[key]`.
fn resource_of(address: &str) -> &str {
    match address.strip_suffix(']') {
        Some(rest) => rest.rfind('[').map_or(address, |i| &rest[..i]),
        None => address,
    }
}

/// The consumer a resource address belongs to: the last `["key"]` in it that names a consumer
/// (`module.cdc.aws_ecs_service.this["orders"]`, `module.consumer["orders"].aws_ecs_service.this`).
pub fn consumer_of(address: &str, consumers: &BTreeSet<String>) -> Option<String> {
    let mut found = None;
    let mut rest = address;
    while let Some(start) = rest.find("[\"") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("\"]") else { break };
        let key = &after[..end];
        if consumers.contains(key) {
            found = Some(key.to_string());
        }
        rest = &after[end + 2..];
    }
    found
}

/// Resource types that hold a consumer's running service or its data, or the network and
/// cluster every consumer runs in: destroying or replacing one takes something away that a new
/// apply does not give back (a subnet's replacement moves every task, a NAT gateway's changes the
/// address partners allow).
pub const PROTECTED_TYPES: [&str; 8] = [
    "aws_ecs_service",
    "aws_cloudwatch_log_group",
    "aws_ecr_repository",
    "aws_ecs_cluster",
    "aws_vpc",
    "aws_subnet",
    "aws_nat_gateway",
    "aws_eip",
];

/// A change the destroy guard stops.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GuardedChange {
    pub address: String,
    pub kind: ChangeKind,
    pub consumer: Option<String>,
    /// Why it is stopped, in words.
    pub why: String,
}

/// Say of each guarded change of a consumer that looks renamed what to do: `renames` are
/// `(old, new)` pairs ([`crate::plan::Plan::renames`]).
pub fn explain_renames(guarded: &mut [GuardedChange], renames: &[(String, String)]) {
    for g in guarded.iter_mut() {
        let Some((old, new)) = renames
            .iter()
            .find(|(old, _)| g.consumer.as_deref() == Some(old.as_str()))
        else {
            continue;
        };
        g.why = format!(
            "`{old}` is no longer a consumer: its folder looks renamed to `{new}` (the same settings); {}",
            crate::plan::RENAME_WAY
        );
    }
}

/// The changes that must not be applied without `allow-destroy`: a destroy or replacement of a
/// protected resource, and any destroy of a resource of a consumer no longer in the map
/// (`current`). A task definition replaced by a new revision is normal and passes.
pub fn destroy_guard(plan: &InfraPlan, current: &BTreeSet<String>) -> Vec<GuardedChange> {
    plan.changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::Destroy | ChangeKind::Replace) && !c.forget_only)
        .filter_map(|c| {
            let gone = c.consumer.as_ref().is_some_and(|n| !current.contains(n));
            let why = if gone && c.kind == ChangeKind::Destroy {
                format!(
                    "`{}` is no longer a consumer (its folder was removed or renamed)",
                    c.consumer.as_deref().unwrap_or_default()
                )
            } else if PROTECTED_TYPES.contains(&c.resource_type.as_str()) {
                match c.resource_type.as_str() {
                    "aws_ecs_service" => "the service that runs the consumer would be",
                    "aws_cloudwatch_log_group" => "the consumer's logs would be",
                    "aws_ecr_repository" => "the consumer's images would be",
                    "aws_ecs_cluster" => "the cluster every consumer runs in would be",
                    "aws_vpc" => "the VPC every consumer runs in would be",
                    "aws_subnet" => "a subnet the consumers run in (or reach out through) would be",
                    _ => "the public address the consumers reach out from would be",
                }
                .to_string()
                    + match c.kind {
                        ChangeKind::Replace => " replaced",
                        _ => " destroyed",
                    }
                    + match c.resource_type.as_str() {
                        // The AZs chosen changed (or the VPC's range): a subnet cannot move.
                        "aws_subnet" => " (its AZ or range changes): every task of the consumers in it is stopped and started again elsewhere",
                        "aws_eip" | "aws_nat_gateway" => " (allow-lists that name the NAT address break)",
                        _ => "",
                    }
            } else {
                return None;
            };
            Some(GuardedChange {
                address: c.address.clone(),
                kind: c.kind,
                consumer: c.consumer.clone(),
                why,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> BTreeSet<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn show(changes: &[(&str, &str, &[&str])]) -> String {
        let rc: Vec<serde_json::Value> = changes
            .iter()
            .map(|(addr, ty, actions)| {
                serde_json::json!({
                    "address": addr, "mode": "managed", "type": ty, "name": "x",
                    "change": {"actions": actions}
                })
            })
            .collect();
        serde_json::json!({"format_version": "1.2", "resource_changes": rc}).to_string()
    }

    #[test]
    fn changes_are_attributed_by_the_for_each_key() {
        let json = show(&[
            (
                "module.cdc.aws_ecs_task_definition.this[\"orders\"]",
                "aws_ecs_task_definition",
                &["create", "delete"],
            ),
            (
                "module.cdc.aws_ecs_service.this[\"orders\"]",
                "aws_ecs_service",
                &["update"],
            ),
            (
                "module.consumer[\"audit\"].aws_ecs_service.this",
                "aws_ecs_service",
                &["no-op"],
            ),
            (
                "module.cdc.aws_subnet.public[\"us-east-1a\"]",
                "aws_subnet",
                &["create"],
            ),
            (
                "module.cdc.aws_ecs_cluster.this",
                "aws_ecs_cluster",
                &["update"],
            ),
            (
                "data.aws_iam_policy_document.x[\"orders\"]",
                "aws_iam_policy_document",
                &["read"],
            ),
        ]);
        let plan = InfraPlan::parse(&json, &names(&["orders", "audit"])).unwrap();
        assert_eq!(plan.changes.len(), 4, "no-ops are left out");
        assert_eq!(plan.changes[0].consumer.as_deref(), Some("orders"));
        assert_eq!(plan.changes[0].kind, ChangeKind::Replace);
        assert_eq!(
            plan.changes[2].consumer, None,
            "an AZ key is not a consumer"
        );
        assert_eq!(plan.of("orders").count(), 2);
        assert_eq!(plan.of("audit").count(), 0);
        assert_eq!(
            plan.totals().to_string(),
            "1 to create, 2 to update in place, 1 to replace"
        );
        assert_eq!(
            consumer_of(
                "module.consumer[\"audit\"].aws_x.y[\"orders\"]",
                &names(&["orders", "audit"])
            )
            .as_deref(),
            Some("orders")
        );
    }

    #[test]
    fn the_guard_stops_destroys_of_services_logs_and_removed_consumers_only() {
        let json = show(&[
            (
                "aws_ecs_task_definition.this[\"orders\"]",
                "aws_ecs_task_definition",
                &["delete", "create"],
            ),
            (
                "aws_ecs_service.this[\"orders\"]",
                "aws_ecs_service",
                &["update"],
            ),
            (
                "aws_ecs_service.this[\"audit\"]",
                "aws_ecs_service",
                &["create", "delete"],
            ),
            (
                "aws_cloudwatch_log_group.this[\"gone\"]",
                "aws_cloudwatch_log_group",
                &["delete"],
            ),
            (
                "terraform_data.task[\"gone\"]",
                "terraform_data",
                &["delete"],
            ),
            (
                "aws_security_group.tasks",
                "aws_security_group",
                &["delete"],
            ),
        ]);
        let plan = InfraPlan::parse(&json, &names(&["orders", "audit", "gone"])).unwrap();
        let guarded = destroy_guard(&plan, &names(&["orders", "audit"]));
        let addrs: Vec<&str> = guarded.iter().map(|g| g.address.as_str()).collect();
        assert_eq!(
            addrs,
            [
                "aws_ecs_service.this[\"audit\"]",
                "aws_cloudwatch_log_group.this[\"gone\"]",
                "terraform_data.task[\"gone\"]"
            ]
        );
        assert!(
            guarded[0].why.contains("would be replaced"),
            "{}",
            guarded[0].why
        );
        assert!(
            guarded[2].why.contains("`gone` is no longer a consumer"),
            "{}",
            guarded[2].why
        );
        // Nothing destroyed: nothing guarded.
        let calm = InfraPlan::parse(
            &show(&[(
                "aws_ecs_service.this[\"a\"]",
                "aws_ecs_service",
                &["update"],
            )]),
            &names(&["a"]),
        )
        .unwrap();
        assert!(destroy_guard(&calm, &names(&["a"])).is_empty());
    }

    #[test]
    fn a_kept_log_group_is_forgotten_not_destroyed_and_the_network_is_guarded() {
        let json = serde_json::json!({"resource_changes": [
            {"address": "aws_cloudwatch_log_group.this[\"gone\"]", "index": "gone", "mode": "managed", "type": "aws_cloudwatch_log_group",
             "change": {"actions": ["delete"], "before": {"name": "/ecs/p/e/gone", "skip_destroy": true}, "after": null}},
            {"address": "aws_cloudwatch_log_group.this[\"old\"]", "index": "old", "mode": "managed", "type": "aws_cloudwatch_log_group",
             "change": {"actions": ["delete"], "before": {"name": "/ecs/p/e/old", "skip_destroy": false}, "after": null}},
            {"address": "aws_subnet.public[\"us-west-1b\"]", "index": "us-west-1b", "mode": "managed", "type": "aws_subnet",
             "change": {"actions": ["delete", "create"], "before": {}, "after": {}}},
            {"address": "aws_eip.nat[\"us-west-1b\"]", "index": "us-west-1b", "mode": "managed", "type": "aws_eip",
             "change": {"actions": ["delete"], "before": {}, "after": null}},
            {"address": "aws_security_group.tasks", "mode": "managed", "type": "aws_security_group",
             "change": {"actions": ["create", "delete"], "before": {}, "after": {}}},
        ]});
        let plan = InfraPlan::parse(&json.to_string(), &names(&["gone", "old"])).unwrap();
        assert!(plan.changes[0].forget_only);
        assert!(!plan.changes[1].forget_only);
        let guarded = destroy_guard(&plan, &names(&[]));
        let addrs: Vec<&str> = guarded.iter().map(|g| g.address.as_str()).collect();
        assert_eq!(
            addrs,
            [
                "aws_cloudwatch_log_group.this[\"old\"]",
                "aws_subnet.public[\"us-west-1b\"]",
                "aws_eip.nat[\"us-west-1b\"]"
            ],
            "a kept log group is left out; a security group made before the old one goes passes"
        );
        assert!(guarded[1].why.contains("AZ or range"), "{}", guarded[1].why);
        assert!(guarded[2].why.contains("allow-lists"), "{}", guarded[2].why);
    }

    #[test]
    fn a_service_update_that_starts_a_deployment_is_told_from_one_that_does_not() {
        let svc = |name: &str, before: serde_json::Value, after: serde_json::Value| {
            serde_json::json!({"address": format!("aws_ecs_service.this[\"{name}\"]"), "index": name, "mode": "managed",
                "type": "aws_ecs_service", "change": {"actions": ["update"], "before": before, "after": after, "after_unknown": {}}})
        };
        let net = |sgs: &[&str]| serde_json::json!([{"subnets": ["subnet-1"], "security_groups": sgs, "assign_public_ip": false}]);
        let json = serde_json::json!({"resource_changes": [
            // A module upgrade that only sets AZ rebalancing and tags: nothing restarts.
            svc("calm", serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1"]), "availability_zone_rebalancing": "ENABLED", "force_new_deployment": false, "tags": {}}),
                        serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1"]), "availability_zone_rebalancing": "DISABLED", "force_new_deployment": false, "tags": {"a": "b"}})),
            // A further security group: ECS starts a deployment of every task.
            svc("moved", serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1"])}),
                         serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1", "sg-2"])})),
            // Forced deployments on: any update but tags alone restarts.
            svc("forced", serde_json::json!({"task_definition": "td:1", "deployment_maximum_percent": 200, "force_new_deployment": true}),
                          serde_json::json!({"task_definition": "td:1", "deployment_maximum_percent": 150, "force_new_deployment": true})),
            svc("tagged", serde_json::json!({"task_definition": "td:1", "tags": {}, "force_new_deployment": true}),
                          serde_json::json!({"task_definition": "td:1", "tags": {"team": "cdc"}, "force_new_deployment": true})),
            // A new revision: a rollout, watched as such, not a restart.
            svc("rolled", serde_json::json!({"task_definition": "td:1"}), serde_json::json!({"task_definition": "td:2"})),
        ]});
        let mut json = json;
        // As Terraform writes it: every list's shape, `true` only where a value is unknown.
        let shape = serde_json::json!({"network_configuration": [{"subnets": [false], "security_groups": [false], "assign_public_ip": false}],
            "capacity_provider_strategy": [{"capacity_provider": false}], "load_balancer": [], "service_registries": [], "tags": {}, "tags_all": {}});
        for rc in json["resource_changes"].as_array_mut().unwrap() {
            rc["change"]["after_unknown"] = shape.clone();
        }
        // A subnet not created yet: known only at apply.
        let mut pending = svc(
            "pending",
            serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1"])}),
            serde_json::json!({"task_definition": "td:1", "network_configuration": net(&["sg-1"])}),
        );
        pending["change"]["after_unknown"] =
            serde_json::json!({"network_configuration": [{"subnets": [true]}]});
        json["resource_changes"]
            .as_array_mut()
            .unwrap()
            .push(pending);
        let plan = InfraPlan::parse(
            &json.to_string(),
            &names(&["calm", "moved", "forced", "tagged", "rolled", "pending"]),
        )
        .unwrap();
        let restarts = plan.restarts();
        assert_eq!(
            restarts.keys().copied().collect::<Vec<_>>(),
            ["forced", "moved", "pending"],
            "not `calm`, not `tagged`"
        );
        assert_eq!(restarts["pending"], ["network_configuration"]);
        assert_eq!(restarts["moved"], ["network_configuration"]);
        assert_eq!(restarts["forced"], ["force_new_deployment"]);
        assert!(plan.changes[0].starts_deployment.is_empty());
        assert_eq!(plan.changes[4].starts_deployment, ["task_definition"]);
    }

    #[test]
    fn a_consumer_missing_from_every_list_is_found_by_its_resources_key() {
        // The `consumers` output was never there: `gone` is known to nobody, but its resources
        // sit beside `kept`'s under the same resource.
        let json = serde_json::json!({"resource_changes": [
            {"address": "terraform_data.svc[\"kept\"]", "index": "kept", "mode": "managed", "type": "terraform_data", "change": {"actions": ["no-op"]}},
            {"address": "terraform_data.svc[\"gone\"]", "index": "gone", "mode": "managed", "type": "terraform_data", "change": {"actions": ["delete"]}},
            {"address": "aws_subnet.public[\"us-east-1a\"]", "index": "us-east-1a", "mode": "managed", "type": "aws_subnet", "change": {"actions": ["delete"]}},
        ]});
        let plan = InfraPlan::parse(&json.to_string(), &names(&["kept"])).unwrap();
        assert_eq!(plan.changes[0].consumer.as_deref(), Some("gone"));
        assert_eq!(
            plan.changes[1].consumer, None,
            "a subnet's key is not a consumer"
        );
        let guarded = destroy_guard(&plan, &names(&["kept"]));
        assert_eq!(guarded.len(), 2);
        assert!(guarded[0].why.contains("`gone` is no longer a consumer"));
        assert_eq!(guarded[1].consumer, None, "the subnet is everyone's");
        assert_eq!(
            resource_of("module.m[\"a\"].x.y[\"b\"]"),
            "module.m[\"a\"].x.y"
        );
        assert_eq!(resource_of("x.y"), "x.y");
    }

    #[test]
    fn a_service_replaced_inside_a_module_per_consumer_is_guarded() {
        let json = show(&[(
            "module.consumer[\"orders\"].aws_ecs_service.this",
            "aws_ecs_service",
            &["delete", "create"],
        )]);
        let plan = InfraPlan::parse(&json, &names(&["orders"])).unwrap();
        let guarded = destroy_guard(&plan, &names(&["orders"]));
        assert_eq!(guarded.len(), 1);
        assert_eq!(guarded[0].consumer.as_deref(), Some("orders"));
        assert_eq!(guarded[0].kind, ChangeKind::Replace);
        assert!(guarded[0]
            .why
            .contains("service that runs the consumer would be replaced"));
    }

    #[test]
    fn an_empty_plan_is_empty_and_output_changes_count() {
        let p = InfraPlan::parse(r#"{"format_version":"1.2"}"#, &names(&[])).unwrap();
        assert!(p.is_empty());
        assert_eq!(p.totals().to_string(), "no changes");
        let p = InfraPlan::parse(
            r#"{"output_changes":{"consumers":{"actions":["update"]},"x":{"actions":["no-op"]}}}"#,
            &names(&[]),
        )
        .unwrap();
        assert_eq!(p.output_changes, ["consumers"]);
        assert!(!p.is_empty());
        assert!(InfraPlan::parse("not json", &names(&[])).is_err());
    }
}
