//! The build context of one consumer as Docker would send it: the folder's files in a stable
//! order, `.dockerignore` applied, the Dockerfile and `.dockerignore` always included.
//!
//! Fingerprinting hashes this list and the image builder streams it as a tar, so both see exactly
//! the same files. Only metadata is held in memory; file contents are read by the consumers of the
//! list, in chunks.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub mod dockerignore;
pub mod fingerprint;
pub mod tar;

use dockerignore::{DockerIgnore, PatternError};

/// The name of the ignore file at the context root.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// What an entry of the context is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file. Only the executable bit of its mode is kept: other bits depend on the
    /// checkout's umask, and git records no more than that either.
    File {
        size: u64,
        executable: bool,
    },
    Symlink {
        target: String,
    },
}

/// One file, folder or link, by its path relative to the context root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `/`-separated, no leading `./`.
    pub path: String,
    pub kind: EntryKind,
}

/// A scanned build context.
#[derive(Clone, Debug)]
pub struct BuildContext {
    pub root: PathBuf,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    /// Every entry Docker would send, sorted by path.
    pub entries: Vec<Entry>,
}

/// Failure to scan a context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("could not read `{path}`: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("`{file}` {source}")]
    DockerIgnore { file: PathBuf, source: PatternError },
    #[error("`{path}` has a name that is not UTF-8; rename it or add it to `.dockerignore`")]
    NotUtf8 { path: PathBuf },
    /// The `.dockerignore` is not UTF-8 text; its bytes, to say where.
    #[error("`{file}` is not UTF-8 text")]
    IgnoreNotUtf8 { file: PathBuf, bytes: Vec<u8> },
    #[error("`{path}` changed while it was being read; run again once nothing writes to the consumer's folder")]
    Changed { path: PathBuf },
}

impl BuildContext {
    /// Scan `root`, honouring its `.dockerignore`.
    pub fn scan(root: &Path, dockerfile: &str) -> Result<Self, ContextError> {
        let ignore_path = root.join(DOCKERIGNORE);
        let mut ignore = match fs::read(&ignore_path).map(String::from_utf8) {
            Ok(Ok(text)) => {
                DockerIgnore::parse(&text).map_err(|source| ContextError::DockerIgnore {
                    file: ignore_path.clone(),
                    source,
                })?
            }
            Ok(Err(e)) => {
                return Err(ContextError::IgnoreNotUtf8 {
                    file: ignore_path,
                    bytes: e.into_bytes(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => DockerIgnore::default(),
            Err(source) => {
                return Err(ContextError::Read {
                    path: ignore_path,
                    source,
                })
            }
        };
        ignore.keep(dockerfile);
        ignore.keep(DOCKERIGNORE);
        let mut entries = Vec::new();
        walk(root, "", None, &ignore, &mut entries)?;
        Ok(BuildContext {
            root: root.to_path_buf(),
            dockerfile: dockerfile.to_string(),
            entries,
        })
    }

    /// The file system path of an entry.
    pub fn path_of(&self, entry: &Entry) -> PathBuf {
        self.root.join(&entry.path)
    }

    /// Total size of the regular files.
    pub fn file_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }

    /// Number of regular files.
    pub fn file_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .count()
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    parent: Option<&[bool]>,
    ignore: &DockerIgnore,
    out: &mut Vec<Entry>,
) -> Result<(), ContextError> {
    let mut children = Vec::new();
    for item in fs::read_dir(dir).map_err(read_err(dir))? {
        let item = item.map_err(read_err(dir))?;
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| ContextError::NotUtf8 { path: item.path() })?;
        children.push((name, item.path()));
    }
    // Byte order of the name: stable across machines and file systems.
    children.sort();
    for (name, path) in children {
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let (excluded, matched) = ignore.excludes_below(&rel, parent);
        let ft = meta.file_type();
        if ft.is_dir() {
            if excluded && ignore.skips_dir(&rel) {
                continue;
            }
            if !excluded {
                out.push(Entry {
                    path: rel.clone(),
                    kind: EntryKind::Dir,
                });
            }
            walk(&path, &rel, Some(&matched), ignore, out)?;
        } else if excluded {
            continue;
        } else if ft.is_file() {
            out.push(Entry {
                path: rel,
                kind: EntryKind::File {
                    size: meta.len(),
                    executable: meta.permissions().mode() & 0o111 != 0,
                },
            });
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(read_err(&path))?;
            let target = target
                .into_os_string()
                .into_string()
                .map_err(|_| ContextError::NotUtf8 { path: path.clone() })?;
            out.push(Entry {
                path: rel,
                kind: EntryKind::Symlink { target },
            });
        }
        // Sockets, FIFOs and devices are not sent by Docker either.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn paths(ctx: &BuildContext) -> Vec<&str> {
        ctx.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn honours_dockerignore_and_always_keeps_build_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "Dockerfile", "FROM scratch");
        write(r, ".dockerignore", "*\n!app\n");
        write(r, "app/main.py", "print()");
        write(r, "notes.txt", "x");
        write(r, "tests/t.py", "x");
        let ctx = BuildContext::scan(r, "Dockerfile").unwrap();
        assert_eq!(
            paths(&ctx),
            vec![".dockerignore", "Dockerfile", "app", "app/main.py"]
        );
    }

    #[test]
    fn excluded_directories_are_skipped_or_searched_for_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "Dockerfile", "FROM scratch");
        write(r, ".dockerignore", "vendor\n!vendor/keep.txt\n");
        write(r, "vendor/drop.txt", "x");
        write(r, "vendor/keep.txt", "x");
        let ctx = BuildContext::scan(r, "Dockerfile").unwrap();
        assert_eq!(
            paths(&ctx),
            vec![".dockerignore", "Dockerfile", "vendor/keep.txt"]
        );
    }

    #[test]
    fn records_links_and_the_executable_bit() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "Dockerfile", "FROM scratch");
        write(r, "run.sh", "#!/bin/sh");
        fs::set_permissions(r.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("run.sh", r.join("start")).unwrap();
        let ctx = BuildContext::scan(r, "Dockerfile").unwrap();
        assert_eq!(
            ctx.entries[1].kind,
            EntryKind::File {
                size: 9,
                executable: true
            }
        );
        assert_eq!(
            ctx.entries[2].kind,
            EntryKind::Symlink {
                target: "run.sh".into()
            }
        );
        assert_eq!(ctx.file_count(), 2);
        assert_eq!(ctx.file_bytes(), 21);
    }

    #[test]
    fn a_bad_dockerignore_names_its_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", "FROM scratch");
        write(dir.path(), ".dockerignore", "ok\n[broken\n");
        let err = BuildContext::scan(dir.path(), "Dockerfile").unwrap_err();
        let text = err.to_string();
        assert!(text.contains(".dockerignore` line 2"), "{text}");
    }
}
