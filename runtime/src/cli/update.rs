//! `runrs update`'s flags, and the [`UpdateOptions`] they make.

use super::parse::{self, Flag, Kind, Matches};
use crate::resources::UpdateOptions;

/// runc's `update` flags, in its order; memory sizes take units (`128m`, `1g`) as runc's do.
pub(super) const UPDATE_FLAGS: &[Flag] = &[
    Flag::new(
        &["resources", "r"],
        Kind::Str,
        "path to the file containing the resources to update or '-' to read from the standard input",
    ),
    Flag::new(
        &["blkio-weight"],
        Kind::Int64,
        "Specifies per cgroup weight, range is from 10 to 1000",
    )
    .default("0"),
    Flag::new(
        &["cpu-period"],
        Kind::Str,
        "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    Flag::new(
        &["cpu-quota"],
        Kind::Str,
        "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    Flag::new(
        &["cpu-burst"],
        Kind::Str,
        "CPU CFS hardcap burst limit (in usecs). Allowed accumulated cpu time additionally for burst a given period",
    ),
    Flag::new(
        &["cpu-share", "cpu-shares"],
        Kind::Str,
        "CPU shares (relative weight vs. other containers)",
    ),
    Flag::new(
        &["cpu-rt-period"],
        Kind::Str,
        "CPU realtime period to be used for hardcapping (in usecs). 0 to use system default",
    ),
    Flag::new(
        &["cpu-rt-runtime"],
        Kind::Str,
        "CPU realtime hardcap limit (in usecs). Allowed cpu time in a given period",
    ),
    Flag::new(&["cpuset-cpus"], Kind::Str, "CPU(s) to use"),
    Flag::new(&["cpuset-mems"], Kind::Str, "Memory node(s) to use"),
    Flag::new(
        &["kernel-memory"],
        Kind::Str,
        "Kernel memory limit (in bytes) (deprecated: ignored)",
    ),
    Flag::new(
        &["kernel-memory-tcp"],
        Kind::Str,
        "Kernel memory limit (in bytes) for tcp buffer",
    ),
    Flag::new(&["memory"], Kind::Str, "Memory limit (in bytes)"),
    Flag::new(
        &["memory-reservation"],
        Kind::Str,
        "Memory reservation or soft_limit (in bytes)",
    ),
    Flag::new(
        &["memory-swap"],
        Kind::Str,
        "Total memory usage (memory + swap); set '-1' to enable unlimited swap",
    ),
    Flag::new(
        &["pids-limit"],
        Kind::Int64,
        "Maximum number of pids allowed in the container",
    )
    .default("0"),
    Flag::new(
        &["l3-cache-schema"],
        Kind::Str,
        "The string of Intel RDT/CAT L3 cache schema",
    ),
    Flag::new(
        &["mem-bw-schema"],
        Kind::Str,
        "The string of Intel RDT/MBA memory bandwidth schema",
    ),
];

/// From the parsed [`UPDATE_FLAGS`] as runc reads them: empty strings and a zero blkio
/// weight leave a value unchanged; the CPU numbers are checked here, in runc's order and
/// words (`invalid value for cpu-period: strconv.ParseUint: ...`).
pub(super) fn options(m: &Matches) -> Result<UpdateOptions, String> {
    let uint = |name| number(m, name, "ParseUint", parse::parse_uint);
    let int = |name| number(m, name, "ParseInt", parse::parse_int);
    let cpu_period = uint("cpu-period")?;
    let cpu_rt_period = uint("cpu-rt-period")?;
    let cpu_share = uint("cpu-share")?;
    let cpu_burst = uint("cpu-burst")?;
    let cpu_quota = int("cpu-quota")?;
    let cpu_rt_runtime = int("cpu-rt-runtime")?;
    Ok(UpdateOptions {
        resources: m.string("resources"),
        // Go's uint16(int).
        blkio_weight: m.int("blkio-weight").filter(|&w| w != 0).map(|w| w as u16),
        cpu_period,
        cpu_quota,
        cpu_burst,
        cpu_rt_period,
        cpu_rt_runtime,
        cpu_share,
        cpuset_cpus: m.string("cpuset-cpus"),
        cpuset_mems: m.string("cpuset-mems"),
        kernel_memory: m.string("kernel-memory"),
        kernel_memory_tcp: m.string("kernel-memory-tcp"),
        memory: m.string("memory"),
        memory_reservation: m.string("memory-reservation"),
        memory_swap: m.string("memory-swap"),
        pids_limit: m.int("pids-limit"),
        l3_cache_schema: m.string("l3-cache-schema"),
        mem_bw_schema: m.string("mem-bw-schema"),
        id: m.args(),
    })
}

type Parse<T> = fn(&str, u32, u32) -> Result<T, parse::NumError>;

/// A string flag holding a decimal number, parsed with Go's strconv (`func` names it in
/// the error); empty counts as not given.
fn number<T>(m: &Matches, name: &str, func: &str, parse: Parse<T>) -> Result<Option<T>, String> {
    m.string(name)
        .map(|v| {
            parse(&v, 10, 64).map_err(|e| {
                let e = parse::strconv_error(func, &v, e);
                format!("invalid value for {name}: {e}")
            })
        })
        .transpose()
}
