//! The markdown escaper, read back by a CommonMark parser with GitHub's tables: text from outside
//! put in a table cell stays one cell of one row, makes no link, image, HTML or emphasis, and
//! reads back as the characters it was; a code span reads back as its text.
#![no_main]

use cdc_deploy::report::md;
use libfuzzer_sys::fuzz_target;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// The events of `cell` rendered as the second cell of a table's one row.
fn cell_events(cell: &str) -> Vec<Event<'static>> {
    let doc = format!("| a | b |\n|---|---|\n| x | {cell} |\n");
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    let events: Vec<Event<'static>> = Parser::new_ext(&doc, opts)
        .map(|e| e.into_static())
        .collect();
    let cells = events
        .iter()
        .filter(|e| matches!(e, Event::Start(Tag::TableCell)))
        .count();
    assert_eq!(
        cells, 4,
        "the table keeps two cells a row: {doc:?} {events:?}"
    );
    let rows = events
        .iter()
        .filter(|e| matches!(e, Event::Start(Tag::TableRow)))
        .count();
    assert_eq!(rows, 1, "one row: {doc:?}");
    // The events of the last cell.
    let last = events
        .iter()
        .rposition(|e| matches!(e, Event::Start(Tag::TableCell)))
        .unwrap();
    let end = events[last..]
        .iter()
        .position(|e| matches!(e, Event::End(TagEnd::TableCell)))
        .unwrap();
    events[last + 1..last + end].to_vec()
}

fn plain(events: &[Event<'_>]) -> String {
    let mut out = String::new();
    for e in events {
        match e {
            Event::Text(t) | Event::Code(t) => out.push_str(t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            other => panic!("markup from text: {other:?} in {events:?}"),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // What a table cell can show of the text: one line, its edges trimmed.
    let expected: String = s.replace('\r', "").replace('\n', " ");
    let shown = plain(&cell_events(&md::text(s)));
    assert_eq!(
        shown.replace("@\u{200b}", "@").trim(),
        expected.trim(),
        "text({s:?})"
    );
    let code = cell_events(&md::code(s));
    let one_line = s.replace(['\n', '\r'], " ");
    match code.as_slice() {
        [] => assert!(s.is_empty(), "code({s:?}) shows nothing"),
        [Event::Code(c)] => assert_eq!(c.as_ref(), one_line, "code({s:?})"),
        other => panic!("code({s:?}) is not one code span: {other:?}"),
    }
    let _ = plain(&cell_events(&md::message(s)));
    for max in [0, 1, 7, 80] {
        let t = md::truncate(s, max);
        assert!(t.chars().count() <= max + 1);
        let _ = plain(&cell_events(&md::message(&md::truncate_message(s, max))));
    }
    // A fence nothing inside closes: the body comes back whole, as one code block.
    let fenced = md::fenced(s);
    let events: Vec<Event<'_>> = Parser::new(&fenced).collect();
    assert!(
        matches!(events.first(), Some(Event::Start(Tag::CodeBlock(_)))),
        "{fenced:?}"
    );
    assert!(
        matches!(events.last(), Some(Event::End(TagEnd::CodeBlock))),
        "{fenced:?}"
    );
});
