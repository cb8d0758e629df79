//! The build context as the tar stream the Docker Engine's `/build` endpoint takes, produced from
//! the same walk the fingerprint hashes ([`BuildContext`]).
//!
//! The tar is written on a blocking thread into a bounded channel of fixed-size chunks, so memory
//! stays flat whatever the size of the context: the producer waits while the daemon is slow to
//! read. Headers are normalised (owner 0, mode 0644 or 0755, a fixed time) so the same files
//! always give the same archive and the daemon's layer cache hits across machines.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::consumers::config::{BuildSettings, Platform};
use crate::context::fingerprint::{Fingerprint, FingerprintHasher};
use crate::context::{BuildContext, EntryKind};

/// Bytes per chunk sent to the daemon.
pub const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the tar writer and the HTTP body.
pub const CHANNEL_DEPTH: usize = 4;
/// Modification time written for every entry: 2000-01-01T00:00:00Z. A fixed time keeps the
/// archive (and the daemon's cache) independent of when the files were checked out.
pub const MTIME: u64 = 946_684_800;

/// What the archive must hash to: the fingerprint the plan was made with, and what went into it
/// besides the files.
#[derive(Clone, Debug)]
pub struct Expected {
    pub fingerprint: Fingerprint,
    pub build: BuildSettings,
    pub platform: Platform,
}

/// Why the context that was sent is not the one that was fingerprinted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SentContextError {
    #[error("`{path}` changed while the build context was sent; run again once nothing writes to the consumer's folder")]
    FileChanged { path: String },
    #[error("the files sent to the builder hash to `{sent}`, not to the fingerprint `{planned}` the plan was made with: a file changed after it was fingerprinted; run again once nothing writes to the consumer's folder")]
    Mismatch { planned: String, sent: String },
    #[error("could not read `{path}` while sending the build context: {message}")]
    Read { path: String, message: String },
    #[error("the builder stopped reading the build context before its end")]
    Unfinished,
}

/// The check made while the context streams: settled once the last file was sent.
#[derive(Clone, Debug, Default)]
pub struct Verification(Arc<OnceLock<Result<(), SentContextError>>>);

impl Verification {
    /// `Ok` only when every byte was sent and hashed to the expected fingerprint.
    pub fn result(&self) -> Result<(), SentContextError> {
        self.0
            .get()
            .cloned()
            .unwrap_or(Err(SentContextError::Unfinished))
    }

    fn settle(&self, r: Result<(), SentContextError>) {
        let _ = self.0.set(r);
    }
}

