//! Positions of errors: a byte offset as a line and column, and an offset inside a condition
//! read from a TOML file mapped back to its place in that file.

/// 1-based line and column (in characters) of a byte offset in `text`, for error messages
/// about conditions inside rules and tag files. Any offset is accepted: one past the end counts
/// as the end, one inside a character as that character.
#[must_use]
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |p| before[p + 1..].chars().count())
        + 1;
    (line, column)
}

/// The largest character boundary of `text` at or before `offset` (the end when past it).
pub(super) fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Where byte `value_offset` of a TOML string's value lies in its literal: `literal` is the
/// source text from the opening quote on (a basic, literal or multi-line string), and the
/// answer counts from that quote. Escapes (`\t`, `\u00e9`, a line-ending backslash) and the
/// newline trimmed after `"""` make the two differ; an error found in a condition is reported
/// at its place in the file with this. An offset past the value maps to its closing quote.
#[must_use]
pub fn toml_literal_offset(literal: &str, value_offset: usize) -> usize {
    let bytes = literal.as_bytes();
    let (quote, multi) = match bytes {
        [b'"', b'"', b'"', ..] => (b'"', true),
        [b'\'', b'\'', b'\'', ..] => (b'\'', true),
        [q @ (b'"' | b'\''), ..] => (*q, false),
        _ => return floor_char_boundary(literal, value_offset),
    };
    let closing = if quote == b'"' { "\"\"\"" } else { "'''" };
    let mut i = if multi { 3 } else { 1 };
    if multi {
        if literal[i..].starts_with("\r\n") {
            i += 2;
        } else if literal[i..].starts_with('\n') {
            i += 1;
        }
    }
    let mut produced = 0;
    while i < bytes.len() && produced < value_offset {
        let b = bytes[i];
        if b == quote && (!multi || literal[i..].starts_with(closing)) {
            break;
        }
        if quote == b'"' && b == b'\\' {
            let Some(&e) = bytes.get(i + 1) else { break };
            let (raw, value) = match e {
                b'x' | b'u' | b'U' => {
                    let digits = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let width = literal
                        .get(i + 2..i + 2 + digits)
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8);
                    (2 + digits, width)
                }
                b' ' | b'\t' | b'\r' | b'\n' if multi => {
                    // A line-ending backslash: the whitespace up to the next text is dropped.
                    let mut j = i + 1;
                    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
                        j += 1;
                    }
                    (j - i, 0)
                }
                _ => (2, 1),
            };
            i += raw;
            produced += value;
            continue;
        }
        let width = literal[i..].chars().next().map_or(1, char::len_utf8);
        i += width;
        produced += width;
    }
    // A line-ending backslash here stands for nothing: the value goes on after it.
    if multi && quote == b'"' && bytes.get(i) == Some(&b'\\') {
        let mut j = i + 1;
        while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
            j += 1;
        }
        if j > i + 1 && bytes[i + 1..j].contains(&b'\n') {
            i = j;
        }
    }
    floor_char_boundary(literal, i)
}

/// The byte offset in a TOML file `text` of byte `value_offset` of the string value whose
/// literal starts at `literal_start` (the start of its span): where an error in a condition
/// read from a rules, offers or tags file is.
#[must_use]
pub fn toml_offset(text: &str, literal_start: usize, value_offset: usize) -> usize {
    let start = floor_char_boundary(text, literal_start);
    start + toml_literal_offset(&text[start..], value_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::ExprError;

    #[test]
    fn positions_map_to_lines_and_columns_for_any_offset() {
        let text = "\t中文 a\n中 b";
        for offset in 0..=text.len() + 3 {
            let (line, column) = line_column(text, offset);
            assert!(line >= 1 && column >= 1);
        }
        assert_eq!(line_column(text, 2), (1, 2), "inside 中: that character");
        assert_eq!(line_column(text, text.len()), (2, 4));
        let e = ExprError {
            offset: 5,
            message: "m".into(),
        };
        assert_eq!(e.describe(text), "line 1, column 3: m");
    }

    #[test]
    fn toml_offsets_skip_escapes_and_trimmed_newlines() {
        // (literal, value offset, the text the literal has there)
        let cases = [
            (r#""\t\t'中文' = 1""#, "\t\t'中文' ".len(), "= 1"),
            (r#""\u00e9\U0001F600 x""#, "é😀 ".len(), "x"),
            (r#""a\"b" "#, 2, "b"),
            ("'\\t x'", 3, "x"),
            ("\"\"\"\n  a \\\n   b\"\"\"", 4, "b"),
            ("'''\r\nab'''", 1, "b"),
        ];
        for (literal, offset, rest) in cases {
            let at = toml_literal_offset(literal, offset);
            assert!(literal[at..].starts_with(rest), "{literal}: {at}");
        }
        // Past the value: its closing quote.
        assert_eq!(toml_literal_offset(r#""\tab""#, 99), 5);
        // Any offset, any text: a character boundary.
        let literal = r#""\t中\u4e2d文"#;
        for offset in 0..20 {
            assert!(literal.is_char_boundary(toml_literal_offset(literal, offset)));
        }
    }
}
