//! The GitHub Actions runner's conventions, written once: step outputs, the job summary, log groups,
//! masking and annotations.
//!
//! Under Actions (`GITHUB_ACTIONS=true`) workflow commands go to stdout, where the runner reads
//! them. Anywhere else the same calls degrade to plain lines on stderr that a person can read.
//! This module is the only writer of stdout's `::commands::`; it never decides *what* to report.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rand::Rng;

/// One of the runner's annotation levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Notice => "notice",
        }
    }
}

/// An annotation: a message the runner attaches to a file and line of the pull request's diff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    pub level: Level,
    /// Path relative to the repository root, `/`-separated.
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub title: Option<String>,
    pub message: String,
}

impl Annotation {
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Annotation {
            level,
            file: None,
            line: None,
            column: None,
            title: None,
            message: message.into(),
        }
    }

    pub fn file(mut self, file: impl Into<String>, line: Option<usize>) -> Self {
        self.file = Some(file.into());
        self.line = line;
        self
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

/// A writer the console can share with tests.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Where the runner's conventions lead: files named by the environment and two text streams.
pub struct Runner {
    actions: bool,
    output_file: Option<PathBuf>,
    summary_file: Option<PathBuf>,
    stdout: SharedWriter,
    stderr: SharedWriter,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("actions", &self.actions)
            .field("output_file", &self.output_file)
            .field("summary_file", &self.summary_file)
            .finish_non_exhaustive()
    }
}

/// Failure to write one of the runner's files.
#[derive(Debug, thiserror::Error)]
pub enum GhaError {
    #[error("could not write to `{path}`: {source}")]
    File { path: PathBuf, source: io::Error },
    #[error("output name `{0}` is not valid: use letters, digits, `-` and `_`")]
    OutputName(String),
}

impl Runner {
    /// A runner that writes to the process's own stdout and stderr.
    pub fn new(actions: bool, output_file: Option<PathBuf>, summary_file: Option<PathBuf>) -> Self {
        Self::with_streams(
            actions,
            output_file,
            summary_file,
            Arc::new(Mutex::new(io::stdout())),
            Arc::new(Mutex::new(io::stderr())),
        )
    }

    /// A runner whose streams are given, for tests that read what was written.
    pub fn with_streams(
        actions: bool,
        output_file: Option<PathBuf>,
        summary_file: Option<PathBuf>,
        stdout: SharedWriter,
        stderr: SharedWriter,
    ) -> Self {
        Runner {
            actions,
            output_file,
            summary_file,
            stdout,
            stderr,
        }
    }

    /// This runner with what it prints going to stderr outside Actions (where stdout is a
    /// command's answer, to be piped), unchanged under Actions (one log either way).
    pub fn to_stderr(&self) -> Runner {
        Runner {
            actions: self.actions,
            output_file: self.output_file.clone(),
            summary_file: self.summary_file.clone(),
            stdout: if self.actions {
                self.stdout.clone()
            } else {
                self.stderr.clone()
            },
            stderr: self.stderr.clone(),
        }
    }

