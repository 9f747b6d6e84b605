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
    // runc adds a cgroup namespace where the host is pure cgroup v2.
    let mut namespaces = vec!["pid", "network", "ipc", "uts", "mount"];
    if runrs_integration::procfs::pure_cgroup_v2() {
        namespaces.push("cgroup");
    }
    assert_eq!(
        names(&spec["linux"]["namespaces"], "type"),
        namespaces.iter().map(|s| s.to_string()).collect()
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

// The command line itself: runc 1.1's (urfave/cli v1 on Go's `flag` package). Each check
// holds for runc and for runrs.

#[track_caller]
fn usage_error(out: &Output, first_line: &str, log_needle: &str) {
    out.code(1);
    assert!(
        out.stdout.starts_with(&format!("{first_line}\n\n")),
        "stdout should start with {first_line:?} and a blank line:\n{}",
        out.stdout
    );
    assert_contains(&out.stdout, "USAGE:");
    assert_contains(&out.stderr, log_needle);
    assert_eq!(
        lines(&out.stderr).len(),
        1,
        "one error line: {:?}",
        out.stderr
    );
}

#[test]
fn no_arguments_prints_the_global_help() {
    let env = TestEnv::new("cli_no_args");
    let out = std::process::Command::new(&env.rt.bin)
        .output()
        .expect("run the runtime");
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "NAME:",
        "USAGE:",
        "COMMANDS:",
        "GLOBAL OPTIONS:",
        "--root value",
    ] {
        assert_contains(&stdout, needle);
    }
    for cmd in [
        "create", "delete", "exec", "kill", "list", "run", "start", "state",
    ] {
        assert_contains(&stdout, &format!("\n   {cmd} "));
    }
    assert!(out.stderr.is_empty(), "stderr: {:?}", out.stderr);
}

