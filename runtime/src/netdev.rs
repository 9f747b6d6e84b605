//! `linux.netDevices` (runtime-spec 1.3, runc 1.4): host network interfaces moved into the
//! container's new network namespace, renamed if asked, with their permanent global
//! addresses and up. When the namespace goes, the kernel moves a physical device back to the
//! host's and destroys a virtual one. Done by the runtime before the init goes on, over
//! rtnetlink: a socket in the host's namespace to take the device down, list its addresses
//! and move it; sockets made inside the container's namespace (entered for the moment of
//! making them) to add the addresses and bring it up.

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_F_NODAD: u8 = 0x02;
const IFA_F_PERMANENT: u8 = 0x80;

/// The devices of `spec` (host name → name in the container), checked as runc checks them.
pub fn check(spec: &Spec, rootless: bool) -> Result<Vec<(String, String)>> {
    let Some(devices) = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) else {
        return Ok(Vec::new());
    };
    if devices.is_empty() {
        return Ok(Vec::new());
    }
    let own_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none())
        });
    if !own_netns {
        bail!("unable to move network devices without a NET namespace");
    }
    if rootless {
        bail!("network devices are not supported for rootless containers");
    }
    let mut out: Vec<(String, String)> = Vec::new();
    // In name order: the same order every time.
    let mut sorted: Vec<_> = devices.iter().collect();
    sorted.sort_by_key(|(name, _)| name.as_str());
    for (name, dev) in sorted {
        let new = dev
            .name()
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or(name.clone());
        for n in [name, &new] {
            if !valid_name(n) {
                bail!("invalid network device name {n:?}");
            }
        }
        if if_index(name).is_none() {
            bail!("link not found for interface {name} on runtime namespace");
        }
        out.push((name.clone(), new));
    }
    Ok(out)
}

/// runc's `devValidName`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() < libc::IFNAMSIZ
        && n != "."
        && n != ".."
        && !n.contains(['/', ':'])
        && !n.contains(char::is_whitespace)
}

fn if_index(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i as i32)
}

/// Move every device into the network namespace of `pid`.
pub fn move_all(devices: &[(String, String)], pid: i32) -> Result<()> {
    if devices.is_empty() {
        return Ok(());
    }
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .context("open the container's network namespace")?;
    let host = Sockets::new()?;
    let inside = Sockets::inside(&netns)?;
    for (name, new) in devices {
        move_one(&host, &inside, &netns, name, new)
            .with_context(|| format!("move netDevice {name} to namespace /proc/{pid}/ns/net"))?;
    }
    Ok(())
}

fn move_one(
    host: &Sockets,
    inside: &Sockets,
    netns: &std::fs::File,
    name: &str,
    new: &str,
) -> Result<()> {
    let index = if_index(name).with_context(|| format!("link not found for interface {name}"))?;
    // The addresses before the link goes down: down drops a device's IPv6 addresses (unless
    // keep_addr_on_down), which runc's order loses.
    let addresses = host.addresses(index).context("fail to get ip addresses")?;
    set_up(&host.inet, name, false).context("fail to set link down")?;
    let mut msg = ifinfomsg(index);
    attr(&mut msg, IFLA_IFNAME, &nul_terminated(new));
    attr(
        &mut msg,
        IFLA_NET_NS_FD,
        &(netns.as_raw_fd() as u32).to_ne_bytes(),
    );
    host.request(RTM_NEWLINK, NLM_F_ACK, &msg)?;
    let new_index = inside.index_of(new)?;
    for a in &addresses {
        inside
            .add_address(new_index, a)
            .with_context(|| format!("fail to set up address {} on {new}", a.show()))?;
    }
    set_up(&inside.inet, new, true).with_context(|| format!("fail to set up interface {new}"))
}

/// An address of a device: family, prefix length and its bytes.
struct Address {
    family: u8,
    prefix: u8,
    /// IFA_F_NODAD, kept: an address set up without duplicate detection stays so.
    nodad: bool,
    bytes: Vec<u8>,
}

impl Address {
    fn show(&self) -> String {
        match self.bytes.len() {
            4 => format!(
                "{}/{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&self.bytes[..]).unwrap_or_default()),
                self.prefix
            ),
            _ => format!(
                "{}/{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&self.bytes[..]).unwrap_or_default()),
                self.prefix
            ),
        }
    }
}

/// An rtnetlink socket and an inet socket for interface ioctls, both of one namespace.
struct Sockets {
    route: OwnedFd,
    inet: OwnedFd,
}

