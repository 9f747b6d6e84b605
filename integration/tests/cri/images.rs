//! The two images the CRI tests use, built here (no registry is reachable): the sandbox
//! image (the static `pause` program of integration/pause/pause.rs) and a busybox-static
//! workload image. Each is an OCI layout made with umoci, tarred, and kept in cargo's
//! per-target temp dir under a name that changes with its content; `ctr images import`
//! then loads it into containerd's `k8s.io` namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const PAUSE: &str = "localhost/runrs-pause:1";
pub const BUSYBOX: &str = "localhost/runrs-busybox:1";
const PAUSE_BIN: &str = env!("RUNRS_PAUSE_BIN");

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// FNV-1a of some bytes: a cache key, not a checksum anyone relies on.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// A root filesystem: the pause program alone, or busybox with its applets and users.
fn make_rootfs(dir: &Path, pause: bool) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    if pause {
        // The image holds nothing else: the program must need no loader or libc.
        let kind = Command::new("file")
            .arg("-L")
            .arg(PAUSE_BIN)
            .output()
            .unwrap();
        let kind = String::from_utf8_lossy(&kind.stdout);
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie linked"),
            "pause is not static: {kind}"
        );
        std::fs::copy(PAUSE_BIN, dir.join("pause")).unwrap();
        return;
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
}

/// The image's tar (an OCI layout), built once per content.
fn build(name: &str, tag_ref: &str, pause: bool) -> PathBuf {
    let key = if pause {
        fnv(&std::fs::read(PAUSE_BIN).unwrap())
    } else {
        fnv(&std::fs::read("/bin/busybox").unwrap())
    };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cri-images");
    std::fs::create_dir_all(&cache).unwrap();
    let tar = cache.join(format!("{name}-{key:016x}.tar"));
    if tar.exists() {
        return tar;
    }
    let work = tempfile::Builder::new()
        .prefix("img-")
        .tempdir_in(&cache)
        .unwrap();
    let w = work.path();
    make_rootfs(&w.join("rootfs"), pause);
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(w.join("rootfs"))
        .arg("-cf")
        .arg(w.join("layer.tar"))
        .arg("."));
    let layout = w.join("layout");
    let image = format!(
        "{}:{}",
        layout.display(),
        tag_ref.rsplit(':').next().unwrap()
    );
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    run(Command::new("umoci")
        .args(["raw", "add-layer", "--image", &image])
        .arg(w.join("layer.tar")));
    let cmd = if pause { "/pause" } else { "/bin/sh" };
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        cmd,
        "--config.env",
        "PATH=/bin",
    ]));
    run(Command::new("umoci").args(["gc", "--layout"]).arg(&layout));
    let part = w.join("image.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&part)
        .arg("."));
    std::fs::rename(&part, &tar).unwrap();
    tar
}

/// Imports both images into containerd's `k8s.io` namespace through `socket`.
pub fn import(socket: &Path) {
    for (name, reference, pause) in [("pause", PAUSE, true), ("busybox", BUSYBOX, false)] {
        let tar = build(name, reference, pause);
        let base = reference.rsplit_once(':').unwrap().0;
        run(Command::new("timeout")
            .args(["60", "ctr", "--address"])
            .arg(socket)
            .args(["-n", "k8s.io", "images", "import", "--base-name", base])
            .arg(&tar));
    }
}
