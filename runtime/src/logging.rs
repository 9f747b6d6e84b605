//! runc's logging: `--log FILE`, `--log-format text|json`, `--debug`.
//!
//! containerd's shims read the last `"level":"error"` line of the log file, so the JSON shape
//! (`level`, `msg`, `time`) is part of the interface.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    file: None,
    format: Format::Text,
    debug: false,
});

/// Set up the logger from the global flags. A log file that cannot be opened is an error.
pub fn init(path: Option<&str>, format: Format, debug: bool) -> anyhow::Result<()> {
    let file = match path {
        Some(p) if !p.is_empty() && p != "/dev/stderr" => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("open log file {p}: {e}"))?,
        ),
        _ => None,
    };
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    *l = Logger {
        file,
        format,
        debug,
    };
    Ok(())
}

/// Whether log lines go to a file (so errors must also be printed to stderr, as runc does).
pub fn to_file() -> bool {
    LOGGER.lock().map(|l| l.file.is_some()).unwrap_or(false)
}

pub fn debug_enabled() -> bool {
    LOGGER.lock().map(|l| l.debug).unwrap_or(false)
}

pub fn error(msg: &str) {
    write("error", msg);
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn debug(msg: &str) {
    if debug_enabled() {
        write("debug", msg);
    }
}

fn write(level: &str, msg: &str) {
    let mut l = LOGGER.lock().unwrap_or_else(|e| e.into_inner());
    let time = rfc3339_now(false);
    let line = match l.format {
        Format::Json => {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => {
            if l.file.is_none() && std::io::stderr().is_terminal() {
                let tag: String = level.chars().take(4).collect::<String>().to_uppercase();
                format!("{tag}[0000] {msg}\n")
            } else {
                format!("time=\"{time}\" level={level} msg={}\n", quote_text(msg))
            }
        }
    };
    match l.file.as_mut() {
        Some(f) => {
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// logrus quotes a text value when it has spaces or quotes.
fn quote_text(msg: &str) -> String {
    if msg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c))
        && !msg.is_empty()
    {
        msg.to_string()
    } else {
        serde_json::to_string(msg).unwrap_or_default()
    }
}

/// Now as RFC 3339 in UTC, with nanoseconds when `nanos` (the `created` field of the state).
pub fn rfc3339_now(nanos: bool) -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(
        d.as_secs() as i64,
        if nanos { Some(d.subsec_nanos()) } else { None },
    )
}

pub fn rfc3339(secs: i64, nanos: Option<u32>) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let frac = match nanos {
        Some(n) if n > 0 => {
            let s = format!("{n:09}");
            format!(".{}", s.trim_end_matches('0'))
        }
        _ => String::new(),
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `RUNRS_TIMING=1`: print microseconds since the process started at named points, to find
/// where the time of a command goes (used by hack/bench's profiling, never by tests). The
/// same points are where `RUNRS_FAULT` crashes a debug build (`fault`).
pub fn mark(what: &str) {
    crate::fault::at(what);
    use std::sync::OnceLock;
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("RUNRS_TIMING").is_some()) {
        return;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now_us = ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000;
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // One write: eprintln! makes one per piece, which would weigh on what is measured.
    let line = format!("[timing] {now_us} pid={pid} {what}\n");
    // SAFETY: line is valid for line.len() bytes.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0, None), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951782400, None), "2000-02-29T00:00:00Z");
        assert_eq!(
            rfc3339(1700000000, Some(120_000_000)),
            "2023-11-14T22:13:20.12Z"
        );
    }

    #[test]
    fn text_values_are_quoted_like_logrus() {
        assert_eq!(quote_text("simple"), "simple");
        assert_eq!(quote_text("two words"), "\"two words\"");
    }
}
