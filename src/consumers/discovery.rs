//! Discovery: every direct subfolder of `consumers-dir` that holds a Dockerfile (or a
//! `consumer.toml`) is a consumer. Each is named, validated and kept or reported on its own, so
//! one bad folder never hides the others.
//!
//! Reads folder listings and `consumer.toml` files; never reads build contexts (that is
//! fingerprinting's job) and never talks to AWS.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::consumers::config::{self as consumer_config, ConsumerSettings, DEFAULT_DOCKERFILE};
use crate::consumers::dockerfile;
use crate::consumers::names::{resource_name, ConsumerName, ProjectName};
use crate::diagnostics::Diagnostic;

/// A consumer that passed validation.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub name: ConsumerName,
    /// `<project>-<consumer>`: the ECR repository, ECS service and task family.
    pub resource_name: String,
    /// The folder on disk: the build context.
    pub dir: PathBuf,
    /// The folder relative to the repository root, `/`-separated, for messages and annotations.
    pub display_dir: String,
    /// `consumer.toml`, relative to the repository root, when the consumer has one.
    pub config_file: Option<String>,
    pub settings: ConsumerSettings,
}

/// A folder that looked like a consumer but is not valid; it is reported and left out.
#[derive(Clone, Debug)]
pub struct InvalidConsumer {
    /// The folder's name as found.
    pub name: String,
    pub display_dir: String,
    pub diagnostics: Vec<Diagnostic>,
}

/// A folder that is not a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFolder {
    pub display_dir: String,
    pub reason: String,
}

/// Everything discovery found.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    pub consumers: Vec<ConsumerSpec>,
    pub invalid: Vec<InvalidConsumer>,
    pub skipped: Vec<SkippedFolder>,
    /// Findings that do not stop a consumer (a secret-looking environment value, ...).
    pub warnings: Vec<Diagnostic>,
    /// The `consumers` option when it restricts the run, shown (`orders, billing-*`), and the
    /// consumer folders it leaves out: they keep what is applied.
    pub selection: Option<String>,
    pub unselected: Vec<String>,
}

impl Discovery {
    /// Keep only the consumers `selection` names; the others are listed in `unselected`.
    /// Returns the patterns that name no consumer folder: they may name a deployed consumer
    /// whose folder is gone, which only what is applied can tell.
    pub fn select(&mut self, selection: &crate::consumers::select::Selection) -> Vec<String> {
        let names: Vec<&str> = self
            .consumers
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.invalid.iter().map(|c| c.name.as_str()))
            .collect();
        let unmatched: Vec<String> = selection
            .unmatched(names.iter().copied())
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut out: Vec<String> = Vec::new();
        self.consumers.retain(|c| {
            let keep = selection.matches(c.name.as_str());
            if !keep {
                out.push(c.name.as_str().to_string());
            }
            keep
        });
        self.invalid.retain(|c| {
            let keep = selection.matches(&c.name);
            if !keep {
                out.push(c.name.clone());
            }
            keep
        });
        out.sort();
        self.unselected = out;
        self.selection = Some(selection.shown());
        unmatched
    }

    /// Every consumer folder's name, selected or not.
    pub fn folder_names(&self) -> Vec<&str> {
        self.consumers
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.invalid.iter().map(|c| c.name.as_str()))
            .chain(self.unselected.iter().map(String::as_str))
            .collect()
    }
}

/// Discovery could not look at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("consumers folder `{0}` does not exist; create it with one folder per consumer, or set `consumers-dir` to where they are")]
    Missing(String),
    #[error("`{0}` is not a folder; set `consumers-dir` to the folder that holds one folder per consumer")]
    NotADirectory(String),
    #[error("could not read `{path}`: {source}")]
    Read { path: String, source: io::Error },
}

/// `path` relative to `root` for display, `/`-separated.
pub fn display_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let s = rel.to_string_lossy().replace('\\', "/");
    let s = s.trim_start_matches("./").to_string();
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

