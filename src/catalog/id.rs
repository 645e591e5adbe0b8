//! Backup IDs and object keys: dated, sortable by time, carrying the database and release tag.
//!
//! `gestor_tickets/2026-01-02T030000Z_gestor_tickets_v1.0.0.dump.zst` and, beside it,
//! `gestor_tickets/2026-01-02T030000Z_gestor_tickets_v1.0.0.manifest.json`.

use chrono::{DateTime, Utc};

use crate::error::Error;
use crate::pipeline::Algorithm;

pub const MANIFEST_SUFFIX: &str = ".manifest.json";
const TIME_FORMAT: &str = "%Y-%m-%dT%H%M%SZ";

/// A database name made safe for object keys: letters, digits, `_`, `-` and `.` are kept,
/// anything else becomes `-`. The manifest keeps the real name.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "-".into()
    } else {
        s
    }
}

/// Release tags go into keys verbatim, so they are restricted to a safe alphabet.
pub fn validate_tag(tag: &str) -> Result<(), Error> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!("invalid tag {tag:?}")).hint(
            "a tag is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (e.g. v1.0.0)",
        ))
    }
}

/// `2026-01-02T030000Z_gestor_tickets_v1.0.0`
pub fn backup_id(started: DateTime<Utc>, database: &str, tag: Option<&str>) -> String {
    let mut id = format!("{}_{}", started.format(TIME_FORMAT), slug(database));
    if let Some(tag) = tag {
        id.push('_');
        id.push_str(tag);
    }
    id
}

/// The keys of one backup's archive and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    pub object: String,
    pub manifest: String,
}

pub fn keys(database: &str, id: &str, compression: Algorithm) -> Keys {
    let dir = slug(database);
    Keys {
        object: format!("{dir}/{id}.dump{}", compression.extension()),
        manifest: format!("{dir}/{id}{MANIFEST_SUFFIX}"),
    }
}

/// The backup ID of a manifest key, if it is one.
pub fn id_of_manifest_key(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    name.strip_suffix(MANIFEST_SUFFIX)
}

/// The backup ID of an archive key, if it is one.
pub fn id_of_object_key(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    [".dump.zst", ".dump.gz", ".dump"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
}

/// The backup ID of a file stored beside a backup (its globals, its verification record).
pub fn id_of_companion_key(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    [
        super::verification::SUFFIX,
        ".globals.sql.zst",
        ".globals.sql.gz",
        ".globals.sql",
    ]
    .iter()
    .find_map(|ext| name.strip_suffix(ext))
}

/// The key of a backup's globals (`pg_dumpall --globals-only`), beside its archive.
pub fn globals_key(database: &str, id: &str, compression: Algorithm) -> String {
    format!(
        "{}/{id}.globals.sql{}",
        slug(database),
        compression.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_and_keys_follow_the_layout() {
        let t = Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap();
        let id = backup_id(t, "gestor_tickets", Some("v1.0.0"));
        assert_eq!(id, "2026-01-02T030000Z_gestor_tickets_v1.0.0");
        let k = keys("gestor_tickets", &id, Algorithm::Zstd);
        assert_eq!(
            k.object,
            "gestor_tickets/2026-01-02T030000Z_gestor_tickets_v1.0.0.dump.zst"
        );
        assert_eq!(
            k.manifest,
            "gestor_tickets/2026-01-02T030000Z_gestor_tickets_v1.0.0.manifest.json"
        );
        assert_eq!(id_of_manifest_key(&k.manifest), Some(id.as_str()));
        assert_eq!(id_of_object_key(&k.object), Some(id.as_str()));
        assert_eq!(id_of_object_key("db/x.dump.gz"), Some("x"));
        assert_eq!(id_of_object_key("db/x.json"), None);
    }

    #[test]
    fn ids_sort_by_time() {
        let a = backup_id(
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 0, 0).unwrap(),
            "db",
            None,
        );
        let b = backup_id(
            Utc.with_ymd_and_hms(2026, 11, 2, 3, 0, 0).unwrap(),
            "db",
            None,
        );
        assert!(a < b);
    }

    #[test]
    fn odd_names_become_safe_keys() {
        assert_eq!(slug("Ticket DB/ñ"), "Ticket-DB--");
        assert_eq!(slug(".."), "-");
        assert!(validate_tag("v1.0.0").is_ok());
        for bad in ["", "../x", "a/b", "-x", "v 1"] {
            assert!(validate_tag(bad).is_err(), "{bad}");
        }
    }
}