    fn emit(&self, stream: &SharedWriter, text: &str) {
        // The mask commands are the one place a secret is written, for the runner to read.
        let text: std::borrow::Cow<'_, str> = if text.starts_with("::add-mask::") {
            std::borrow::Cow::Borrowed(text)
        } else {
            crate::secret::hidden(text)
        };
        // A closed stdout or stderr is not worth failing a deployment over.
        let mut w = stream.lock().unwrap_or_else(|p| p.into_inner());
        let _ = w.write_all(text.as_bytes());
        let _ = w.flush();
    }

    /// Print a line meant for the person reading the log (a table, a status line).
    pub fn print(&self, text: &str) {
        let mut text = text.to_string();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        self.emit(&self.stdout, &text);
    }

    /// Print text that came from outside (a build log, a server's message, a report holding
    /// them): under Actions, workflow commands inside it are switched off for its duration with
    /// `::stop-commands::` and a token nobody can guess, so it cannot mask, annotate or set
    /// outputs.
    pub fn print_untrusted(&self, text: &str) {
        if self.actions && could_command(text) {
            let token = random_token();
            self.emit(&self.stdout, &format!("::stop-commands::{token}\n"));
            self.print(text);
            self.emit(&self.stdout, &format!("::{token}::\n"));
        } else {
            self.print(text);
        }
    }

    /// Ask the runner to mask `secret` in every later log line. Call it the moment a secret arrives.
    /// Whether the run is under GitHub Actions.
    pub fn is_actions(&self) -> bool {
        self.actions
    }

    pub fn add_mask(&self, secret: &str) {
        // Hidden from what this process writes too, wherever it runs: a line printed before
        // the runner has read the mask, or outside Actions, must not carry it either.
        crate::secret::hide(secret);
        if self.actions && !secret.is_empty() {
            for line in secret.lines().filter(|l| !l.trim().is_empty()) {
                self.emit(
                    &self.stdout,
                    &format!("::add-mask::{}\n", escape_data(line)),
                );
            }
        }
    }

    /// Open a collapsible log group; it closes when the guard is dropped.
    pub fn group(&self, title: &str) -> GroupGuard<'_> {
        if self.actions {
            self.emit(&self.stdout, &format!("::group::{}\n", escape_data(title)));
        } else {
            self.emit(&self.stderr, &format!("── {title}\n"));
        }
        GroupGuard { runner: self }
    }

    /// Report an annotation: an `::error file=…,line=…::` command under Actions, a plain line
    /// elsewhere.
    pub fn annotate(&self, a: &Annotation) {
        if self.actions {
            let mut props = Vec::new();
            if let Some(file) = &a.file {
                props.push(format!("file={}", escape_property(file)));
            }
            if let Some(line) = a.line {
                props.push(format!("line={line}"));
            }
            if let Some(col) = a.column {
                props.push(format!("col={col}"));
            }
            if let Some(title) = &a.title {
                props.push(format!("title={}", escape_property(title)));
            }
            let props = if props.is_empty() {
                String::new()
            } else {
                format!(" {}", props.join(","))
            };
            self.emit(
                &self.stdout,
                &format!(
                    "::{}{}::{}\n",
                    a.level.command(),
                    props,
                    escape_data(&a.message)
                ),
            );
        } else {
            let mut line = format!("{}: ", a.level.command());
            match (&a.file, a.line) {
                (Some(file), Some(n)) => line.push_str(&format!("{file}:{n}: ")),
                (Some(file), None) => line.push_str(&format!("{file}: ")),
                _ => {}
            }
            // The title names what failed (a consumer), except for configuration findings,
            // whose file already says it.
            if let (Some(title), None) = (&a.title, &a.file) {
                line.push_str(&format!("{title}: "));
            }
            line.push_str(&a.message);
            line.push('\n');
            self.emit(&self.stderr, &line);
        }
    }

    /// Shorthand for an error annotation with no file.
    pub fn error(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Error, message));
    }

    /// Shorthand for a notice annotation with no file.
    pub fn notice(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Notice, message));
    }

    /// Shorthand for a warning annotation with no file.
    pub fn warning(&self, message: &str) {
        self.annotate(&Annotation::new(Level::Warning, message));
    }

    /// Set a step output. Under Actions it is appended to the `GITHUB_OUTPUT` file in heredoc form
    /// with a random delimiter that is checked not to occur in the value.
    pub fn set_output(&self, name: &str, value: &str) -> Result<(), GhaError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(GhaError::OutputName(name.to_string()));
        }
        let value = crate::secret::hidden(value);
        let value = value.as_ref();
        match &self.output_file {
            Some(path) => append(path, &heredoc_entry(name, value)),
            None => {
                let shown = if value.contains('\n') {
                    format!("({} lines)", value.lines().count())
                } else {
                    value.to_string()
                };
                self.emit(&self.stderr, &format!("output {name}: {shown}\n"));
                Ok(())
            }
        }
    }

    /// Append markdown to the job summary. Without a summary file this does nothing: the commands
    /// print their own report to the terminal.
    pub fn append_summary(&self, markdown: &str) -> Result<(), GhaError> {
        match &self.summary_file {
            Some(path) => {
                let mut text = crate::secret::hidden(markdown).into_owned();
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                append(path, &text)
            }
            None => Ok(()),
        }
    }
}

