//! The shape of a `consumer.toml`: which keys exist and what type each value has, read from the
//! document with every span kept. Every problem is found in one pass (all syntax errors the
//! parser can recover from, every unknown key with the known one it was probably meant to be,
//! every value of the wrong type, in plain words), and what is well-shaped is handed on, so the
//! settings' own rules are checked in the same run.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// A finding about the shape, before it becomes a diagnostic with a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

/// A scalar as written, for `[environment]` values and build arguments.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Text(String),
    /// An array, table or date: named in the finding.
    Other(&'static str),
}

pub(crate) struct Document {
    pub errors: Vec<ShapeError>,
    /// Keys that are present but were refused (`cpu`, `autoscaling.cpu_target`): the checks
    /// that depend on them must not take them for absent.
    pub rejected: std::collections::BTreeSet<String>,
}

/// The name of a value's type, as a finding says it.
fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// An integer's value, whatever its radix and underscores.
fn integer(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key `key` was probably meant to be.
pub fn suggestion<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (distance(&key.to_ascii_lowercase(), k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Where the key is: `cpu`, `autoscaling.min`.
fn path(table: &str, key: &str) -> String {
    if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    }
}

impl Document {
    fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        self.errors.push(ShapeError {
            span,
            message,
            help,
        });
    }

    /// A present key's value was refused.
    pub fn reject(&mut self, name: &str, key: &str) {
        self.rejected.insert(path(name, key));
    }

    /// Report every key of `table` (`""` for the top) that is not in `known`.
    pub fn unknown_keys(&mut self, table: &DeTable<'_>, name: &str, known: &[&str]) {
        for (key, _) in table.iter() {
            let k: &str = key.get_ref();
            if known.contains(&k) {
                continue;
            }
            let whole = path(name, k);
            let (message, help) = match suggestion(k, known) {
                Some(s) => (
                    format!(
                        "`{whole}` is not a setting; did you mean `{}`?",
                        path(name, s)
                    ),
                    Some(format!("rename it to `{s}`")),
                ),
                None => (
                    format!("`{whole}` is not a setting"),
                    Some(format!(
                        "remove it; {} takes {}",
                        if name.is_empty() {
                            "the top of the file".to_string()
                        } else {
                            format!("`[{name}]`")
                        },
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
            };
            self.error(key.span(), message, help);
        }
    }

    fn value<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        table
            .iter()
            .find(|(k, _)| {
                let k: &str = k.get_ref();
                k == key
            })
            .map(|(_, v)| v)
    }

    /// A whole number from 0 up; `example` shows one in the finding.
    pub fn number(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        example: u64,
    ) -> Option<Spanned<u64>> {
        let v = Self::value(table, key)?;
        let whole = path(name, key);
        self.reject(name, key);
        let n = match v.get_ref() {
            DeValue::Integer(i) => match integer(i).ok_or(()) {
                Ok(n) if n >= 0 => Some(Spanned::new(v.span(), n as u64)),
                Ok(n) => {
                    self.error(
                        v.span(),
                        format!("`{whole}` must be 0 or more, not {n}"),
                        Some(format!("write a whole number like `{key} = {example}`")),
                    );
                    None
                }
                Err(_) => {
                    self.error(v.span(), format!("`{whole}` is too large"), None);
                    None
                }
            },
            DeValue::String(s) if s.trim().parse::<u64>().is_ok() => {
                self.error(
                    v.span(),
                    format!("`{whole}` must be a whole number like {example}, not a string"),
                    Some(format!("write `{key} = {}`, without quotes", s.trim())),
                );
                None
            }
            other => {
                self.error(
                    v.span(),
                    format!(
                        "`{whole}` must be a whole number like {example}, not {}",
                        kind(other)
                    ),
                    Some(format!("write `{key} = {example}`")),
                );
                None
            }
        };
        if n.is_some() {
            self.rejected.remove(&whole);
        }
        n
    }

    /// A threshold: a whole number from 1 up, or `false` to switch it off (`Some(None)`); `true`
    /// is refused, since leaving the key out already keeps the threshold on.
    pub fn threshold(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        example: u64,
    ) -> Option<Spanned<Option<u64>>> {
        let v = Self::value(table, key)?;
        match v.get_ref() {
            DeValue::Boolean(false) => Some(Spanned::new(v.span(), None)),
            DeValue::Boolean(true) => {
                self.reject(name, key);
                self.error(
                    v.span(),
                    format!(
                        "`{}` takes a number like {example} or `false`, not `true`",
                        path(name, key)
                    ),
                    Some(format!(
                        "remove it to keep the module's threshold, write `{key} = {example}` to set one, or `{key} = false` to switch it off"
                    )),
                );
                None
            }
            DeValue::Integer(_) | DeValue::String(_) => self
                .number(table, name, key, example)
                .map(|n| Spanned::new(n.span(), Some(*n.get_ref()))),
            other => {
                self.reject(name, key);
                self.error(
                    v.span(),
                    format!(
                        "`{}` must be a whole number like {example} or `false`, not {}",
                        path(name, key),
                        kind(other)
                    ),
                    Some(format!("write `{key} = {example}` or `{key} = false`")),
                );
                None
            }
        }
    }

    /// A number that must fit in a `u32`.
    pub fn small_number(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        example: u32,
    ) -> Option<Spanned<u32>> {
        let n = self.number(table, name, key, u64::from(example))?;
        match u32::try_from(*n.get_ref()) {
            Ok(v) => Some(Spanned::new(n.span(), v)),
            Err(_) => {
                self.reject(name, key);
                self.error(
                    n.span(),
                    format!("`{}` is too large", path(name, key)),
                    Some(format!("write a whole number like `{key} = {example}`")),
                );
                None
            }
        }
    }

    /// A string; `example` shows one in the finding.
    pub fn string(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        example: &str,
    ) -> Option<Spanned<String>> {
        let v = Self::value(table, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.to_string())),
            other => {
                self.reject(name, key);
                self.error(
                    v.span(),
                    format!(
                        "`{}` must be a string like \"{example}\", not {}",
                        path(name, key),
                        kind(other)
                    ),
                    Some(format!("write `{key} = \"{example}\"`, in quotes")),
                );
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, table: &DeTable<'_>, name: &str, key: &str) -> Option<Spanned<bool>> {
        let v = Self::value(table, key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(Spanned::new(v.span(), *b)),
            other => {
                self.reject(name, key);
                let hint = match other {
                    DeValue::String(s) if matches!(s.trim(), "true" | "false") => {
                        format!("write `{key} = {}`, without quotes", s.trim())
                    }
                    _ => format!("write `{key} = true` or `{key} = false`"),
                };
                self.error(
                    v.span(),
                    format!(
                        "`{}` must be true or false, not {}",
                        path(name, key),
                        kind(other)
                    ),
                    Some(hint),
                );
                None
            }
        }
    }

    /// A list of strings, each with its span; `example` shows one in the finding.
    pub fn strings(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
        example: &str,
    ) -> Option<Spanned<Vec<Spanned<String>>>> {
        let v = Self::value(table, key)?;
        let whole = path(name, key);
        let help = Some(format!("write `{key} = [\"{example}\"]`"));
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
                        other => {
                            self.reject(name, key);
                            self.error(
                                item.span(),
                                format!("`{whole}` must list strings, not {}", kind(other)),
                                help,
                            );
                            return None;
                        }
                    }
                }
                Some(Spanned::new(v.span(), out))
            }
            other => {
                self.reject(name, key);
                self.error(
                    v.span(),
                    format!("`{whole}` must be a list of strings, not {}", kind(other)),
                    help,
                );
                None
            }
        }
    }

    /// A table, with its span; `None` when it is absent or not a table (said in a finding).
    pub fn table<'t, 'i>(
        &mut self,
        table: &'t DeTable<'i>,
        name: &str,
        key: &str,
    ) -> Option<(&'t DeTable<'i>, Range<usize>)> {
        let v = Self::value(table, key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some((t, v.span())),
            other => {
                self.reject(name, key);
                self.error(
                    v.span(),
                    format!("`{}` must be a table, not {}", path(name, key), kind(other)),
                    Some(format!("write it as a `[{}]` section", path(name, key))),
                );
                None
            }
        }
    }

    /// A key `table` (`[name]`, at `span`) must have: a finding when it is missing.
    pub fn require(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        name: &str,
        key: &str,
        example: &str,
    ) {
        if Self::value(table, key).is_none() {
            self.error(
                span,
                format!("`[{name}]` needs `{key}`"),
                Some(format!("add `{key} = {example}`")),
            );
        }
    }

    /// A table of names to scalars (`[environment]`, `[build] args`): names with their spans,
    /// each value as text or the kind it wrongly is.
    pub fn scalars(table: &DeTable<'_>) -> BTreeMap<Spanned<String>, Spanned<Scalar>> {
        table
            .iter()
            .map(|(k, v)| {
                // Numbers as their value reads in decimal (`0x10` is `16`, `1e3` is `1000`), so
                // the same value is the same text however it is written.
                let scalar = match v.get_ref() {
                    DeValue::String(s) => Scalar::Text(s.to_string()),
                    DeValue::Integer(i) => match integer(i) {
                        Some(n) => Scalar::Text(n.to_string()),
                        None => Scalar::Text(i.as_str().to_string()),
                    },
                    DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
                        Ok(x) => Scalar::Text(x.to_string()),
                        Err(_) => Scalar::Text(f.as_str().to_string()),
                    },
                    DeValue::Boolean(b) => Scalar::Text(b.to_string()),
                    other => Scalar::Other(kind(other)),
                };
                (
                    Spanned::new(k.span(), k.get_ref().to_string()),
                    Spanned::new(v.span(), scalar),
                )
            })
            .collect()
    }

    /// A command: a string (run by a shell) or a list of strings.
    pub fn command(
        &mut self,
        table: &DeTable<'_>,
        name: &str,
        key: &str,
    ) -> Option<Spanned<Result<String, Vec<String>>>> {
        let v = Self::value(table, key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), Ok(s.to_string()))),
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::String(s) => out.push(s.to_string()),
                        other => {
                            self.error(
                                item.span(),
                                format!(
                                    "`{}` must list strings, not {}",
                                    path(name, key),
                                    kind(other)
                                ),
                                Some(
                                    "quote each word: `[\"CMD\", \"python3\", \"-m\", \"check\"]`"
                                        .into(),
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(Spanned::new(v.span(), Err(out)))
            }
            other => {
                self.error(
                    v.span(),
                    format!(
                        "`{}` must be a string or a list of strings, not {}",
                        path(name, key),
                        kind(other)
                    ),
                    Some(
                        "write `command = \"test -f /tmp/ok\"` or `command = [\"CMD\", \"check\"]`"
                            .into(),
                    ),
                );
                None
            }
        }
    }
}

