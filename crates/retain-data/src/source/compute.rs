//! The arithmetic a mapping asks for (sums of columns, rounding, days before a date): the one
//! place reading looks at values, since the inputs must be numbers.

use super::{ComputedSource, FieldSource, Fields, Layout, Problem};
use crate::mapping::Rounding;

/// The values of a layout's computed columns, by canonical column (empty when it has none).
pub(super) fn computed(
    layout: &Layout,
    source: &Fields,
    source_names: bool,
) -> std::result::Result<Vec<Option<String>>, Problem> {
    if !layout
        .fields
        .iter()
        .any(|f| matches!(f, FieldSource::Computed(_)))
    {
        return Ok(Vec::new());
    }
    layout
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| match field {
            FieldSource::Computed(computed) => {
                compute(computed, source).map_err(|(part, reason)| {
                    let part = &computed.parts[part];
                    if source_names {
                        (Some(part.clone()), reason)
                    } else {
                        (Some(layout.names[i].clone()), format!("{part}: {reason}"))
                    }
                })
            }
            _ => Ok(None),
        })
        .collect()
}

/// Digits after the decimal point, or `None` for a number in exponent form.
fn decimals(text: &str) -> Option<usize> {
    if text.contains(['e', 'E']) {
        return None;
    }
    Some(
        text.split_once('.')
            .map_or(0, |(_, fraction)| fraction.len()),
    )
}

/// Computes a value the mapping asks for; on a bad input, returns which part and why.
fn compute(
    computed: &ComputedSource,
    source: &Fields,
) -> std::result::Result<Option<String>, (usize, String)> {
    let texts: Vec<&str> = computed
        .indexes
        .iter()
        .map(|&i| source.get(i).trim())
        .collect();
    let empty = texts.iter().filter(|t| t.is_empty()).count();
    if empty == texts.len() {
        return Ok(None);
    }
    if empty > 0 {
        // Counting an empty part as 0 would invent a value the export does not have.
        let at = texts
            .iter()
            .position(|t| t.is_empty())
            .expect("one is empty");
        let other = texts
            .iter()
            .position(|t| !t.is_empty())
            .expect("one is not");
        return Err((
            at,
            format!(
                "empty, while {} has a value: a sum needs all its columns",
                computed.parts[other]
            ),
        ));
    }
    let mut total = 0.0;
    let mut places = Some(0);
    for (part, text) in texts.iter().enumerate() {
        let value = text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| (part, format!("{text:?} is not a number")))?;
        total += value;
        places = places.zip(decimals(text)).map(|(a, b)| a.max(b).min(12));
    }
    // Binary fractions make 40.31 + 26.83 = 67.14000000000001; the parts' precision is all the
    // sum has, and rounding up must not count that noise as a started minute.
    if let Some(places) = places {
        total = format!("{total:.places$}")
            .parse()
            .expect("a formatted number");
    }
    if let Some(reference) = computed.days_before {
        let days = Some(total)
            .filter(|d| d.fract() == 0.0 && (0.0..=1.0e6).contains(d))
            .and_then(|d| reference.checked_sub_signed(chrono::Duration::days(d as i64)))
            .ok_or_else(|| (0, format!("{:?} is not a whole number of days", texts[0])))?;
        return Ok(Some(days.format("%Y-%m-%d").to_string()));
    }
    Ok(Some(match (computed.round, places) {
        (Some(Rounding::Nearest), _) => format!("{:.0}", total.round()),
        (Some(Rounding::Up), _) => format!("{:.0}", total.ceil()),
        (None, Some(places)) => format!("{total:.places$}"),
        (None, None) => total.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(round: Option<Rounding>) -> ComputedSource {
        ComputedSource {
            indexes: vec![0, 1],
            parts: vec!["a".into(), "b".into()],
            round,
            days_before: None,
        }
    }

    #[test]
    fn sums_keep_the_parts_precision_and_round_only_as_asked() {
        let run = |c: &ComputedSource, a: &str, b: &str| compute(c, &Fields::of(&[a, b]));
        let some = |s: &str| Ok(Some(s.to_owned()));
        assert_eq!(run(&sum(None), "40.31", "26.83"), some("67.14"));
        assert_eq!(run(&sum(None), "1e2", "1"), some("101"));
        // Binary noise must not make 2 minutes into 3.
        assert_eq!(run(&sum(Some(Rounding::Up)), "1.1", "0.9"), some("2"));
        assert_eq!(run(&sum(Some(Rounding::Up)), "0.2", "0"), some("1"));
        assert_eq!(run(&sum(Some(Rounding::Up)), "0", "0.00"), some("0"));
        assert_eq!(run(&sum(Some(Rounding::Nearest)), "0.2", "0.2"), some("0"));
        assert_eq!(run(&sum(None), "", " "), Ok(None));
        assert_eq!(
            run(&sum(None), "1", ""),
            Err((
                1,
                "empty, while a has a value: a sum needs all its columns".to_owned()
            ))
        );
        assert_eq!(
            run(&sum(None), "x", "1"),
            Err((0, "\"x\" is not a number".to_owned()))
        );
        assert_eq!(run(&sum(None), "1", "inf").unwrap_err().0, 1);
    }

    #[test]
    fn days_before_a_reference_date() {
        let aon = ComputedSource {
            indexes: vec![0],
            parts: vec!["aon".into()],
            round: None,
            days_before: chrono::NaiveDate::from_ymd_opt(2014, 9, 30),
        };
        let run = |days: &str| compute(&aon, &Fields::of(&[days]));
        assert_eq!(run("400"), Ok(Some("2013-08-26".to_owned())));
        assert_eq!(run("400.0"), Ok(Some("2013-08-26".to_owned())));
        assert_eq!(run(""), Ok(None));
        for bad in ["1.5", "-1", "1e9"] {
            assert!(
                run(bad)
                    .unwrap_err()
                    .1
                    .contains("not a whole number of days")
            );
        }
    }
}
