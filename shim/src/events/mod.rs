//! Events to containerd: `Events/Forward` over ttrpc to `TTRPC_ADDRESS`, in order, from a
//! queue that holds them while containerd is away (restart) and retries until delivered.
//! What goes out as `/tasks/oom` is found by the watcher in `oom`; the connection is
//! `forward`'s.

mod forward;
pub mod oom;

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use runrs_proto::events::{Envelope, ForwardRequest};
use runrs_proto::protobuf::well_known_types::any::Any;
use runrs_proto::protobuf::well_known_types::timestamp::Timestamp;
use runrs_proto::protobuf::Message;

use forward::Connection;

/// Events kept while containerd is unreachable; the oldest go first past this.
const MAX_QUEUED: usize = 4096;
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The connection is closed after this long without events: a shim mostly waits,
/// sometimes for days.
const IDLE_DISCONNECT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Queue {
    events: VecDeque<Envelope>,
}

#[derive(Clone)]
pub struct Publisher {
    namespace: String,
    queue: Arc<(Mutex<Queue>, Condvar)>,
}

impl Publisher {
    /// Starts the sender thread for `address` (TTRPC_ADDRESS; empty: events are dropped).
    pub fn start(address: String, namespace: String) -> Result<Publisher, String> {
        let publisher = Publisher {
            namespace,
            queue: Arc::new((Mutex::new(Queue::default()), Condvar::new())),
        };
        let queue = publisher.queue.clone();
        std::thread::Builder::new()
            .name("events".into())
            .stack_size(256 * 1024)
            .spawn(move || send_loop(&address, &queue))
            .map_err(|e| format!("starting events thread: {e}"))?;
        Ok(publisher)
    }

    pub fn publish<M: Message>(&self, topic: &str, event: &M) {
        let Ok(value) = event.write_to_bytes() else {
            return;
        };
        let mut any = Any::new();
        // containerd's typeurl registry knows events by their bare full name. Spelled
        // out: protobuf reflection would build ~100 kB of descriptor tables.
        any.type_url = format!("containerd.events.{}", M::NAME);
        any.value = value;
        let mut env = Envelope::new();
        env.timestamp = Some(timestamp(SystemTime::now())).into();
        env.namespace = self.namespace.clone();
        env.topic = topic.to_string();
        env.event = Some(any).into();
        let (q, cv) = &*self.queue;
        let mut q = q.lock().unwrap();
        if q.events.len() >= MAX_QUEUED {
            q.events.pop_front();
        }
        q.events.push_back(env);
        cv.notify_all();
    }

    /// Gives queued events up to `timeout` to go out (before the shim exits).
    pub fn flush(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (q, cv) = &*self.queue;
        let mut g = q.lock().unwrap();
        while !g.events.is_empty() && Instant::now() < deadline {
            g = cv.wait_timeout(g, Duration::from_millis(50)).unwrap().0;
        }
    }
}

fn send_loop(address: &str, queue: &(Mutex<Queue>, Condvar)) {
    let (q, cv) = queue;
    let mut conn: Option<Connection> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let next = {
            let mut g = q.lock().unwrap();
            while g.events.is_empty() {
                if conn.is_none() {
                    g = cv.wait(g).unwrap();
                    continue;
                }
                let (guard, waited) = cv.wait_timeout(g, IDLE_DISCONNECT).unwrap();
                g = guard;
                if waited.timed_out() && g.events.is_empty() {
                    conn = None;
                }
            }
            g.events.front().cloned().expect("queue is not empty")
        };
        if address.is_empty() {
            q.lock().unwrap().events.pop_front();
            cv.notify_all();
            continue;
        }
        if conn.is_none() {
            conn = Connection::connect(address, FORWARD_TIMEOUT).ok();
        }
        let sent = conn.as_mut().map(|c| {
            let mut req = ForwardRequest::new();
            req.envelope = Some(next).into();
            c.forward(&req)
        });
        match sent {
            Some(Ok(())) => {
                backoff = Duration::from_millis(50);
                q.lock().unwrap().events.pop_front();
                cv.notify_all();
            }
            _ => {
                // containerd is away (or restarting): keep the event, reconnect later.
                conn = None;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

/// The topic containerd expects for each event type.
pub fn topic_of<M: Message>() -> &'static str {
    match M::NAME {
        "TaskCreate" => "/tasks/create",
        "TaskStart" => "/tasks/start",
        "TaskExit" => "/tasks/exit",
        "TaskDelete" => "/tasks/delete",
        "TaskExecAdded" => "/tasks/exec-added",
        "TaskExecStarted" => "/tasks/exec-started",
        "TaskPaused" => "/tasks/paused",
        "TaskResumed" => "/tasks/resumed",
        "TaskOOM" => "/tasks/oom",
        "TaskCheckpointed" => "/tasks/checkpointed",
        _ => "/tasks/unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runrs_proto::protobuf::MessageFull;
    use runrs_proto::task_events::{TaskExit, TaskOOM};

    #[test]
    fn spelled_out_names_match_the_descriptors() {
        assert_eq!(
            format!("containerd.events.{}", TaskOOM::NAME),
            TaskOOM::descriptor().full_name()
        );
        assert_eq!(topic_of::<TaskExit>(), "/tasks/exit");
        assert_eq!(
            runrs_proto::metrics_v1::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v1.Metrics"
        );
        assert_eq!(
            runrs_proto::metrics_v2::Metrics::descriptor().full_name(),
            "io.containerd.cgroups.v2.Metrics"
        );
        assert_eq!(
            runrs_proto::runc_options::ProcessDetails::descriptor().full_name(),
            "containerd.runc.v1.ProcessDetails"
        );
    }
}
