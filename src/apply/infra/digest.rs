//! The digest of everything besides the `consumers` entries that decides what a Terraform plan of
//! the root module would do: its `.tf` files and those of the local modules it calls, the lock
//! file, the team's variable file, the variables the action writes besides `consumers`,
//! `TF_VAR_*` in the environment and the Terraform version. Recorded with the applied outputs
//! (`deploy_inputs_digest`), it lets a run whose entries equal the applied ones skip a plan that
//! would change nothing, instead of refreshing every resource of the fleet.
//!
//! Reads files; never writes, never runs Terraform. Values are hashed, never shown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The variable and output a root module declares to carry the digest.
pub const DIGEST_NAME: &str = "deploy_inputs_digest";

/// How deep local module calls are followed (a module calling a module calling …).
const MAX_MODULE_DEPTH: usize = 8;

/// Whether a file of a root or module folder is one Terraform reads.
fn is_terraform_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name == ".terraform.lock.hcl"
        || [".tf", ".tf.json", ".tfvars", ".tfvars.json"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The files Terraform reads under `dir`, recursively, without `.terraform` and `skip` names.
fn files_under(dir: &Path, skip: &[&str], out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == ".terraform" || name == ".git" || skip.contains(&name.as_ref()) {
            continue;
        }
        // Followed through symbolic links, as Terraform reads them.
        let kind = std::fs::metadata(&path)?;
        if kind.is_dir() {
            files_under(&path, &[], out)?;
        } else if kind.is_file() && is_terraform_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The folders of the local modules (`source = "./…"` or `"../…"`) the `.tf` and `.tf.json`
/// files of `dir` call, sorted. A file that cannot be read is an error: the digest would not
/// know what it calls.
fn local_modules(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("could not read `{}`: {e}", dir.display()))?;
    for e in entries.flatten() {
        let path = e.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let sources: Vec<String> = if name.ends_with(".tf.json") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("could not read `{}`: {e}", path.display()))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| format!("`{}` is not JSON: {e}", path.display()))?;
            v["module"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|b| b["source"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        } else if name.ends_with(".tf") {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("could not read `{}`: {e}", path.display()))?;
            let body = hcl::from_str::<hcl::Body>(&text).map_err(|e| {
                format!(
                    "`{}` could not be read for its module calls: {e}",
                    path.display()
                )
            })?;
            body.blocks()
                .filter(|b| b.identifier() == "module")
                .flat_map(|b| {
                    b.body()
                        .attributes()
                        .filter(|a| a.key() == "source")
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .filter_map(|a| match a.expr() {
                    hcl::Expression::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect()
        } else {
            continue;
        };
        found.extend(
            sources
                .into_iter()
                .filter(|s| s.starts_with("./") || s.starts_with("../"))
                .map(|s| dir.join(s)),
        );
    }
    found.sort();
    Ok(found)
}

/// `(key, source, version)` of every module `terraform init` installed, from the data
/// directory's `modules/modules.json`: a registry or git module resolved to a new version
/// changes the digest. Paths are left out (they name the run's folders).
fn installed_modules(data_dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(data_dir.join("modules").join("modules.json")) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let mut out: Vec<String> = v["Modules"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| {
                    format!(
                        "{} {} {}",
                        x["Key"].as_str().unwrap_or_default(),
                        x["Source"].as_str().unwrap_or_default(),
                        x["Version"].as_str().unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Everything [`inputs_digest`] reads.
pub struct DigestInputs<'a> {
    pub root_dir: &'a Path,
    /// Files of the root folder left out (the run's generated `imports.tf`).
    pub skip: &'a [&'a str],
    pub var_file: Option<&'a Path>,
    /// The variables the action writes; `consumers` and the digest itself are left out.
    pub variables: &'a Value,
    pub terraform_version: &'a str,
    /// `TF_VAR_*` of the environment, as `(name, value)`.
    pub env: Vec<(String, String)>,
    /// Terraform's data directory after `init` (the modules it installed).
    pub data_dir: Option<&'a Path>,
}

/// The digest, 64 hex digits; an error names a file that could not be read.
pub fn inputs_digest(i: &DigestInputs<'_>) -> Result<String, String> {
    let mut h = blake3::Hasher::new();
    let mut part = |label: &str, bytes: &[u8]| {
        h.update(&(label.len() as u64).to_le_bytes());
        h.update(label.as_bytes());
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part("terraform", i.terraform_version.as_bytes());
    let mut dirs = vec![(i.root_dir.to_path_buf(), 0usize)];
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    while let Some((dir, depth)) = dirs.pop() {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if !seen.insert(key) {
            continue;
        }
        let mut files = Vec::new();
        let skip = if dir == i.root_dir { i.skip } else { &[] };
        files_under(&dir, skip, &mut files)
            .map_err(|e| format!("could not read `{}`: {e}", dir.display()))?;
        for f in files {
            let text =
                std::fs::read(&f).map_err(|e| format!("could not read `{}`: {e}", f.display()))?;
            let label = f
                .strip_prefix(i.root_dir)
                .unwrap_or(&f)
                .display()
                .to_string();
            part(&label, &text);
        }
        if depth < MAX_MODULE_DEPTH {
            for m in local_modules(&dir)?.into_iter().rev() {
                if m.is_dir() {
                    dirs.push((m, depth + 1));
                }
            }
        }
    }
    if let Some(d) = i.data_dir {
        for m in installed_modules(d) {
            part("installed module", m.as_bytes());
        }
    }
    if let Some(f) = i.var_file {
        let text =
            std::fs::read(f).map_err(|e| format!("could not read `{}`: {e}", f.display()))?;
        part("var-file", &text);
    }
    if let Some(vars) = i.variables.as_object() {
        for (k, v) in vars {
            if k != "consumers" && k != DIGEST_NAME {
                part(&format!("var {k}"), v.to_string().as_bytes());
            }
        }
    }
    let mut env = i.env.clone();
    env.sort();
    for (k, v) in env {
        part(&format!("env {k}"), v.as_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// `TF_VAR_*` of this process's environment.
pub fn tf_var_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("TF_VAR_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, path: &str, text: &str) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn the_digest_follows_what_a_plan_reads_and_nothing_else() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        write(
            r,
            "infra/main.tf",
            "module \"cdc\" {\n  source = \"../modules/cdc\"\n}\n",
        );
        write(r, "infra/prod.tfvars", "tags = {}\n");
        write(r, "modules/cdc/main.tf", "variable \"x\" {}\n");
        write(r, "modules/cdc/README.md", "notes\n");
        let root = r.join("infra");
        let vars = json!({"project_name": "shop", "consumers": {"a": {"cpu": 256}}});
        let digest = |vars: &Value, version: &str, env: Vec<(String, String)>| {
            inputs_digest(&DigestInputs {
                root_dir: &root,
                skip: &["imports.tf"],
                var_file: Some(&root.join("prod.tfvars")),
                variables: vars,
                terraform_version: version,
                env,
                data_dir: None,
            })
            .unwrap()
        };
        let first = digest(&vars, "1.11.4", vec![]);
        assert_eq!(first.len(), 64);
        assert_eq!(first, digest(&vars, "1.11.4", vec![]), "stable");

        // What does not change a plan leaves it: the consumers' entries (compared apart), notes,
        // Terraform's own folder, the run's imports.
        let mut other = vars.clone();
        other["consumers"]["a"]["cpu"] = json!(512);
        write(r, "modules/cdc/README.md", "more notes\n");
        write(r, "infra/.terraform/modules/modules.json", "{}");
        write(r, "infra/imports.tf", "import {}\n");
        assert_eq!(first, digest(&other, "1.11.4", vec![]));

        // What does changes it.
        let mut project = vars.clone();
        project["project_name"] = json!("shop2");
        assert_ne!(first, digest(&project, "1.11.4", vec![]), "a variable");
        assert_ne!(first, digest(&vars, "1.12.0", vec![]), "another Terraform");
        assert_ne!(
            first,
            digest(&vars, "1.11.4", vec![("TF_VAR_tags".into(), "{}".into())]),
            "TF_VAR_*"
        );
        write(
            r,
            "modules/cdc/main.tf",
            "variable \"x\" {\n  default = 1\n}\n",
        );
        let module_changed = digest(&vars, "1.11.4", vec![]);
        assert_ne!(first, module_changed, "a local module the root calls");
        write(r, "infra/prod.tfvars", "tags = { team = \"cdc\" }\n");
        assert_ne!(
            module_changed,
            digest(&vars, "1.11.4", vec![]),
            "the var file"
        );
    }

    #[test]
    fn json_module_calls_installed_versions_and_unreadable_files_count() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        write(
            r,
            "infra/main.tf.json",
            r#"{"module": {"x": {"source": "../mods/x"}}}"#,
        );
        write(r, "mods/x/main.tf", "variable \"a\" {}\n");
        let modules = |version: &str| {
            write(
                r,
                "data/modules/modules.json",
                &format!(
                    r#"{{"Modules": [{{"Key": "r", "Source": "registry.terraform.io/org/m/aws", "Version": "{version}", "Dir": "/tmp/run-{version}/m"}}]}}"#
                ),
            );
        };
        let root = r.join("infra");
        let data = r.join("data");
        let digest = || {
            inputs_digest(&DigestInputs {
                root_dir: &root,
                skip: &[],
                var_file: None,
                variables: &json!({}),
                terraform_version: "1.11.4",
                env: vec![],
                data_dir: Some(&data),
            })
        };
        modules("1.0.0");
        let first = digest().unwrap();
        write(r, "mods/x/main.tf", "variable \"a\" {\n  default = 2\n}\n");
        let module_changed = digest().unwrap();
        assert_ne!(
            first, module_changed,
            "a local module a .tf.json file calls"
        );
        modules("1.1.0");
        assert_ne!(
            module_changed,
            digest().unwrap(),
            "a registry module resolved anew"
        );
        write(r, "infra/broken.tf", "module \"y\" {\n  source = \n");
        assert!(
            digest().unwrap_err().contains("broken.tf"),
            "unreadable: plan every run"
        );
    }
}
