//! The flag syntax of runc 1.1: urfave/cli v1 on top of Go's `flag` package, table-driven.
//!
//! Go's rules: `-name` and `--name` are the same flag; a value is `=value` or the next
//! argument (whatever it looks like, `-1` included); a bool flag takes only `=value`;
//! no combined short flags (`-dt` is one unknown flag); parsing stops at the first
//! argument that is not a flag, and a lone `--` is dropped there. urfave adds the arg
//! reordering (flags after positional arguments still count, except for commands that
//! skip it) and the "Cannot use two forms of the same flag" check.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// What a flag holds, and how its value is checked while parsing (as Go's `flag.Value`s do).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// `--x` or `--x=true|false` (Go's ParseBool spellings).
    Bool,
    /// Any string.
    Str,
    /// A Go `int` flag: base prefixes (`0x`, `0o`, `0b`, leading `0`) and `_` allowed.
    Int32,
    Int64,
    /// Repeatable: every use adds one string.
    StrList,
    /// Repeatable decimal int64 (urfave's Int64Slice).
    IntList,
    /// A Go duration (`5s`, `1m30s`).
    Duration,
}

/// One flag: its names (the long one first, as runc declares them), kind and help.
#[derive(Debug)]
pub struct Flag {
    pub names: &'static [&'static str],
    pub kind: Kind,
    pub usage: &'static str,
    /// What the help shows as `(default: ...)`; empty for none.
    pub default: &'static str,
}

impl Flag {
    pub const fn new(names: &'static [&'static str], kind: Kind, usage: &'static str) -> Flag {
        Flag {
            names,
            kind,
            usage,
            default: "",
        }
    }

    pub const fn default(self, default: &'static str) -> Flag {
        Flag { default, ..self }
    }
}

/// The help flag urfave adds to every command.
const HELP: Flag = Flag::new(&["help", "h"], Kind::Bool, "show help");

/// The result of parsing one flag set.
#[derive(Debug)]
pub struct Matches {
    flags: &'static [Flag],
    /// Per flag (the implicit help flag last): every value given, in order.
    values: Vec<Vec<OsString>>,
    /// Per flag: a bit for each of its names that was used.
    used: Vec<u8>,
    /// The positional arguments.
    pub args: Vec<OsString>,
}

impl Matches {
    fn all(&self) -> impl Iterator<Item = &'static Flag> {
        self.flags.iter().chain(std::iter::once(&HELP))
    }

    fn index(&self, name: &str) -> usize {
        self.all()
            .position(|f| f.names[0] == name)
            .unwrap_or_else(|| panic!("flag {name:?} is not declared"))
    }

    /// The last value given, as it was given.
    pub fn os(&self, name: &str) -> Option<&OsStr> {
        self.values[self.index(name)]
            .last()
            .map(OsString::as_os_str)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.os(name).is_some_and(|v| v == "true")
    }

    /// Whether the help flag (`--help`, `-h`) is set.
    pub fn help(&self) -> bool {
        self.bool("help")
    }

    /// The last value given, empty or not (Go's "set to the empty string").
    pub fn raw(&self, name: &str) -> Option<String> {
        self.os(name).map(lossy)
    }

    /// The last value given; the empty string counts as not given, as in runc's code.
    pub fn string(&self, name: &str) -> Option<String> {
        self.raw(name).filter(|s| !s.is_empty())
    }

    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.os(name).filter(|s| !s.is_empty()).map(PathBuf::from)
    }

    /// Every value of a repeatable flag.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.values[self.index(name)]
            .iter()
            .map(|v| lossy(v))
            .collect()
    }

    /// The last value of an integer flag (checked while parsing).
    pub fn int(&self, name: &str) -> Option<i64> {
        self.os(name)
            .map(|v| int_value(self.all().nth(self.index(name)), v))
    }

    /// Every value of a repeatable integer flag.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        let flag = self.all().nth(self.index(name));
        self.values[self.index(name)]
            .iter()
            .map(|v| int_value(flag, v))
            .collect()
    }

    pub fn args(&self) -> Vec<String> {
        self.args.iter().map(|a| lossy(a)).collect()
    }

    /// urfave's normalizeFlags: two names of one flag used together are an error.
    pub fn two_forms(&self) -> Option<String> {
        self.all().zip(&self.used).find_map(|(f, &used)| {
            let mut seen = (0..f.names.len()).filter(|i| used & (1 << i) != 0);
            let first = seen.next()?;
            let second = seen.next()?;
            Some(format!(
                "Cannot use two forms of the same flag: {} {}",
                f.names[second], f.names[first]
            ))
        })
    }
}

