//! A consumer's Dockerfile, read as instructions: checked when the consumer is discovered (it has
//! a `FROM`, and the stage `[build] target` names), so a pull request's plan catches what would
//! only fail at deploy; and where a failed build step is. The engine names the step, not the
//! line: the classic builder says `Step 3/5 : RUN make`, BuildKit `[build 2/4] RUN make`. Both
//! are mapped back to the line the instruction starts on, so a failure points at the diff.

/// One instruction of a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Instruction {
    /// 1-based line where it starts.
    line: usize,
    /// Its text with continuation lines joined and whitespace collapsed.
    text: String,
    /// Index of its stage (each `FROM` starts one).
    stage: usize,
}

/// The parsed file: instructions in order, and each stage's `AS` name.
struct Parsed {
    instructions: Vec<Instruction>,
    stage_names: Vec<Option<String>>,
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse(dockerfile: &str) -> Parsed {
    let mut escape = '\\';
    let mut directives = true;
    let mut instructions: Vec<Instruction> = Vec::new();
    let mut stage_names: Vec<Option<String>> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    // The terminator of a heredoc (`RUN <<EOF`) whose body is being skipped.
    let mut heredoc: Option<String> = None;
    let mut finish = |start: usize, text: String, instructions: &mut Vec<Instruction>| {
        let text = collapse(&text);
        let mut words = text.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("FROM")) {
            let rest: Vec<&str> = words.collect();
            let name = rest
                .iter()
                .position(|w| w.eq_ignore_ascii_case("AS"))
                .and_then(|i| rest.get(i + 1))
                .map(|n| n.to_ascii_lowercase());
            stage_names.push(name);
        }
        instructions.push(Instruction {
            line: start,
            text,
            stage: stage_names.len().saturating_sub(1),
        });
    };
    for (i, raw) in dockerfile.lines().enumerate() {
        let line = raw.trim();
        if directives {
            // Parser directives (`# escape=`` ` ``) come first, before any other line.
            let directive = line
                .strip_prefix('#')
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| {
                    d.starts_with("escape=") || d.starts_with("syntax=") || d.starts_with("check=")
                });
            match directive {
                Some(d) => {
                    if let Some(e) = d.strip_prefix("escape=") {
                        escape = e.trim().chars().next().unwrap_or('\\');
                    }
                    continue;
                }
                None => directives = false,
            }
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(end) = &heredoc {
            if line == end.as_str() {
                heredoc = None;
            }
            continue;
        }
        let (continues, body) = match line.strip_suffix(escape) {
            Some(b) => (true, b),
            None => (false, line),
        };
        match &mut current {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(body);
            }
            None => current = Some((i + 1, body.to_string())),
        }
        if !continues {
            if let Some((start, text)) = current.take() {
                heredoc = heredoc_end(&text);
                finish(start, text, &mut instructions);
            }
        }
    }
    if let Some((start, text)) = current.take() {
        finish(start, text, &mut instructions);
    }
    Parsed {
        instructions,
        stage_names,
    }
}

/// The word that ends a heredoc opened in `instruction` (`RUN <<EOF`, `COPY <<-'END' /x`).
fn heredoc_end(instruction: &str) -> Option<String> {
    let at = instruction.find("<<")?;
    let word = instruction[at + 2..]
        .trim_start_matches('-')
        .split_whitespace()
        .next()?
        .trim_matches(['"', '\'']);
    (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then(|| word.to_string())
}

/// A problem with a Dockerfile, found before anything is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub line: Option<usize>,
    pub message: String,
    pub help: String,
}

/// What would stop a build of `dockerfile` (its text) before it starts: no instruction at all,
/// no `FROM` first (only `ARG` may come before it), or a `target` that is not one of its stages.
pub fn findings(dockerfile: &str, target: Option<&str>) -> Vec<Finding> {
    let parsed = parse(dockerfile);
    let mut out = Vec::new();
    let first = parsed
        .instructions
        .iter()
        .find(|i| !i.text.to_ascii_uppercase().starts_with("ARG "));
    match first {
        None => out.push(Finding {
            line: None,
            message: "the Dockerfile has no instructions".into(),
            help: "start it with `FROM <base image>`".into(),
        }),
        Some(i) if i.text.eq_ignore_ascii_case("FROM") => out.push(Finding {
            line: Some(i.line),
            message: "the Dockerfile's `FROM` names no image".into(),
            help: "write `FROM <base image>`".into(),
        }),
        Some(i) if !i.text.to_ascii_uppercase().starts_with("FROM ") => out.push(Finding {
            line: Some(i.line),
            message: format!(
                "the Dockerfile's first instruction is `{}`, not `FROM`",
                i.text.split_whitespace().next().unwrap_or("")
            ),
            help: "start the build with `FROM <base image>`; only `ARG` may come before it".into(),
        }),
        Some(_) => {}
    }
    if let Some(t) = target {
        let wanted = t.to_ascii_lowercase();
        if !parsed
            .stage_names
            .iter()
            .any(|n| n.as_deref() == Some(wanted.as_str()))
        {
            let named: Vec<String> = parsed
                .stage_names
                .iter()
                .flatten()
                .map(|n| format!("`{n}`"))
                .collect();
            out.push(Finding {
                line: None,
                message: format!("`[build] target` `{t}` is not a stage of the Dockerfile"),
                help: if named.is_empty() {
                    "name a stage with `FROM <image> AS <name>`, or remove `target`".into()
                } else {
                    format!("use one of its stages: {}", named.join(", "))
                },
            });
        }
    }
    out
}

/// The line (1-based) where the Dockerfile's `n`-th instruction (1-based) starts, as the classic
/// builder numbers its steps.
pub fn classic_step_line(dockerfile: &str, n: usize) -> Option<usize> {
    parse(dockerfile)
        .instructions
        .get(n.checked_sub(1)?)
        .map(|i| i.line)
}

