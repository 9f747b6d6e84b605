//! systemd's manager on the system bus, or the user's own on the user's bus (rootless): the
//! calls the driver makes. One connection per command, opened only when the driver is used
//! (zbus: pure Rust, so the static build stays static; no libdbus, no libsystemd).

use super::properties::Property;
use super::{Manager, Unit};
use anyhow::{anyhow, bail, Result};
use std::time::Duration;
use zbus::blocking::{Connection, MessageIterator};
use zbus::zvariant::{DynamicType, OwnedObjectPath, Value};

/// How long systemd may take to run a unit's start or stop job (runc waits 30 s).
const JOB_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to systemd's manager. Every call is one method call on the bus, as few as
/// runc makes or fewer: no proxy (it would look up the name's owner and track it), no
/// Subscribe (systemd sends a job's JobRemoved to the client that queued it anyway).
pub struct Systemd {
    conn: Connection,
}

impl Systemd {
    pub fn connect(manager: Manager) -> Result<Systemd> {
        let conn = match manager {
            Manager::System => Connection::system().map_err(|e| {
                anyhow!("--systemd-cgroup: cannot reach systemd on the system bus (/run/dbus/system_bus_socket): {e}")
            })?,
            Manager::User => connect_user()?,
        };
        Ok(Systemd { conn })
    }

    /// The manager's own cgroup (its `ControlGroup` property): where a user's slices are.
    pub fn manager_cgroup(&self) -> Result<String> {
        let reply = self
            .conn
            .call_method(
                Some("org.freedesktop.systemd1"),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Manager", "ControlGroup"),
            )
            .map_err(|e| method_error("Get", "ControlGroup", e))?;
        let value: zbus::zvariant::OwnedValue = reply.body().deserialize()?;
        let cgroup = String::try_from(value)
            .map_err(|e| anyhow!("systemd: the manager's ControlGroup is not a string: {e}"))?;
        if cgroup.is_empty() || cgroup == "/" {
            bail!("systemd on the user's bus reports no cgroup of its own (ControlGroup {cgroup:?}): is it the system's manager?");
        }
        Ok(cgroup)
    }

    /// One call of a method of `org.freedesktop.systemd1.Manager`.
    fn call<B, R>(&self, method: &str, unit: &str, body: &B) -> Result<R>
    where
        B: serde::Serialize + DynamicType,
        R: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
    {
        let reply = self
            .conn
            .call_method(
                Some("org.freedesktop.systemd1"),
                "/org/freedesktop/systemd1",
                Some("org.freedesktop.systemd1.Manager"),
                method,
                body,
            )
            .map_err(|e| method_error(method, unit, e))?;
        Ok(reply.body().deserialize()?)
    }

    /// Make the scope with `pid` in it and wait for its start job. A job that fails once
    /// queued leaves a failed unit: it is stopped and reset before the error returns.
    pub fn start_scope(&self, unit: &Unit, pid: i32, mut props: Vec<Property>) -> Result<()> {
        let mut all: Vec<Property> = vec![
            (
                "Description".into(),
                Value::from(format!("runrs container {}", unit.name)),
            ),
            ("Slice".into(), Value::from(unit.slice.clone())),
            ("Delegate".into(), Value::from(true)),
            ("PIDs".into(), Value::from(vec![pid as u32])),
            ("DefaultDependencies".into(), Value::from(false)),
            ("MemoryAccounting".into(), Value::from(true)),
            ("CPUAccounting".into(), Value::from(true)),
            ("IOAccounting".into(), Value::from(true)),
            ("TasksAccounting".into(), Value::from(true)),
        ];
        all.append(&mut props);
        let aux: Vec<(&str, Vec<Property>)> = Vec::new();
        let job = self.queue_job(
            "StartTransientUnit",
            &unit.name,
            &(&unit.name, "replace", all, aux),
        )?;
        job.wait().inspect_err(|_| {
            let _ = self.stop(&unit.name);
        })
    }

