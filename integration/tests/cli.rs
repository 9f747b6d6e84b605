//! Commands that need no container: `--version`, `features`, `spec`.

use runrs_integration::*;
use serde_json::Value;
use std::collections::BTreeSet;

fn names(list: &Value, key: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|v| v[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn version_prints_a_version() {
    let env = TestEnv::new("version");
    let out = env.rt.run(["--version"]);
    out.ok();
    assert_contains(&out.stdout.to_lowercase(), "version");
    assert!(
        out.stdout.chars().any(|c| c.is_ascii_digit()),
        "no version number in {:?}",
        out.stdout
    );
}

#[test]
fn features_prints_oci_features_json() {
    let env = TestEnv::new("features");
    let out = env.rt.run(["features"]);
    out.ok();
    let features = out.json();
    let min = features["ociVersionMin"].as_str().expect("ociVersionMin");
    assert!(min.starts_with("1."), "ociVersionMin {min}");
    assert!(
        features["ociVersionMax"].is_string(),
        "ociVersionMax in {features}"
    );
    let hooks: Vec<&str> = features["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for hook in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(
            hooks.contains(&hook),
            "features.hooks lacks {hook}: {hooks:?}"
        );
    }
    assert!(
        features["mountOptions"].is_array(),
        "mountOptions in {features}"
    );
    assert!(
        features["linux"]["namespaces"].is_array(),
        "linux.namespaces in {features}"
    );
}

#[test]
fn spec_writes_a_default_config_like_runc() {
    let env = TestEnv::new("spec_default");
    let dir = env.path("spec");
    std::fs::create_dir(&dir).unwrap();
    env.rt.cmd(["spec"]).current_dir(&dir).run().ok();
    let text = std::fs::read_to_string(dir.join("config.json")).expect("spec wrote config.json");
    let spec: Value = serde_json::from_str(&text).expect("config.json is JSON");
    assert!(spec["ociVersion"]
        .as_str()
        .unwrap_or_default()
        .starts_with("1."));
    assert_eq!(spec["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(spec["process"]["terminal"], true);
    assert_eq!(spec["process"]["cwd"], "/");
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["root"]["readonly"], true);
    assert_eq!(
        names(&spec["linux"]["namespaces"], "type"),
        ["pid", "network", "ipc", "uts", "mount"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let mounts = names(&spec["mounts"], "destination");
    for m in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(mounts.contains(m), "default mounts lack {m}: {mounts:?}");
    }
    let bounding = spec["process"]["capabilities"]["bounding"].clone();
    assert_eq!(
        bounding,
        serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );
    assert_contains(&spec["linux"]["maskedPaths"].to_string(), "/proc/kcore");
    assert_contains(&spec["linux"]["readonlyPaths"].to_string(), "/proc/sys");
}

#[test]
fn spec_rootless_adds_a_user_namespace_mapping_the_caller() {
    let env = TestEnv::new("spec_rootless");
    let dir = env.path("spec");
    std::fs::create_dir(&dir).unwrap();
    env.rt
        .cmd(["spec", "--rootless"])
        .current_dir(&dir)
        .run()
        .ok();
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let namespaces = names(&spec["linux"]["namespaces"], "type");
    assert!(
        namespaces.contains("user"),
        "no user namespace: {namespaces:?}"
    );
    assert!(
        !namespaces.contains("network"),
        "rootless spec keeps network ns: {namespaces:?}"
    );
    // SAFETY: geteuid/getegid cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    assert_eq!(
        spec["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        spec["linux"]["gidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}])
    );
}

#[test]
fn spec_bundle_flag_writes_into_that_dir_and_refuses_to_overwrite() {
    let env = TestEnv::new("spec_bundle");
    let dir = env.path("elsewhere");
    std::fs::create_dir(&dir).unwrap();
    env.rt.run(["spec", "--bundle", &arg(&dir)]).ok();
    let first = std::fs::read(dir.join("config.json")).expect("spec --bundle wrote config.json");
    serde_json::from_slice::<Value>(&first).expect("JSON");
    // runc: `File config.json exists. Remove it first`, exit 1.
    env.rt
        .run(["spec", "-b", &arg(&dir)])
        .fails_with(&["config.json exists", "remove it first"]);
    assert_eq!(
        std::fs::read(dir.join("config.json")).unwrap(),
        first,
        "config.json was changed"
    );
}

#[test]
fn spec_refuses_to_overwrite_config_in_cwd() {
    let env = TestEnv::new("spec_overwrite");
    let dir = env.path("spec");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("config.json"), "mine").unwrap();
    env.rt
        .cmd(["spec"])
        .current_dir(&dir)
        .run()
        .fails_with(&["config.json exists"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("config.json")).unwrap(),
        "mine"
    );
}
