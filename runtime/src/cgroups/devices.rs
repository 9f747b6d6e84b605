//! Device rules: runc's defaults, reduction to "a default plus exceptions" (the v1 kernel's
//! own model), `devices.allow`/`devices.deny` writes on v1; the v2 eBPF program is in `bpf`.

use super::write_file;
use anyhow::{Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::path::Path;

/// Access bits as the kernel's `bpf_cgroup_dev_ctx` encodes them.
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;
pub const ALL: u32 = MKNOD | READ | WRITE;

/// One rule: `kind` is `a`, `b` or `c`; `None` is the `*` wildcard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: u32,
    pub allow: bool,
}

impl Rule {
    const fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: u32) -> Rule {
        Rule {
            kind,
            major,
            minor,
            access,
            allow: true,
        }
    }

    /// The line `devices.allow` and `devices.deny` take: `c 1:3 rwm`.
    pub fn line(&self) -> String {
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            access_str(self.access)
        )
    }

    fn same_device(&self, o: &Rule) -> bool {
        self.kind == o.kind && self.major == o.major && self.minor == o.minor
    }
}

pub fn access_str(a: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

fn parse_access(s: &str) -> u32 {
    s.chars().fold(0, |a, c| match c {
        'r' => a | READ,
        'w' => a | WRITE,
        'm' => a | MKNOD,
        _ => a,
    })
}

/// runc's default rules, appended after the config's own.
pub fn defaults() -> Vec<Rule> {
    vec![
        Rule::allow('c', None, None, MKNOD),
        Rule::allow('b', None, None, MKNOD),
        Rule::allow('c', Some(1), Some(3), ALL),    // null
        Rule::allow('c', Some(1), Some(8), ALL),    // random
        Rule::allow('c', Some(1), Some(7), ALL),    // full
        Rule::allow('c', Some(5), Some(0), ALL),    // tty
        Rule::allow('c', Some(1), Some(5), ALL),    // zero
        Rule::allow('c', Some(1), Some(9), ALL),    // urandom
        Rule::allow('c', Some(136), None, ALL),     // pts
        Rule::allow('c', Some(5), Some(2), ALL),    // ptmx
        Rule::allow('c', Some(10), Some(200), ALL), // tun
    ]
}

/// The config's `linux.resources.devices`, then runc's defaults.
pub fn with_defaults(spec: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    let mut rules: Vec<Rule> = spec
        .iter()
        .map(|d| Rule {
            kind: match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::P => 'p',
                LinuxDeviceType::A => 'a',
            },
            major: d.major().filter(|m| *m >= 0),
            minor: d.minor().filter(|m| *m >= 0),
            access: d.access().as_deref().map_or(ALL, parse_access),
            allow: d.allow(),
        })
        // FIFOs are not device-controlled.
        .filter(|r| r.kind != 'p')
        .collect();
    rules.extend(defaults());
    rules
}

/// What a rule list amounts to: a default, and exceptions that all say the opposite.
#[derive(Debug, PartialEq, Eq)]
pub struct Effective {
    pub default_allow: bool,
    pub exceptions: Vec<Rule>,
}

/// Play the rules in order as the v1 kernel does: an `a` rule resets everything; a rule
/// that says the default removes access from exceptions; one that says otherwise adds it.
/// Like runc (its device emulator starts as a white-list), from "deny all": a config
/// without a deny-all rule still gets only what it and runc's defaults allow.
pub fn reduce(rules: &[Rule]) -> Effective {
    let mut e = Effective {
        default_allow: false,
        exceptions: Vec::new(),
    };
    for r in rules {
        if r.kind == 'a' {
            e.default_allow = r.allow;
            e.exceptions.clear();
            continue;
        }
        if r.allow == e.default_allow {
            for x in e.exceptions.iter_mut().filter(|x| x.same_device(r)) {
                x.access &= !r.access;
            }
            e.exceptions.retain(|x| x.access != 0);
        } else if let Some(x) = e.exceptions.iter_mut().find(|x| x.same_device(r)) {
            x.access |= r.access;
        } else {
            e.exceptions.push(Rule {
                allow: !e.default_allow,
                ..r.clone()
            });
        }
    }
    e
}

/// Write the rules to a v1 devices cgroup: the default first, then each exception.
pub fn write_v1(dir: &Path, e: &Effective) -> Result<()> {
    let (default_file, exception_file) = if e.default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    write_file(dir, default_file, "a")?;
    if e.exceptions.is_empty() {
        return Ok(());
    }
    // One rule per write(2), all through one open file (the kernel strips the newline).
    use std::io::Write;
    let path = dir.join(exception_file);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    for x in &e.exceptions {
        let line = x.line();
        f.write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("write {line:?} to {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny_all() -> Rule {
        Rule {
            kind: 'a',
            major: None,
            minor: None,
            access: ALL,
            allow: false,
        }
    }

    #[test]
    fn default_deny_keeps_runc_defaults_as_exceptions() {
        let mut rules = vec![deny_all()];
        rules.extend(defaults());
        let e = reduce(&rules);
        assert!(!e.default_allow);
        assert_eq!(e.exceptions.len(), defaults().len());
        assert_eq!(e.exceptions[0].line(), "c *:* m");
        assert_eq!(e.exceptions[2].line(), "c 1:3 rwm");
    }

    #[test]
    fn without_a_deny_all_rule_only_the_listed_devices_are_allowed() {
        let e = reduce(&defaults());
        assert!(!e.default_allow);
        assert_eq!(e.exceptions.len(), defaults().len());
        assert!(reduce(&[]).exceptions.is_empty());
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let rules = vec![
            deny_all(),
            Rule::allow('c', Some(1), Some(3), ALL),
            Rule {
                allow: false,
                access: WRITE,
                ..Rule::allow('c', Some(1), Some(3), 0)
            },
        ];
        let e = reduce(&rules);
        assert_eq!(e.exceptions.len(), 1);
        assert_eq!(e.exceptions[0].line(), "c 1:3 rm");
        // A trailing allow-all wipes everything.
        let mut all = rules.clone();
        all.push(Rule {
            allow: true,
            ..deny_all()
        });
        assert_eq!(
            reduce(&all),
            Effective {
                default_allow: true,
                exceptions: vec![]
            }
        );
    }

    #[test]
    fn spec_rules_convert() {
        let d: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"minor":0,"access":"r"}]"#,
        )
        .unwrap();
        let rules = with_defaults(&d);
        assert_eq!(rules[0].kind, 'a');
        assert_eq!(rules[1].line(), "b 8:0 r");
        assert_eq!(rules.len(), 2 + defaults().len());
    }
}
