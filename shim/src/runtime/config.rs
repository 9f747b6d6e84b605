//! Which runtime binary and root the shim uses: from the options containerd sends
//! (`containerd.runc.v1.Options`, or `runtimeoptions.v1.Options` naming a config file),
//! remembered in the bundle so `shim delete` can clean up after a dead shim.

use std::fs;
use std::path::Path;

use runrs_proto::protobuf::well_known_types::any::Any;
use runrs_proto::protobuf::Message;
use runrs_proto::{runc_options, runtime_options};

/// Kept beside config.json in the bundle.
const SAVED: &str = "runrs-shim.json";

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub binary: String,
    pub root: String,
    pub systemd_cgroup: bool,
    /// containerd's namespace: a root given in the options gets it appended, as the Go
    /// shim's, so that two namespaces sharing a runtime config never share a state root.
    namespace: String,
}

impl RuntimeConfig {
    pub fn defaults(namespace: &str) -> Self {
        RuntimeConfig {
            binary: "runrs".into(),
            root: format!("/run/containerd/runrs/{namespace}"),
            systemd_cgroup: false,
            namespace: namespace.to_string(),
        }
    }

    /// Applies the options `Any` (empty or of an unknown type: defaults stay).
    pub fn apply_options(&mut self, any: &Any) -> Result<(), String> {
        let kind = any.type_url.rsplit('/').next().unwrap_or("");
        match kind {
            "containerd.runc.v1.Options" => {
                let o = runc_options::Options::parse_from_bytes(&any.value)
                    .map_err(|e| format!("bad containerd.runc.v1.Options: {e}"))?;
                let root = self.namespaced(&o.root);
                self.set(&o.binary_name, &root, o.systemd_cgroup);
            }
            "runtimeoptions.v1.Options" => {
                let o = runtime_options::Options::parse_from_bytes(&any.value)
                    .map_err(|e| format!("bad runtimeoptions.v1.Options: {e}"))?;
                let body = if !o.config_body.is_empty() {
                    o.config_body
                } else if !o.config_path.is_empty() {
                    fs::read_to_string(&o.config_path)
                        .map_err(|e| format!("reading runtime config {}: {e}", o.config_path))?
                } else {
                    String::new()
                };
                self.apply_config_text(&body);
            }
            _ => {}
        }
        Ok(())
    }

    /// `key = "value"` lines (the TOML subset CRI's runtime config files use).
    fn apply_config_text(&mut self, text: &str) {
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "binary_name" | "BinaryName" => self.set(value, "", self.systemd_cgroup),
                "root" | "Root" => {
                    let root = self.namespaced(value);
                    self.set("", &root, self.systemd_cgroup)
                }
                "systemd_cgroup" | "SystemdCgroup" => self.systemd_cgroup = value == "true",
                _ => {}
            }
        }
    }

    /// `<root>/<namespace>` for a root from the options ("" stays "": the default).
    fn namespaced(&self, root: &str) -> String {
        if root.is_empty() {
            return String::new();
        }
        Path::new(root)
            .join(&self.namespace)
            .to_string_lossy()
            .into_owned()
    }

    fn set(&mut self, binary: &str, root: &str, systemd: bool) {
        if !binary.is_empty() {
            self.binary = binary.to_string();
        }
        if !root.is_empty() {
            self.root = root.to_string();
        }
        self.systemd_cgroup = systemd;
    }

    pub fn save(&self, bundle: &Path) -> Result<(), String> {
        let json = serde_json::json!({
            "binary": self.binary, "root": self.root, "systemd_cgroup": self.systemd_cgroup,
        });
        fs::write(bundle.join(SAVED), json.to_string())
            .map_err(|e| format!("writing {}: {e}", bundle.join(SAVED).display()))
    }

    /// The saved config of this bundle, or the defaults.
    pub fn load(bundle: &Path, namespace: &str) -> Self {
        let mut cfg = Self::defaults(namespace);
        if let Ok(text) = fs::read_to_string(bundle.join(SAVED)) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                let get = |k: &str| v[k].as_str().unwrap_or("").to_string();
                cfg.set(&get("binary"), &get("root"), v["systemd_cgroup"] == true);
            }
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_options_pick_binary_and_root() {
        let o = runc_options::Options {
            binary_name: "runc".into(),
            root: "/tmp/r".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let mut c = RuntimeConfig::defaults("ns");
        c.apply_options(&any).unwrap();
        assert_eq!(c.binary, "runc");
        assert_eq!(c.root, "/tmp/r/ns");
    }

    #[test]
    fn config_body_is_read() {
        let o = runtime_options::Options {
            config_body: "binary_name = \"/usr/sbin/runc\"\nroot = \"/x\"\n".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let mut c = RuntimeConfig::defaults("ns");
        c.apply_options(&any).unwrap();
        assert_eq!(c.binary, "/usr/sbin/runc");
        assert_eq!(c.root, "/x/ns");
        assert_eq!(RuntimeConfig::defaults("k").root, "/run/containerd/runrs/k");
    }
}