/// Discover the consumers under `consumers_dir` (relative to `root`, the repository root, or
/// absolute).
pub fn discover(
    root: &Path,
    consumers_dir: &Path,
    project: &ProjectName,
) -> Result<Discovery, DiscoveryError> {
    let dir = root.join(consumers_dir);
    let shown = display_path(root, &dir);
    let meta = match fs::metadata(&dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DiscoveryError::Missing(shown))
        }
        Err(source) => {
            return Err(DiscoveryError::Read {
                path: shown,
                source,
            })
        }
    };
    if !meta.is_dir() {
        return Err(DiscoveryError::NotADirectory(shown));
    }
    let mut folders = Vec::new();
    let listing = fs::read_dir(&dir).map_err(|source| DiscoveryError::Read {
        path: shown.clone(),
        source,
    })?;
    for item in listing {
        let item = item.map_err(|source| DiscoveryError::Read {
            path: shown.clone(),
            source,
        })?;
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        folders.push((name, path));
    }
    folders.sort();

    let mut found = Discovery::default();
    for (folder, path) in folders {
        let display_dir = display_path(root, &path);
        let toml_path = path.join(consumer_config::FILE_NAME);
        let has_toml = toml_path.is_file();
        if !has_toml && !path.join(DEFAULT_DOCKERFILE).is_file() {
            found.skipped.push(SkippedFolder {
                reason: format!(
                    "`{display_dir}` has no `Dockerfile`, so it is not a consumer; add one to deploy it"
                ),
                display_dir,
            });
            continue;
        }
        let mut diagnostics = Vec::new();
        let name = match ConsumerName::parse(&folder)
            .and_then(|n| resource_name(project, &n).map(|r| (n, r)))
        {
            Ok(n) => Some(n),
            Err(e) => {
                let help = match e.suggestion {
                    Some(s) => format!("rename the folder, for example to `{s}`"),
                    None => "rename the folder with lowercase letters, digits, `-` and `_`".into(),
                };
                diagnostics.push(Diagnostic::error(display_dir.clone(), e.reason).help(help));
                None
            }
        };
        let config_file = has_toml.then(|| display_path(root, &toml_path));
        let settings = match &config_file {
            Some(file) => match fs::read(&toml_path).map(String::from_utf8) {
                Ok(Ok(text)) => match consumer_config::validate(&text, file, &path) {
                    Ok(v) => {
                        found.warnings.extend(v.warnings);
                        Some(v.settings)
                    }
                    Err(errors) => {
                        diagnostics.extend(errors);
                        None
                    }
                },
                Ok(Err(e)) => {
                    diagnostics.push(crate::diagnostics::not_utf8(
                        file.clone(),
                        e.as_bytes(),
                        "the file",
                    ));
                    None
                }
                Err(e) => {
                    diagnostics.push(
                        Diagnostic::error(file.clone(), format!("could not read the file: {e}"))
                            .help("make it a file the runner can read"),
                    );
                    None
                }
            },
            None => Some(ConsumerSettings::default()),
        };
        // The Dockerfile is read now, so a pull request's plan catches what would only fail at
        // deploy (a missing one is already a finding of the configuration).
        if let Some(s) = &settings {
            let file = format!("{display_dir}/{}", s.build.dockerfile);
            match fs::read(path.join(&s.build.dockerfile)).map(String::from_utf8) {
                Ok(Ok(text)) => {
                    for f in dockerfile::findings(&text, s.build.target.as_deref()) {
                        let mut d = Diagnostic::error(file.clone(), f.message).help(f.help);
                        if let Some(line) = f.line {
                            d = d.at(line, 1);
                        }
                        diagnostics.push(d);
                    }
                }
                Ok(Err(e)) => diagnostics.push(crate::diagnostics::not_utf8(
                    file,
                    e.as_bytes(),
                    "the Dockerfile",
                )),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => diagnostics.push(
                    Diagnostic::error(file, format!("the Dockerfile could not be read: {e}"))
                        .help("make it a file the runner can read"),
                ),
            }
        }
        match (name, settings) {
            (Some((name, resource_name)), Some(settings)) if diagnostics.is_empty() => {
                found.consumers.push(ConsumerSpec {
                    name,
                    resource_name,
                    dir: path,
                    display_dir,
                    config_file,
                    settings,
                })
            }
            _ => found.invalid.push(InvalidConsumer {
                name: folder,
                display_dir,
                diagnostics,
            }),
        }
    }
    reject_collisions(&mut found);
    Ok(found)
}