    /// Stop the unit, then forget it if it failed. A unit that is gone already is fine.
    pub fn stop(&self, unit: &str) -> Result<()> {
        match self.queue_job("StopUnit", unit, &(unit, "replace")) {
            Err(e) if is_no_such_unit(&e) => {}
            r => r?.wait()?,
        }
        match self.call::<_, ()>("ResetFailedUnit", unit, &(unit,)) {
            Err(e) if is_no_such_unit(&e) => Ok(()),
            r => r,
        }
    }

    /// Change a running unit's properties (`update`), at runtime only, as runc does.
    pub fn set_properties(&self, unit: &str, props: Vec<Property>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        self.call("SetUnitProperties", unit, &(unit, true, props))
    }

    /// Call a method that queues a job; the job's end comes as a JobRemoved signal.
    fn queue_job<B>(&self, method: &str, unit: &str, body: &B) -> Result<Job>
    where
        B: serde::Serialize + DynamicType,
    {
        // Listen before the call: the job may end before its reply reaches us. Only systemd
        // sends this signal from this path and interface.
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .path("/org/freedesktop/systemd1")?
            .interface("org.freedesktop.systemd1.Manager")?
            .member("JobRemoved")?
            .build();
        let signals = MessageIterator::for_match_rule(rule, &self.conn, Some(64))?;
        let path: OwnedObjectPath = self.call(method, unit, body)?;
        Ok(Job {
            signals,
            path,
            what: format!("{method} {unit}"),
        })
    }
}

/// A queued job of systemd's.
struct Job {
    signals: MessageIterator,
    path: OwnedObjectPath,
    what: String,
}

impl Job {
    /// Wait for the job's JobRemoved; its result must be "done".
    fn wait(self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let Job {
            signals,
            path,
            what,
        } = self;
        // The iterator blocks without a timeout: it waits on a thread of its own.
        std::thread::spawn(move || {
            for s in signals.flatten() {
                let body = s.body();
                let Ok((_, job, _, result)) =
                    body.deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                if job == path {
                    let _ = tx.send(result);
                    return;
                }
            }
        });
        let result = rx
            .recv_timeout(JOB_TIMEOUT)
            .map_err(|_| anyhow!("systemd did not finish {what} within {JOB_TIMEOUT:?}"))?;
        if result != "done" {
            let unit = what.rsplit(' ').next().unwrap_or_default();
            bail!("systemd: {what}: the job ended with result {result:?} (see `journalctl -u {unit}`)");
        }
        Ok(())
    }
}

/// The user's bus (`rootless::user_bus_address`, runc's words when there is none). The
/// EXTERNAL authentication names the user the bus sees: in a user namespace (rootless Podman)
/// that is the owner of the session, not uid 0.
fn connect_user() -> Result<Connection> {
    let address = crate::rootless::user_bus_address().ok_or_else(|| anyhow!("could not detect DBUS_SESSION_BUS_ADDRESS from the environment; make sure you have installed the dbus-user-session or dbus-daemon package; note you may need to re-login"))?;
    let uid = crate::rootless::session_owner().unwrap_or_else(crate::rootless::euid);
    zbus::blocking::connection::Builder::address(address.as_str())
        .and_then(|b| b.user_id(uid).build())
        .map_err(|e| {
            anyhow!("--systemd-cgroup: cannot reach the user's systemd on {address} (as uid {uid}; hint: for rootless containers, maybe you need to install dbus-user-session package, see https://github.com/opencontainers/runc/blob/master/docs/cgroup-v2.md): {e}")
        })
}

fn method_error(method: &str, unit: &str, e: zbus::Error) -> anyhow::Error {
    match e {
        zbus::Error::MethodError(name, msg, _) => anyhow!(
            "systemd: {method} {unit}: {name}: {}",
            msg.unwrap_or_default()
        ),
        e => anyhow::Error::new(e).context(format!("systemd: {method} {unit}")),
    }
}

fn is_no_such_unit(e: &anyhow::Error) -> bool {
    let s = e.to_string();
    s.contains("NoSuchUnit") || s.contains("not loaded")
}