fn socket(domain: libc::c_int, kind: libc::c_int, proto: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: socket with integer arguments; the fd is ours.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("socket");
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Sockets {
    fn new() -> Result<Sockets> {
        Ok(Sockets {
            route: socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?,
            inet: socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?,
        })
    }

    /// Sockets of the namespace `netns`: made after entering it, which we leave right after
    /// (a socket stays in the namespace it was made in).
    fn inside(netns: &std::fs::File) -> Result<Sockets> {
        let ours =
            std::fs::File::open("/proc/self/ns/net").context("open our network namespace")?;
        let enter = |f: &std::fs::File| {
            // SAFETY: setns on a file we hold, restricted to a network namespace.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        enter(netns).context("enter the container's network namespace")?;
        let made = Sockets::new();
        enter(&ours).context("return to our network namespace")?;
        made
    }

    /// The index of `name` in this socket's namespace.
    fn index_of(&self, name: &str) -> Result<i32> {
        // SAFETY: a zeroed ifreq with the name copied in; SIOCGIFINDEX fills the index.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
                *d = s as libc::c_char;
            }
            if libc::ioctl(self.inet.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("link not found for interface {name} on namespace"));
            }
            Ok(req.ifr_ifru.ifru_ifindex)
        }
    }

    /// Send one request and wait for its acknowledgement.
    fn request(&self, kind: u16, flags: u16, payload: &[u8]) -> Result<()> {
        send(&self.route, kind, NLM_F_REQUEST | flags, payload)?;
        let mut buf = vec![0u8; 8192];
        let n = recv(&self.route, &mut buf)?;
        for (kind, body) in messages(&buf[..n]) {
            if kind == NLMSG_ERROR && body.len() >= 4 {
                let code = i32::from_ne_bytes(body[..4].try_into().unwrap_or_default());
                if code != 0 {
                    return Err(std::io::Error::from_raw_os_error(-code).into());
                }
            }
        }
        Ok(())
    }

    /// The permanent addresses of global scope of device `index` (the ones runc moves).
    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        send(
            &self.route,
            RTM_GETADDR,
            NLM_F_REQUEST | NLM_F_DUMP,
            &[0u8; 8],
        )?;
        let mut found = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = recv(&self.route, &mut buf)?;
            for (kind, body) in messages(&buf[..n]) {
                if kind == NLMSG_DONE {
                    return Ok(found);
                }
                if let Some(a) = parse_address(body, index) {
                    found.push(a);
                }
            }
        }
    }

    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        let flags = if a.nodad { IFA_F_NODAD } else { 0 };
        let mut msg = vec![a.family, a.prefix, flags, 0];
        msg.extend_from_slice(&(index as u32).to_ne_bytes());
        if a.family == libc::AF_INET as u8 {
            attr(&mut msg, IFA_LOCAL, &a.bytes);
            if a.prefix < 31 {
                let host_bits = u32::MAX >> a.prefix;
                let ip = u32::from_be_bytes(a.bytes[..4].try_into().unwrap_or_default());
                attr(&mut msg, IFA_BROADCAST, &(ip | host_bits).to_be_bytes());
            }
        }
        attr(&mut msg, IFA_ADDRESS, &a.bytes);
        self.request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &msg)
    }
}

/// An `ifaddrmsg` of device `index` that is permanent and global: its address.
fn parse_address(body: &[u8], index: i32) -> Option<Address> {
    let head = body.get(..8)?;
    let (family, prefix, flags, scope) = (head[0], head[1], head[2], head[3]);
    let ifindex = u32::from_ne_bytes(head[4..8].try_into().ok()?) as i32;
    if ifindex != index || flags & IFA_F_PERMANENT == 0 || scope != 0 {
        return None;
    }
    let mut local = None;
    let mut address = None;
    for (kind, data) in attrs(&body[8..]) {
        match kind {
            IFA_LOCAL => local = Some(data.to_vec()),
            IFA_ADDRESS => address = Some(data.to_vec()),
            _ => {}
        }
    }
    Some(Address {
        family,
        prefix,
        nodad: flags & IFA_F_NODAD != 0,
        bytes: local.or(address)?,
    })
}

fn ifinfomsg(index: i32) -> Vec<u8> {
    let mut m = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&[0u8; 8]); // flags, change
    m
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Append an rtattr.
fn attr(msg: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    msg.extend_from_slice(&(len as u16).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(data);
    msg.resize(align4(msg.len()), 0);
}

/// The rtattrs of a message body.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]);
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

/// The netlink messages of a datagram: (type, body).
fn messages(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 16 {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < 16 || len > b.len() {
            break;
        }
        out.push((kind, &b[16..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

fn send(sock: &OwnedFd, kind: u16, flags: u16, payload: &[u8]) -> Result<()> {
    let mut msg = Vec::with_capacity(16 + payload.len());
    msg.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 8]); // seq, pid
    msg.extend_from_slice(payload);
    // SAFETY: send reads msg.len() bytes from a live buffer.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("send to rtnetlink");
    }
    Ok(())
}

fn recv(sock: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: recv writes at most buf.len() bytes into a live buffer.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error()).context("receive from rtnetlink");
    }
    Ok(n as usize)
}

/// IFF_UP on or off for `name`, through the inet socket of its namespace.
fn set_up(inet: &OwnedFd, name: &str, up: bool) -> Result<()> {
    // SAFETY: a zeroed ifreq with the name copied in, read then written by the ioctls.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        if libc::ioctl(inet.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        let flags = req.ifr_ifru.ifru_flags;
        let iff_up = libc::IFF_UP as libc::c_short;
        req.ifr_ifru.ifru_flags = if up { flags | iff_up } else { flags & !iff_up };
        if libc::ioctl(inet.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_as_runc_checks_them() {
        for good in ["eth0", "dummy-1", "a", "x234567890abcde"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "x234567890abcdef"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn attributes_round_trip() {
        let mut m = Vec::new();
        attr(&mut m, IFLA_IFNAME, &nul_terminated("eth1"));
        attr(&mut m, IFA_LOCAL, &[10, 0, 0, 1]);
        assert_eq!(m.len() % 4, 0);
        let got = attrs(&m);
        assert_eq!(got[0], (IFLA_IFNAME, &b"eth1\0"[..]));
        assert_eq!(got[1], (IFA_LOCAL, &[10u8, 0, 0, 1][..]));
    }
}