/// Stream `ctx` as a tar, hashing what is sent. A file that changed since the scan, or bytes that
/// do not hash to `expected`, end the stream with an error before the archive's end marker, so
/// the builder fails instead of building them; [`Verification::result`] says what happened.
pub fn stream(
    ctx: BuildContext,
    expected: Expected,
) -> (
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
    Verification,
) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_DEPTH);
    let verification = Verification::default();
    let settled = verification.clone();
    tokio::task::spawn_blocking(move || {
        let closed = Arc::new(AtomicBool::new(false));
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
            closed: closed.clone(),
        };
        let mut hasher =
            FingerprintHasher::new(&ctx.dockerfile, &expected.build, expected.platform);
        let mut builder = tar::Builder::new(&mut writer);
        let mut result = write_entries(&ctx, &mut builder, Some(&mut hasher));
        if result.is_ok() {
            let sent = hasher.finish();
            if sent != expected.fingerprint {
                result = Err(SentContextError::Mismatch {
                    planned: expected.fingerprint.hex().to_string(),
                    sent: sent.hex().to_string(),
                });
            }
        }
        let result = result.and_then(|()| {
            builder.finish().map_err(|e| SentContextError::Read {
                path: ".".into(),
                message: e.to_string(),
            })
        });
        if result.is_err() {
            // Dropping the builder would finish the archive; nothing more may reach the builder.
            closed.store(true, Ordering::SeqCst);
        }
        drop(builder);
        match result {
            Ok(()) => {
                settled.settle(Ok(()));
                // The receiver may be gone already (the build failed); nothing more to do then.
                let _ = writer.flush();
            }
            Err(e) => {
                settled.settle(Err(e.clone()));
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (body, verification)
}

/// Write the whole archive to `out` (synchronously), without checking it against a fingerprint.
#[cfg(test)]
fn write_tar(ctx: &BuildContext, out: &mut impl Write) -> Result<(), SentContextError> {
    let mut builder = tar::Builder::new(out);
    write_entries(ctx, &mut builder, None)?;
    builder.finish().map_err(|e| SentContextError::Read {
        path: ".".into(),
        message: e.to_string(),
    })
}

fn write_entries<W: Write>(
    ctx: &BuildContext,
    builder: &mut tar::Builder<W>,
    mut hasher: Option<&mut FingerprintHasher>,
) -> Result<(), SentContextError> {
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in &ctx.entries {
        if let Some(h) = hasher.as_deref_mut() {
            h.entry(entry);
        }
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        // The builder hanging up is its failure, reported as its own; a read error is ours.
        let io_err = |e: io::Error| match e.kind() {
            io::ErrorKind::BrokenPipe => SentContextError::Unfinished,
            _ => SentContextError::Read {
                path: entry.path.clone(),
                message: e.to_string(),
            },
        };
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{}/", entry.path), io::empty())
                    .map_err(io_err)?;
            }
            EntryKind::File { size, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let file = File::open(ctx.path_of(entry)).map_err(io_err)?;
                let mut reader = Exact {
                    inner: file,
                    remaining: *size,
                    changed: false,
                    hasher: hasher.as_deref_mut(),
                };
                let appended = builder.append_data(&mut header, &entry.path, &mut reader);
                if reader.changed {
                    return Err(SentContextError::FileChanged {
                        path: entry.path.clone(),
                    });
                }
                appended.map_err(io_err)?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, &entry.path, target)
                    .map_err(io_err)?;
            }
        }
    }
    Ok(())
}