fn int_value(flag: Option<&Flag>, v: &OsStr) -> i64 {
    let v = lossy(v);
    let r = match flag.map(|f| f.kind) {
        Some(Kind::IntList) => parse_int(&v, 10, 64),
        Some(Kind::Int32) => parse_int(&v, 0, 32),
        _ => parse_int(&v, 0, 64),
    };
    r.unwrap_or_default()
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// Parses `args` against `flags` (plus the help flag when `help`), as urfave/cli v1 does for
/// a command: reordered first unless `reorder` is false. Returns what was parsed up to the
/// first error, and that error (Go's message, without "Incorrect Usage").
pub fn parse(
    flags: &'static [Flag],
    help: bool,
    args: &[OsString],
    reorder: bool,
) -> (Matches, Option<String>) {
    let n = flags.len() + 1;
    let mut m = Matches {
        flags,
        values: vec![Vec::new(); n],
        used: vec![0; n],
        args: Vec::new(),
    };
    let reordered;
    let args = if reorder {
        reordered = reorder_args(&m, help, args);
        &reordered[..]
    } else {
        args
    };
    let mut i = 0;
    while i < args.len() {
        let s = args[i].as_bytes();
        if s.len() < 2 || s[0] != b'-' {
            break;
        }
        if s == b"--" {
            i += 1;
            break;
        }
        if let Err(e) = parse_flag(&mut m, help, args, &mut i) {
            return (m, Some(e));
        }
    }
    m.args = args[i..].to_vec();
    (m, None)
}

/// Go's FlagSet.parseOne: the flag at `args[*i]` (with its value, `=value` or the next
/// argument) into `m`, moving `*i` past what it took.
fn parse_flag(m: &mut Matches, help: bool, args: &[OsString], i: &mut usize) -> Result<(), String> {
    let s = args[*i].as_bytes();
    let dashes = if s[1] == b'-' { 2 } else { 1 };
    let arg = lossy(&args[*i]);
    let mut name = &s[dashes..];
    if name.is_empty() || name[0] == b'-' || name[0] == b'=' {
        return Err(format!("bad flag syntax: {arg}"));
    }
    *i += 1;
    let mut value: Option<OsString> = None;
    if let Some(eq) = name.iter().position(|&c| c == b'=') {
        value = Some(OsStr::from_bytes(&name[eq + 1..]).to_owned());
        name = &name[..eq];
    }
    let shown = String::from_utf8_lossy(name).into_owned();
    let Some((fi, ni)) = find(m, help, name) else {
        return Err(format!("flag provided but not defined: -{shown}"));
    };
    let flag = m.all().nth(fi).expect("found flag");
    let value = if flag.kind == Kind::Bool {
        bool_value(value, &shown)?
    } else {
        flag_value(flag.kind, value, args, i, &shown)?
    };
    if !matches!(flag.kind, Kind::StrList | Kind::IntList) {
        m.values[fi].clear();
    }
    m.values[fi].push(value);
    m.used[fi] |= 1 << ni;
    Ok(())
}

/// A bool flag's value: `true` alone, else Go's ParseBool of `=value`, as "true"/"false".
fn bool_value(value: Option<OsString>, shown: &str) -> Result<OsString, String> {
    match value {
        None => Ok(OsString::from("true")),
        Some(v) => match parse_bool(&lossy(&v)) {
            Some(b) => Ok(OsString::from(if b { "true" } else { "false" })),
            None => {
                let q = quote(&lossy(&v));
                Err(format!(
                    "invalid boolean value {q} for -{shown}: parse error"
                ))
            }
        },
    }
}

/// Any other flag's value: `=value`, else the next argument (moving `*i` past it), checked
/// as Go's flag.Value for `kind` would.
fn flag_value(
    kind: Kind,
    value: Option<OsString>,
    args: &[OsString],
    i: &mut usize,
    shown: &str,
) -> Result<OsString, String> {
    let v = match value {
        Some(v) => v,
        None if *i < args.len() => {
            *i += 1;
            args[*i - 1].clone()
        }
        None => return Err(format!("flag needs an argument: -{shown}")),
    };
    if let Some(e) = check_value(kind, &lossy(&v)) {
        let q = quote(&lossy(&v));
        return Err(format!("invalid value {q} for flag -{shown}: {e}"));
    }
    Ok(v)
}

/// The flag (index, name index) called `name`.
fn find(m: &Matches, help: bool, name: &[u8]) -> Option<(usize, usize)> {
    let count = m.flags.len() + usize::from(help);
    m.all().take(count).enumerate().find_map(|(fi, f)| {
        f.names
            .iter()
            .position(|n| n.as_bytes() == name)
            .map(|ni| (fi, ni))
    })
}

/// Go's flag.Value.Set errors: None when the value is good for `kind`.
fn check_value(kind: Kind, v: &str) -> Option<String> {
    match kind {
        Kind::Int32 | Kind::Int64 => {
            let bits = if kind == Kind::Int32 { 32 } else { 64 };
            parse_int(v, 0, bits).err().map(|e| e.flag_msg().to_owned())
        }
        Kind::IntList => parse_int(v, 10, 64)
            .err()
            .map(|e| strconv_error("ParseInt", v, e)),
        // Go's ParseDuration takes no empty string.
        Kind::Duration if v.is_empty() => Some("parse error".to_owned()),
        Kind::Duration => crate::resources::parse_duration(v)
            .err()
            .map(|_| "parse error".to_owned()),
        Kind::Bool | Kind::Str | Kind::StrList => None,
    }
}

/// urfave v1's reorderArgs: the command's flags (and each one's possible value) first, then
/// the other arguments; everything after a `--` stays in place behind it. Any flag, bool
/// ones too, takes the next non-flag argument along (so `kill ID --all KILL` reads as
/// `kill --all KILL ID`, as in runc).
fn reorder_args(m: &Matches, help: bool, args: &[OsString]) -> Vec<OsString> {
    let mut flags = Vec::new();
    let mut rest = Vec::new();
    let mut may_be_value = false;
    for (i, arg) in args.iter().enumerate() {
        let is_flag = arg_is_flag(m, help, arg.as_bytes());
        if may_be_value && !is_flag {
            may_be_value = false;
            flags.push(arg.clone());
        } else if arg == "--" {
            rest.insert(0, arg.clone());
            rest.extend_from_slice(&args[i + 1..]);
            break;
        } else if is_flag {
            flags.push(arg.clone());
            may_be_value = !arg.as_bytes().contains(&b'=');
        } else {
            rest.push(arg.clone());
        }
    }
    flags.extend(rest);
    flags
}

/// urfave v1's argIsFlag: whether `arg`, stripped of its dashes and `=value`, names a flag.
fn arg_is_flag(m: &Matches, help: bool, arg: &[u8]) -> bool {
    if arg == b"-" || arg == b"--" || arg.first() != Some(&b'-') {
        return false;
    }
    let mut name = arg.strip_prefix(b"--").unwrap_or(arg);
    name = name.strip_prefix(b"-").unwrap_or(name);
    let name = name.split(|&c| c == b'=').next().unwrap_or_default();
    find(m, help, name).is_some()
}

/// Go's strconv.ParseBool.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why a Go number did not parse.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NumError {
    Syntax,
    Range,
}