/// The step number in a classic builder line such as `Step 3/7 : RUN make`.
pub fn classic_step_number(step: &str) -> Option<usize> {
    step.strip_prefix("Step ")?
        .split('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The line where a BuildKit step starts: `[stage n/m] INSTRUCTION` names the stage (by its `AS`
/// name, or `stage-K` for the K-th, or nothing when the file has one stage) and the instruction's
/// place in it, `FROM` being 1. The instruction text confirms the match; without a usable prefix
/// the text alone is looked up.
pub fn buildkit_step_line(dockerfile: &str, vertex: &str) -> Option<usize> {
    let parsed = parse(dockerfile);
    let (prefix, text) = match vertex.strip_prefix('[') {
        Some(rest) => {
            let (prefix, text) = rest.split_once("] ")?;
            (Some(prefix.trim()), text)
        }
        None => (None, vertex),
    };
    let text = collapse(text);
    let by_text = || {
        parsed
            .instructions
            .iter()
            .find(|i| i.text == text)
            .map(|i| i.line)
    };
    let Some(prefix) = prefix else {
        return by_text();
    };
    let (stage, position) = match prefix.rsplit_once(' ') {
        Some((stage, pos)) => (Some(stage.to_ascii_lowercase()), pos),
        None => (None, prefix),
    };
    let n: usize = position.split('/').next()?.trim().parse().ok()?;
    let stage_index = match stage {
        None if parsed.stage_names.len() == 1 => Some(0),
        None => None,
        Some(s) => parsed
            .stage_names
            .iter()
            .position(|name| name.as_deref() == Some(s.as_str()))
            .or_else(|| s.strip_prefix("stage-").and_then(|k| k.parse().ok())),
    };
    let candidate = stage_index.and_then(|k| {
        parsed
            .instructions
            .iter()
            .filter(|i| i.stage == k)
            .nth(n.checked_sub(1)?)
    });
    match candidate {
        // `FROM` is shown with the registry it resolved to, so only its place is compared.
        Some(i) if i.text == text || text.to_ascii_uppercase().starts_with("FROM ") => Some(i.line),
        _ => by_text(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &str = "# syntax=docker/dockerfile:1\n# a comment\nFROM base AS build\n\nRUN make \\\n    all \\\n  # comment inside\n    install\nCOPY . /app\n\nFROM base\nCOPY --from=build /app /app\nRUN echo done\n";

    #[test]
    fn dockerfiles_that_cannot_build_are_found() {
        assert_eq!(
            findings("", None)[0].message,
            "the Dockerfile has no instructions"
        );
        assert_eq!(
            findings("# only a comment\n\n", None)[0].message,
            "the Dockerfile has no instructions"
        );
        let f = findings("# c\nRUN make\nFROM x\n", None);
        assert_eq!(f[0].line, Some(2));
        assert_eq!(
            f[0].message,
            "the Dockerfile's first instruction is `RUN`, not `FROM`"
        );
        assert!(findings("ARG BASE=x\nFROM $BASE\n", None).is_empty());
        assert_eq!(
            findings("FROM\n", None)[0].message,
            "the Dockerfile's `FROM` names no image"
        );
        let heredoc = "FROM x\nRUN <<EOF\nset -e\nFROM inside the script\nEOF\nRUN echo after\n";
        assert!(findings(heredoc, None).is_empty());
        assert_eq!(classic_step_line(heredoc, 3), Some(6));
        assert!(findings(MULTI, Some("build")).is_empty());
        let f = findings(MULTI, Some("runtime"));
        assert_eq!(
            f[0].message,
            "`[build] target` `runtime` is not a stage of the Dockerfile"
        );
        assert_eq!(f[0].help, "use one of its stages: `build`");
    }

    #[test]
    fn classic_steps_map_to_lines() {
        assert_eq!(classic_step_line(MULTI, 1), Some(3));
        assert_eq!(classic_step_line(MULTI, 2), Some(5));
        assert_eq!(classic_step_line(MULTI, 3), Some(9));
        assert_eq!(classic_step_line(MULTI, 6), Some(13));
        assert_eq!(classic_step_line(MULTI, 7), None);
        let backtick = "# escape=`\nFROM base\nRUN a `\n  b\nUSER 1\n";
        assert_eq!(classic_step_line(backtick, 3), Some(5));
        assert_eq!(classic_step_number("Step 12/40 : RUN x"), Some(12));
        assert_eq!(classic_step_number("Successfully built"), None);
    }

    #[test]
    fn buildkit_steps_map_to_lines() {
        // As BuildKit names them: continuation lines joined, comments dropped.
        assert_eq!(
            buildkit_step_line(MULTI, "[build 2/3] RUN make     all     install"),
            Some(5)
        );
        assert_eq!(
            buildkit_step_line(MULTI, "[stage-1 3/3] RUN echo done"),
            Some(13)
        );
        assert_eq!(
            buildkit_step_line(MULTI, "[stage-1 1/3] FROM docker.io/library/base:latest"),
            Some(11)
        );
        let single = "FROM x\n# c\nRUN echo a && \\\n  echo b\nRUN echo about to fail && exit 3\n";
        assert_eq!(
            buildkit_step_line(single, "[2/3] RUN echo a &&   echo b"),
            Some(3)
        );
        assert_eq!(
            buildkit_step_line(single, "[3/3] RUN echo about to fail && exit 3"),
            Some(5)
        );
        assert_eq!(
            buildkit_step_line(single, "[internal] load metadata for x"),
            None
        );
        assert_eq!(buildkit_step_line(single, "exporting to image"), None);
    }
}
