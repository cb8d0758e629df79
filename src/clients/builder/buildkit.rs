//! BuildKit's progress, as the engine streams it (`moby.buildkit.trace` status messages), turned
//! into plain log lines the way `docker build --progress=plain` prints them: `#5 [2/3] RUN make`,
//! the step's output as `#5 …`, then `#5 DONE 0.3s`, `#5 CACHED` or `#5 ERROR: …`. The failing
//! step and its last lines are kept for the failure message.

use std::collections::{HashMap, HashSet, VecDeque};

use bollard::moby::buildkit::v1::StatusResponse;

use super::{OnLine, TAIL_LINES};

/// What BuildKit reported so far.
#[derive(Default)]
pub struct Progress {
    numbers: HashMap<String, usize>,
    names: HashMap<String, String>,
    started: HashSet<String>,
    finished: HashSet<String>,
    partial: HashMap<String, String>,
    logs: HashMap<String, VecDeque<String>>,
    tail: VecDeque<String>,
    /// The vertex that failed, with BuildKit's error for it.
    failed: Option<(String, String)>,
    stats: super::BuildStats,
}

/// How BuildKit names the import of a `cache-from` image.
const CACHE_IMPORT: &str = "importing cache manifest from ";

/// Whether a vertex is a step of the Dockerfile other than `FROM`: `[2/3] RUN make`,
/// `[deps 2/4] COPY . .` (not `[internal] load …`, nor BuildKit's own work such as exporting).
fn is_step(name: &str) -> bool {
    let Some((prefix, instruction)) = name.strip_prefix('[').and_then(|r| r.split_once("] "))
    else {
        return false;
    };
    let position = prefix.rsplit(' ').next().unwrap_or(prefix);
    let numbered = position
        .split_once('/')
        .is_some_and(|(n, m)| n.parse::<usize>().is_ok() && m.parse::<usize>().is_ok());
    numbered && !instruction.to_ascii_uppercase().starts_with("FROM ")
}

