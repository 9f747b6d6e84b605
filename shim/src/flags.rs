//! The command line containerd gives a shim (Go `flag` syntax).

/// The flags containerd passes (Go `flag` syntax: `-name value`, `--name=value`).
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    pub action: Option<String>,
}

pub fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            if flags.action.is_none() {
                flags.action = Some(arg.clone());
            }
            continue;
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (name, None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or(format!("flag -{name} needs a value")),
            }
        };
        match name {
            "namespace" => flags.namespace = value()?,
            "id" => flags.id = value()?,
            "address" => flags.address = value()?,
            "publish-binary" => flags.publish_binary = value()?,
            "bundle" => flags.bundle = value()?,
            // Accepted for compatibility; this shim does not place itself in a cgroup.
            "socket" | "ttrpc-address" => {
                value()?;
            }
            "debug" => flags.debug = inline.as_deref() != Some("false"),
            "v" | "version" => flags.version = true,
            "info" => flags.info = true,
            other => return Err(format!("unknown flag -{other}")),
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_containerd_flags() {
        let f = parse_flags(&s(&[
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ]))
        .unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.id, "c1");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn parses_equals_and_double_dash() {
        let f = parse_flags(&s(&["--namespace=ns", "-id=x", "-bundle", "/b", "delete"])).unwrap();
        assert_eq!(f.namespace, "ns");
        assert_eq!(f.id, "x");
        assert_eq!(f.bundle, "/b");
        assert_eq!(f.action.as_deref(), Some("delete"));
        assert!(parse_flags(&s(&["-bogus"])).is_err());
    }
}
