//! `.dockerignore` with Docker's own semantics (moby's `ignorefile` and `patternmatcher`).
//!
//! Unlike `.gitignore`, patterns are anchored at the context root (`*.pyc` excludes `a.pyc` but not
//! `src/a.pyc`; write `**/*.pyc` for that), a pattern that matches a directory excludes everything
//! below it, and the last matching line wins, so a later `!pattern` re-includes. The glob is Go's
//! `filepath.Match` plus `**`, translated to a regular expression exactly as moby does it.
//! Pure: the caller reads the file; this module only decides.

use regex::Regex;

/// A `.dockerignore` line Docker would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: `{pattern}` is not a valid pattern: {reason}")]
pub struct PatternError {
    pub line: usize,
    pub pattern: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(String),
    /// `foo/**`: everything that starts with `foo/`.
    Prefix(String),
    /// `**/foo`: everything that ends with `/foo`, and `foo` itself.
    Suffix(String),
    /// Any other pattern without a character class: moby's regular expression, matched by a small
    /// automaton over its pieces instead of a compiled `Regex` (a `.dockerignore` of 200,000
    /// lines would otherwise hold 200,000 compiled expressions).
    Glob {
        /// The literal characters the pattern starts with: a path without them is no match,
        /// found without running the automaton.
        prefix: String,
        pieces: Vec<Piece>,
    },
    /// A pattern with a character class (`[a-z]`), as moby's regular expression.
    Regex(Regex),
}

/// One piece of moby's translation of a pattern: `x` (a literal), `[^/]*`, `[^/]`, `(.*/)?`,
/// `.*`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(char),
    /// `*`: any run of characters but `/`.
    Star,
    /// `?`: one character but `/`.
    One,
    /// `**/` not at the end: nothing, or any run of characters ending in `/`.
    AnyDirs,
    /// `**` at the end (not at the start): any run of characters.
    AnyRest,
}

/// Whether `pieces` match the whole of `path`: the pieces as a chain of states, advanced one
/// character at a time (linear in the path's length times the pieces, never backtracking).
fn glob_matches(pieces: &[Piece], path: &str) -> bool {
    let n = pieces.len();
    // `at[i]`: the pieces before `i` matched the characters read so far. `inside[i]`: piece `i`
    // is an `AnyDirs` in the middle of its run (its closing `/` not read yet).
    let mut at = vec![false; n + 1];
    let mut inside = vec![false; n];
    let close = |at: &mut Vec<bool>| {
        for i in 0..n {
            if at[i] && matches!(pieces[i], Piece::Star | Piece::AnyDirs | Piece::AnyRest) {
                at[i + 1] = true;
            }
        }
    };
    at[0] = true;
    close(&mut at);
    for c in path.chars() {
        let mut next = vec![false; n + 1];
        let mut next_inside = vec![false; n];
        for i in 0..n {
            if at[i] {
                match &pieces[i] {
                    Piece::Literal(l) if *l == c => next[i + 1] = true,
                    Piece::Literal(_) => {}
                    Piece::Star if c != '/' => next[i] = true,
                    Piece::One if c != '/' => next[i + 1] = true,
                    Piece::Star | Piece::One => {}
                    Piece::AnyDirs => {
                        if c == '/' {
                            next[i + 1] = true;
                        }
                        next_inside[i] = true;
                    }
                    Piece::AnyRest => next[i] = true,
                }
            }
            if inside[i] {
                if c == '/' {
                    next[i + 1] = true;
                }
                next_inside[i] = true;
            }
        }
        close(&mut next);
        if !next.iter().any(|b| *b) && !next_inside.iter().any(|b| *b) {
            return false;
        }
        at = next;
        inside = next_inside;
    }
    at[n]
}

#[derive(Clone, Debug)]
struct Pattern {
    /// `!pattern`: re-include what earlier lines excluded.
    exception: bool,
    /// The pattern as cleaned (`filepath.Clean`, no leading `/`): what moby compares paths of
    /// directories with.
    text: String,
    matcher: Matcher,
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact(p) => path == p,
            Matcher::Prefix(p) => path.starts_with(p.as_str()),
            Matcher::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Matcher::Glob { prefix, pieces } => {
                path.starts_with(prefix.as_str()) && glob_matches(pieces, path)
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }

