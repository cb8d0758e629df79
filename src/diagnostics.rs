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

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
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