impl Progress {
    fn number(&mut self, digest: &str) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(digest.to_string()).or_insert(next)
    }

    fn emit(&mut self, line: String, on_line: &mut OnLine<'_>) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.clone());
        on_line(&line);
    }

    /// Take one status message.
    pub fn update(&mut self, status: &StatusResponse, on_line: &mut OnLine<'_>) {
        for v in &status.vertexes {
            let n = self.number(&v.digest);
            self.names.insert(v.digest.clone(), v.name.clone());
            if v.started.is_some() && self.started.insert(v.digest.clone()) {
                self.emit(format!("#{n} {}", v.name), on_line);
            }
            if v.completed.is_some() && self.finished.insert(v.digest.clone()) {
                if is_step(&v.name) {
                    self.stats.steps += 1;
                }
                self.flush_partial(&v.digest, on_line);
                let line = if !v.error.is_empty() && v.name.starts_with(CACHE_IMPORT) {
                    // A cache image not pushed yet (the first build): the build goes on without.
                    format!(
                        "#{n} no cache there yet, the build goes on without it: {}",
                        v.error
                    )
                } else if !v.error.is_empty() {
                    self.failed = Some((v.digest.clone(), v.error.clone()));
                    format!("#{n} ERROR: {}", v.error)
                } else if v.cached {
                    if is_step(&v.name) {
                        self.stats.cached += 1;
                    }
                    format!("#{n} CACHED")
                } else {
                    match (&v.started, &v.completed) {
                        (Some(s), Some(c)) => {
                            let secs =
                                (c.seconds - s.seconds) as f64 + f64::from(c.nanos - s.nanos) / 1e9;
                            format!("#{n} DONE {:.1}s", secs.max(0.0))
                        }
                        _ => format!("#{n} DONE"),
                    }
                };
                self.emit(line, on_line);
            }
        }
        for log in &status.logs {
            let n = self.number(&log.vertex);
            let text = String::from_utf8_lossy(&log.msg);
            let mut partial = self.partial.remove(&log.vertex).unwrap_or_default();
            partial.push_str(&text);
            // A lone `\r` (a progress bar redrawn) ends a line too, as the runner reads it.
            while let Some(i) = partial.find(['\n', '\r']) {
                let line: String = partial.drain(..=i).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if !line.is_empty() {
                    self.vertex_line(&log.vertex, n, line, on_line);
                }
            }
            if !partial.is_empty() {
                self.partial.insert(log.vertex.clone(), partial);
            }
        }
        for w in &status.warnings {
            let n = self.number(&w.vertex);
            let line = format!("#{n} WARN: {}", String::from_utf8_lossy(&w.short));
            self.emit(line, on_line);
        }
    }

    fn flush_partial(&mut self, digest: &str, on_line: &mut OnLine<'_>) {
        if let Some(rest) = self.partial.remove(digest) {
            let n = self.number(digest);
            self.vertex_line(digest, n, &rest, on_line);
        }
    }

    fn vertex_line(&mut self, digest: &str, n: usize, line: &str, on_line: &mut OnLine<'_>) {
        let kept = self.logs.entry(digest.to_string()).or_default();
        if kept.len() == TAIL_LINES {
            kept.pop_front();
        }
        kept.push_back(line.to_string());
        self.emit(format!("#{n} {line}"), on_line);
    }

    /// Print what is still buffered.
    pub fn finish(&mut self, on_line: &mut OnLine<'_>) {
        let pending: Vec<String> = self.partial.keys().cloned().collect();
        for d in pending {
            self.flush_partial(&d, on_line);
        }
    }

    /// Steps finished, and how many of them came from the cache.
    pub fn stats(&self) -> super::BuildStats {
        self.stats
    }

    /// The step that failed, as BuildKit names it (`[2/3] RUN make`).
    pub fn failed_step(&self) -> Option<&str> {
        let (digest, _) = self.failed.as_ref()?;
        self.names.get(digest).map(String::as_str)
    }

    /// The failed step's own output when it printed any, else the last lines of the build.
    pub fn tail(&self) -> Vec<String> {
        match self.failed.as_ref().and_then(|(d, _)| self.logs.get(d)) {
            Some(lines) if !lines.is_empty() => lines.iter().cloned().collect(),
            _ => self.tail.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex, VertexLog};

    fn vertex(digest: &str, name: &str, started: bool, completed: bool, error: &str) -> Vertex {
        let mut v = Vertex {
            digest: digest.into(),
            name: name.into(),
            error: error.into(),
            ..Default::default()
        };
        if started {
            let t = v.started.get_or_insert_with(Default::default);
            t.seconds = 10;
        }
        if completed {
            let t = v.completed.get_or_insert_with(Default::default);
            t.seconds = 11;
            t.nanos = 500_000_000;
        }
        v
    }

    fn log(digest: &str, msg: &str) -> VertexLog {
        VertexLog {
            vertex: digest.into(),
            msg: msg.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn renders_plain_progress_and_keeps_the_failing_step() {
        let mut p = Progress::default();
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        let updates = [
            StatusResponse {
                vertexes: vec![
                    vertex("a", "[1/3] FROM base", true, true, ""),
                    vertex("b", "[2/3] RUN make", true, false, ""),
                ],
                ..Default::default()
            },
            StatusResponse {
                logs: vec![log("b", "compiling\nlinking"), log("b", " done\n")],
                ..Default::default()
            },
            StatusResponse {
                vertexes: vec![vertex("b", "[2/3] RUN make", true, true, "exit code: 2")],
                ..Default::default()
            },
        ];
        for u in &updates {
            p.update(u, &mut sink);
        }
        p.finish(&mut sink);
        assert_eq!(
            lines,
            [
                "#1 [1/3] FROM base",
                "#1 DONE 1.5s",
                "#2 [2/3] RUN make",
                "#2 compiling",
                "#2 linking done",
                "#2 ERROR: exit code: 2",
            ]
        );
        assert_eq!(p.failed_step(), Some("[2/3] RUN make"));
        assert_eq!(p.tail(), ["compiling", "linking done"]);
    }

    #[test]
    fn steps_from_the_cache_are_counted_once_without_from_and_buildkits_own_work() {
        let mut p = Progress::default();
        let mut sink = |_: &str| {};
        let done = |d: &str, name: &str, cached: bool| Vertex {
            cached,
            ..vertex(d, name, true, true, "")
        };
        let update = StatusResponse {
            vertexes: vec![
                done("a", "[internal] load remote build context", false),
                done(
                    "b",
                    "importing cache manifest from host/repo:cache-image",
                    false,
                ),
                done("c", "[deps 1/2] FROM host/base:1@sha256:ab", true),
                done("d", "[deps 2/2] RUN pip install -r requirements.txt", true),
                done("e", "[stage-1 2/3] COPY --from=deps /deps /deps", true),
                done("f", "[stage-1 3/3] COPY app /app", false),
                done("g", "exporting to image", false),
            ],
            ..Default::default()
        };
        p.update(&update, &mut sink);
        p.update(&update, &mut sink);
        assert_eq!(
            p.stats(),
            super::super::BuildStats {
                steps: 3,
                cached: 2
            }
        );
        assert_eq!(p.stats().describe(), "2 of 3 steps came from the cache");
        // A cache image not there yet is no failure of the build.
        let mut p = Progress::default();
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        p.update(
            &StatusResponse {
                vertexes: vec![vertex(
                    "i",
                    "importing cache manifest from host/repo:cache-image",
                    true,
                    true,
                    "host/repo:cache-image: not found",
                )],
                ..Default::default()
            },
            &mut sink,
        );
        assert_eq!(p.failed_step(), None);
        assert_eq!(
            lines[1],
            "#1 no cache there yet, the build goes on without it: host/repo:cache-image: not found"
        );
        assert!(is_step("[2/3] RUN make"));
        assert!(!is_step("[internal] load metadata for base"));
        assert!(!is_step("[1/3] FROM base"));
    }

    #[test]
    fn a_repeated_status_is_printed_once() {
        let mut p = Progress::default();
        let mut lines = Vec::new();
        let mut sink = |l: &str| lines.push(l.to_string());
        let cached = Vertex {
            cached: true,
            ..vertex("a", "[1/2] COPY . /app", true, true, "")
        };
        for _ in 0..3 {
            p.update(
                &StatusResponse {
                    vertexes: vec![cached.clone()],
                    ..Default::default()
                },
                &mut sink,
            );
        }
        assert_eq!(lines, ["#1 [1/2] COPY . /app", "#1 CACHED"]);
        assert_eq!(p.failed_step(), None);
    }
}
