//! The fingerprint of a consumer's image: a BLAKE3 hash of its build context as Docker would send
//! it, plus everything else that changes the build (Dockerfile path, target, build arguments,
//! platform). Equal fingerprints mean the same image can be reused; any changed byte in the
//! context changes it, a file left out by `.dockerignore` does not.
//!
//! Files are streamed through the hasher in fixed-size chunks: memory stays flat whatever the size
//! of the context. The hash depends on paths and contents only, never on timestamps, owners or
//! the order the file system lists entries in, so it is the same on every machine.

use std::fmt;
use std::fs::File;
use std::io::Read;

use crate::consumers::config::{BuildSettings, Platform};
use crate::context::{BuildContext, ContextError, Entry, EntryKind};

/// Bumped whenever what goes into the hash changes, so old and new fingerprints never match.
const SCHEME: &[u8] = b"cdc-deploy build fingerprint v1";
/// Read buffer size.
const CHUNK: usize = 256 * 1024;
/// Prefix of the image tag that carries the fingerprint.
pub const TAG_PREFIX: &str = "ctx-";

/// A build fingerprint, 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub(crate) fn from_hash(hash: blake3::Hash) -> Self {
        Fingerprint(hash.to_hex().to_string())
    }

    pub fn hex(&self) -> &str {
        &self.0
    }

    /// The first 12 digits, for tables.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }

    /// The image tag that marks an image built from this fingerprint: `ctx-<64 hex digits>`.
    pub fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}", self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fingerprint with what went into it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FingerprintReport {
    pub fingerprint: Fingerprint,
    pub files: usize,
    pub bytes: u64,
}

