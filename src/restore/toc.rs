//! The archive's table of contents, as `pg_restore --list` prints it:
//! `<dump id>; <catalog tableoid> <oid> <DESC> <schema> <name> <owner>`.

/// Every entry description pg_dump writes that starts with another one's words must be listed
/// here, longest first, so `TABLE DATA` is never read as a `TABLE` named "DATA ...".
const DESCS: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH TEMPLATE",
    "TEXT SEARCH PARSER",
    "SEQUENCE OWNED BY",
    "FOREIGN DATA WRAPPER",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "DEFAULT ACL",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "EVENT TRIGGER",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "SEQUENCE SET",
    "SERVER",
    "TABLE ATTACH",
    "TABLE DATA",
    "USER MAPPING",
    "ACCESS METHOD",
    "BLOB",
    "BLOBS",
    "CAST",
    "COLLATION",
    "COMMENT",
    "CONSTRAINT",
    "CONVERSION",
    "DATABASE",
    "DEFAULT",
    "DOMAIN",
    "ENCODING",
    "EXTENSION",
    "FUNCTION",
    "AGGREGATE",
    "INDEX",
    "OPERATOR",
    "POLICY",
    "PROCEDURE",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "ROW SECURITY",
    "RULE",
    "SCHEMA",
    "SEQUENCE",
    "STATISTICS",
    "STDSTRINGS",
    "SEARCHPATH",
    "SUBSCRIPTION",
    "TABLE",
    "TRANSFORM",
    "TRIGGER",
    "TYPE",
    "VIEW",
    "ACL",
    "PROCEDURAL LANGUAGE",
    "SHELL TYPE",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub desc: String,
    /// `-` when the object has no schema.
    pub schema: String,
    /// The object's name; constraints and triggers are `<table> <name>`, functions carry their
    /// argument types.
    pub name: String,
    pub owner: String,
}

/// Parses `pg_restore --list` output; comment lines and unknown descriptions are skipped.
pub fn parse(listing: &str) -> Vec<Entry> {
    let mut descs: Vec<&str> = DESCS.to_vec();
    descs.sort_by_key(|d| std::cmp::Reverse(d.len()));
    let mut entries = Vec::new();
    for line in listing.lines() {
        // Keep trailing spaces: an entry without owner ends in one ("EXTENSION - pgcrypto ").
        let line = line.trim_end_matches('\r');
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        // "225; 1259 16715 TABLE public Audit Log postgres"
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(_), Some(_), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(desc) = descs
            .iter()
            .find(|d| rest.starts_with(**d) && rest[d.len()..].starts_with(' '))
        else {
            continue;
        };
        let rest = &rest[desc.len() + 1..];
        let Some((schema, rest)) = rest.split_once(' ') else {
            continue;
        };
        let (name, owner) = rest.rsplit_once(' ').unwrap_or((rest, ""));
        entries.push(Entry {
            desc: desc.to_string(),
            schema: schema.to_string(),
            name: name.to_string(),
            owner: owner.to_string(),
        });
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_spaces_and_long_descriptions() {
        let listing = ";\n; Archive created at 2026-12-03\n;\n\
            225; 1259 16715 TABLE public Audit Log postgres\n\
            3469; 0 16715 TABLE DATA public Audit Log postgres\n\
            3308; 2606 16722 CONSTRAINT public Audit Log Audit Log_pkey postgres\n\
            3314; 2606 16723 FK CONSTRAINT public tickets tickets_reporter_id_fkey app\n\
            240; 1255 16900 FUNCTION public touch_updated_at() postgres\n\
            3478; 0 0 SEQUENCE OWNED BY public Audit Log_Id_seq postgres\n\
            3483; 0 0 SEQUENCE SET public Audit Log_Id_seq postgres\n\
            2; 3079 16385 EXTENSION - pgcrypto \n\
            3500; 0 0 COMMENT - EXTENSION pgcrypto \n\
            230; 1259 16800 MATERIALIZED VIEW public stats postgres\n";
        let e = parse(listing);
        let shown: Vec<(&str, &str, &str)> = e
            .iter()
            .map(|e| (e.desc.as_str(), e.schema.as_str(), e.name.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("TABLE", "public", "Audit Log"),
                ("TABLE DATA", "public", "Audit Log"),
                ("CONSTRAINT", "public", "Audit Log Audit Log_pkey"),
                (
                    "FK CONSTRAINT",
                    "public",
                    "tickets tickets_reporter_id_fkey"
                ),
                ("FUNCTION", "public", "touch_updated_at()"),
                ("SEQUENCE OWNED BY", "public", "Audit Log_Id_seq"),
                ("SEQUENCE SET", "public", "Audit Log_Id_seq"),
                ("EXTENSION", "-", "pgcrypto"),
                ("COMMENT", "-", "EXTENSION pgcrypto"),
                ("MATERIALIZED VIEW", "public", "stats"),
            ]
        );
        assert_eq!(e[3].owner, "app");
        assert_eq!(e[7].owner, "");
        assert_eq!(e[8].owner, "");
    }
}
