//! The bundled Terraform module's contract, checked offline:
//!
//! - its variable validations and per-consumer locals, evaluated by the real `terraform` binary on
//!   a provider-free copy of `variables.tf` and `locals.tf` (neither refers to a resource or a
//!   data source, so `terraform apply` of that copy needs no provider and no network);
//! - the rest by reading the HCL: what the services, log groups, roles and network must say for
//!   the behaviour on real AWS that no offline check sees (forced deployments, AZ rebalancing,
//!   AZs by zone ID, log groups that outlive their consumer, the keys the execution role may use).

use std::path::{Path, PathBuf};
use std::process::Command;

use cdc_deploy::consumers::config::validate;
use cdc_deploy::plan::entries::entry;
use serde_json::{json, Value};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// ---- the real terraform binary on the provider-free part of the module ---------------------------

/// What `terraform apply` of the module's variables and locals made of `vars`: the per-consumer
/// locals as an output, or Terraform's error text.
fn evaluate(vars: &Value) -> Result<Value, String> {
    evaluate_local(vars, &["variables.tf", "locals.tf"], "consumers")
}

/// `local.<local>`, as `terraform apply` of the module's provider-free `files` makes it of `vars`.
fn evaluate_local(vars: &Value, files: &[&str], local: &str) -> Result<Value, String> {
    evaluate_expression(vars, files, &format!("local.{local}"))
}

