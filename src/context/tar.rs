//! The build context as the tar stream the Docker Engine's `/build` endpoint takes, produced from
//! the same walk the fingerprint hashes ([`BuildContext`]).
//!
//! The tar is written on a blocking thread into a bounded channel of fixed-size chunks, so memory
//! stays flat whatever the size of the context: the producer waits while the daemon is slow to
//! read. Headers are normalised (owner 0, mode 0644 or 0755, a fixed time) so the same files
//! always give the same archive and the daemon's layer cache hits across machines.

use std::fs::File;
use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::context::{BuildContext, EntryKind};

/// Bytes per chunk sent to the daemon.
pub const CHUNK: usize = 256 * 1024;
/// Chunks buffered between the tar writer and the HTTP body.
pub const CHANNEL_DEPTH: usize = 4;
/// Modification time written for every entry: 2000-01-01T00:00:00Z. A fixed time keeps the
/// archive (and the daemon's cache) independent of when the files were checked out.
pub const MTIME: u64 = 946_684_800;

/// Stream `ctx` as a tar. An error reading a file ends the stream with that error, which fails
/// the build instead of sending a truncated context.
pub fn stream(ctx: BuildContext) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&ctx, &mut writer).and_then(|()| writer.flush());
        if let Err(e) = result {
            // The receiver may be gone already (the build failed); nothing more to do then.
            let _ = tx.blocking_send(Err(e));
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Write the whole archive to `out` (synchronously); used by [`stream`] and by tests.
pub fn write_tar(ctx: &BuildContext, out: &mut impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Deterministic);
    for entry in &ctx.entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(MTIME);
        match &entry.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{}/", entry.path), io::empty())?;
            }
            EntryKind::File { size, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let path = ctx.path_of(entry);
                let file = File::open(&path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("could not read `{}`: {e}", path.display()),
                    )
                })?;
                let reader = Exact {
                    inner: file.take(*size),
                    remaining: *size,
                    path: &entry.path,
                };
                builder.append_data(&mut header, &entry.path, reader)?;
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &entry.path, target)?;
            }
        }
    }
    builder.finish()
}

/// Reads exactly `remaining` bytes: a file that shrank since the scan is an error, not a corrupt
/// archive. (One that grew is cut at its scanned size by `take`.)
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    path: &'a str,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "`{}` changed while the build context was sent; run again once nothing writes to the consumer's folder",
                    self.path
                ),
            ));
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
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
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
    }

    #[tokio::test]
    async fn streams_in_bounded_chunks_that_join_to_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "big", &[3u8; 3 * CHUNK + 17]);
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        let mut expected = Vec::new();
        write_tar(&ctx, &mut expected).unwrap();
        let chunks: Vec<Bytes> = stream(ctx).map(|c| c.unwrap()).collect().await;
        assert!(chunks.iter().all(|c| c.len() <= CHUNK));
        assert!(chunks.len() >= 3);
        assert_eq!(chunks.concat(), expected);
    }

    #[tokio::test]
    async fn a_read_error_ends_the_stream_with_that_error() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "Dockerfile", b"FROM scratch\n");
        write(dir.path(), "gone", b"data");
        let ctx = BuildContext::scan(dir.path(), "Dockerfile").unwrap();
        std::fs::remove_file(dir.path().join("gone")).unwrap();
        let items: Vec<_> = stream(ctx).collect().await;
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
    }
}