impl NumError {
    /// strconv's wording.
    pub fn msg(self) -> &'static str {
        match self {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        }
    }

    /// The flag package's wording.
    fn flag_msg(self) -> &'static str {
        match self {
            NumError::Syntax => "parse error",
            NumError::Range => "value out of range",
        }
    }
}

/// strconv's error text: `strconv.ParseUint: parsing "abc": invalid syntax`.
pub fn strconv_error(func: &str, s: &str, e: NumError) -> String {
    format!("strconv.{func}: parsing {}: {}", quote(s), e.msg())
}

/// Go's strconv.ParseUint; `base` 0 takes Go's prefixes and `_` separators.
pub fn parse_uint(s: &str, base: u32, bits: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let base0 = base == 0;
    let mut digits = s.as_bytes();
    let mut base = u64::from(base);
    if base0 {
        base = 10;
        if digits[0] == b'0' {
            if is_prefix(digits) {
                base = match digits[1].to_ascii_lowercase() {
                    b'b' => 2,
                    b'o' => 8,
                    _ => 16,
                };
                digits = &digits[2..];
            } else {
                base = 8;
                digits = &digits[1..];
            }
        }
    }
    let max = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let cutoff = u64::MAX / base + 1;
    let mut n: u64 = 0;
    let mut underscores = false;
    for &c in digits {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            b'A'..=b'Z' => c - b'A' + 10,
            _ => return Err(NumError::Syntax),
        };
        if u64::from(d) >= base {
            return Err(NumError::Syntax);
        }
        if n >= cutoff {
            return Err(NumError::Range);
        }
        n *= base;
        let n1 = n.wrapping_add(u64::from(d));
        if n1 < n || n1 > max {
            return Err(NumError::Range);
        }
        n = n1;
    }
    if underscores && !underscore_ok(s) {
        return Err(NumError::Syntax);
    }
    Ok(n)
}