/// Error annotations for failures that many consumers may share: one annotation per distinct
/// message, its title naming the consumers (`orders, billing and 3 more: the look-up failed`).
/// `failures` gives each consumer's name, what failed and the message.
pub fn grouped_errors<'a>(
    failures: impl IntoIterator<Item = (&'a str, &'static str, String)>,
) -> Vec<Annotation> {
    let mut groups: Vec<(String, &'static str, Vec<&'a str>)> = Vec::new();
    for (name, what, message) in failures {
        match groups
            .iter_mut()
            .find(|(m, w, _)| *m == message && *w == what)
        {
            Some((_, _, names)) => names.push(name),
            None => groups.push((message, what, vec![name])),
        }
    }
    groups
        .into_iter()
        .map(|(message, what, names)| {
            let who = match names.len() {
                1..=3 => names.join(", "),
                n => format!("{} and {} more", names[..2].join(", "), n - 2),
            };
            Annotation::new(Level::Error, message).title(format!("{who}: {what}"))
        })
        .collect()
}

/// Closes its log group when dropped.
#[must_use = "the group closes when this guard is dropped"]
pub struct GroupGuard<'a> {
    runner: &'a Runner,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if self.runner.actions {
            self.runner.emit(&self.runner.stdout, "::endgroup::\n");
        }
    }
}

fn append(path: &Path, text: &str) -> Result<(), GhaError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| GhaError::File {
            path: path.to_path_buf(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .map_err(|source| GhaError::File {
            path: path.to_path_buf(),
            source,
        })
}

/// The lines the runner reads in `text`: it breaks lines at `\n`, `\r\n` and a lone `\r`.
fn runner_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\n', '\r'])
}

/// Whether the runner could read a workflow command in `text`: `::name::` at the start of a line
/// (after spaces), or the older `##[name]` anywhere in one.
fn could_command(text: &str) -> bool {
    text.contains("##[") || runner_lines(text).any(|l| l.trim_start().starts_with("::"))
}

/// Text from outside made inert for a log line without a `::stop-commands::` block: a line that
/// would start with `::` is prefixed with `│ `, and `##[` is broken with a word joiner.
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        if line.trim_start().starts_with("::") {
            out.push_str("│ ");
        }
        out.push_str(&line.replace("##[", "##\u{2060}["));
        match rest[end..].chars().next() {
            Some(brk) => {
                out.push(brk);
                rest = &rest[end + brk.len_utf8()..];
            }
            None => return out,
        }
    }
}

/// A writer for the program's own log on stderr, which the runner also reads for workflow
/// commands: every line written through it is made [`inert`].
pub struct InertStderr;

/// Standard error with every hidden value replaced (outside Actions).
pub struct HiddenStderr;

