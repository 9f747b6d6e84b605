//! `runrs list`: every container under `--root`, as a table (runc's layout) or JSON.

use crate::state::{self, Status};
use anyhow::{bail, Result};
use std::path::Path;

/// `runrs list`.
pub fn list(root: &Path, format: &str, quiet: bool) -> Result<String> {
    let mut rows = Vec::new();
    let mut owners = Vec::new();
    for id in state::list(root)? {
        if let Ok(c) = state::load(root, &id) {
            let st = c.status();
            owners.push(owner_of(&c.dir));
            rows.push((c, st));
        }
    }
    if quiet {
        return Ok(rows
            .iter()
            .map(|(c, _)| format!("{}\n", c.saved.id))
            .collect());
    }
    match format {
        "json" => {
            if rows.is_empty() {
                return Ok("null\n".into());
            }
            let v: Vec<_> = (rows.iter().zip(&owners))
                .map(|((c, st), owner)| {
                    let mut o = c.saved.oci(*st);
                    o.owner = owner;
                    o
                })
                .collect();
            Ok(format!("{}\n", serde_json::to_string(&v)?))
        }
        "table" => {
            let mut table = vec![vec![
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for ((c, st), owner) in rows.iter().zip(&owners) {
                let s = &c.saved;
                table.push(vec![
                    s.id.clone(),
                    if *st == Status::Stopped { 0 } else { s.pid }.to_string(),
                    st.as_str().into(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    owner.clone(),
                ]);
            }
            Ok(tabulate(&table))
        }
        _ => bail!("invalid format option"),
    }
}

/// The owner of a container's state directory, by name from /etc/passwd, else `#UID`
/// (runc's `list`; `state` leaves it empty).
fn owner_of(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata(dir).map(|m| m.uid()) else {
        return String::new();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Go's tabwriter as runc configures it (minwidth 12, padding 3); the last cell is unpadded.
fn tabulate(rows: &[Vec<String>]) -> String {
    let cols = rows[0].len();
    let mut widths = vec![12usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols - 1) {
            widths[i] = widths[i].max(cell.chars().count() + 3);
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_runc_layout() {
        let t = tabulate(&[
            vec!["ID".into(), "PID".into(), "OWNER".into()],
            vec!["a-long-container-id".into(), "1".into(), "root".into()],
        ]);
        assert_eq!(
            t,
            "ID                    PID         OWNER\na-long-container-id   1           root\n"
        );
    }
}
