//! The `consumers` option: names or globs (`orders`, `billing-*`) that restrict a command to a
//! subset of the consumers, for a manual redeploy or a rollback. Consumers it does not name are
//! left as they are applied.

/// One name or glob: `*` matches any run of characters, `?` any one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_glob(&self) -> bool {
        self.0.contains(['*', '?'])
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*` and `?` over bytes (names are ASCII), iteratively with one backtrack point.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(c) if *c == b'?' || *c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// The consumers a command is restricted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub patterns: Vec<Pattern>,
}

impl Selection {
    /// Parse the option: names or globs separated by commas, spaces or new lines. Empty means
    /// every consumer (`None`).
    pub fn parse(raw: &str) -> Result<Option<Selection>, String> {
        let mut patterns = Vec::new();
        for p in raw
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
        {
            let ok = p.chars().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, '-' | '_' | '.' | '*' | '?')
            });
            if !ok {
                return Err(format!(
                    "`consumers` has `{p}`, which is not a consumer name or glob: use folder names (lowercase letters, digits, `-`, `_`, `.`) and `*` or `?`, separated by commas, spaces or lines, as in `orders, billing-*`"
                ));
            }
            if !patterns.iter().any(|q: &Pattern| q.0 == p) {
                patterns.push(Pattern(p.to_string()));
            }
        }
        Ok((!patterns.is_empty()).then_some(Selection { patterns }))
    }

    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    /// The patterns that match none of `names`.
    pub fn unmatched<'a>(&self, names: impl IntoIterator<Item = &'a str> + Clone) -> Vec<&str> {
        self.patterns
            .iter()
            .filter(|p| !names.clone().into_iter().any(|n| p.matches(n)))
            .map(Pattern::as_str)
            .collect()
    }

    /// Every pattern must name one of `names`, else an error that lists what there is: `what`
    /// says what `names` are (`consumer folder`), `known` how the list is introduced (`the
    /// consumers are`).
    pub fn check(&self, names: &[&str], what: &str, known: &str) -> Result<(), String> {
        let unmatched = self.unmatched(names.iter().copied());
        if unmatched.is_empty() {
            return Ok(());
        }
        let quoted = |items: &mut dyn Iterator<Item = &str>| {
            items
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        Err(format!(
            "`consumers` names {} but no {what} matches; {known} {}",
            quoted(&mut unmatched.iter().copied()),
            if sorted.is_empty() {
                "none".to_string()
            } else {
                quoted(&mut sorted.iter().copied())
            }
        ))
    }

    /// How the report and log name it: `orders, billing-*`.
    pub fn shown(&self) -> String {
        self.patterns
            .iter()
            .map(|p| p.0.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_globs_match_as_a_shell_would() {
        let s = Selection::parse("orders, billing-*\n  a?c")
            .unwrap()
            .unwrap();
        assert!(s.matches("orders"));
        assert!(!s.matches("orders-v2"));
        assert!(s.matches("billing-"));
        assert!(s.matches("billing-eu-west"));
        assert!(!s.matches("xbilling-eu"));
        assert!(s.matches("abc"));
        assert!(!s.matches("abbc"));
        let star = Selection::parse("*-cdc-*").unwrap().unwrap();
        assert!(star.matches("orders-cdc-v1"));
        assert!(star.matches("a-cdc-"));
        assert!(!star.matches("orders-cdc"));
        assert_eq!(
            s.unmatched(["orders", "billing-eu"]),
            vec!["a?c"],
            "a pattern that names nothing is told"
        );
        assert_eq!(
            s.check(&["orders", "billing-eu"], "consumer folder", "the consumers are"),
            Err("`consumers` names `a?c` but no consumer folder matches; the consumers are `billing-eu`, `orders`".into())
        );
        assert_eq!(s.check(&["orders", "billing-eu", "abc"], "x", "y"), Ok(()));
    }

    #[test]
    fn empty_is_everything_and_bad_names_are_refused() {
        assert_eq!(Selection::parse(" , \n").unwrap(), None);
        let e = Selection::parse("orders;rm").unwrap_err();
        assert!(e.contains("`orders;rm`"), "{e}");
        let e = Selection::parse("Orders").unwrap_err();
        assert!(e.contains("lowercase"), "{e}");
        let s = Selection::parse("a,a,b").unwrap().unwrap();
        assert_eq!(s.patterns.len(), 2);
    }
}
