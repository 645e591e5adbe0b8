//! Retention: which backups of one database a policy keeps, and the rule that decided.
//!
//! Pure logic over manifests' facts. Rules as in restic and borg: keep-last N, and for each of
//! hourly/daily/weekly/monthly/yearly the newest backup of each of the N most recent periods
//! that have one (UTC; weeks are ISO weeks); keep-within keeps everything not older than the
//! duration counted back from the newest backup (not from now, so a backup job that stopped
//! running does not let prune empty the repository). Release-tagged and `pre-restore` backups
//! are kept on a rule of their own and are not counted by the period rules, unless the policy
//! prunes them. Whatever the policy, the newest backup and the newest verified backup are kept.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::PRE_RESTORE_TAG;

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// A duration such as `7d`, `36h` or `1y`.
    pub keep_within: Option<String>,
    /// Release-tagged backups fall under the rules like the others.
    #[serde(default)]
    pub prune_tagged: bool,
    /// `pre-restore` safety backups fall under the rules like the others.
    #[serde(default)]
    pub prune_pre_restore: bool,
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(w) = &self.keep_within {
            parse_duration(w)?;
        }
        Ok(())
    }

    /// True when no keep rule is set: such a policy decides nothing and prune refuses it.
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_within.is_none()
    }

    /// `keep-last 7, keep-daily 14` for humans.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in [
            ("keep-last", self.keep_last),
            ("keep-hourly", self.keep_hourly),
            ("keep-daily", self.keep_daily),
            ("keep-weekly", self.keep_weekly),
            ("keep-monthly", self.keep_monthly),
            ("keep-yearly", self.keep_yearly),
        ] {
            if let Some(n) = v {
                parts.push(format!("{name} {n}"));
            }
        }
        if let Some(w) = &self.keep_within {
            parts.push(format!("keep-within {w}"));
        }
        if parts.is_empty() {
            "(no rule)".into()
        } else {
            parts.join(", ")
        }
    }
}

/// `7d`, `36h`, `2w`, `1y`, `1y 6months`: humantime's syntax.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 36h, 7d, 4w, 1y"))
}

/// What the policy needs to know of one backup.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub time: DateTime<Utc>,
    pub tag: Option<String>,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Every rule that keeps it; empty when it is removed.
    pub reasons: Vec<String>,
}

