//! The one way text reaches markdown. Anything from outside (a build's output, a server's error,
//! a folder name) is either escaped so it renders as the characters it is, with no formatting,
//! links, HTML or `@mentions`, or put in a code span or fence it cannot break out of.

/// Inline text: every character markdown or HTML would read is escaped, `@` included so no one
/// is notified, and line breaks become spaces.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A zero-width space after `@` keeps GitHub from reading a mention.
            '@' => out.push_str("@&#8203;"),
            // Without `[`, neither `(` nor `!` can start a link or an image.
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(ch);
            }
            '\r' => {}
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A message (ours, or a server's): the spans it puts between backticks become code spans, the
/// rest is [`text`]. A code span renders literally, so this is as inert as `text` and keeps
/// names readable.
pub fn message(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    let paired = parts.len() % 2 == 1;
    let mut out = String::with_capacity(s.len() + 8);
    for (i, part) in parts.iter().enumerate() {
        let inside = i % 2 == 1 && (paired || i + 1 < parts.len());
        if inside && !part.is_empty() {
            out.push_str(&code(part));
        } else {
            if i > 0 && !inside && i % 2 == 1 {
                // The last backtick has no partner.
                out.push_str("\\`");
            }
            out.push_str(&text(part));
        }
    }
    out
}

/// A message inside an HTML element (a `<summary>`), where markdown is not read: HTML-escaped,
/// its backtick spans as `<code>`.
pub fn html_message(s: &str) -> String {
    let escape = |t: &str| {
        t.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('@', "@&#8203;")
            .replace(['\n', '\r'], " ")
    };
    let parts: Vec<&str> = s.split('`').collect();
    let paired = parts.len() % 2 == 1;
    let mut out = String::with_capacity(s.len() + 16);
    for (i, part) in parts.iter().enumerate() {
        let inside = i % 2 == 1 && (paired || i + 1 < parts.len());
        if inside {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else {
            if i % 2 == 1 {
                out.push('`');
            }
            out.push_str(&escape(part));
        }
    }
    out
}

/// The longest run of backticks in `s`.
fn longest_backtick_run(s: &str) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for ch in s.chars() {
        if ch == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// A code span that survives backticks in the text and stays in its table cell: its delimiter is
/// one backtick longer than any run inside, which therefore cannot close it. CommonMark takes one
/// space off each end of a span that has one at both (unless it is all spaces), so such a span is
/// padded to keep them; an empty text is no span at all (`` `` `` would show as two backticks).
pub fn code(s: &str) -> String {
    let s = s.replace(['\n', '\r'], " ").replace('|', "\\|");
    if s.is_empty() {
        return String::new();
    }
    let n = longest_backtick_run(&s);
    let fence = "`".repeat(n + 1);
    let spaced = s.starts_with(' ') && s.ends_with(' ') && !s.trim_matches(' ').is_empty();
    if n > 0 || spaced {
        format!("{fence} {s} {fence}")
    } else {
        format!("{fence}{s}{fence}")
    }
}

/// A fenced code block that nothing inside can close. A lone `\r` ends a line in markdown as
/// `\n` does, so every line break becomes `\n` and no line escapes the block's indentation.
pub fn fenced(body: &str) -> String {
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    let fence = "`".repeat(longest_backtick_run(&body).max(2) + 1);
    format!("{fence}text\n{body}\n{fence}")
}

/// `s` cut to at most `max` characters, with an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// A message cut to at most `max` characters, with an ellipsis when cut, its last code span
/// closed when the cut fell inside it (else the lone backtick would show).
pub fn truncate_message(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            let kept = &s[..i];
            if kept.matches('`').count() % 2 == 1 {
                format!("{kept}`…")
            } else {
                format!("{kept}…")
            }
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_text_renders_as_itself() {
        assert_eq!(
            text("<img src=x> **bold** [a](b) @org/team | `x` #1\nnext"),
            "&lt;img src=x&gt; \\*\\*bold\\*\\* \\[a\\](b) @&#8203;org/team \\| \\`x\\` \\#1 next"
        );
    }

    #[test]
    fn messages_keep_their_code_spans_and_nothing_else() {
        assert_eq!(
            message("`API_TOKEN` looks like a secret in `[environment]` <b>"),
            "`API_TOKEN` looks like a secret in `[environment]` &lt;b&gt;"
        );
        assert_eq!(message("odd ` tick"), "odd \\` tick");
        assert_eq!(message("`a|b` and @x"), "`a\\|b` and @&#8203;x");
        assert_eq!(
            html_message("`<x>` & @team <b>"),
            "<code>&lt;x&gt;</code> &amp; @&#8203;team &lt;b&gt;"
        );
    }

    #[test]
    fn code_spans_and_fences_cannot_be_broken_out_of() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("a``b @team ``c"), "``` a``b @team ``c ```");
        // Found by fuzzing (fuzz/fuzz_targets/markdown.rs): an empty span showed two backticks,
        // and one space at each end was taken off by the renderer.
        assert_eq!(code(""), "");
        assert_eq!(code(" a "), "`  a  `");
        assert_eq!(code("   "), "`   `");
        let f = fenced("```\nnot the end");
        assert!(f.starts_with("````text\n") && f.ends_with("\n````"), "{f}");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn a_message_cut_inside_a_code_span_keeps_it_closed() {
        let cut = truncate_message("held on `registry/orders@sha256:0123` since", 20);
        assert_eq!(cut, "held on `registry/or`…");
        assert_eq!(html_message(&cut), "held on <code>registry/or</code>…");
        assert_eq!(truncate_message("a `b` c", 100), "a `b` c");
        assert_eq!(truncate_message("a `b` cdef", 6), "a `b` …");
    }
}
