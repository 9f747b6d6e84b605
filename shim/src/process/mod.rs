//! A container's processes as the shim keeps them: each one's pid, stdio and exit
//! (`Proc`), and the reaper that every child's exit goes through.

pub mod reaper;

use std::sync::Arc;
use std::time::SystemTime;

use crate::io::{Io, StdioPaths};

/// One process of a container: its init (exec id "") or an exec'd one.
pub struct Proc {
    /// 0 until the process exists (an exec before Start).
    pub pid: i32,
    /// Reaper mark taken before the process was started.
    pub mark: u64,
    pub stdio: StdioPaths,
    pub io: Option<Arc<Io>>,
    /// Start has completed: from now on its exit is published at once.
    pub started: bool,
    pub exit: Option<(u32, SystemTime)>,
    /// An exec's process spec (JSON) until it is started.
    pub spec: Vec<u8>,
}

impl Proc {
    pub fn new(stdio: StdioPaths) -> Proc {
        Proc {
            pid: 0,
            mark: 0,
            stdio,
            io: None,
            started: false,
            exit: None,
            spec: Vec::new(),
        }
    }
}