    /// The path or one of its parent directories matches.
    fn matches_or_parent(&self, path: &str) -> bool {
        if self.matches(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(i, _)| self.matches(&path[..i]))
    }
}

/// The compiled rules of one `.dockerignore` file.
#[derive(Clone, Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parse a `.dockerignore` file's text as Docker's `ignorefile.ReadAll` does.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw_line) in text.lines().enumerate() {
            if raw_line.starts_with('#') {
                continue;
            }
            let mut pattern = raw_line.trim();
            if pattern.is_empty() {
                continue;
            }
            let exception = pattern.starts_with('!');
            if exception {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            if exception && pattern.is_empty() {
                return Err(PatternError {
                    line: i + 1,
                    pattern: raw_line.to_string(),
                    reason: "a `!` needs a pattern after it".into(),
                });
            }
            let matcher = compile(&cleaned).map_err(|reason| PatternError {
                line: i + 1,
                pattern: raw_line.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                exception,
                text: cleaned,
                matcher,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// Add `!path` for a file Docker always sends (the Dockerfile, `.dockerignore` itself), as the
    /// Docker CLI does when the file would otherwise be excluded.
    pub fn keep(&mut self, path: &str) {
        if self.excludes(path) {
            self.patterns.push(Pattern {
                exception: true,
                text: clean(path),
                matcher: Matcher::Exact(clean(path)),
            });
        }
    }

    /// Whether `path` is left out, as Docker's context walkers decide it during their walk
    /// (moby's `MatchesUsingParentResults`): `parent` is what its directory's own call returned
    /// (`None` at the top). A pattern matches a path when it matched the directory (carried
    /// down), or, when evaluated, the path itself; an exception is evaluated only while the path
    /// is excluded, an exclusion only while it is not. So `**/secrets` then `!src` leaves
    /// `src/secrets` out: `!src` was never evaluated for `src`, which nothing had excluded. Also
    /// returns this path's results, for its children.
    pub fn excludes_below(&self, path: &str, parent: Option<&[bool]>) -> (bool, Vec<bool>) {
        let mut excluded = false;
        let mut results = vec![false; self.patterns.len()];
        for (i, p) in self.patterns.iter().enumerate() {
            let mut matched = parent.is_some_and(|m| m.get(i).copied().unwrap_or(false));
            if !matched {
                if p.exception != excluded {
                    continue;
                }
                matched = match parent {
                    Some(_) => p.matches(path),
                    None => p.matches_or_parent(path),
                };
            }
            results[i] = matched;
            if matched {
                excluded = !p.exception;
            }
        }
        (excluded, results)
    }

    /// Whether the excluded directory `dir` is left out whole, as Docker's context walkers
    /// (BuildKit's fsutil, and the classic builder where exceptions are plain) leave it: unless
    /// an exception could reach inside it, they never look in it, and a file in it that a later
    /// `!` line would match is not sent. An exception reaches inside when it has a wildcard (`*`,
    /// `?`, `[`, `]`, `^`, `\` once a trailing `/*` or `/**` is cut: then every file is judged)
    /// or names a path in the directory (`!secrets/keep.txt` for `secrets`).
    pub fn skips_dir(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        !self.patterns.iter().filter(|p| p.exception).any(|p| {
            let text = p.text.as_str();
            let plain = text
                .strip_suffix("/**")
                .or_else(|| text.strip_suffix("/*"))
                .unwrap_or(text);
            plain.contains(['*', '?', '[', ']', '^', '\\'])
                || format!("{plain}/").starts_with(&dir_slash)
        })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // An exclusion cannot change an already-excluded path, nor an exception an included one.
            if p.exception != excluded {
                continue;
            }
            if p.matches_or_parent(path) {
                excluded = !p.exception;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// moby's `Pattern.compile`, with `/` as the separator.
fn compile(pattern: &str) -> Result<Matcher, String> {
    compile_as(pattern, false)
}

/// [`compile`]; with `regex`, every pattern that is not exact, a prefix or a suffix is a
/// compiled expression (what the automaton is checked against).
fn compile_as(pattern: &str, regex: bool) -> Result<Matcher, String> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut pieces: Vec<Piece> = Vec::new();
    let mut classes = false;
    let mut kind = Kind::Exact;
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let mut index = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        pieces.push(Piece::AnyRest);
                        kind = Kind::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    pieces.push(Piece::AnyDirs);
                    kind = Kind::Regex;
                }
                if index == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                pieces.push(Piece::Star);
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                pieces.push(Piece::One);
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
                pieces.push(Piece::Literal(ch));
            }
            '\\' => {
                if i < chars.len() {
                    re.push('\\');
                    re.push(chars[i]);
                    // `\d`, `\w`… are classes in the expression moby builds: left to it.
                    classes |= chars[i].is_ascii_alphanumeric();
                    pieces.push(Piece::Literal(chars[i]));
                    i += 1;
                    kind = Kind::Regex;
                } else {
                    re.push_str("\\\\");
                    pieces.push(Piece::Literal('\\'));
                }
            }
            '[' | ']' => {
                re.push(ch);
                classes = true;
                kind = Kind::Regex;
            }
            _ => {
                re.push(ch);
                pieces.push(Piece::Literal(ch));
            }
        }
        index += 1;
    }
    check_classes(pattern)?;
    Ok(match kind {
        Kind::Exact => Matcher::Exact(pattern.to_string()),
        Kind::Prefix => Matcher::Prefix(pattern[..pattern.len() - 2].to_string()),
        Kind::Suffix => Matcher::Suffix(pattern[2..].to_string()),
        Kind::Regex if !classes && !regex => Matcher::Glob {
            prefix: pieces
                .iter()
                .map_while(|p| match p {
                    Piece::Literal(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            pieces,
        },
        Kind::Regex => {
            re.push('$');
            Matcher::Regex(Regex::new(&re).map_err(|e| match e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or_default().trim().to_string(),
                other => other.to_string(),
            })?)
        }
    })
}

/// The checks Go's `filepath.Match` makes on a pattern: classes closed, ranges ascending.
fn check_classes(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let start = i;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("a `[` is never closed".into());
                    };
                    if c == ']' && i > start {
                        break;
                    }
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i).ok_or("a `[` is never closed")?
                    } else {
                        c
                    };
                    i += 1;
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        let hi = chars[i + 1];
                        if hi < lo {
                            return Err(format!("the range `{lo}-{hi}` runs backwards"));
                        }
                        i += 2;
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(rules: &str, path: &str) -> bool {
        DockerIgnore::parse(rules).unwrap().excludes(path)
    }

    #[test]
    fn patterns_are_anchored_at_the_root() {
        assert!(ex("*.pyc", "a.pyc"));
        assert!(!ex("*.pyc", "src/a.pyc"), "unlike .gitignore");
        assert!(ex("**/*.pyc", "src/deep/a.pyc"));
        assert!(ex("**/*.pyc", "a.pyc"));
        assert!(ex("/build", "build/out.o"));
        assert!(ex("./build/", "build/out.o"));
    }

    #[test]
    fn a_matching_directory_excludes_its_contents() {
        assert!(ex("node_modules", "node_modules/x/y.js"));
        assert!(ex("tests", "tests/fixtures/big.json"));
        assert!(!ex("tests", "src/tests/x"));
        assert!(ex("*/temp*", "somedir/temporary.txt"));
        assert!(ex("temp?", "temp1"));
        assert!(!ex("temp?", "temp12"));
    }

    #[test]
    fn the_last_matching_line_wins() {
        let rules = "*.md\n!README.md\n";
        assert!(ex(rules, "CHANGES.md"));
        assert!(!ex(rules, "README.md"));
        let rules = "!README.md\n*.md\n";
        assert!(ex(rules, "README.md"));
        let rules = "docs\n!docs/keep.txt\n";
        assert!(ex(rules, "docs/a.txt"));
        assert!(!ex(rules, "docs/keep.txt"));
    }

    #[test]
    fn double_star_forms() {
        assert!(ex("**", "anything/at/all"));
        assert!(ex("dir/**", "dir/a/b"));
        assert!(!ex("dir/**", "dirx/a"));
        assert!(ex("a/**/b", "a/b"));
        assert!(ex("a/**/b", "a/x/y/b"));
        assert!(ex("**/cache", "cache"));
        assert!(ex("**/cache", "x/cache/y"));
        assert!(ex("a/**/*.log", "a/x/y.log"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(ex("[abc].txt", "b.txt"));
        assert!(!ex("[^abc].txt", "b.txt"));
        assert!(ex("[a-c].txt", "c.txt"));
        assert!(ex("file\\*", "file*"));
        assert!(!ex("file\\*", "filex"));
        assert!(
            ex("a+b(c).txt", "a+b(c).txt"),
            "regex metacharacters are literal"
        );
    }

    #[test]
    fn comments_blank_lines_and_bom() {
        let rules = "\u{feff}# comment\n\n   \n  secret.env  \n";
        assert!(ex(rules, "secret.env"));
        assert!(!ex(rules, "# comment"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let err = DockerIgnore::parse("ok\n!\n").unwrap_err();
        assert_eq!(err.line, 2);
        let err = DockerIgnore::parse("a\nb\n[abc\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.reason.contains("never closed"), "{}", err.reason);
        let err = DockerIgnore::parse("[z-a]").unwrap_err();
        assert!(err.reason.contains("backwards"), "{}", err.reason);
    }

    #[test]
    fn an_excluded_folder_is_skipped_unless_an_exception_reaches_inside() {
        let ig = DockerIgnore::parse("**/secrets\n!src\n").unwrap();
        // As the walk decides: `src` is kept, and `!src` was not evaluated for it, so it does
        // not re-include `src/secrets`, which is left out whole (`src` does not lead inside it).
        let (out, src) = ig.excludes_below("src", None);
        assert!(!out);
        let (out, _) = ig.excludes_below("src/secrets", Some(&src));
        assert!(out);
        assert!(ig.skips_dir("src/secrets"));
        assert!(!ig.excludes_below("src/app.py", Some(&src)).0);
        let inside = DockerIgnore::parse("secrets\n!secrets/keep.txt\n").unwrap();
        assert!(
            !inside.skips_dir("secrets"),
            "the exception names a file inside"
        );
        let wild = DockerIgnore::parse("secrets\n!*.txt\n").unwrap();
        assert!(
            !wild.skips_dir("secrets"),
            "a wildcard exception: every file is judged"
        );
        let trailing = DockerIgnore::parse("build\n!build/out/**\n").unwrap();
        assert!(
            !trailing.skips_dir("build"),
            "`build/out` once `/**` is cut"
        );
        assert!(
            trailing.skips_dir("buildx"),
            "a name that only starts the same"
        );
        assert!(DockerIgnore::parse("tmp\n").unwrap().skips_dir("tmp"));
    }

    proptest::proptest! {
        /// The automaton matches exactly what moby's regular expression matches.
        #[test]
        fn the_automaton_is_the_expression(
            pattern in "[ab/*?.\\\\]{1,10}",
            path in "[ab/.]{0,12}",
        ) {
            if let (Ok(glob), Ok(Matcher::Regex(re))) = (compile(&pattern), compile_as(&pattern, true)) {
                if let Matcher::Glob { .. } = &glob {
                    let p = Pattern { exception: false, text: pattern.clone(), matcher: glob };
                    proptest::prop_assert_eq!(
                        p.matches(&path),
                        re.is_match(&path),
                        "pattern {:?} path {:?} expression {:?}", pattern, path, re.as_str()
                    );
                }
            }
        }
    }

    #[test]
    fn kept_files_are_re_included() {
        let mut rules = DockerIgnore::parse("*\n").unwrap();
        assert!(rules.excludes("Dockerfile"));
        rules.keep("Dockerfile");
        rules.keep(".dockerignore");
        assert!(!rules.excludes("Dockerfile"));
        assert!(!rules.excludes(".dockerignore"));
        assert!(rules.excludes("app.py"));
    }

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean("a//b/./c/.."), "a/b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("./"), ".");
        assert_eq!(clean("a/"), "a");
    }
}