#[test]
fn help_in_every_form_goes_to_stdout_with_exit_0() {
    let env = TestEnv::new("cli_help");
    for args in [&["--help"][..], &["-h"], &["-help"], &["help"], &["h"]] {
        let out = env.rt.run(args);
        out.ok();
        assert_contains(&out.stdout, "COMMANDS:");
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
    for args in [
        &["help", "create"][..],
        &["h", "create"],
        &["create", "--help"],
        &["create", "-h"],
        &["create", "some-id", "--help"],
    ] {
        let out = env.rt.run(args);
        out.ok();
        assert_contains(&out.stdout, "create - create a container");
        assert_contains(&out.stdout, "USAGE:");
        assert_contains(&out.stdout, "--bundle value, -b value");
        assert_not_contains(&out.stdout, "COMMANDS:");
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
    let out = env.rt.run(["exec", "--help"]);
    out.ok();
    for flag in [
        "--env value, -e value",
        "--tty, -t",
        "--additional-gids value, -g value",
    ] {
        assert_contains(&out.stdout, flag);
    }
}

#[test]
fn unknown_command_or_help_topic_exits_3() {
    let env = TestEnv::new("cli_unknown_cmd");
    for args in [&["bogus"][..], &["help", "bogus"]] {
        let out = env.rt.run(args);
        out.code(3);
        assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
        assert_contains(&out.stderr, "No help topic for 'bogus'");
    }
}

#[test]
fn unknown_flag_is_incorrect_usage() {
    let env = TestEnv::new("cli_unknown_flag");
    usage_error(
        &env.rt.run(["create", "--bogus", "x"]),
        "Incorrect Usage: flag provided but not defined: -bogus",
        "flag provided but not defined: -bogus",
    );
    // A global flag unknown: the global help, and a '.' instead of ':'.
    let out = env.rt.run(["--bogus", "list"]);
    usage_error(
        &out,
        "Incorrect Usage. flag provided but not defined: -bogus",
        "flag provided but not defined: -bogus",
    );
    assert_contains(&out.stdout, "COMMANDS:");
    // Global flags go before the command only.
    usage_error(
        &env.rt.run(["list", "--debug"]),
        "Incorrect Usage: flag provided but not defined: -debug",
        "flag provided but not defined: -debug",
    );
    // No combined short flags.
    usage_error(
        &env.rt.run(["run", "-dt", "x"]),
        "Incorrect Usage: flag provided but not defined: -dt",
        "flag provided but not defined: -dt",
    );
}

#[test]
fn flag_without_its_value_is_incorrect_usage() {
    let env = TestEnv::new("cli_no_value");
    usage_error(
        &env.rt.run(["create", "-b"]),
        "Incorrect Usage: flag needs an argument: -b",
        "flag needs an argument: -b",
    );
    usage_error(
        &env.rt.run(["list", "--format"]),
        "Incorrect Usage: flag needs an argument: -format",
        "flag needs an argument: -format",
    );
}

#[test]
fn bad_values_name_the_flag() {
    let env = TestEnv::new("cli_bad_value");
    usage_error(
        &env.rt.run(["create", "--preserve-fds", "abc", "x"]),
        "Incorrect Usage: invalid value \"abc\" for flag -preserve-fds: parse error",
        "-preserve-fds",
    );
    usage_error(
        &env.rt.run(["delete", "--force=maybe", "x"]),
        "Incorrect Usage: invalid boolean value \"maybe\" for -force: parse error",
        "-force",
    );
    usage_error(
        &env.rt.run(["events", "--interval", "soon", "x"]),
        "Incorrect Usage: invalid value \"soon\" for flag -interval: parse error",
        "-interval",
    );
}

#[test]
fn wrong_number_of_arguments_is_incorrect_usage() {
    let env = TestEnv::new("cli_nargs");
    // The error is logged (quoted by the log format), the command's help printed.
    for (args, needle) in [
        (&["create"][..], "requires exactly 1 argument(s)"),
        (&["start", "a", "b"], "requires exactly 1 argument(s)"),
        (&["delete"], "requires exactly 1 argument(s)"),
        (&["list", "x"], "requires exactly 0 argument(s)"),
        (&["kill"], "requires a minimum of 1"),
        (&["exec"], "requires a minimum of 1 argument(s)"),
        (&["ps"], "requires a minimum of 1 argument(s)"),
    ] {
        let out = env.rt.run(args);
        usage_error(&out, "Incorrect Usage.", needle);
        assert_contains(&out.stderr, args[0]);
        assert_contains(&out.stdout, &format!("{} - ", args[0]));
    }
    let out = env.rt.run(["kill", "a", "b", "c"]);
    usage_error(&out, "Incorrect Usage.", "requires a m");
}

#[test]
fn flags_take_one_or_two_dashes_and_equals() {
    let env = TestEnv::new("cli_dashes");
    let root = arg(&env.rt.root);
    for args in [
        vec!["-root", &root, "list", "-q"],
        vec!["--root", &root, "list", "--quiet"],
        vec![&format!("--root={root}"), "list", "-quiet=true"],
        vec![&format!("-root={root}"), "list", "--format=json"],
    ] {
        let out = std::process::Command::new(&env.rt.bin)
            .args(&args)
            .output()
            .expect("run the runtime");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn flags_after_the_container_id_and_double_dash() {
    let env = TestEnv::new("cli_reorder");
    let mut b = env.bundle();
    b.set_args(&["sleep", "120"]);
    let id = env.id();
    let _guard = env.guard(&id);
    let bundle = arg(b.path());
    // Flags may follow the id.
    env.rt.run(["create", &id, "--bundle", &bundle]).ok();
    env.rt.run(["start", &id]).ok();
    assert_eq!(env.rt.status(&id).as_deref(), Some("running"));
    // After the id, exec's arguments are the process's, flags and `--` included.
    let out = env.rt.run([
        "exec",
        &id,
        "sh",
        "-c",
        "echo \"$@\"",
        "sh",
        "-t",
        "--help",
        "--",
    ]);
    assert_eq!(out.ok().stdout.trim(), "-t --help --");
    // Repeatable flags add up.
    let out = env.rt.run([
        "exec",
        "-e",
        "A=1",
        "-e",
        "B=2",
        &id,
        "sh",
        "-c",
        "echo $A$B",
    ]);
    assert_eq!(out.ok().stdout.trim(), "12");
    // ps passes what follows the id to ps(1).
    let out = env.rt.run(["ps", "--format", "json", &id]);
    assert!(out.ok().json().is_array(), "{}", out.stdout);
    // `--` ends the flags: `--force` is then a container id.
    env.rt
        .run(["delete", "--", "--force"])
        .fails_with(&["does not exist"]);
    // A running container needs --force, given after the id.
    env.rt.run(["delete", &id]).fails_with(&[]);
    env.rt.run(["delete", &id, "--force"]).ok();
    assert_eq!(env.rt.status(&id), None);
}