/// An expression over the module's provider-free `files`, as `terraform apply` makes it of `vars`.
fn evaluate_expression(vars: &Value, files: &[&str], expression: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        std::fs::copy(repo(&format!("terraform/{f}")), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("outputs.tf"),
        format!("output \"value\" {{\n  value = {expression}\n}}\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("case.tfvars.json"), vars.to_string()).unwrap();
    let terraform = |args: &[&str]| {
        Command::new(std::env::var("TERRAFORM_PATH").unwrap_or_else(|_| "terraform".into()))
            .args(args)
            .current_dir(dir.path())
            // No CLI configuration, no plugin cache, no checkpoint call: nothing to reach.
            .env("TF_CLI_CONFIG_FILE", "/dev/null")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .output()
            .unwrap_or_else(|e| {
                panic!("terraform could not be run ({e}): it must be on PATH (scripts/test.sh)")
            })
    };
    let init = terraform(&["init", "-input=false", "-no-color"]);
    assert!(init.status.success(), "init: {init:?}");
    let apply = terraform(&[
        "apply",
        "-input=false",
        "-no-color",
        "-auto-approve",
        "-var-file=case.tfvars.json",
    ]);
    if !apply.status.success() {
        // Terraform wraps its messages at the terminal width: one line of words to search.
        let text = String::from_utf8_lossy(&apply.stderr)
            .replace(['│', '╷', '╵'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        return Err(text);
    }
    let out = terraform(&["output", "-json", "value"]);
    assert!(out.status.success(), "output: {out:?}");
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

const IMAGE: &str =
    "123456789012.dkr.ecr.us-east-1.amazonaws.com/cdc-x@sha256:0000000000000000000000000000000000000000000000000000000000000000";

/// The variables of a module call with `consumers` and the module inputs in `extra`.
fn vars(consumers: Value, extra: Value) -> Value {
    let mut v = json!({
        "project_name": "cdc",
        "environment": "dev",
        "aws_region": "us-east-1",
        "consumers": consumers,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// An entry as the action writes it, from a `consumer.toml`.
fn written(toml: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let v = validate(toml, "consumer_scripts/x/consumer.toml", dir.path())
        .unwrap_or_else(|e| panic!("{e:?}"));
    entry(&v.settings, IMAGE)
}

fn base() -> Value {
    json!({"image": IMAGE, "cpu": 256, "memory": 512, "desired_count": 1})
}

fn with(mut e: Value, key: &str, value: Value) -> Value {
    e[key] = value;
    e
}

/// Every validation the module adds for real AWS refuses what AWS would refuse (or what could
/// never work) at plan time, with a message that says why; what is valid passes.
#[test]
fn module_validations_refuse_what_aws_would_and_say_why() {
    let msk =
        json!({"cluster": "cdc-msk", "consumer_group": "orders-cdc", "read_topics": ["orders"]});
    let lag = |min: u32| json!({"min": min, "max": 4, "kafka_lag": {"target_lag": 100}});
    let sg = |n: usize| (0..n).map(|i| format!("sg-0{i}")).collect::<Vec<_>>();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "four further security groups",
            vars(json!({"a": base()}), json!({"security_group_ids": sg(4)})),
            None,
        ),
        (
            "five further security groups",
            vars(json!({"a": base()}), json!({"security_group_ids": sg(5)})),
            Some("security_group_ids takes at most 4 groups (5 given): a Fargate task takes at most 5 security groups and the module adds its own"),
        ),
        (
            "a consumer group with a colon",
            vars(json!({"a": with(base(), "msk", json!({"cluster": "cdc-msk", "consumer_group": "orders:cdc", "read_topics": ["orders"]}))}), json!({})),
            Some("A consumer_group must be 1 to 255 printable ASCII characters without \":\""),
        ),
        (
            "a consumer group outside ASCII",
            vars(json!({"a": with(base(), "msk", json!({"cluster": "cdc-msk", "consumer_group": "commandes-été", "read_topics": ["orders"]}))}), json!({})),
            Some("MSK publishes no lag metrics for other group names; not valid: a."),
        ),
        (
            "lag scaling from a minimum of 0",
            vars(json!({"a": with(with(base(), "msk", msk.clone()), "autoscaling", lag(0))}), json!({})),
            Some("autoscaling.min must be at least 1 with kafka_lag: lag per running task has no value at 0 tasks"),
        ),
        (
            "lag scaling from a minimum of 1, its parts from msk",
            vars(json!({"a": with(with(base(), "msk", msk.clone()), "autoscaling", lag(1))}), json!({})),
            None,
        ),
        (
            "lag scaling with no MSK cluster anywhere",
            vars(json!({"a": with(base(), "autoscaling", lag(1))}), json!({})),
            Some("autoscaling.kafka_lag needs target_lag"),
        ),
        (
            "msk naming no topic",
            vars(json!({"a": with(base(), "msk", json!({"cluster": "cdc-msk"}))}), json!({})),
            Some("msk needs cluster"),
        ),
        (
            "a rollout maximum under 100",
            vars(json!({"a": with(with(base(), "deployment_minimum_healthy_percent", json!(0)), "deployment_maximum_percent", json!(50))}), json!({})),
            Some("its deployment_maximum_percent 100 to 200, the maximum above the minimum"),
        ),
        (
            "a rollout maximum a consumer sets at the module's minimum",
            vars(json!({"a": with(base(), "deployment_maximum_percent", json!(100))}), json!({})),
            Some("the maximum above the minimum (each the module's deployment_* input where the consumer sets none)"),
        ),
        (
            "lag scaling with no consumer group anywhere",
            vars(json!({"a": with(with(base(), "msk", json!({"cluster": "cdc-msk", "write_topics": ["out"]})), "autoscaling", json!({"min": 1, "max": 2, "kafka_lag": {"target_lag": 5, "topic": "in"}}))}), json!({})),
            Some("autoscaling.kafka_lag needs target_lag"),
        ),
        (
            "an empty consumer group for topics read",
            vars(json!({"a": with(base(), "msk", json!({"cluster": "cdc-msk", "consumer_group": "", "read_topics": ["orders"]}))}), json!({})),
            Some("and a consumer_group when it reads"),
        ),
        (
            "AZ names given as zone IDs",
            vars(json!({"a": base()}), json!({"availability_zone_ids": ["us-east-1a", "us-east-1b"]})),
            Some("availability_zone_ids must be empty or two different AZ IDs"),
        ),
        (
            "two zone IDs",
            vars(json!({"a": base()}), json!({"availability_zone_ids": ["use1-az1", "use1-az4"]})),
            None,
        ),
        (
            "an AZ name to exclude",
            vars(json!({"a": base()}), json!({"exclude_zone_ids": ["us-west-1b"]})),
            Some("exclude_zone_ids must be AZ IDs"),
        ),
        (
            "a key alias for the secrets",
            vars(json!({"a": base()}), json!({"secrets_kms_key_arns": ["alias/cdc-secrets"]})),
            Some("secrets_kms_key_arns must be KMS key ARNs"),
        ),
    ];
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(_, v, _)| s.spawn(move || evaluate(v)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((name, _, refused), got) in cases.iter().zip(results) {
        match (refused, got) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("{name}: refused: {e}"),
            (Some(want), Err(e)) => assert!(e.contains(want), "{name}: {e}"),
            (Some(_), Ok(_)) => panic!("{name}: accepted"),
        }
    }
}

/// The entries the action writes, evaluated by the module's own locals: a single writer's
/// rollout limits are its own and the others' the module's, MSK access does not need autoscaling,
/// lag scaling takes its parts from `msk`, an entry written before `msk` keeps its access, and a
/// health check's start period is sent only when positive.
#[test]
fn the_module_reads_the_entries_the_action_writes() {
    let consumers = json!({
        "slot": written("single_writer = true\nstop_timeout = 60\n[msk]\ncluster = \"cdc-msk\"\nwrite_topics = [\"outbox.orders\"]\n[health_check]\ncommand = \"true\"\nstart_period = 120\n"),
        "group": written("desired_count = 2\n[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"orders-cdc\"\nread_topics = [\"dbserver1.public.orders\"]\n[autoscaling]\nmin = 1\nmax = 4\n[autoscaling.kafka_lag]\ntarget_lag = 500\n[health_check]\ncommand = \"true\"\n"),
        // As an entry written before `msk` existed comes back from the state.
        "legacy": with(base(), "autoscaling", json!({"min": 1, "max": 2, "kafka_lag": {"msk_cluster": "old-msk", "consumer_group": "legacy-cdc", "topic": "legacy.topic", "target_lag": 10}})),
    });
    assert_eq!(consumers["slot"]["deployment_minimum_healthy_percent"], 0);
    assert_eq!(consumers["slot"]["deployment_maximum_percent"], 100);
    assert_eq!(
        consumers["group"]["deployment_minimum_healthy_percent"],
        Value::Null
    );
    let out = evaluate(&vars(
        consumers,
        json!({"deployment_minimum_healthy_percent": 50, "deployment_maximum_percent": 150}),
    ))
    .unwrap();
    let percent = |n: &str| {
        (
            out[n]["deployment_minimum_healthy_percent"]
                .as_u64()
                .unwrap(),
            out[n]["deployment_maximum_percent"].as_u64().unwrap(),
        )
    };
    assert_eq!(percent("slot"), (0, 100), "the single writer's own");
    assert_eq!(percent("group"), (50, 150), "the module's");

    assert_eq!(
        out["slot"]["msk"],
        json!({"cluster": "cdc-msk", "consumer_group": null, "read_topics": [], "write_topics": ["outbox.orders"]}),
        "MSK access without autoscaling"
    );
    assert_eq!(out["slot"]["kafka_lag"], Value::Null);
    assert_eq!(
        out["group"]["kafka_lag"],
        json!({"msk_cluster": "cdc-msk", "consumer_group": "orders-cdc", "topic": "dbserver1.public.orders", "target_lag": 500})
    );
    assert_eq!(
        out["legacy"]["msk"],
        json!({"cluster": "old-msk", "consumer_group": "legacy-cdc", "read_topics": ["legacy.topic"], "write_topics": []}),
        "an entry written before `msk` keeps its task role's access"
    );

    let health = |n: &str| -> Value {
        let defs: Value =
            serde_json::from_str(out[n]["container_definitions"].as_str().unwrap()).unwrap();
        defs[0]["healthCheck"].clone()
    };
    assert_eq!(health("slot")["startPeriod"], 120);
    assert!(
        health("group").get("startPeriod").is_none(),
        "no startPeriod at 0: {}",
        health("group")
    );
    assert_eq!(health("group")["command"], json!(["CMD-SHELL", "true"]));
}

// ---- the HCL ------------------------------------------------------------------------------------

/// The blocks of every `.tf` file of `dir`.
fn blocks(dir: &str) -> Vec<hcl::Block> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let body: hcl::Body = hcl::from_str(&std::fs::read_to_string(f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            body.into_blocks().collect::<Vec<_>>()
        })
        .collect()
}

/// The block `kind "labels[0]" "labels[1]"` of `dir`.
fn block(dir: &str, kind: &str, labels: &[&str]) -> hcl::Block {
    blocks(dir)
        .into_iter()
        .find(|b| {
            b.identifier() == kind
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(labels.iter().copied())
        })
        .unwrap_or_else(|| panic!("no {kind} {labels:?} in {dir}"))
}

/// An attribute's expression, as HCL text.
fn attr(b: &hcl::Body, key: &str) -> Option<String> {
    b.attributes()
        .find(|a| a.key() == key)
        .map(|a| hcl::format::to_string(a.expr()).unwrap())
}

fn nested<'a>(b: &'a hcl::Body, kind: &str) -> Vec<&'a hcl::Block> {
    b.blocks().filter(|x| x.identifier() == kind).collect()
}

/// The attribute names of the object type of `variable "consumers"` in `dir`.
fn consumers_type_keys(dir: &str) -> Vec<String> {
    let v = block(dir, "variable", &["consumers"]);
    let ty = v
        .body()
        .attributes()
        .find(|a| a.key() == "type")
        .unwrap()
        .expr()
        .clone();
    let hcl::Expression::FuncCall(map) = ty else {
        panic!("consumers is not map(object(...))")
    };
    let Some(hcl::Expression::FuncCall(object)) = map.args.first() else {
        panic!("consumers is not map(object(...))")
    };
    let Some(hcl::Expression::Object(o)) = object.args.first() else {
        panic!("consumers is not map(object({{...}}))")
    };
    let mut keys: Vec<String> = o
        .keys()
        .map(|k| match k {
            hcl::ObjectKey::Identifier(i) => i.to_string(),
            other => panic!("consumers declares a key that is not a name: {other:?}"),
        })
        .collect();
    keys.sort();
    keys
}

/// A typed variable drops the attributes it does not declare: the bundled module and the test
/// roots declare every key the action writes, so a single writer's percentages and a hold reach
/// the state.
#[test]
fn every_key_the_action_writes_is_declared_by_the_module_and_the_test_roots() {
    let e = written("single_writer = true\n[msk]\ncluster = \"c\"\nwrite_topics = [\"t\"]\n");
    let mut keys: Vec<String> = e.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    for dir in [
        "terraform",
        "tests/fixtures/terraform/root",
        "tests/fixtures/terraform/rollout",
    ] {
        assert_eq!(consumers_type_keys(dir), keys, "{dir}");
    }
}

#[test]
fn services_start_no_deployment_of_their_own_and_never_rebalance_unasked() {
    let service = block("terraform", "resource", &["aws_ecs_service", "this"]);
    let b = service.body();
    assert_eq!(
        attr(b, "force_new_deployment").as_deref(),
        Some("var.force_new_deployment"),
        "a module upgrade must not restart every consumer: forced deployments only when asked"
    );
    let input = block("terraform", "variable", &["force_new_deployment"]);
    assert_eq!(attr(input.body(), "default").as_deref(), Some("false"));
    assert_eq!(
        attr(b, "availability_zone_rebalancing").as_deref(),
        Some("var.availability_zone_rebalancing ? \"ENABLED\" : \"DISABLED\""),
        "set explicitly: ECS turns it on for new services"
    );
    let input = block("terraform", "variable", &["availability_zone_rebalancing"]);
    assert_eq!(attr(input.body(), "default").as_deref(), Some("false"));
    for key in [
        "deployment_minimum_healthy_percent",
        "deployment_maximum_percent",
    ] {
        assert_eq!(
            attr(b, key),
            Some(format!("local.consumers[each.key].{key}")),
            "per consumer"
        );
    }
    let breaker = nested(b, "deployment_circuit_breaker");
    assert_eq!(attr(breaker[0].body(), "rollback").as_deref(), Some("true"));
    let network = nested(b, "network_configuration");
    assert_eq!(
        attr(network[0].body(), "security_groups").as_deref(),
        Some("concat([aws_security_group.tasks.id], var.security_group_ids)"),
        "the module's group plus at most 4 (validated)"
    );
}

#[test]
fn a_removed_consumers_log_group_outlives_it() {
    let group = block(
        "terraform",
        "resource",
        &["aws_cloudwatch_log_group", "this"],
    );
    assert_eq!(attr(group.body(), "skip_destroy").as_deref(), Some("true"));
}

#[test]
fn azs_are_chosen_by_zone_id_and_subnets_stay_keyed_by_az_name() {
    let azs = block(
        "terraform",
        "data",
        &["aws_availability_zones", "available"],
    );
    let b = azs.body();
    assert_eq!(
        attr(b, "exclude_zone_ids").as_deref(),
        Some("length(var.availability_zone_ids) > 0 ? [] : var.exclude_zone_ids")
    );
    let dynamic: Vec<_> = nested(b, "dynamic");
    assert_eq!(dynamic.len(), 1, "a zone-id filter for an explicit list");
    let default = block("terraform", "variable", &["exclude_zone_ids"]);
    let text = attr(default.body(), "default").unwrap();
    for zone in ["usw1-az2", "apne1-az3"] {
        assert!(
            text.contains(zone),
            "{zone} (no Fargate) is excluded: {text}"
        );
    }
    let readme = read("terraform/README.md");
    let shown = text
        .replace(['\n', ' '], "")
        .replace(',', ", ")
        .replace(", ]", "]");
    assert!(
        readme.contains(&format!(
            "| `exclude_zone_ids` | list(string) | `{shown}` |"
        )),
        "terraform/README.md gives the default {shown}"
    );
    // Keyed by AZ name, as before: an existing VPC keeps its subnets where its AZs are allowed.
    for subnet in ["public", "private"] {
        let s = block("terraform", "resource", &["aws_subnet", subnet]);
        let for_each = attr(s.body(), "for_each").unwrap();
        assert!(for_each.contains("local.azs"), "{subnet}: {for_each}");
        assert_eq!(
            attr(s.body(), "availability_zone").as_deref(),
            Some("each.key")
        );
    }
}

#[test]
fn the_execution_role_decrypts_with_the_secrets_keys_and_the_task_role_has_msk_on_its_own() {
    let iam = read("terraform/iam.tf");
    let execution = &iam[iam
        .find("data \"aws_iam_policy_document\" \"execution\"")
        .unwrap()
        ..iam
            .find("resource \"aws_iam_role_policy\" \"execution\"")
            .unwrap()];
    assert!(!execution.contains("var.kms_key_arn"), "not the log key");
    assert!(execution.contains("var.secrets_kms_key_arns"));
    let task_policies = blocks("terraform")
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attr(b.body(), "task_policies"))
        .unwrap();
    assert!(
        task_policies.contains("c.msk != null") && !task_policies.contains("kafka_lag"),
        "MSK access does not depend on autoscaling: {task_policies}"
    );
    let task = &iam[iam
        .find("data \"aws_iam_policy_document\" \"task\"")
        .unwrap()..];
    for action in [
        "kafka-cluster:ReadData",
        "kafka-cluster:WriteData",
        "kafka-cluster:WriteDataIdempotently",
        "kafka-cluster:AlterGroup",
    ] {
        assert!(task.contains(action), "{action}");
    }
}

#[test]
fn the_prod_examples_key_lets_the_regional_logs_principal_use_it() {
    let prod = read("examples/prod/main.tf");
    assert!(
        prod.contains("\"logs.${var.aws_region}.amazonaws.com\""),
        "the principal the CloudWatch Logs encryption guide shows"
    );
    // The key is for every log group the module makes: each one's prefix is in the key's
    // encryption-context condition.
    for (file, prefix) in [
        (
            "terraform/locals.tf",
            "/ecs/${var.project_name}/${var.environment}/",
        ),
        (
            "terraform/monitoring.tf",
            "/aws/events/cdc/${var.project_name}/${var.environment}/",
        ),
    ] {
        assert!(
            read(file).contains(&format!("\"{prefix}")),
            "{file}: {prefix}"
        );
        assert!(prod.contains(&format!("log-group:{prefix}*")), "{prefix}");
    }
}

#[test]
fn every_fix_for_real_aws_cites_its_source() {
    let module: String = [
        "consumers.tf",
        "network.tf",
        "variables.tf",
        "autoscaling.tf",
        "iam.tf",
        "locals.tf",
    ]
    .iter()
    .map(|f| read(&format!("terraform/{f}")))
    .collect();
    for source in [
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-rebalancing.html",
        "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html",
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AWS_Fargate-Regions.html",
        "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AwsVpcConfiguration.html",
        "https://docs.aws.amazon.com/msk/latest/developerguide/consumer-lag.html",
        "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-circuit-breaker.html",
        "https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html",
    ] {
        assert!(module.contains(source), "{source}");
    }
}

/// The digest output comes after every resource of the module: an apply that fails half way
/// does not record the digest of a change it did not finish, so the next run plans again.
#[test]
fn the_inputs_digest_is_recorded_after_every_resource() {
    let resources: Vec<String> = blocks("terraform")
        .into_iter()
        .filter(|b| b.identifier() == "resource")
        .map(|b| {
            let l: Vec<&str> = b.labels().iter().map(|l| l.as_str()).collect();
            format!("{}.{}", l[0], l[1])
        })
        .collect();
    let output = block("terraform", "output", &["deploy_inputs_digest"]);
    let deps = attr(output.body(), "depends_on").expect("depends_on");
    for r in &resources {
        assert!(
            deps.contains(r.as_str()),
            "{r} is not in depends_on: {deps}"
        );
    }
    assert!(resources.len() > 20, "{resources:?}");
}

// ---- dashboards ----------------------------------------------------------------------------------

/// The dashboards the module makes of `n` consumers (every third one with MSK and three topics),
/// by name, their bodies parsed.
fn dashboards(n: usize, extra: Value) -> std::collections::BTreeMap<String, Value> {
    let consumers: serde_json::Map<String, Value> = (0..n)
        .map(|i| {
            let e = if i % 3 == 0 {
                with(
                    base(),
                    "msk",
                    json!({"cluster": "cdc-msk", "consumer_group": format!("c{i}-cdc"), "read_topics": ["orders", "payments", "refunds"]}),
                )
            } else {
                base()
            };
            (format!("consumer-{i:03}"), e)
        })
        .collect();
    let out = evaluate_local(
        &vars(Value::Object(consumers), extra),
        &["variables.tf", "locals.tf", "dashboard_locals.tf"],
        "dashboards",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    out.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_str(v.as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Metrics a widget's `metrics` count toward CloudWatch's limits: each metric, each expression
/// (a Metrics Insights query without `GROUP BY` is one series).
fn metric_count(widget: &Value) -> usize {
    widget["properties"]["metrics"]
        .as_array()
        .map_or(0, |m| m.len())
}

/// Every dashboard body as CloudWatch's "Dashboard Body Structure and Syntax" describes it, within
/// its limits: at most 500 widgets and 2,500 metrics per dashboard, 500 per widget, a 24-column
/// grid, widgets that do not overlap, names of letters, digits, `-` and `_` up to 255.
fn assert_valid_dashboards(boards: &std::collections::BTreeMap<String, Value>) {
    for (name, body) in boards {
        assert!(
            name.len() <= 255
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
        let top: Vec<&String> = body.as_object().unwrap().keys().collect();
        for k in &top {
            assert!(
                ["widgets", "variables", "start", "end", "periodOverride"].contains(&k.as_str()),
                "{name}: unknown top-level field {k}"
            );
        }
        assert!(["auto", "inherit"].contains(&body["periodOverride"].as_str().unwrap()));
        let widgets = body["widgets"].as_array().unwrap();
        assert!(
            !widgets.is_empty() && widgets.len() <= 500,
            "{name}: {} widgets",
            widgets.len()
        );
        let metrics: usize = widgets.iter().map(metric_count).sum();
        assert!(metrics <= 2500, "{name}: {metrics} metrics");
        let mut cells = std::collections::HashSet::new();
        for w in widgets {
            let kind = w["type"].as_str().unwrap();
            assert!(["metric", "text"].contains(&kind), "{w}");
            let (x, y) = (w["x"].as_u64().unwrap(), w["y"].as_u64().unwrap());
            let (width, height) = (w["width"].as_u64().unwrap(), w["height"].as_u64().unwrap());
            assert!(
                x <= 23 && (1..=24).contains(&width) && x + width <= 24,
                "{w}"
            );
            assert!((1..=1000).contains(&height), "{w}");
            for cx in x..x + width {
                for cy in y..y + height {
                    assert!(
                        cells.insert((cx, cy)),
                        "{name}: widgets overlap at ({cx}, {cy})"
                    );
                }
            }
            let p = &w["properties"];
            if kind == "text" {
                assert!(p["markdown"].as_str().is_some_and(|m| !m.is_empty()), "{w}");
                continue;
            }
            assert_eq!(p["region"], "us-east-1", "{w}");
            assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(["timeSeries", "singleValue"].contains(&p["view"].as_str().unwrap()));
            assert_eq!(p["period"].as_u64().unwrap() % 60, 0, "{w}");
            let m = p["metrics"].as_array().unwrap();
            assert!(!m.is_empty() && m.len() <= 500, "{w}");
            let mut queries = 0;
            for entry in m {
                let parts = entry.as_array().unwrap();
                let (names, options) = match parts.last() {
                    Some(Value::Object(o)) => (&parts[..parts.len() - 1], Some(o)),
                    _ => (&parts[..], None),
                };
                if names.is_empty() {
                    // An expression: an id starting with a lowercase letter, and its text.
                    let o = options.unwrap();
                    let id = o["id"].as_str().unwrap();
                    assert!(id.starts_with(|c: char| c.is_ascii_lowercase()), "{w}");
                    let expression = o["expression"].as_str().unwrap();
                    if expression.starts_with("SELECT ") {
                        queries += 1;
                    }
                } else {
                    // Namespace, metric name, then dimension name and value pairs (at most 30).
                    assert!(names.len() >= 2 && names.len() % 2 == 0, "{w}");
                    assert!(names.len() <= 2 + 60);
                    assert!(
                        names
                            .iter()
                            .all(|n| n.as_str().is_some_and(|s| !s.is_empty())),
                        "{w}"
                    );
                }
            }
            assert!(queries <= 1, "one Metrics Insights query per widget: {w}");
        }
    }
}

#[test]
fn the_dashboards_fit_cloudwatchs_body_and_limits_at_1_20_and_200_consumers() {
    for (n, pages) in [(1, 1), (20, 1), (200, 4)] {
        let boards = dashboards(n, json!({}));
        assert_eq!(boards.len(), pages, "{n} consumers: {:?}", boards.keys());
        assert_valid_dashboards(&boards);
        // Every consumer has its row on exactly one page, with its lag where MSK is set.
        let titles: Vec<String> = boards
            .values()
            .flat_map(|b| b["widgets"].as_array().unwrap().clone())
            .filter_map(|w| w["properties"]["title"].as_str().map(str::to_string))
            .collect();
        for i in 0..n {
            let c = format!("consumer-{i:03}");
            let mine: Vec<&String> = titles
                .iter()
                .filter(|t| t.starts_with(&format!("{c}: ")))
                .collect();
            assert_eq!(mine.len(), if i % 3 == 0 { 4 } else { 3 }, "{c}: {mine:?}");
        }
        // Each page starts with the header: what it holds, then the fleet's totals.
        for body in boards.values() {
            let w = body["widgets"].as_array().unwrap();
            assert_eq!(w[0]["type"], "text");
            assert_eq!(w[1]["properties"]["title"], "Fleet: tasks running");
        }
    }
    let names: Vec<String> = dashboards(200, json!({})).into_keys().collect();
    assert_eq!(
        names,
        [
            "cdc-cdc-dev-1",
            "cdc-cdc-dev-2",
            "cdc-cdc-dev-3",
            "cdc-cdc-dev-4"
        ]
    );
    assert_eq!(
        dashboards(20, json!({})).into_keys().collect::<Vec<_>>(),
        ["cdc-cdc-dev"]
    );
    // Fewer per page: more pages, each within the limits.
    let boards = dashboards(20, json!({"dashboard_consumers_per_page": 7}));
    assert_eq!(boards.len(), 3);
    assert_valid_dashboards(&boards);
}

/// The layout of a page as text: each widget a box of its grid width (3 characters a column)
/// holding its title, row by row.
fn layout_picture(body: &Value) -> String {
    let mut widgets: Vec<&Value> = body["widgets"].as_array().unwrap().iter().collect();
    widgets.sort_by_key(|w| (w["y"].as_u64().unwrap(), w["x"].as_u64().unwrap()));
    let mut out = String::new();
    let mut rows: Vec<Vec<&Value>> = Vec::new();
    for w in widgets {
        match rows.last_mut() {
            Some(r) if r[0]["y"] == w["y"] => r.push(w),
            _ => rows.push(vec![w]),
        }
    }
    let border = |row: &[&Value]| {
        let mut line = String::new();
        for w in row {
            line.push('+');
            line.push_str(&"-".repeat(w["width"].as_u64().unwrap() as usize * 3 - 1));
        }
        line + "+\n"
    };
    for row in &rows {
        out.push_str(&border(row));
        // Titles wrapped to the box, on as many lines as the longest needs.
        let wrapped: Vec<Vec<String>> = row
            .iter()
            .map(|w| {
                let inner = w["width"].as_u64().unwrap() as usize * 3 - 3;
                let title = w["properties"]["title"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| "(text) what the page holds".into());
                let mut lines = vec![String::new()];
                for word in title.split(' ') {
                    let last = lines.last_mut().unwrap();
                    if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > inner {
                        lines.push(word.to_string());
                    } else {
                        if !last.is_empty() {
                            last.push(' ');
                        }
                        last.push_str(word);
                    }
                }
                lines
            })
            .collect();
        let height = wrapped.iter().map(Vec::len).max().unwrap_or(1);
        for i in 0..height {
            let mut line = String::new();
            for (w, lines) in row.iter().zip(&wrapped) {
                let inner = w["width"].as_u64().unwrap() as usize * 3 - 3;
                let text = lines.get(i).map(String::as_str).unwrap_or("");
                line.push_str(&format!("| {text:<inner$} "));
            }
            out.push_str(&line);
            out.push_str("|\n");
        }
    }
    out.push_str(&border(rows.last().unwrap()));
    out
}

/// The README's picture of the dashboard is the one the module's definition draws: two consumers,
/// one reading Kafka through MSK.
#[test]
fn the_readmes_dashboard_picture_is_drawn_from_the_module() {
    let consumers = json!({
        "orders": with(base(), "msk", json!({"cluster": "cdc-msk", "consumer_group": "orders-cdc", "read_topics": ["orders"]})),
        "outbox": base(),
    });
    let out = evaluate_local(
        &vars(consumers, json!({})),
        &["variables.tf", "locals.tf", "dashboard_locals.tf"],
        "dashboards",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let body: Value = serde_json::from_str(out["cdc-cdc-dev"].as_str().unwrap()).unwrap();
    let picture = layout_picture(&body);
    let readme = read("README.md");
    let start = "<!-- dashboard-layout: drawn by tests/module_contract.rs -->\n```text\n";
    let at = readme
        .find(start)
        .expect("the README has the dashboard's picture")
        + start.len();
    let shown = &readme[at..at + readme[at..].find("```").unwrap()];
    assert_eq!(
        shown, picture,
        "the README's dashboard picture is not the module's; replace it with:\n{picture}"
    );
}

// ---- alarms --------------------------------------------------------------------------------------

/// Every alarm notifies the one topic when it goes off and when it is OK again; each kind is
/// switched by `alarms` (running below desired also by Container Insights, lag by MSK); missing
/// data is read the way each signal goes missing.
#[test]
fn every_alarm_kind_is_switched_notifies_the_topic_and_reads_missing_data_as_its_signal_does() {
    let locals = blocks("terraform")
        .into_iter()
        .filter(|b| b.identifier() == "locals")
        .find(|b| attr(b.body(), "alarm_lag").is_some())
        .expect("the alarms' locals");
    let gate = |name: &str| attr(locals.body(), name).unwrap();
    assert!(gate("alarm_running").contains("var.alarms.running_below_desired"));
    assert!(gate("alarm_running").contains("var.container_insights != \"disabled\""));
    assert!(gate("alarm_stopped").contains("var.alarms.tasks_stopping"));
    assert!(
        gate("alarm_lag").contains("var.alarms.lag") && gate("alarm_lag").contains("lag_watched")
    );
    assert!(gate("alarm_cpu").contains("var.alarms.cpu"));
    assert!(gate("alarm_memory").contains("var.alarms.memory"));
    for (alarm, gate, missing) in [
        ("running_below_desired", "local.alarm_running", "missing"),
        ("tasks_stopping", "local.alarm_stopped", "notBreaching"),
        // A rebalance leaves a gap in MSK's lag metrics: it keeps the alarm as it was.
        ("lag", "local.alarm_lag", "ignore"),
        ("cpu", "local.alarm_cpu", "missing"),
        ("memory", "local.alarm_memory", "missing"),
    ] {
        let b = block(
            "terraform",
            "resource",
            &["aws_cloudwatch_metric_alarm", alarm],
        );
        assert_eq!(attr(b.body(), "for_each").as_deref(), Some(gate), "{alarm}");
        assert_eq!(
            attr(b.body(), "treat_missing_data").as_deref(),
            Some(format!("\"{missing}\"").as_str()),
            "{alarm}"
        );
        for actions in ["alarm_actions", "ok_actions"] {
            assert_eq!(
                attr(b.body(), actions).as_deref(),
                Some("local.alarm_topic_actions"),
                "{alarm}: {actions}"
            );
        }
    }
    let https = block("terraform", "variable", &["alarm_https_endpoints"]);
    assert_eq!(
        attr(https.body(), "sensitive").as_deref(),
        Some("true"),
        "a PagerDuty URL carries its integration key"
    );
    // CloudWatch may publish this fleet's alarms to the topic, and with a key of the team's, use
    // it.
    let policy = read("terraform/alarms.tf");
    assert!(policy.contains("identifiers = [\"cloudwatch.amazonaws.com\"]"));
    assert!(policy.contains(":alarm:${local.name}-*"));
    let prod = read("examples/prod/main.tf");
    assert!(prod.contains("identifiers = [\"cloudwatch.amazonaws.com\"]"));
    // A whole crash loop is 0 running, not missing data.
    assert!(policy.contains("desired - FILL(running, 0)"));
}

/// Lag is watched for a group that reads: not for a consumer that only writes to Kafka; its
/// dashboard draws the topics named, not those named by a wildcard.
#[test]
fn lag_is_watched_for_groups_that_read_and_drawn_for_topics_named() {
    let msk =
        |topics: Value| json!({"cluster": "cdc-msk", "consumer_group": "g", "read_topics": topics});
    let consumers = json!({
        "reader": with(base(), "msk", msk(json!(["orders", "cdc.public.*"]))),
        "writer": with(base(), "msk", json!({"cluster": "cdc-msk", "write_topics": ["outbox"]})),
        "wild": with(base(), "msk", msk(json!(["cdc.*"]))),
        "plain": base(),
        // Written before `[msk]`: its kafka_lag names the cluster, group and topic.
        "older": with(base(), "autoscaling", json!({"min": 1, "max": 2, "kafka_lag": {"target_lag": 100, "msk_cluster": "cdc-msk", "consumer_group": "o", "topic": "orders"}})),
    });
    let out = evaluate(&vars(consumers.clone(), json!({}))).unwrap();
    let watched: Vec<(&str, bool, Value)> = ["older", "plain", "reader", "wild", "writer"]
        .iter()
        .map(|n| {
            (
                *n,
                out[n]["lag_watched"].as_bool().unwrap(),
                out[n]["lag_topics"].clone(),
            )
        })
        .collect();
    assert_eq!(
        watched,
        [
            ("older", true, json!(["orders"])),
            ("plain", false, json!([])),
            ("reader", true, json!(["orders"])),
            ("wild", true, json!([])),
            ("writer", false, json!([])),
        ]
    );
    let boards = evaluate_local(
        &vars(consumers, json!({})),
        &["variables.tf", "locals.tf", "dashboard_locals.tf"],
        "dashboards",
    )
    .unwrap();
    let body: Value = serde_json::from_str(boards["cdc-cdc-dev"].as_str().unwrap()).unwrap();
    let lag: Vec<String> = body["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["properties"]["title"].as_str())
        .filter(|t| t.contains("Kafka lag"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        lag,
        [
            "older: Kafka lag (messages)",
            "reader: Kafka lag (messages)"
        ]
    );
}

/// Which consumers get which alarm, as the real terraform evaluates the module's switches: a kind
/// switched off gives no alarm of it; running below desired needs Container Insights; lag a group
/// that reads.
#[test]
fn a_kind_switched_off_gives_no_alarm_of_it() {
    let consumers = json!({
        "reader": with(base(), "msk", json!({"cluster": "cdc-msk", "consumer_group": "g", "read_topics": ["orders"]})),
        "plain": base(),
    });
    let files = ["variables.tf", "locals.tf", "alarm_locals.tf"];
    let alarmed = |extra: Value, kind: &str| -> Vec<String> {
        let out = evaluate_local(&vars(consumers.clone(), extra), &files, kind)
            .unwrap_or_else(|e| panic!("{e}"));
        out.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(alarmed(json!({}), "alarm_lag"), ["reader"]);
    assert_eq!(alarmed(json!({}), "alarm_running"), ["plain", "reader"]);
    assert!(alarmed(json!({"alarms": {"lag": false}}), "alarm_lag").is_empty());
    assert_eq!(
        alarmed(json!({"alarms": {"lag": false}}), "alarm_cpu"),
        ["plain", "reader"],
        "the other kinds stay"
    );
    assert!(alarmed(json!({"container_insights": "disabled"}), "alarm_running").is_empty());
    for (kind, local) in [
        ("tasks_stopping", "alarm_stopped"),
        ("cpu", "alarm_cpu"),
        ("memory", "alarm_memory"),
        ("running_below_desired", "alarm_running"),
    ] {
        assert!(
            alarmed(json!({"alarms": {kind: false}}), local).is_empty(),
            "{kind}"
        );
    }
}

/// `[alarms]` in a `consumer.toml` reaches the module as the action writes it: a kind switched off
/// gives no alarm of it (`lag = false`: no lag alarm, the other kinds stay), a threshold set
/// replaces the module's for that consumer only, and `rollback` wires the running-below-desired
/// alarm into the service's deployments only where that alarm exists.
#[test]
fn a_consumers_alarms_table_switches_its_alarms_and_sets_its_thresholds() {
    let msk = "[msk]\ncluster = \"cdc-msk\"\nconsumer_group = \"g\"\nread_topics = [\"orders\"]\n";
    let consumers = json!({
        "quiet": written(&format!("{msk}[alarms]\nlag = false\n")),
        "tuned": written(&format!("{msk}[alarms]\nrunning_below_desired = 10\nlag = 5000\nlag_minutes = 30\ncpu = 75\nrollback = true\n")),
        "plain": written(msk),
    });
    let files = ["variables.tf", "locals.tf", "alarm_locals.tf"];
    let expression = "{ lag = keys(local.alarm_lag), cpu = keys(local.alarm_cpu), running = keys(local.alarm_running), rollback = keys(local.alarm_rollback), threshold = local.alarm_threshold }";
    let out = evaluate_expression(&vars(consumers.clone(), json!({})), &files, expression)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out["lag"],
        json!(["plain", "tuned"]),
        "lag = false: no lag alarm"
    );
    assert_eq!(
        out["cpu"],
        json!(["plain", "quiet", "tuned"]),
        "the other kinds stay"
    );
    assert_eq!(out["rollback"], json!(["tuned"]));
    let t = &out["threshold"];
    assert_eq!(
        t["tuned"],
        json!({"running_below_desired_minutes": 10, "tasks_stopped": 3, "lag_messages": 5000, "lag_minutes": 30, "cpu_percent": 75, "memory_percent": 90})
    );
    assert_eq!(
        t["plain"],
        json!({"running_below_desired_minutes": 5, "tasks_stopped": 3, "lag_messages": 100000, "lag_minutes": 10, "cpu_percent": 90, "memory_percent": 90}),
        "the module's thresholds where the file sets none"
    );
    // The module's thresholds and switches still count where the consumer sets nothing.
    let module =
        json!({"alarm_thresholds": {"saturation_percent": 80}, "container_insights": "disabled"});
    let out = evaluate_expression(&vars(consumers, module), &files, expression)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out["threshold"]["plain"]["cpu_percent"], json!(80));
    assert_eq!(out["threshold"]["tuned"]["cpu_percent"], json!(75));
    assert_eq!(out["running"], json!([]));
    assert_eq!(
        out["rollback"],
        json!([]),
        "no running-below-desired alarm without Container Insights: nothing to roll back on"
    );
}

/// A hand-written entry the module cannot honour is refused at plan time with the reason.
#[test]
fn the_module_refuses_alarms_it_cannot_honour() {
    let alarms = |a: Value| with(base(), "alarms", a);
    for (case, a) in [
        ("an unknown kind", json!({"off": ["latency"]})),
        ("a day and a minute", json!({"lag_minutes": 1441})),
        ("a percent over 100", json!({"cpu_percent": 101})),
        ("rollback of a single writer", json!({"rollback": true})),
        (
            "rollback without its alarm",
            json!({"rollback": true, "off": ["running_below_desired"]}),
        ),
    ] {
        let mut c = alarms(a);
        if case == "rollback of a single writer" {
            c["deployment_minimum_healthy_percent"] = json!(0);
            c["deployment_maximum_percent"] = json!(100);
        }
        let err = evaluate(&vars(json!({"a": c}), json!({}))).expect_err(case);
        assert!(err.contains("A consumer's alarms must"), "{case}: {err}");
    }
    let fine = alarms(json!({"rollback": true, "cpu_percent": 100, "off": ["lag"]}));
    evaluate(&vars(json!({"a": fine.clone()}), json!({}))).unwrap();
    // The module's own rollout limit counts where the entry has none.
    let err = evaluate(&vars(
        json!({"a": fine}),
        json!({"deployment_minimum_healthy_percent": 0}),
    ))
    .expect_err("module-wide 0 percent");
    assert!(err.contains("A consumer's alarms must"), "{err}");
    // The service's deployment alarms are always written, off where not asked for: without the
    // block the provider sends nothing and ECS keeps watching an alarm no longer asked for.
    let service = block("terraform", "resource", &["aws_ecs_service", "this"]);
    let alarms_block = service
        .body()
        .blocks()
        .find(|b| b.identifier() == "alarms")
        .expect("a static `alarms` block");
    assert_eq!(
        attr(alarms_block.body(), "enable").as_deref(),
        Some("contains(keys(local.alarm_rollback), each.key)")
    );
}

/// The Slack channel is optional and, when given, gets the alarms' topic and nothing more: a
/// read-only guardrail (AWS Chatbot applies AdministratorAccess without one), a role per member;
/// its IDs are checked at plan time.
#[test]
fn the_slack_channel_is_read_only_and_takes_ids() {
    let channel = block(
        "terraform",
        "resource",
        &["aws_chatbot_slack_channel_configuration", "alarms"],
    );
    let b = channel.body();
    assert_eq!(
        attr(b, "count").as_deref(),
        Some("var.alarm_slack_channel == null ? 0 : 1")
    );
    let topics = attr(b, "sns_topic_arns").unwrap();
    assert_eq!(
        topics.split_whitespace().collect::<String>(),
        "[aws_sns_topic.alarms.arn]"
    );
    let guardrail = attr(b, "guardrail_policy_arns").unwrap();
    assert!(
        guardrail.contains("policy/CloudWatchReadOnlyAccess"),
        "{guardrail}"
    );
    assert_eq!(
        attr(b, "user_authorization_required").as_deref(),
        Some("true")
    );
    let consumers = json!({"a": base()});
    let slack = |w: &str, c: &str| {
        vars(
            consumers.clone(),
            json!({"alarm_slack_channel": {"workspace_id": w, "channel_id": c}}),
        )
    };
    evaluate(&slack("T07EA123LEP", "C07EZ1ABC23")).unwrap();
    let err = evaluate(&slack("T07EA123LEP", "#cdc-alarms")).unwrap_err();
    assert!(err.contains("alarm_slack_channel takes Slack IDs"), "{err}");
}

/// A count set by hand (`scale`) is what the autoscaling target holds while it is in the entry;
/// without it, the entry's own count.
#[test]
fn a_count_set_by_hand_wins_over_the_entrys_own() {
    let scale = |s: Value| {
        json!({"file": "x", "at": "t"})
            .as_object()
            .unwrap()
            .clone()
            .into_iter()
            .chain(s.as_object().unwrap().clone())
            .collect::<serde_json::Map<_, _>>()
    };
    let consumers = json!({
        "fixed": with(base(), "scale", Value::Object(scale(json!({"desired_count": 3})))),
        "auto": with(with(base(), "autoscaling", json!({"min": 1, "max": 4, "cpu_target": 70})), "scale", Value::Object(scale(json!({"min": 2, "max": 8})))),
        "plain": base(),
    });
    let out = evaluate(&vars(consumers, json!({}))).unwrap();
    let counts = |n: &str| {
        (
            out[n]["min_capacity"].as_u64().unwrap(),
            out[n]["max_capacity"].as_u64().unwrap(),
            out[n]["initial_count"].as_u64().unwrap(),
        )
    };
    assert_eq!(counts("fixed"), (3, 3, 3));
    assert_eq!(
        counts("auto"),
        (2, 8, 2),
        "the entry's desired_count 1 within the new bounds"
    );
    assert_eq!(counts("plain"), (1, 1, 1));
}
