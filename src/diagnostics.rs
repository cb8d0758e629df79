//! Findings about the user's input: a message for the person reading the log, the file and line it
//! is about, and what to do. Discovery and validation produce them; reporting renders them as
//! log lines and as annotations on the pull request's diff.

use std::fmt;

use crate::gha::{Annotation, Level};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding, tied to a file (relative to the repository root) and, where known, a line.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// `/`-separated path relative to the repository root, as annotations want it.
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, message)
        }
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The annotation the runner shows on the pull request's diff.
    pub fn annotation(&self) -> Annotation {
        let level = match self.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        let mut message = self.message.clone();
        if let Some(help) = &self.help {
            message.push_str(&format!("\nhelp: {help}"));
        }
        let mut a = Annotation::new(level, message).file(self.file.clone(), self.line);
        a.column = self.column;
        a.title(match self.severity {
            Severity::Error => "cdc-deploy: invalid consumer configuration",
            Severity::Warning => "cdc-deploy: consumer configuration",
        })
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where `bytes` stop being UTF-8 text: the 1-based line and the byte column of the first byte
/// that is not; `None` for UTF-8 text.
pub fn not_utf8_at(bytes: &[u8]) -> Option<(usize, usize)> {
    let valid = std::str::from_utf8(bytes).err()?.valid_up_to();
    let before = &bytes[..valid];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    Some((line, column))
}

/// A finding on `file`, which is not UTF-8 text: at the line and column of its first byte that is
/// not.
pub fn not_utf8(file: String, bytes: &[u8], what: &str) -> Diagnostic {
    let d = Diagnostic::error(file, format!("{what} is not UTF-8 text"));
    match not_utf8_at(bytes) {
        Some((line, column)) => Diagnostic {
            message: format!(
                "{what} is not UTF-8 text: line {line} has a byte that is not (column {column})"
            ),
            ..d
        }
        .at(line, column),
        None => d,
    }
    .help("save it as UTF-8 text (an editor's \"save with encoding\"; `iconv -f LATIN1 -t UTF-8` for a Latin-1 file)")
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_byte_that_is_not_utf8_is_found_by_line_and_column() {
        assert_eq!(super::not_utf8_at(b"a = 1\n"), None);
        assert_eq!(super::not_utf8_at(b"a\nb\nc = \xff\n"), Some((3, 5)));
        assert_eq!(super::not_utf8_at(b"\xfe"), Some((1, 1)));
        let d = super::not_utf8(
            "x/consumer.toml".into(),
            b"cpu = 1\n# \xe9t\xe9\n",
            "the file",
        );
        assert_eq!(d.line, Some(2));
        assert_eq!(
            d.message,
            "the file is not UTF-8 text: line 2 has a byte that is not (column 3)"
        );
    }

    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let t = "a = 1\nbb = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 4));
        assert_eq!(line_col(t, 1000), (3, 1));
        assert_eq!(line_col("é=1", 1), (1, 1));
    }

    #[test]
    fn display_names_file_line_and_help() {
        let d = Diagnostic::error("consumer_scripts/a/consumer.toml", "bad `cpu`")
            .at(3, 7)
            .help("use 256");
        assert_eq!(
            d.to_string(),
            "`consumer_scripts/a/consumer.toml` line 3: bad `cpu`\n  help: use 256"
        );
        let a = d.annotation();
        assert_eq!(a.line, Some(3));
        assert_eq!(a.file.as_deref(), Some("consumer_scripts/a/consumer.toml"));
    }
}
