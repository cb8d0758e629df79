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

/// The earlier stages whose cache a build of `target` (the last stage when `None`) needs kept
/// apart, by name: the ones it takes files from (`COPY --from=`, `RUN --mount=…,from=`), and
/// theirs, through the stages each is built on. A stage the target is built on (`FROM <stage>`)
/// is not among them, nor is one it is built on: their layers are in the image, and so is
/// their cache. An unnamed stage is `Err(K)` (the K-th, from 0): a build cannot target it.
pub fn cache_stages(dockerfile: &str, target: Option<&str>) -> Vec<Result<String, usize>> {
    let parsed = parse(dockerfile);
    let count = parsed.stage_names.len();
    if count < 2 {
        return Vec::new();
    }
    let index_of = |reference: &str| -> Option<usize> {
        let r = reference.to_ascii_lowercase();
        parsed
            .stage_names
            .iter()
            .position(|n| n.as_deref() == Some(r.as_str()))
            .or_else(|| r.parse::<usize>().ok().filter(|k| *k < count))
    };
    // Per stage: the stage it is built on, and the stages it takes files from.
    let mut parent: Vec<Option<usize>> = vec![None; count];
    let mut sources: Vec<Vec<usize>> = vec![Vec::new(); count];
    for i in &parsed.instructions {
        let mut words = i.text.split_whitespace();
        let keyword = words.next().unwrap_or("").to_ascii_uppercase();
        match keyword.as_str() {
            "FROM" => {
                let image = words.find(|w| !w.starts_with("--"));
                // Only an earlier stage can be a parent.
                parent[i.stage] = image.and_then(&index_of).filter(|k| *k < i.stage);
            }
            "COPY" | "ADD" | "RUN" => {
                for w in i.text.split_whitespace().skip(1) {
                    if !w.starts_with("--") {
                        break;
                    }
                    let w = w.replace(['"', '\''], "");
                    let from = w.strip_prefix("--from=").or_else(|| {
                        w.strip_prefix("--mount=")?
                            .split(',')
                            .find_map(|kv| kv.strip_prefix("from="))
                    });
                    if let Some(k) = from.and_then(&index_of).filter(|k| *k != i.stage) {
                        sources[i.stage].push(k);
                    }
                }
            }
            _ => {}
        }
    }
    let last = count - 1;
    let start = target.and_then(&index_of).unwrap_or(last);
    // The target and the stages it is built on: their layers, and cache, are in the image.
    let mut in_image = vec![false; count];
    let mut at = Some(start);
    while let Some(k) = at.filter(|k| !in_image[*k]) {
        in_image[k] = true;
        at = parent[k];
    }
    let mut needed: Vec<usize> = Vec::new();
    // Walk the target and its parents; every source found is needed, and walked the same way.
    let mut to_walk = vec![start];
    let mut walked = vec![false; count];
    while let Some(mut stage) = to_walk.pop() {
        loop {
            if std::mem::replace(&mut walked[stage], true) {
                break;
            }
            for &s in &sources[stage] {
                if !in_image[s] && !needed.contains(&s) {
                    needed.push(s);
                }
                to_walk.push(s);
            }
            match parent[stage] {
                Some(p) => stage = p,
                None => break,
            }
        }
    }
    needed.sort_unstable();
    needed
        .into_iter()
        .map(|k| parsed.stage_names[k].clone().ok_or(k))
        .collect()
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
    fn the_stages_a_target_takes_files_from_are_kept_apart() {
        // One stage: the image's inline cache covers it.
        assert!(cache_stages("FROM base\nRUN make\n", None).is_empty());
        // The runtime stage copies from `build`: its cache is kept apart.
        assert_eq!(cache_stages(MULTI, None), [Ok("build".to_string())]);
        // A target of `build` itself needs nothing more.
        assert!(cache_stages(MULTI, Some("build")).is_empty());
        let chain = "FROM base AS deps\nRUN pip install\n\
                     FROM deps AS test\nRUN pytest\n\
                     FROM base AS tools\nRUN fetch\n\
                     FROM base AS unused\nRUN slow\n\
                     FROM deps AS app\nCOPY --from=tools /t /t\n\
                     RUN --mount=type=bind,from=1,target=/x true\n\
                     FROM app\nCOPY --chmod=755 --from=app /a /a\n";
        // The last stage is built on `app`, which is built on `deps` (both in the image) and
        // takes files from `tools` and from stage 1 (`test`, itself built on `deps`).
        let test_tools = [Ok("test".to_string()), Ok("tools".to_string())];
        assert_eq!(cache_stages(chain, None), test_tools);
        assert_eq!(cache_stages(chain, Some("app")), test_tools);
        assert!(cache_stages(chain, Some("deps")).is_empty());
        // An image that is not a stage is not cached here; an unnamed stage is named by place.
        let quoted = "FROM base AS deps\nRUN make\nFROM base AS tools\nRUN fetch\nFROM base\nCOPY --from=\"deps\" /a /a\nRUN --mount='type=bind,from=tools,target=/t' true\n";
        assert_eq!(
            cache_stages(quoted, None),
            [Ok("deps".to_string()), Ok("tools".to_string())]
        );
        let unnamed =
            "FROM base\nRUN make\nFROM base\nCOPY --from=0 /a /a\nCOPY --from=alpine:3 /b /b\n";
        assert_eq!(cache_stages(unnamed, None), [Err(0)]);
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
