//! Conditions parsed and compiled end to end: shared aggregates, the SQL written, and errors
//! pointing at their place, including the bounds on length, nesting, windows and numbers.

use super::*;

fn compile(text: &str) -> Result<(String, Vec<Source>)> {
    let expr = parse(text)?;
    let mut c = Compiler::default();
    let (sql, _) = c.condition(&expr)?;
    Ok((sql, c.sources))
}

#[test]
fn a_scorecard_condition_compiles_and_shares_aggregates() {
    let (sql, sources) =
        compile("at(fee, 1m) < at(fee, 2m) and at(fee, 1m) < 0.9 * avg(fee, 6m)").unwrap();
    assert_eq!(sources.len(), 3, "at(fee, 1m) is registered once");
    assert!(sql.contains("(f0 < f1)"), "{sql}");
    assert!(sql.contains("(0.9 * f2)"), "{sql}");
    assert_eq!(sources[2].label(), "avg(fee, 6m)");
}

#[test]
fn windows_filters_and_ranges() {
    let (_, sources) = compile(
        "count(complaint, 1w, severity = 'serious', resolved_on_time = false) >= 1 or avg(fee, 1w) < 0.5 * avg(fee, 2w..5w)",
    )
    .unwrap();
    assert_eq!(
        sources[0].label(),
        "count(complaint, 1w, resolved_on_time = false, severity = \"serious\")"
    );
    assert_eq!(
        sources[2],
        Source::Usage {
            function: "avg",
            measure: "fee",
            window: Window {
                from: 2,
                to: 5,
                unit: Unit::Week
            }
        }
    );
}

#[test]
fn errors_point_at_the_problem() {
    let cases = [
        ("avg(fee, 3m) <", 14, "ends too early"),
        ("avg(fees, 3m) > 1", 4, "unknown usage measure \"fees\""),
        ("count(complain, 3m) > 1", 6, "unknown event kind"),
        ("fee > 10", 0, "needs a window"),
        ("avg(fee, 3m)", 0, "must be true or false"),
        ("avg(fee, 3m) > 1 and 2", 17, "joins comparisons"),
        (
            "count(complaint, 3m, colour = 'red') > 0",
            28,
            "unknown event field",
        ),
        ("avg(fee, 3m) > 1 # x", 17, "unexpected character"),
        ("avg(fee, 30d) > 1", 9, "monthly or weekly"),
        ("frobnicate(fee) > 1", 0, "unknown function"),
    ];
    for (text, offset, message) in cases {
        let e = compile(text).unwrap_err();
        assert!(e.message.contains(message), "{text}: {e:?}");
        assert_eq!(e.offset, offset, "{text}: {e:?}");
    }
}

#[test]
fn division_guards_against_zero_and_strings_are_escaped() {
    let (sql, sources) = compile(
        "avg(fee, 1m) / avg(fee, 6m) < 0.5 and count(complaint, 3m, category = \"it's\") = 0",
    )
    .unwrap();
    assert!(sql.contains("NULLIF(f1, 0)"), "{sql}");
    let Source::Events { filters, .. } = &sources[2] else {
        panic!("{sources:?}")
    };
    assert_eq!(filters, &vec![("category", "'it''s'".to_owned())]);
}

fn is_depth_error(e: &ExprError) -> bool {
    e.message.contains(&format!("more than {MAX_DEPTH} levels"))
}

#[test]
fn two_thousand_open_parentheses_are_refused_at_the_first_level_too_deep() {
    let text = "(".repeat(2000);
    let e = parse(&text).unwrap_err();
    assert!(is_depth_error(&e), "{e:?}");
    assert_eq!(
        e.offset,
        MAX_DEPTH - 1,
        "the first parenthesis past the bound"
    );
}

#[test]
fn long_runs_of_minus_or_not_are_refused_by_length_or_depth() {
    // The requests of the report: 20,000 `-` and 3,000 `not` are over the length bound.
    for text in ["-".repeat(20_000), "not ".repeat(3000) + "true"] {
        let e = parse(&text).unwrap_err();
        assert!(e.message.contains("at most 4096"), "{e:?}");
        assert_eq!(e.offset, MAX_CONDITION_BYTES);
    }
    // Within the length bound, they are refused by depth.
    let minus = "-".repeat(4000) + "1 > 0";
    let e = parse(&minus).unwrap_err();
    assert!(is_depth_error(&e), "{e:?}");
    assert_eq!(e.offset, MAX_DEPTH - 1);
    let not = "not ".repeat(1000) + "true";
    let e = parse(&not).unwrap_err();
    assert!(is_depth_error(&e), "{e:?}");
    assert_eq!(e.offset, 4 * (MAX_DEPTH - 1));
}

/// Conditions nested `n` levels deep, one of each way of nesting.
fn nested(n: usize) -> [String; 5] {
    [
        format!("{}true{}", "(".repeat(n - 1), ")".repeat(n - 1)),
        format!("{}true", "not ".repeat(n - 1)),
        // A comparison is a level of its own.
        format!("{}1 > 0", "-".repeat(n - 2)),
        format!("{}1{} > 0", "abs(".repeat(n - 2), ")".repeat(n - 2)),
        format!("{} > 0", vec!["1"; n - 1].join(" + ")),
    ]
}

#[test]
fn nesting_up_to_the_bound_compiles_and_one_more_level_is_refused() {
    for text in nested(MAX_DEPTH) {
        compile(&text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
    }
    for text in nested(MAX_DEPTH + 1) {
        let e = compile(&text).unwrap_err();
        assert!(is_depth_error(&e), "{text}: {e:?}");
    }
    // A chain of `and` or `or` is one level however long.
    let chain = ["tenure_months > 1"; 100].join(" or ");
    let (sql, _) = compile(&chain).unwrap();
    assert_eq!(sql.matches(" OR ").count(), 99);
}

#[test]
fn control_characters_are_refused_with_their_position() {
    for (text, offset) in [
        ("tenure_months > 1\0", 17),
        ("count(complaint, 3m, category = 'a\0b') > 0", 34),
        ("tenure_months\u{1b} > 1", 13),
        ("tenure_months > 1 and\u{7f} age > 30", 21),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.message.contains("control character"), "{text:?}: {e:?}");
        assert_eq!(e.offset, offset, "{text:?}");
    }
    // Tabs and line breaks are layout.
    compile("tenure_months > 1\r\n\tand age > 30").unwrap();
}

#[test]
fn windows_and_numbers_are_range_checked_when_parsed() {
    let long_number = format!("avg(fee, 3m) > {}", "9".repeat(400));
    for (text, offset, message) in [
        ("count(complaint, 4000000000d) > 0", 17, "at most 3660 days"),
        (
            "count(complaint, 99999999999999999999d) > 0",
            17,
            "at most 3660 days",
        ),
        ("avg(fee, 121m) > 0", 9, "at most 120 months"),
        ("avg(fee, 2w..523w) > 0", 9, "at most 522 weeks"),
        ("avg(fee, 3m) > 10000000000000000", 15, "too large"),
        (long_number.as_str(), 15, "too large"),
    ] {
        let e = compile(text).unwrap_err();
        assert!(e.message.contains(message), "{text}: {e:?}");
        assert_eq!(e.offset, offset, "{text}: {e:?}");
    }
    compile("count(complaint, 3660d) > 0 and avg(fee, 120m) > 0 and avg(fee, 522w) > 0").unwrap();
    compile("avg(fee, 3m) > 1000000000000000").unwrap();
}