/// Reads exactly `remaining` bytes, feeding them to the hasher: a file that shrank or grew since
/// the scan is an error, not a corrupt archive.
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    changed: bool,
    hasher: Option<&'a mut FingerprintHasher>,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            // One byte more than scanned means the file grew.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? > 0 {
                self.changed = true;
                return Err(io::Error::other("the file grew since it was scanned"));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.changed = true;
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank since it was scanned",
            ));
        }
        if let Some(h) = self.hasher.as_deref_mut() {
            h.data(&buf[..n]);
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Collects writes into [`CHUNK`]-sized pieces and sends each one, waiting while the channel is
/// full.
struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
    /// Set once the archive failed: later writes (the end marker) are refused.
    closed: Arc<AtomicBool>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::other("the archive failed"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(Bytes::from(chunk))).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the daemon stopped reading the build context",
            )
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(io::Error::other("the archive failed"));
        }
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn write(root: &Path, path: &str, data: &[u8]) {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    fn listing(archive: &[u8]) -> Vec<(String, u32, u64, Vec<u8>)> {
        let mut a = tar::Archive::new(archive);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mtime = e.header().mtime().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, mode, mtime, data)
            })
            .collect()
    }

    #[test]
    fn holds_exactly_the_scanned_files_with_normalised_headers() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        write(r, "Dockerfile", b"FROM scratch\n");
        write(r, ".dockerignore", b"secret.txt\n");
        write(r, "secret.txt", b"nope");
        write(r, "app/run.sh", b"#!/bin/sh\n");
        std::fs::set_permissions(r.join("app/run.sh"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        write(r, "app/data.bin", &[7u8; 300_000]);
        std::fs::set_permissions(
            r.join("app/data.bin"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let ctx = BuildContext::scan(r, "Dockerfile").unwrap();
        let mut out = Vec::new();
        write_tar(&ctx, &mut out).unwrap();
        let entries = listing(&out);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app/",
                "app/data.bin",
                "app/run.sh"
            ]
        );
        let modes: Vec<u32> = entries.iter().map(|e| e.1).collect();
        assert_eq!(modes, [0o644, 0o644, 0o755, 0o644, 0o755]);
        assert!(entries.iter().all(|e| e.2 == MTIME));
        assert_eq!(entries[3].3, vec![7u8; 300_000]);
    }

    #[test]
    fn the_same_files_give_the_same_bytes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            write(d, "Dockerfile", b"FROM scratch\n");
            write(d, "x/y.txt", b"same");
        }
        let tar_of = |p: &Path| {
            let mut out = Vec::new();
            write_tar(&BuildContext::scan(p, "Dockerfile").unwrap(), &mut out).unwrap();
            out
        };
        assert_eq!(tar_of(a.path()), tar_of(b.path()));
    }

    #[test]
    fn a_file_that_shrank_since_the_scan_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "data", &[1u8; 1000]);
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        write(dir.path(), "data", &[1u8; 10]);
        let err = write_tar(&ctx, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("`data` changed"), "{err}");
        assert_eq!(
            err,
            SentContextError::FileChanged {
                path: "data".into()
            }
        );
    }

    fn expected(ctx: &BuildContext) -> Expected {
        let build = BuildSettings {
            dockerfile: "Dockerfile".into(),
            target: None,
            args: Default::default(),
        };
        let platform = Platform::LinuxAmd64;
        Expected {
            fingerprint: crate::context::fingerprint::fingerprint(ctx, &build, platform)
                .unwrap()
                .fingerprint,
            build,
            platform,
        }
    }

    #[test]
    fn a_file_that_grew_since_the_scan_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "data", &[1u8; 10]);
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        write(dir.path(), "data", &[1u8; 11]);
        let err = write_tar(&ctx, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            SentContextError::FileChanged {
                path: "data".into()
            }
        );
    }

    #[tokio::test]
    async fn streams_in_bounded_chunks_that_join_to_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "big", &[3u8; 3 * CHUNK + 17]);
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let mut whole = Vec::new();
        write_tar(&ctx, &mut whole).unwrap();
        let (body, verification) = stream(ctx.clone(), expected(&ctx));
        let chunks: Vec<Bytes> = body.map(|c| c.unwrap()).collect().await;
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert!(chunks.len() >= 3);
        assert_eq!(chunks.concat(), whole);
        assert_eq!(verification.result(), Ok(()));
    }

    #[tokio::test]
    async fn a_file_edited_after_fingerprinting_never_reaches_the_builder_whole() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        // More than the channel holds, so most of it is sent before the end is reached.
        write(dir.path(), "a-big-file", &[5u8; 2 * CHUNK * CHANNEL_DEPTH]);
        write(dir.path(), "app.py", b"print('v1')\n");
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let planned = expected(&ctx);
        // Same size, other bytes: only the hash can tell.
        write(dir.path(), "app.py", b"print('v2')\n");
        let (body, verification) = stream(ctx, planned.clone());
        let items: Vec<_> = body.collect().await;
        assert!(
            items.last().unwrap().is_err(),
            "the stream ends in an error"
        );
        let sent: Vec<u8> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .flat_map(|b| b.to_vec())
            .collect();
        assert!(
            !sent.ends_with(&[0u8; 1024]),
            "no end-of-archive marker: the builder sees a truncated archive"
        );
        match verification.result() {
            Err(SentContextError::Mismatch { planned: p, .. }) => {
                assert_eq!(p, planned.fingerprint.hex())
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_builder_that_hangs_up_is_not_a_changed_context() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "big", &[9u8; 4 * CHUNK * CHANNEL_DEPTH]);
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let (body, verification) = stream(ctx.clone(), expected(&ctx));
        let mut body = Box::pin(body);
        body.next().await.unwrap().unwrap();
        drop(body);
        for _ in 0..100 {
            if verification.0.get().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(verification.result(), Err(SentContextError::Unfinished));
    }

    #[tokio::test]
    async fn a_read_error_ends_the_stream_with_that_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "gone", b"data");
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let planned = expected(&ctx);
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        let (body, verification) = stream(ctx, planned);
        let items: Vec<_> = body.collect().await;
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert!(verification.result().is_err());
    }
}
