//! Kubernetes through containerd's CRI plugin: a private containerd 1.6 (its own mount and
//! network namespace, CNI bridge + host-local) driven by a Rust CRI v1 client the way the
//! kubelet drives it. Every test runs against handler `runrs` (containerd-shim-runrs-v2
//! with runrs) and handler `runc` (Debian's Go shim with runc, the reference); both must
//! pass, and a failure names the handler. See docs/kubernetes.md.

mod cri {
    pub mod client;
    pub mod images;
    pub mod node;
    pub mod pod;

    pub mod bad_input;
    pub mod bench;
    pub mod exec;
    pub mod lifecycle;
    pub mod logs;
    pub mod pods;
    pub mod security;
    pub mod stream;
}

use cri::pod::each_handler;

#[test]
fn pod_gets_an_ip_hostname_and_dns_and_reaches_its_gateway() {
    each_handler("net", cri::pods::network);
}

#[test]
fn containers_share_the_pods_namespaces_and_one_shim() {
    each_handler("share", cri::pods::shared_namespaces);
}

#[test]
fn container_status_gives_exit_codes_and_reasons() {
    each_handler("reasons", cri::pods::exit_reasons);
}

#[test]
fn systemd_cgroup_driver_is_honoured_or_refused_naming_systemd() {
    each_handler("systemd", cri::pods::systemd_driver);
}

#[test]
fn exec_sync_returns_output_exit_code_and_times_out() {
    each_handler("exec", cri::exec::exec_sync);
}

#[test]
fn exec_sync_answers_every_time_under_load() {
    each_handler("execloop", cri::exec::exec_sync_repeated);
}

#[test]
fn exec_sync_right_after_start_and_from_concurrent_clients() {
    each_handler("execfirst", cri::exec::first_exec_and_concurrent);
}

#[test]
fn logs_are_in_cri_format_and_reopen() {
    each_handler("logs", cri::logs::logs);
}

#[test]
fn container_stats_move() {
    each_handler("stats", cri::logs::stats_move);
}

#[test]
fn update_container_resources_reaches_the_cgroup() {
    each_handler("update", cri::logs::update_resources);
}

#[test]
fn stop_container_waits_the_grace_period_then_kills() {
    each_handler("stop", cri::lifecycle::stop_grace_period);
}

#[test]
fn removing_a_pod_leaves_nothing() {
    each_handler("remove", cri::lifecycle::removal_leaves_nothing);
}

#[test]
fn containerd_restart_keeps_states_and_exit_codes() {
    each_handler("restart", cri::lifecycle::containerd_restart);
}

#[test]
fn security_context_users_and_readonly_rootfs() {
    each_handler("users", cri::security::users_and_readonly_rootfs);
}

#[test]
fn security_context_capabilities_no_new_privs_seccomp() {
    each_handler("caps", cri::security::capabilities_nnp_seccomp);
}

#[test]
fn privileged_container_gets_all_devices_and_capabilities() {
    each_handler("priv", cri::security::privileged);
}

#[test]
fn bad_input_is_refused_naming_the_cause_and_leaves_nothing() {
    each_handler("bad", cri::bad_input::bad_input);
}

#[test]
fn streaming_exec_with_stdin_tty_and_resize() {
    each_handler("stream", cri::stream::exec);
}

#[test]
fn streaming_attach_to_a_containers_stdin() {
    each_handler("attach", cri::stream::attach);
}

#[test]
fn port_forward_into_the_pod() {
    each_handler("portfwd", cri::stream::port_forward);
}

/// Not a test: `hack/bench-cri` runs it (with the release build) for docs/benchmarks.md.
#[test]
#[ignore = "a benchmark: run by hack/bench-cri"]
fn cri_benchmark() {
    cri::bench::run();
}
