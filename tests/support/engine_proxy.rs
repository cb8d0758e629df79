//! A Docker engine that fails mid-build: a Unix socket passing every connection through to the
//! real engine, byte for byte, except a connection carrying a build request (`POST /…/build`),
//! which it cuts short once the engine has started answering (`Fault::Closes`), or on which it
//! passes the request on but never one byte of the answer (`Fault::Hangs`), as a wedged engine
//! does. Serving until dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection of a build is closed once the engine has sent the first of its answer.
    Closes,
    /// The build request reaches the engine; its answer never reaches the client.
    Hangs,
}

pub struct EngineProxy {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real engine's socket: `DOCKER_HOST` when it names one, else the default.
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(h.trim_start_matches("unix://")),
        Ok(h) if !h.is_empty() => panic!("the engine proxy needs a unix socket, not `{h}`"),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

impl EngineProxy {
    /// Start on the current tokio runtime (a multi-threaded one: the binary under test talks to
    /// it while the test waits).
    pub fn start(fault: Fault) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let engine = engine_socket();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let engine = engine.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = UnixStream::connect(&engine).await {
                        pass(client, upstream, fault).await;
                    }
                });
            }
        });
        EngineProxy {
            _dir: dir,
            socket,
            task,
        }
    }

    /// `unix:///…/docker.sock`, for `DOCKER_HOST`.
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// Whether a chunk the client sent starts a build request.
fn is_build(chunk: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&chunk[..chunk.len().min(200)]);
    let line = head.lines().next().unwrap_or_default();
    line.starts_with("POST ") && line.contains("/build?")
}

async fn pass(client: UnixStream, upstream: UnixStream, fault: Fault) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_engine, mut to_engine) = upstream.into_split();
    let building = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = building.clone();
    let requests = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if is_build(&buf[..n]) {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            if to_engine.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_engine.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from_engine.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if building.load(std::sync::atomic::Ordering::SeqCst) {
            match fault {
                // The first of the answer, then nothing: the connection ends mid-stream.
                Fault::Closes => {
                    let _ = to_client.write_all(&buf[..n]).await;
                    break;
                }
                // Read and dropped, the client left waiting.
                Fault::Hangs => continue,
            }
        }
        if to_client.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to_client.shutdown().await;
    requests.abort();
}