/// Parse `text`, recovering from what the parser can: the table and every syntax error.
pub(crate) fn parse(text: &str) -> (Spanned<DeTable<'_>>, Vec<ShapeError>) {
    let (table, errors) = DeTable::parse_recoverable(text);
    let errors = errors
        .into_iter()
        .map(|e| {
            let mut message = e.message().trim().to_string();
            let help = if message.contains("duplicate key") {
                "set each key once"
            } else if message.contains("recursion") {
                message = format!("nested too deeply to read ({message})");
                "a consumer.toml needs no more than three levels of tables and arrays"
            } else {
                "fix the TOML syntax here"
            };
            ShapeError {
                span: e.span().unwrap_or(0..0),
                message,
                help: Some(help.into()),
            }
        })
        .collect();
    (table, errors)
}

pub(crate) fn new_document() -> Document {
    Document {
        errors: Vec::new(),
        rejected: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_their_decimal_value() {
        let (doc, errors) = parse("A = 0x10\nB = 1_000\nC = 1e3\nD = +5\nE = 3.0\nF = \"0x10\"\n");
        assert!(errors.is_empty());
        let got: Vec<(String, Scalar)> = Document::scalars(doc.get_ref())
            .into_iter()
            .map(|(k, v)| (k.into_inner(), v.into_inner()))
            .collect();
        let text = |s: &str| Scalar::Text(s.into());
        assert_eq!(
            got,
            [
                ("A".to_string(), text("16")),
                ("B".to_string(), text("1000")),
                ("C".to_string(), text("1000")),
                ("D".to_string(), text("5")),
                ("E".to_string(), text("3")),
                ("F".to_string(), text("0x10")),
            ]
        );
    }

    #[test]
    fn misspelt_keys_find_the_known_one() {
        let known = ["cpu", "memory", "environment", "desired_count"];
        assert_eq!(suggestion("memroy", &known), Some("memory"));
        assert_eq!(suggestion("enviroment", &known), Some("environment"));
        assert_eq!(suggestion("Desired_Count", &known), Some("desired_count"));
        assert_eq!(suggestion("colour", &known), None);
    }
}
