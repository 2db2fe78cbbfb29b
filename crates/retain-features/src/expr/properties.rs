//! Property tests: no text, however malformed or deeply nested, makes the parser or the
//! compiler panic, and every error points inside the text.

use super::*;
use proptest::prelude::*;

/// Parses and compiles `text` as a condition and as a value; an error must point inside
/// the text, on a character boundary.
fn check(text: &str) {
    let result = parse(text).and_then(|e| {
        let mut c = Compiler::default();
        let _ = c.value(&e);
        c.condition(&e).map(|_| ())
    });
    if let Err(e) = result {
        assert!(e.offset <= text.len(), "{text:?}: {e:?}");
        assert!(text.is_char_boundary(e.offset), "{text:?}: {e:?}");
        assert!(!e.message.is_empty());
        let (line, column) = line_column(text, e.offset);
        assert!(line >= 1 && column >= 1);
    }
}

const WORDS: &[&str] = &[
    "(",
    ")",
    "(",
    ")",
    ",",
    "not",
    "and",
    "or",
    "-",
    "+",
    "*",
    "/",
    "<",
    ">=",
    "=",
    "!=",
    "avg",
    "at",
    "count",
    "days_since",
    "coalesce",
    "abs",
    "scenario",
    "tag",
    "fee",
    "complaint",
    "severity",
    "tenure_months",
    "value_tier",
    "warning_score",
    "true",
    "1",
    "0.5",
    "3m",
    "1w",
    "30d",
    "2w..5w",
    "0m",
    "4000000000d",
    "'serious'",
    "\"x\"",
    "'",
    "\0",
    "中文",
    "\t",
    "\n",
    "..",
    "1e5",
    "9999999999999999999999",
];

/// Words of the language and pieces of garbage, with or without spaces between them.
fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec((0..WORDS.len(), any::<bool>()), 0..1500).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(w, space)| {
                if space {
                    format!("{} ", WORDS[w])
                } else {
                    WORDS[w].to_owned()
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn token_soups_never_panic(text in soup()) {
        check(&text);
    }

    #[test]
    fn nesting_past_the_bound_is_a_depth_error(
        depth in MAX_DEPTH + 1..3000,
        kind in 0..4_usize,
    ) {
        let open = ["(", "not ", "-", "abs("][kind];
        let text = format!("{}1", open.repeat(depth));
        let e = parse(&text).unwrap_err();
        if text.len() > MAX_CONDITION_BYTES {
            prop_assert!(e.message.contains("bytes long"), "{:?}", e);
        } else {
            prop_assert!(e.message.contains("levels deep"), "{:?}", e);
            prop_assert_eq!(e.offset, (MAX_DEPTH - 1) * open.len());
        }
    }
}