impl Write for HiddenStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(crate::secret::hidden(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl Write for InertStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(inert(&crate::secret::hidden(&text)).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

fn random_token() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `name<<DELIM\nvalue\nDELIM\n`, with a delimiter that does not occur in the value.
fn heredoc_entry(name: &str, value: &str) -> String {
    loop {
        let delimiter = format!("ghadelimiter_{}", random_token());
        if !value.contains(&delimiter) && !name.contains(&delimiter) {
            return format!("{name}<<{delimiter}\n{value}\n{delimiter}\n");
        }
    }
}

/// Escape a workflow command's message the way the runner unescapes it.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow command's property value (`file=`, `title=`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A buffer that a test keeps a handle on while the runner writes to it.
    #[derive(Clone, Default)]
    pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    pub fn runner(actions: bool, dir: &Path) -> (Runner, Captured, Captured) {
        let out = Captured::default();
        let err = Captured::default();
        let runner = Runner::with_streams(
            actions,
            actions.then(|| dir.join("output")),
            actions.then(|| dir.join("summary")),
            Arc::new(Mutex::new(out.clone())),
            Arc::new(Mutex::new(err.clone())),
        );
        (runner, out, err)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::runner;
    use super::*;

    #[test]
    fn one_cause_shared_by_many_consumers_is_one_annotation() {
        let failures = [
            ("a", "the look-up failed", "refused".to_string()),
            ("b", "the look-up failed", "refused".to_string()),
            ("c", "the look-up failed", "refused".to_string()),
            ("d", "the look-up failed", "refused".to_string()),
            ("e", "the push failed", "denied".to_string()),
        ];
        let got: Vec<(Option<String>, String)> = grouped_errors(failures)
            .into_iter()
            .map(|a| (a.title, a.message))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Some("a, b and 2 more: the look-up failed".into()),
                    "refused".into()
                ),
                (Some("e: the push failed".into()), "denied".into()),
            ]
        );
    }

    #[test]
    fn outputs_use_heredoc_with_a_fresh_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _, _) = runner(true, dir.path());
        r.set_output("digest", "sha256:abc").unwrap();
        r.set_output("plan", "line one\nline two").unwrap();
        let text = std::fs::read_to_string(dir.path().join("output")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("digest<<ghadelimiter_"));
        let d1 = lines[0].trim_start_matches("digest<<");
        assert_eq!(lines[1], "sha256:abc");
        assert_eq!(lines[2], d1);
        let d2 = lines[3].trim_start_matches("plan<<");
        assert_ne!(d1, d2, "each output gets its own delimiter");
        assert_eq!(&lines[4..6], &["line one", "line two"]);
        assert_eq!(lines[6], d2);
    }

    #[test]
    fn a_value_never_contains_its_delimiter() {
        for _ in 0..100 {
            let entry = heredoc_entry("x", "ghadelimiter_");
            let delim = entry.lines().next().unwrap().trim_start_matches("x<<");
            assert_eq!(entry.matches(delim).count(), 2);
        }
    }

    #[test]
    fn output_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _, _) = runner(true, dir.path());
        assert!(matches!(
            r.set_output("bad name", "x"),
            Err(GhaError::OutputName(_))
        ));
    }

    #[test]
    fn annotations_escape_properties_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = runner(true, dir.path());
        r.annotate(
            &Annotation::new(Level::Error, "50% done\nsecond line")
                .file("consumer_scripts/a,b/consumer.toml", Some(4))
                .title("bad: value"),
        );
        assert_eq!(
            out.text(),
            "::error file=consumer_scripts/a%2Cb/consumer.toml,line=4,title=bad%3A value::50%25 done%0Asecond line\n"
        );
    }

    #[test]
    fn groups_close_when_the_guard_drops() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = runner(true, dir.path());
        {
            let _g = r.group("build `orders`");
            r.print("step 1");
        }
        assert_eq!(
            out.text(),
            "::group::build `orders`\nstep 1\n::endgroup::\n"
        );
    }

    #[test]
    fn masks_every_line_of_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = runner(true, dir.path());
        r.add_mask("abc\ndef");
        assert_eq!(out.text(), "::add-mask::abc\n::add-mask::def\n");
    }

    #[test]
    fn untrusted_text_cannot_issue_commands() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = runner(true, dir.path());
        r.print_untrusted("::add-mask::x");
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("::stop-commands::"));
        let token = lines[0].trim_start_matches("::stop-commands::");
        assert_eq!(lines[1], "::add-mask::x");
        assert_eq!(lines[2], format!("::{token}::"));
    }

    #[test]
    fn untrusted_text_is_wrapped_whenever_the_runner_could_read_a_command() {
        for text in [
            "  ::error title=x::y",
            "compiling\n::add-mask::secret",
            "progress 10%\r::add-mask::secret",
            "step 3 says ##[error]boom",
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (r, out, _) = runner(true, dir.path());
            r.print_untrusted(text);
            assert!(
                out.text().starts_with("::stop-commands::"),
                "{text:?} was printed bare"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let (r, out, _) = runner(true, dir.path());
        r.print_untrusted("a::b and 50% done");
        assert_eq!(out.text(), "a::b and 50% done\n", "nothing to switch off");
    }

    #[test]
    fn inert_lines_start_no_command() {
        let text = inert("ok\n  ::error::x\nsays ##[warning]y\n::add-mask::z\r::error::w\r\n::x::");
        for line in text.split(['\n', '\r']) {
            assert!(!line.trim_start().starts_with("::"), "{line}");
            assert!(!line.contains("##["), "{line}");
        }
        assert_eq!(inert("plain: text"), "plain: text");
    }

    #[test]
    fn outside_actions_everything_is_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let (r, out, err) = runner(false, dir.path());
        r.add_mask("secret");
        {
            let _g = r.group("build");
        }
        r.annotate(
            &Annotation::new(Level::Warning, "no Dockerfile").file("consumer_scripts/x", None),
        );
        r.set_output("count", "3").unwrap();
        r.append_summary("# summary").unwrap();
        assert_eq!(out.text(), "", "nothing reaches stdout");
        assert_eq!(
            err.text(),
            "── build\nwarning: consumer_scripts/x: no Dockerfile\noutput count: 3\n"
        );
        assert!(!err.text().contains("secret"));
    }

    #[test]
    fn summary_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _, _) = runner(true, dir.path());
        r.append_summary("one").unwrap();
        r.append_summary("two\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("summary")).unwrap(),
            "one\ntwo\n"
        );
    }
}
