//! A value that must never reach a log, a comment, a summary or an output.

use std::fmt;

/// A secret string. `Debug` and `Display` print `****`; the value is reachable only through
/// [`Secret::expose`], which names the place that needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The shortest value hidden in what the run writes: a shorter one would hide ordinary words
/// (the runner's own masking, which takes any length, still covers it under Actions).
pub const MIN_HIDDEN: usize = 8;

fn registry() -> &'static std::sync::RwLock<Vec<String>> {
    static HIDDEN: std::sync::OnceLock<std::sync::RwLock<Vec<String>>> = std::sync::OnceLock::new();
    HIDDEN.get_or_init(|| std::sync::RwLock::new(Vec::new()))
}

/// Hide `value` (each of its lines) from everything the process writes from now on: the log,
/// the job summary, the outputs, GitHub's comments and check runs (the ones it passes through
/// [`hidden`]). Values shorter than [`MIN_HIDDEN`] are left to the runner's masking.
pub fn hide(value: &str) {
    let mut r = registry().write().unwrap_or_else(|p| p.into_inner());
    for line in value.lines().map(str::trim) {
        if line.chars().count() >= MIN_HIDDEN && !r.iter().any(|v| v == line) {
            r.push(line.to_string());
        }
    }
    // The longest first: a value that contains another is replaced whole.
    r.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
}

/// `text` with every hidden value replaced by `***`.
pub fn hidden(text: &str) -> std::borrow::Cow<'_, str> {
    let r = registry().read().unwrap_or_else(|p| p.into_inner());
    if !r.iter().any(|v| text.contains(v.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in r.iter() {
        out = out.replace(v.as_str(), "***");
    }
    std::borrow::Cow::Owned(out)
}

/// A JSON value (a request body) with every hidden value in its strings replaced by `***`.
pub fn hidden_json(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) => Value::String(hidden(s).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(hidden_json).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), hidden_json(v))).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_values_are_replaced_wherever_they_appear() {
        hide("sk_live_0123456789\nshort");
        assert_eq!(
            hidden("API_TOKEN = \"sk_live_0123456789\" and short"),
            "API_TOKEN = \"***\" and short",
            "a value under 8 characters is left to the runner"
        );
        let body = serde_json::json!({"summary": ["x sk_live_0123456789 y"], "n": 1});
        assert_eq!(
            hidden_json(&body),
            serde_json::json!({"summary": ["x *** y"], "n": 1})
        );
    }

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "**** ****");
        assert_eq!(s.expose(), "hunter2");
    }
}
