//! `runrs list`: every container under `--root`, as a table (runc's layout) or JSON.

use crate::state::{self, Status};
use anyhow::{bail, Result};
use std::path::Path;

/// `runrs list`.
pub fn list(root: &Path, format: &str, quiet: bool) -> Result<String> {
    let mut rows = Vec::new();
    for id in state::list(root)? {
        if let Ok(c) = state::load(root, &id) {
            let st = c.status();
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
            let v: Vec<_> = rows.iter().map(|(c, st)| c.saved.oci(*st)).collect();
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
            for (c, st) in &rows {
                let s = &c.saved;
                table.push(vec![
                    s.id.clone(),
                    if *st == Status::Stopped { 0 } else { s.pid }.to_string(),
                    st.as_str().into(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            Ok(tabulate(&table))
        }
        other => bail!("invalid format option {other:?}"),
    }
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
