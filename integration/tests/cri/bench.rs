//! `hack/bench-cri`'s measurements (an ignored test, not a timed assertion): pod start and
//! removal through the CRI on each handler, alternating, and the shims' memory for ten
//! pods of two containers. Prints a markdown table between `--- bench-cri ---` lines.

use super::node::Node;
use super::pod::*;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Median and quartiles in milliseconds.
fn quartiles(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.25), at(0.75))
}

/// One pod with one container until it runs, then its removal: (up, down).
fn pod_cycle(node: &Node, handler: &str, n: usize) -> (Duration, Duration) {
    let t = Instant::now();
    let pod = node.run_pod(&format!("b{n}"), handler);
    let c = pod.start_sh("app", "sleep 1000");
    poll("running", Duration::from_secs(30), || {
        (pod.status(&c).0.state == RUNNING).then_some(())
    });
    let up = t.elapsed();
    let t = Instant::now();
    pod.remove();
    (up, t.elapsed())
}

/// (Rss, Pss) in KB summed over `pids`, from smaps_rollup.
fn memory(pids: &[i32]) -> (u64, u64) {
    let field = |text: &str, key: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    pids.iter().fold((0, 0), |(r, p), pid| {
        let t = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        (r + field(&t, "Rss:"), p + field(&t, "Pss:"))
    })
}

/// Ten pods of two containers each on `handler`: (shims, Rss KB, Pss KB).
fn ten_pods(node: &Node, handler: &str) -> (usize, u64, u64) {
    let pods: Vec<Pod> = (0..10)
        .map(|i| node.run_pod(&format!("m{i}"), handler))
        .collect();
    for pod in &pods {
        pod.start_sh("a", "sleep 1000");
        pod.start_sh("b", "sleep 1000");
    }
    std::thread::sleep(Duration::from_secs(1));
    let shims: Vec<i32> = pods.iter().flat_map(|p| p.shims()).collect();
    let (rss, pss) = memory(&shims);
    for pod in pods {
        pod.remove();
    }
    (shims.len(), rss, pss)
}

pub fn run() {
    let rounds = env_usize("BENCH_CRI_ROUNDS", 20);
    let node = Node::start("bench");
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); 2];
    for n in 0..rounds + 2 {
        // Alternate which handler goes first; the first two rounds warm up.
        for k in 0..2 {
            let h = (n + k) % 2;
            let (up, down) = pod_cycle(&node, HANDLERS[h], n);
            if n >= 2 {
                times[h].0.push(up);
                times[h].1.push(down);
            }
        }
    }
    let mem: Vec<_> = HANDLERS.iter().map(|h| ten_pods(&node, h)).collect();
    let q: Vec<_> = times
        .iter_mut()
        .map(|(up, down)| (quartiles(up), quartiles(down)))
        .collect();
    let cell = |x: (f64, f64, f64)| format!("{:.0} [{:.0}–{:.0}]", x.0, x.1, x.2);
    println!("--- bench-cri ---");
    println!("| metric | shim-runrs + runrs | Go shim + runc | ratio |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, a: (f64, f64, f64), b: (f64, f64, f64)| {
        println!(
            "| {name} (ms, median [p25–p75], {rounds} each) | {} | {} | {:.2} |",
            cell(a),
            cell(b),
            a.0 / b.0
        );
    };
    row(
        "RunPodSandbox + CreateContainer + StartContainer until running",
        q[0].0,
        q[1].0,
    );
    row("StopPodSandbox + RemovePodSandbox", q[0].1, q[1].1);
    let (a, b) = (mem[0], mem[1]);
    println!(
        "| shims for 10 pods of 2 containers | {} | {} | |",
        a.0, b.0
    );
    println!(
        "| shim RSS total, 10 pods (KB) | {} | {} | {:.2} |",
        a.1,
        b.1,
        a.1 as f64 / b.1 as f64
    );
    println!(
        "| shim PSS total, 10 pods (KB) | {} | {} | {:.2} |",
        a.2,
        b.2,
        a.2 as f64 / b.2 as f64
    );
    println!("--- bench-cri ---");
}
