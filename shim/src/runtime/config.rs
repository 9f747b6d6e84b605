//! Which runtime binary and root the shim uses: from the options containerd sends
//! (`containerd.runc.v1.Options`, or `runtimeoptions.v1.Options` naming a config file or
//! carrying its text, as the CRI plugin and Docker send them), remembered in the bundle so
//! `shim delete` can clean up after a dead shim. An option this shim does not carry out is
//! refused by name, never dropped: a container must not run without what it was asked.

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
    /// runc's shim options passed on to `create` and `restore`: `--no-pivot`,
    /// `--no-new-keyring`.
    pub no_pivot: bool,
    pub no_new_keyring: bool,
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
            no_pivot: false,
            no_new_keyring: false,
            namespace: namespace.to_string(),
        }
    }

    /// Applies the options `Any` (an empty one: defaults stay).
    pub fn apply_options(&mut self, any: &Any) -> Result<(), String> {
        let kind = any.type_url.rsplit('/').next().unwrap_or("");
        match kind {
            "containerd.runc.v1.Options" => {
                let o = runc_options::Options::parse_from_bytes(&any.value)
                    .map_err(|e| format!("bad containerd.runc.v1.Options: {e}"))?;
                if let Some((field, _)) = o.special_fields.unknown_fields().iter().next() {
                    return Err(format!(
                        "containerd.runc.v1.Options: field number {field} is not known to containerd-shim-runrs-v2"
                    ));
                }
                refuse_unsupported(&[
                    ("ShimCgroup", !o.shim_cgroup.is_empty()),
                    ("IoUid", o.io_uid != 0),
                    ("IoGid", o.io_gid != 0),
                    ("CriuPath", !o.criu_path.is_empty()),
                    ("CriuImagePath", !o.criu_image_path.is_empty()),
                    ("CriuWorkPath", !o.criu_work_path.is_empty()),
                ])?;
                let root = self.namespaced(&o.root);
                self.set(&o.binary_name, &root, o.systemd_cgroup);
                self.no_pivot = o.no_pivot_root;
                self.no_new_keyring = o.no_new_keyring;
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
                self.apply_config_text(&body)?;
            }
            "" if any.value.is_empty() => {}
            other => {
                return Err(format!(
                    "runtime options of type {other:?} are not supported by containerd-shim-runrs-v2 (it takes containerd.runc.v1.Options or runtimeoptions.v1.Options)"
                ))
            }
        }
        Ok(())
    }

    /// `key = value` lines (the TOML subset CRI's runtime options and config files use):
    /// runc's option names, in CRI's (`SystemdCgroup`) or the proto's (`systemd_cgroup`)
    /// spelling. runc's options this shim does not carry out, and unknown keys, are refused.
    fn apply_config_text(&mut self, text: &str) -> Result<(), String> {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("runtime options: {line:?} is not `key = value`"));
            };
            let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
            let set = !matches!(value, "" | "0" | "false");
            match key.trim().replace('_', "").to_ascii_lowercase().as_str() {
                "binaryname" => self.set(value, "", self.systemd_cgroup),
                "root" => {
                    let root = self.namespaced(value);
                    self.set("", &root, self.systemd_cgroup)
                }
                "systemdcgroup" => self.systemd_cgroup = value == "true",
                "nopivotroot" => self.no_pivot = value == "true",
                "nonewkeyring" => self.no_new_keyring = value == "true",
                // runtimeoptions.v1.Options's own field, in the text CRI passes whole.
                "typeurl" => {}
                "shimcgroup" | "iouid" | "iogid" | "criupath" | "criuimagepath"
                | "criuworkpath" => refuse_unsupported(&[(key.trim(), set)])?,
                _ => {
                    return Err(format!(
                        "unknown runtime option {:?} (containerd-shim-runrs-v2 takes BinaryName, Root, SystemdCgroup, NoPivotRoot, NoNewKeyring)",
                        key.trim()
                    ))
                }
            }
        }
        Ok(())
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

    /// Under Docker with its systemd cgroup driver (the default on a systemd host with cgroup
    /// v2), `cgroupsPath` is `slice:prefix:name` but Docker sends no `SystemdCgroup` to a shim
    /// other than runc's: the systemd form asks for the systemd driver.
    pub fn follow_cgroups_path(&mut self, cgroups_path: Option<&str>) {
        if cgroups_path.is_some_and(runrs::cgroups::systemd::is_systemd_form) {
            self.systemd_cgroup = true;
        }
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

/// runc's shim options this shim does not carry out, refused by name when set.
fn refuse_unsupported(options: &[(&str, bool)]) -> Result<(), String> {
    match options.iter().find(|(_, set)| *set) {
        Some((name, _)) => Err(format!(
            "runtime option {name} is not supported by containerd-shim-runrs-v2"
        )),
        None => Ok(()),
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

#[cfg(test)]
mod refusals {
    use super::*;

    fn body(text: &str) -> Any {
        let o = runtime_options::Options {
            config_body: text.into(),
            ..Default::default()
        };
        Any {
            type_url: "runtimeoptions.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn cri_options_in_cris_spelling_are_read_and_defaults_pass() {
        // What `containerd config default` writes for runc: every option at its default.
        let mut c = RuntimeConfig::defaults("k8s.io");
        let text = "BinaryName = ''\nCriuImagePath = ''\nCriuWorkPath = ''\nIoGid = 0\nIoUid = 0\n\
                    NoNewKeyring = false\nNoPivotRoot = true\nRoot = ''\nShimCgroup = ''\nSystemdCgroup = true\n";
        c.apply_options(&body(text)).unwrap();
        assert!(c.systemd_cgroup && c.no_pivot && !c.no_new_keyring);
        assert_eq!(c.binary, "runrs");
    }

    #[test]
    fn what_the_shim_cannot_do_is_refused_by_name() {
        let mut c = RuntimeConfig::defaults("ns");
        let e = c
            .apply_options(&body("ShimCgroup = \"/pods\"\n"))
            .unwrap_err();
        assert_eq!(
            e,
            "runtime option ShimCgroup is not supported by containerd-shim-runrs-v2"
        );
        let e = c
            .apply_options(&body("SystemdCgroups = true\n"))
            .unwrap_err();
        assert!(
            e.starts_with("unknown runtime option \"SystemdCgroups\""),
            "{e}"
        );
        let o = runc_options::Options {
            io_uid: 1000,
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: o.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let e = c.apply_options(&any).unwrap_err();
        assert!(e.contains("IoUid"), "{e}");
        // A field a newer containerd added: field 99, varint 1.
        let any = Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: vec![0x98, 0x06, 0x01],
            ..Default::default()
        };
        let e = c.apply_options(&any).unwrap_err();
        assert!(e.contains("field number 99"), "{e}");
        let any = Any {
            type_url: "io.containerd.runsc.v1.options".into(),
            value: vec![1],
            ..Default::default()
        };
        let e = c.apply_options(&any).unwrap_err();
        assert!(e.contains("io.containerd.runsc.v1.options"), "{e}");
    }

    #[test]
    fn a_systemd_form_cgroups_path_asks_for_the_systemd_driver() {
        let mut c = RuntimeConfig::defaults("moby");
        c.follow_cgroups_path(Some("/docker/abc"));
        assert!(!c.systemd_cgroup);
        c.follow_cgroups_path(Some("system.slice:docker:abc"));
        assert!(c.systemd_cgroup);
    }
}
