//! Cron expressions for `pgsafe schedule`: parsing (5 or 6 fields) and the next firing time.

use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A parsed cron expression. Six fields start with seconds (`*/5 * * * * *`); the classic five
/// (`0 3 * * *`) fire at second 0. Times are UTC.
#[derive(Debug, Clone)]
pub struct Cron {
    schedule: cron::Schedule,
    pub expression: String,
}

pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_string(),
        _ => {
            return Err(format!(
                "cron expression {expr:?} has {fields} fields; use 5 (min hour day month weekday) \
                 or 6 (with seconds first)"
            ))
        }
    };
    // Classic cron numbers Sunday 0, the cron crate (Quartz) numbers it 1: a numeric weekday
    // would silently run a day off. Names mean the same everywhere.
    let weekday = full.split_whitespace().nth(5).unwrap_or("*");
    if weekday.bytes().any(|b| b.is_ascii_digit()) {
        return Err(format!(
            "cron expression {expr:?}: write the day of the week as names (MON-FRI, SUN), not \
             {weekday:?}: cron implementations disagree on which number is Sunday"
        ));
    }
    let schedule = cron::Schedule::from_str(&full)
        .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))?;
    Ok(Cron {
        schedule,
        expression: expr.to_string(),
    })
}

impl Cron {
    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&after).next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_fields() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 2, 59, 30).unwrap();
        let nightly = parse_cron("0 3 * * *").unwrap();
        assert_eq!(
            nightly.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap())
        );
        let every5s = parse_cron("*/5 * * * * *").unwrap();
        assert_eq!(
            every5s.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 2, 2, 59, 35).unwrap())
        );
        let sunday = parse_cron("0 0 5 * * SUN").unwrap();
        assert_eq!(
            sunday.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 4, 5, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        assert!(parse_cron("every day").unwrap_err().contains("fields"));
        assert!(parse_cron("61 * * * *").is_err());
        // Regression: "0 3 * * 1" means Monday to cron(8) but Sunday to the cron crate.
        assert!(parse_cron("0 3 * * 1").unwrap_err().contains("names"));
        assert!(parse_cron("0 0 3 * * 1-5").unwrap_err().contains("names"));
        assert!(parse_cron("0 3 * * MON-FRI").is_ok());
        let monday = parse_cron("0 3 * * MON").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 0, 0, 0).unwrap(); // a Friday
        assert_eq!(
            monday.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap())
        );
    }
}