fn field(h: &mut blake3::Hasher, bytes: &[u8]) {
    // Length-prefixed, so no two different inputs produce the same byte stream.
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// The hash, fed in the order of the context's entries: each entry, then a file's bytes.
/// Fingerprinting feeds it from disk; the tar sent to the image builder feeds it from the very
/// bytes it sends, so a file edited in between is caught instead of built under the old
/// fingerprint.
pub struct FingerprintHasher {
    h: blake3::Hasher,
}

impl FingerprintHasher {
    /// Start with everything that changes the build besides the files.
    pub fn new(dockerfile: &str, build: &BuildSettings, platform: Platform) -> Self {
        let mut h = blake3::Hasher::new();
        field(&mut h, SCHEME);
        field(&mut h, platform.as_str().as_bytes());
        field(&mut h, dockerfile.as_bytes());
        field(&mut h, build.target.as_deref().unwrap_or("").as_bytes());
        h.update(&(build.args.len() as u64).to_le_bytes());
        for (k, v) in &build.args {
            field(&mut h, k.as_bytes());
            field(&mut h, v.as_bytes());
        }
        FingerprintHasher { h }
    }

    /// An entry's path and kind; a file's bytes follow through [`FingerprintHasher::data`].
    pub fn entry(&mut self, entry: &Entry) {
        field(&mut self.h, entry.path.as_bytes());
        match &entry.kind {
            EntryKind::Dir => {
                self.h.update(b"d");
            }
            EntryKind::Symlink { target } => {
                self.h.update(b"l");
                field(&mut self.h, target.as_bytes());
            }
            EntryKind::File { size, executable } => {
                self.h.update(if *executable { b"x" } else { b"f" });
                self.h.update(&size.to_le_bytes());
            }
        }
    }

    /// Bytes of the file last passed to [`FingerprintHasher::entry`].
    pub fn data(&mut self, bytes: &[u8]) {
        self.h.update(bytes);
    }

    pub fn finish(self) -> Fingerprint {
        Fingerprint::from_hash(self.h.finalize())
    }
}

/// Hash a scanned context with its build settings.
pub fn fingerprint(
    ctx: &BuildContext,
    build: &BuildSettings,
    platform: Platform,
) -> Result<FingerprintReport, ContextError> {
    let mut h = FingerprintHasher::new(&ctx.dockerfile, build, platform);
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0;
    for entry in &ctx.entries {
        h.entry(entry);
        if let EntryKind::File { size, .. } = &entry.kind {
            let path = ctx.path_of(entry);
            let mut file = File::open(&path).map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            let mut read = 0u64;
            loop {
                let n = file.read(&mut buf).map_err(|source| ContextError::Read {
                    path: path.clone(),
                    source,
                })?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                if read > *size {
                    return Err(ContextError::Changed { path });
                }
                h.data(&buf[..n]);
            }
            if read != *size {
                return Err(ContextError::Changed { path });
            }
            bytes += read;
        }
    }
    Ok(FingerprintReport {
        fingerprint: h.finish(),
        files: ctx.file_count(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn build() -> BuildSettings {
        BuildSettings {
            dockerfile: "Dockerfile".into(),
            target: None,
            args: BTreeMap::new(),
        }
    }

    fn write(root: &Path, path: &str, text: &str) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn fp(root: &Path, b: &BuildSettings, p: Platform) -> Fingerprint {
        let ctx = BuildContext::scan(root, &b.dockerfile).unwrap();
        fingerprint(&ctx, b, p).unwrap().fingerprint
    }

    fn sample(root: &Path) {
        write(root, "Dockerfile", "FROM scratch\nCOPY . /app\n");
        write(root, ".dockerignore", "**/__pycache__\n*.log\n");
        write(root, "app/main.py", "print('hi')\n");
        write(root, "app/handler.py", "def handle(e): pass\n");
    }

    #[test]
    fn stable_across_copies_and_creation_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        sample(a.path());
        // Same files, written in a different order and at a different time.
        write(b.path(), "app/handler.py", "def handle(e): pass\n");
        std::thread::sleep(std::time::Duration::from_millis(20));
        write(b.path(), "app/main.py", "print('hi')\n");
        write(b.path(), ".dockerignore", "**/__pycache__\n*.log\n");
        write(b.path(), "Dockerfile", "FROM scratch\nCOPY . /app\n");
        let p = Platform::LinuxAmd64;
        assert_eq!(fp(a.path(), &build(), p), fp(b.path(), &build(), p));
    }

    #[test]
    fn pinned_value_for_a_known_context() {
        // Guards against an accidental change to the scheme, which would rebuild every image.
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        insta::assert_snapshot!(fp(a.path(), &build(), Platform::LinuxAmd64).hex());
    }

    #[test]
    fn any_changed_byte_changes_it() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let before = fp(a.path(), &build(), Platform::LinuxAmd64);
        write(a.path(), "app/main.py", "print('hI')\n");
        assert_ne!(before, fp(a.path(), &build(), Platform::LinuxAmd64));
    }

    #[test]
    fn ignored_files_do_not_change_it() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let before = fp(a.path(), &build(), Platform::LinuxAmd64);
        write(a.path(), "debug.log", "noise");
        write(a.path(), "app/__pycache__/main.cpython-312.pyc", "bytes");
        assert_eq!(before, fp(a.path(), &build(), Platform::LinuxAmd64));
        write(
            a.path(),
            "app/debug.log",
            "not ignored: *.log is anchored at the root",
        );
        assert_ne!(before, fp(a.path(), &build(), Platform::LinuxAmd64));
    }

    #[test]
    fn renames_modes_and_empty_folders_change_it() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let p = Platform::LinuxAmd64;
        let base = fp(a.path(), &build(), p);
        fs::rename(a.path().join("app/main.py"), a.path().join("app/main2.py")).unwrap();
        let renamed = fp(a.path(), &build(), p);
        assert_ne!(base, renamed);
        fs::set_permissions(
            a.path().join("app/main2.py"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let chmod = fp(a.path(), &build(), p);
        assert_ne!(renamed, chmod);
        fs::create_dir(a.path().join("empty")).unwrap();
        assert_ne!(chmod, fp(a.path(), &build(), p));
    }

    #[test]
    fn build_settings_change_it() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let base = fp(a.path(), &build(), Platform::LinuxAmd64);
        assert_ne!(base, fp(a.path(), &build(), Platform::LinuxArm64));
        let mut with_target = build();
        with_target.target = Some("runtime".into());
        assert_ne!(base, fp(a.path(), &with_target, Platform::LinuxAmd64));
        let mut with_arg = build();
        with_arg.args.insert("PY".into(), "3.12".into());
        let arg1 = fp(a.path(), &with_arg, Platform::LinuxAmd64);
        assert_ne!(base, arg1);
        with_arg.args.insert("PY".into(), "3.13".into());
        assert_ne!(arg1, fp(a.path(), &with_arg, Platform::LinuxAmd64));
    }

    #[test]
    fn reports_files_and_bytes() {
        let a = tempfile::tempdir().unwrap();
        sample(a.path());
        let ctx = BuildContext::scan(a.path(), "Dockerfile").unwrap();
        let r = fingerprint(&ctx, &build(), Platform::LinuxAmd64).unwrap();
        assert_eq!(r.files, 4);
        assert_eq!(r.bytes, ctx.file_bytes());
        assert_eq!(r.fingerprint.tag().len(), 68);
    }
}