/// Consumers whose resource names collide are all refused: deploying either would overwrite the
/// other's service.
fn reject_collisions(found: &mut Discovery) {
    let mut by_resource: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, c) in found.consumers.iter().enumerate() {
        by_resource
            .entry(c.resource_name.clone())
            .or_default()
            .push(i);
    }
    let mut colliding: Vec<usize> = Vec::new();
    for (resource, idx) in &by_resource {
        if idx.len() < 2 {
            continue;
        }
        let folders: Vec<String> = idx
            .iter()
            .map(|&i| format!("`{}`", found.consumers[i].display_dir))
            .collect();
        for &i in idx {
            let c = &found.consumers[i];
            let diag = Diagnostic::error(
                c.display_dir.clone(),
                format!(
                    "consumers {} would all be deployed as `{resource}`",
                    folders.join(" and ")
                ),
            )
            .help("rename one folder: a folder already named `<project>-…` is not prefixed again");
            found.invalid.push(InvalidConsumer {
                name: c.name.to_string(),
                display_dir: c.display_dir.clone(),
                diagnostics: vec![diag],
            });
            colliding.push(i);
        }
    }
    colliding.sort_unstable();
    for i in colliding.into_iter().rev() {
        found.consumers.remove(i);
    }
    found.invalid.sort_by(|a, b| a.name.cmp(&b.name));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> ProjectName {
        ProjectName::parse("shop").unwrap()
    }

    fn consumer(root: &Path, name: &str, toml: Option<&str>) {
        let dir = root.join("consumer_scripts").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
        if let Some(t) = toml {
            fs::write(dir.join("consumer.toml"), t).unwrap();
        }
    }

    fn render(d: &Discovery) -> String {
        let mut out = String::new();
        for c in &d.consumers {
            out.push_str(&format!(
                "consumer {} -> {} ({})\n",
                c.name, c.resource_name, c.display_dir
            ));
        }
        for i in &d.invalid {
            for diag in &i.diagnostics {
                out.push_str(&format!("invalid {}: {diag}\n", i.name));
            }
        }
        for s in &d.skipped {
            out.push_str(&format!("skipped: {}\n", s.reason));
        }
        for w in &d.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out
    }

    #[test]
    fn finds_consumers_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        consumer(r, "orders", None);
        consumer(r, "inventory_audit", Some("cpu = 512\nmemory = 1024\n"));
        consumer(r, "Bad.Name", None);
        consumer(r, "broken", Some("cpu = 256\nmemory = 4096\n"));
        fs::create_dir_all(r.join("consumer_scripts/docs")).unwrap();
        fs::create_dir_all(r.join("consumer_scripts/.cache/x")).unwrap();
        fs::write(r.join("consumer_scripts/.cache/x/Dockerfile"), "").unwrap();
        fs::write(r.join("consumer_scripts/README.md"), "").unwrap();
        let d = discover(r, Path::new("consumer_scripts"), &project()).unwrap();
        insta::assert_snapshot!(render(&d));
        assert_eq!(d.consumers[0].settings.cpu, 512);
    }

    #[test]
    fn names_that_collide_after_prefixing_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        consumer(dir.path(), "orders", None);
        consumer(dir.path(), "shop-orders", None);
        consumer(dir.path(), "payments", None);
        let d = discover(dir.path(), Path::new("consumer_scripts"), &project()).unwrap();
        assert_eq!(d.consumers.len(), 1);
        assert_eq!(d.consumers[0].name.as_str(), "payments");
        insta::assert_snapshot!(render(&d));
    }

    #[test]
    fn a_dockerfile_that_cannot_build_makes_the_consumer_invalid_at_plan_time() {
        let dir = tempfile::tempdir().unwrap();
        consumer(dir.path(), "empty", None);
        fs::write(dir.path().join("consumer_scripts/empty/Dockerfile"), "").unwrap();
        consumer(dir.path(), "no-from", None);
        fs::write(
            dir.path().join("consumer_scripts/no-from/Dockerfile"),
            "# build\nRUN make\n",
        )
        .unwrap();
        consumer(
            dir.path(),
            "targeted",
            Some("[build]\ntarget = \"runtime\"\n"),
        );
        consumer(dir.path(), "fine", None);
        let d = discover(dir.path(), Path::new("consumer_scripts"), &project()).unwrap();
        assert_eq!(d.consumers.len(), 1);
        let found: Vec<(String, String, Option<usize>)> = d
            .invalid
            .iter()
            .flat_map(|i| {
                i.diagnostics
                    .iter()
                    .map(|d| (d.file.clone(), d.message.clone(), d.line))
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "consumer_scripts/empty/Dockerfile".to_string(),
                    "the Dockerfile has no instructions".to_string(),
                    None
                ),
                (
                    "consumer_scripts/no-from/Dockerfile".to_string(),
                    "the Dockerfile's first instruction is `RUN`, not `FROM`".to_string(),
                    Some(2)
                ),
                (
                    "consumer_scripts/targeted/Dockerfile".to_string(),
                    "`[build] target` `runtime` is not a stage of the Dockerfile".to_string(),
                    None
                ),
            ]
        );
    }

    #[test]
    fn a_missing_or_wrong_consumers_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = discover(dir.path(), Path::new("nope"), &project()).unwrap_err();
        assert_eq!(err.to_string(), "consumers folder `nope` does not exist; create it with one folder per consumer, or set `consumers-dir` to where they are");
        fs::write(dir.path().join("file"), "").unwrap();
        let err = discover(dir.path(), Path::new("file"), &project()).unwrap_err();
        assert!(matches!(err, DiscoveryError::NotADirectory(_)));
    }

    #[test]
    fn a_consumer_toml_that_is_not_utf8_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        consumer(dir.path(), "orders", None);
        fs::write(
            dir.path().join("consumer_scripts/orders/consumer.toml"),
            [0xff, 0xfe, 0x00],
        )
        .unwrap();
        let d = discover(dir.path(), Path::new("consumer_scripts"), &project()).unwrap();
        assert!(d.invalid[0].diagnostics[0].message.contains("not UTF-8"));
    }

    #[test]
    fn an_absolute_consumers_dir_inside_the_workspace_is_shown_relative() {
        let dir = tempfile::tempdir().unwrap();
        consumer(dir.path(), "orders", None);
        let abs = dir.path().join("consumer_scripts");
        let d = discover(dir.path(), &abs, &project()).unwrap();
        assert_eq!(d.consumers[0].display_dir, "consumer_scripts/orders");
    }
}