/// Decides every candidate (all of ONE database). Returned newest first.
pub fn decide(policy: &Policy, candidates: &[Candidate]) -> Result<Vec<Decision>, String> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| (b.time, &b.id).cmp(&(a.time, &a.id)));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];

    let exempt = |c: &Candidate| match c.tag.as_deref() {
        Some(PRE_RESTORE_TAG) => (!policy.prune_pre_restore).then_some("pre-restore safety backup"),
        Some(_) => (!policy.prune_tagged).then_some("release tag"),
        None => None,
    };
    for (i, c) in sorted.iter().enumerate() {
        if let Some(why) = exempt(c) {
            reasons[i].push(match (&c.tag, why) {
                (Some(t), "release tag") => format!("release tag {t}"),
                _ => why.to_string(),
            });
        }
    }
    // The period rules count the regular series only.
    let series: Vec<usize> = (0..sorted.len())
        .filter(|&i| exempt(sorted[i]).is_none())
        .collect();
    if let Some(n) = policy.keep_last {
        for (rank, &i) in series.iter().take(n as usize).enumerate() {
            reasons[i].push(format!("last {}/{n}", rank + 1));
        }
    }
    type Period = fn(&DateTime<Utc>) -> (i32, u32, u32, u32);
    let periods: [(&str, Option<u32>, Period); 5] = [
        ("hourly", policy.keep_hourly, |t| {
            (t.year(), t.ordinal(), t.hour(), 0)
        }),
        ("daily", policy.keep_daily, |t| {
            (t.year(), t.ordinal(), 0, 0)
        }),
        ("weekly", policy.keep_weekly, |t| {
            let w = t.iso_week();
            (w.year(), w.week(), 0, 0)
        }),
        ("monthly", policy.keep_monthly, |t| {
            (t.year(), t.month(), 0, 0)
        }),
        ("yearly", policy.keep_yearly, |t| (t.year(), 0, 0, 0)),
    ];
    for (name, n, period) in periods {
        let Some(n) = n else { continue };
        let mut last = None;
        let mut count = 0;
        for &i in &series {
            if count == n {
                break;
            }
            let p = period(&sorted[i].time);
            if last != Some(p) {
                last = Some(p);
                count += 1;
                reasons[i].push(format!("{name} {count}/{n}"));
            }
        }
    }
    if let (Some(w), Some(&first)) = (&policy.keep_within, series.first()) {
        let within = chrono::Duration::from_std(parse_duration(w)?)
            .map_err(|_| format!("keep-within {w} is too long"))?;
        let since = sorted[first].time - within;
        for &i in &series {
            if sorted[i].time >= since {
                reasons[i].push(format!("within {w} of the newest"));
            }
        }
    }
    // Never the newest backup, nor the newest verified one, whatever the policy says.
    if !sorted.is_empty() {
        reasons[0].push("newest backup".into());
    }
    if let Some(i) = sorted.iter().position(|c| c.verified) {
        reasons[i].push("newest verified backup".into());
    }
    Ok(sorted
        .iter()
        .zip(reasons)
        .map(|(c, reasons)| Decision {
            id: c.id.clone(),
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn c(id: &str, time: DateTime<Utc>) -> Candidate {
        Candidate {
            id: id.into(),
            time,
            tag: None,
            verified: false,
        }
    }

    fn kept(d: &[Decision]) -> Vec<&str> {
        d.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn daily_keeps_the_newest_of_each_day() {
        let cs = vec![
            c("d1a", at(2026, 1, 1, 3)),
            c("d1b", at(2026, 1, 1, 15)),
            c("d2a", at(2026, 1, 2, 3)),
            c("d3a", at(2026, 1, 3, 3)),
            c("d3b", at(2026, 1, 3, 9)),
        ];
        let p = Policy {
            keep_daily: Some(2),
            ..Policy::default()
        };
        let d = decide(&p, &cs).unwrap();
        assert_eq!(kept(&d), vec!["d3b", "d2a"]);
        assert_eq!(d[0].reasons, vec!["daily 1/2", "newest backup"]);
    }

    #[test]
    fn weekly_monthly_yearly_and_last() {
        // One backup a day through 2026.
        let cs: Vec<Candidate> = (0..365)
            .map(|i| {
                let t = at(2026, 1, 1, 2) + chrono::Duration::days(i);
                c(&t.format("%m-%d").to_string(), t)
            })
            .collect();
        let p = Policy {
            keep_last: Some(2),
            keep_weekly: Some(2),
            keep_monthly: Some(3),
            keep_yearly: Some(5),
            ..Policy::default()
        };
        let d = decide(&p, &cs).unwrap();
        // last: 12-31, 12-30; weekly: Sunday 12-27 ends ISO week 52, so 12-31 (week 53) and
        // 12-27; monthly: 12-31, 11-30, 10-31; yearly: 12-31.
        assert_eq!(kept(&d), vec!["12-31", "12-30", "12-27", "11-30", "10-31"]);
    }

    #[test]
    fn keep_within_counts_back_from_the_newest_backup() {
        let cs = vec![
            c("old", at(2025, 1, 1, 0)),
            c("mid", at(2025, 1, 9, 0)),
            c("new", at(2025, 1, 10, 0)),
        ];
        let p = Policy {
            keep_within: Some("2d".into()),
            ..Policy::default()
        };
        assert_eq!(kept(&decide(&p, &cs).unwrap()), vec!["new", "mid"]);
    }

    #[test]
    fn tags_and_safety_backups_are_kept_apart_from_the_series() {
        let mut cs = vec![
            c("a", at(2026, 1, 1, 3)),
            c("b", at(2026, 1, 2, 3)),
            c("rel", at(2026, 1, 2, 4)),
            c("pre", at(2026, 1, 2, 5)),
            c("z", at(2026, 1, 3, 3)),
        ];
        cs[2].tag = Some("v1.0.0".into());
        cs[3].tag = Some(PRE_RESTORE_TAG.into());
        let p = Policy {
            keep_daily: Some(2),
            ..Policy::default()
        };
        let d = decide(&p, &cs).unwrap();
        assert_eq!(kept(&d), vec!["z", "pre", "rel", "b"]);
        let p = Policy {
            keep_last: Some(1),
            prune_tagged: true,
            prune_pre_restore: true,
            ..Policy::default()
        };
        assert_eq!(kept(&decide(&p, &cs).unwrap()), vec!["z"]);
    }

    #[test]
    fn newest_and_newest_verified_always_survive() {
        let mut cs = vec![
            c("a", at(2026, 1, 1, 3)),
            c("b", at(2026, 1, 2, 3)),
            c("c", at(2026, 1, 3, 3)),
        ];
        cs[0].verified = true;
        let p = Policy {
            keep_last: Some(0),
            ..Policy::default()
        };
        let d = decide(&p, &cs).unwrap();
        assert_eq!(kept(&d), vec!["c", "a"]);
        assert_eq!(d[2].reasons, vec!["newest verified backup"]);
    }

    proptest! {
        #[test]
        fn never_removes_the_newest_and_respects_keep_last(
            hours in proptest::collection::vec(0i64..20_000, 1..80),
            last in 0u32..10,
            daily in proptest::option::of(0u32..10),
        ) {
            let cs: Vec<Candidate> = hours.iter().enumerate()
                .map(|(i, h)| c(&format!("b{i}"), at(2025, 1, 1, 0) + chrono::Duration::hours(*h)))
                .collect();
            let p = Policy { keep_last: Some(last), keep_daily: daily, ..Policy::default() };
            let d = decide(&p, &cs).unwrap();
            prop_assert_eq!(d.len(), cs.len());
            prop_assert!(d[0].keep);
            let kept = d.iter().filter(|d| d.keep).count();
            prop_assert!(kept >= (last as usize).min(cs.len()).max(1));
            prop_assert!(kept <= last as usize + daily.unwrap_or(0) as usize + 1);
        }
    }
}