/// Whether `s` starts with a two-character base prefix (`0b`, `0o`, `0x`) and more.
fn is_prefix(s: &[u8]) -> bool {
    s.len() >= 3 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x')
}

/// Go's strconv.ParseInt.
pub fn parse_int(s: &str, base: u32, bits: u32) -> Result<i64, NumError> {
    let (neg, rest) = match s.as_bytes().first() {
        None => return Err(NumError::Syntax),
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let un = match parse_uint(rest, base, bits) {
        Ok(n) => n,
        Err(NumError::Range) => u64::MAX,
        Err(e) => return Err(e),
    };
    let cutoff = 1u64 << (bits - 1);
    if (!neg && un >= cutoff) || (neg && un > cutoff) {
        return Err(NumError::Range);
    }
    let n = un as i64;
    Ok(if neg { n.wrapping_neg() } else { n })
}

/// Go's underscoreOK: `_` only between digits (or after a base prefix).
fn underscore_ok(s: &str) -> bool {
    let mut s = s.as_bytes();
    if let Some(b'-' | b'+') = s.first() {
        s = &s[1..];
    }
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
            continue;
        }
        if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
            continue;
        }
        if saw == b'_' {
            return false;
        }
        saw = b'!';
    }
    saw != b'_'
}

/// Go's `%q` for the strings that show up in flag errors.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\x07' => q.push_str("\\a"),
            '\x08' => q.push_str("\\b"),
            '\x0c' => q.push_str("\\f"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            '\t' => q.push_str("\\t"),
            '\x0b' => q.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => q.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => q.push_str(&format!("\\u{:04x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// The OPTIONS lines of a help text, aligned as urfave's tabwriter does:
/// `   --bundle value, -b value  usage (default: x)`.
pub fn flag_lines(flags: &[Flag], out: &mut String) {
    let cell = |f: &Flag| {
        let value = if f.kind == Kind::Bool { "" } else { " value" };
        f.names
            .iter()
            .map(|n| {
                let dashes = if n.len() == 1 { "-" } else { "--" };
                format!("{dashes}{n}{value}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let width = flags.iter().map(|f| cell(f).len()).max().unwrap_or(0) + 2;
    for f in flags {
        let c = cell(f);
        out.push_str("   ");
        out.push_str(&c);
        out.push_str(&" ".repeat(width - c.len()));
        out.push_str(f.usage);
        if !f.default.is_empty() {
            out.push_str(" (default: ");
            out.push_str(f.default);
            out.push(')');
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::new(&["bundle", "b"], Kind::Str, "bundle"),
        Flag::new(&["detach", "d"], Kind::Bool, "detach"),
        Flag::new(&["env", "e"], Kind::StrList, "env"),
        Flag::new(&["gid", "g"], Kind::IntList, "gids"),
        Flag::new(&["fds"], Kind::Int32, "fds").default("0"),
        Flag::new(&["interval"], Kind::Duration, "interval"),
    ];

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn ok(args: &[&str], reorder: bool) -> Matches {
        let (m, err) = parse(FLAGS, true, &os(args), reorder);
        assert_eq!(err, None, "{args:?}");
        m
    }

    fn err(args: &[&str], reorder: bool) -> String {
        parse(FLAGS, true, &os(args), reorder)
            .1
            .unwrap_or_else(|| panic!("{args:?} parsed"))
    }

    #[test]
    fn one_or_two_dashes_and_equals() {
        for args in [
            &["-bundle", "x"][..],
            &["--bundle", "x"],
            &["--bundle=x"],
            &["-bundle=x"],
            &["-b", "x"],
            &["--b=x"],
        ] {
            assert_eq!(
                ok(args, true).string("bundle").as_deref(),
                Some("x"),
                "{args:?}"
            );
        }
        // A value may start with a dash, or contain '='.
        assert_eq!(
            ok(&["-b", "-d"], true).string("bundle").as_deref(),
            Some("-d")
        );
        assert_eq!(
            ok(&["-b=a=b"], true).string("bundle").as_deref(),
            Some("a=b")
        );
        // The last one wins; the empty string counts as not given.
        assert_eq!(
            ok(&["-b", "1", "-b", "2"], true)
                .string("bundle")
                .as_deref(),
            Some("2")
        );
        let m = ok(&["-b="], true);
        assert_eq!(
            (m.raw("bundle").as_deref(), m.string("bundle")),
            (Some(""), None)
        );
    }

    #[test]
    fn bools() {
        assert!(ok(&["-d"], true).bool("detach"));
        assert!(ok(&["--detach"], true).bool("detach"));
        assert!(!ok(&[], true).bool("detach"));
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(ok(&[&format!("-d={t}")], true).bool("detach"));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!ok(&["-d", &format!("-d={f}")], true).bool("detach"));
        }
        // A bool does not take the next argument.
        let m = ok(&["-d", "false"], false);
        assert!(m.bool("detach"));
        assert_eq!(m.args(), ["false"]);
        assert_eq!(
            err(&["--detach=yes"], true),
            "invalid boolean value \"yes\" for -detach: parse error"
        );
    }

    #[test]
    fn repeatables_accumulate() {
        let m = ok(
            &["-e", "A=1", "-e=B=2", "-e", "C", "-g", "1", "-g", "010"],
            true,
        );
        assert_eq!(m.strings("env"), ["A=1", "B=2", "C"]);
        assert_eq!(m.ints("gid"), [1, 10]);
        assert!(ok(&[], true).strings("env").is_empty());
    }

    #[test]
    fn two_forms_of_one_flag() {
        let (m, e) = parse(FLAGS, true, &os(&["-e", "A", "--env", "B", "x"]), true);
        assert_eq!(e, None);
        assert_eq!(
            m.two_forms().as_deref(),
            Some("Cannot use two forms of the same flag: e env")
        );
        let (m, _) = parse(FLAGS, true, &os(&["--help", "-h"]), true);
        assert_eq!(
            m.two_forms().as_deref(),
            Some("Cannot use two forms of the same flag: h help")
        );
        let (m, _) = parse(FLAGS, true, &os(&["-e", "A", "-e", "B"]), true);
        assert_eq!(m.two_forms(), None);
    }

    #[test]
    fn positionals_and_the_end_of_flags() {
        let m = ok(&["-d", "id", "rest", "-b", "x"], false);
        assert_eq!(m.args(), ["id", "rest", "-b", "x"]);
        assert_eq!(m.string("bundle"), None);
        let m = ok(&["--", "-d"], false);
        assert!(!m.bool("detach"));
        assert_eq!(m.args(), ["-d"]);
        // `-` is an argument; a `--` after the first argument stays.
        assert_eq!(ok(&["-", "x"], false).args(), ["-", "x"]);
        assert_eq!(ok(&["id", "--", "x"], false).args(), ["id", "--", "x"]);
    }

    #[test]
    fn reordering_moves_flags_before_arguments() {
        let m = ok(&["id", "-d", "--bundle", "b"], true);
        assert!(m.bool("detach"));
        assert_eq!(m.string("bundle").as_deref(), Some("b"));
        assert_eq!(m.args(), ["id"]);
        // Without reordering, the first argument ends the flags.
        let m = ok(&["id", "-d"], false);
        assert!(!m.bool("detach"));
        assert_eq!(m.args(), ["id", "-d"]);
        // Unknown flags are not moved: they become arguments.
        assert_eq!(ok(&["id", "--bogus"], true).args(), ["id", "--bogus"]);
        // urfave's quirk: a bool flag takes the next argument along.
        assert_eq!(ok(&["id", "-d", "KILL"], true).args(), ["KILL", "id"]);
        // After `--` nothing moves.
        let m = ok(&["id", "--", "-d"], true);
        assert!(!m.bool("detach"));
        assert_eq!(m.args(), ["id", "-d"]);
        // `--` right after a value flag is its value.
        assert_eq!(
            ok(&["-b", "--", "id"], true).string("bundle").as_deref(),
            Some("--")
        );
        // A value flag at the end takes the argument moved behind it.
        let m = ok(&["id", "-b"], true);
        assert_eq!(m.string("bundle").as_deref(), Some("id"));
        assert!(m.args.is_empty());
        // The help flag is moved too.
        assert!(ok(&["id", "--help"], true).help());
    }

    #[test]
    fn errors_as_go_words_them() {
        assert_eq!(
            err(&["--bogus"], true),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            err(&["-bogus=1"], true),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(err(&["-dt"], true), "flag provided but not defined: -dt");
        assert_eq!(err(&["-b"], true), "flag needs an argument: -b");
        assert_eq!(err(&["--bundle"], true), "flag needs an argument: -bundle");
        assert_eq!(err(&["---x"], true), "bad flag syntax: ---x");
        assert_eq!(err(&["-=x"], true), "bad flag syntax: -=x");
        assert_eq!(
            err(&["--fds", "abc"], true),
            "invalid value \"abc\" for flag -fds: parse error"
        );
        assert_eq!(
            err(&["--fds=99999999999"], true),
            "invalid value \"99999999999\" for flag -fds: value out of range"
        );
        assert_eq!(
            err(&["-g", "0x10"], true),
            "invalid value \"0x10\" for flag -g: strconv.ParseInt: parsing \"0x10\": invalid syntax"
        );
        assert_eq!(
            err(&["--interval", "abc"], true),
            "invalid value \"abc\" for flag -interval: parse error"
        );
        // Without the help flag, -h is unknown.
        let (_, e) = parse(FLAGS, false, &os(&["-h"]), true);
        assert_eq!(e.as_deref(), Some("flag provided but not defined: -h"));
    }

    #[test]
    fn go_integers() {
        assert_eq!(parse_int("42", 0, 64), Ok(42));
        assert_eq!(parse_int("-1", 0, 64), Ok(-1));
        assert_eq!(parse_int("+7", 0, 64), Ok(7));
        assert_eq!(parse_int("0x1f", 0, 64), Ok(31));
        assert_eq!(parse_int("0X1F", 0, 64), Ok(31));
        assert_eq!(parse_int("010", 0, 64), Ok(8));
        assert_eq!(parse_int("0o17", 0, 64), Ok(15));
        assert_eq!(parse_int("0b101", 0, 64), Ok(5));
        assert_eq!(parse_int("0", 0, 64), Ok(0));
        assert_eq!(parse_int("1_000", 0, 64), Ok(1000));
        assert_eq!(parse_int("0x_1", 0, 64), Ok(1));
        assert_eq!(parse_int("1__0", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("_1", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("1_", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("1_0", 10, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("0x", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("08", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("010", 10, 64), Ok(10));
        assert_eq!(parse_int("", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("-", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int(" 1", 0, 64), Err(NumError::Syntax));
        assert_eq!(parse_int("9223372036854775807", 0, 64), Ok(i64::MAX));
        assert_eq!(parse_int("-9223372036854775808", 0, 64), Ok(i64::MIN));
        assert_eq!(
            parse_int("9223372036854775808", 0, 64),
            Err(NumError::Range)
        );
        assert_eq!(
            parse_int("99999999999999999999", 10, 64),
            Err(NumError::Range)
        );
        assert_eq!(parse_int("2147483647", 0, 32), Ok(i32::MAX.into()));
        assert_eq!(parse_int("2147483648", 0, 32), Err(NumError::Range));
        assert_eq!(parse_int("-2147483648", 0, 32), Ok(i32::MIN.into()));
        assert_eq!(parse_uint("18446744073709551615", 10, 64), Ok(u64::MAX));
        assert_eq!(
            parse_uint("18446744073709551616", 10, 64),
            Err(NumError::Range)
        );
        assert_eq!(parse_uint("-1", 10, 64), Err(NumError::Syntax));
        assert_eq!(
            strconv_error("ParseUint", "abc", NumError::Syntax),
            "strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\"b\\c\n\t\x01é"), "\"a\\\"b\\\\c\\n\\t\\x01é\"");
    }

    #[test]
    fn help_lines_are_aligned() {
        let mut out = String::new();
        flag_lines(&FLAGS[..2], &mut out);
        assert_eq!(
            out,
            "   --bundle value, -b value  bundle\n   --detach, -d              detach\n"
        );
        let mut out = String::new();
        flag_lines(&FLAGS[4..5], &mut out);
        assert_eq!(out, "   --fds value  fds (default: 0)\n");
    }
}
