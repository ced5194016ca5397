//! A network namespace private to one test, joined to the root namespace by a veth pair: what
//! the cluster tests put each `plexer serve` node in, so that nodes are told apart by address
//! and a node can lose its network without the others noticing.
//!
//! [`Netns::create`] makes the namespace `plexer-test-PID-N` (the test process's pid and a
//! counter, so parallel test processes never pick the same name), brings its loopback up, and
//! links it to the root namespace with a veth pair: `pxtPID-N` in the root namespace (the
//! host side), `eth0` inside. The pair gets a /30 of its own: the host side `.1`, the inside
//! `.2`. The namespace has no default route, so what runs in it reaches only its own /30 (the
//! root namespace's end of the pair, where the test's PostgreSQL listens) and its own
//! loopback; the root namespace reaches the inside address through the pair's route. No
//! traffic leaves for any other address.
//!
//! The /30 is taken from [`POOLS`] (10.213.0.0/16, then 172.31.213.0/24): the first block, from
//! a start derived from the pid, that overlaps no IPv4 address or route the machine has
//! (`ip -4 addr`, `ip -4 route show table all`). Other tests' pairs are in that list too,
//! since their host side lives in the root namespace; a lock file held from the choice until
//! the host side has its address makes the check and the claim one step across processes.
//!
//! Dropping the guard (also while the test panics) kills whatever still runs inside, deletes
//! the host side of the pair (which takes the inside end with it) and the namespace.
//! Creating namespaces needs root (CAP_NET_ADMIN), as `make test` runs on CI.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use crate::{Running, run, tools};

/// Where the /30s come from, in order: private ranges that machines rarely route.
pub const POOLS: [Subnet; 2] = [
    Subnet::new(Ipv4Addr::new(10, 213, 0, 0), 16),
    Subnet::new(Ipv4Addr::new(172, 31, 213, 0), 24),
];

/// The prefix length of one namespace's link: two usable addresses, host side and inside.
const LINK_PREFIX: u8 = 30;

/// Serialises the choice of a /30 with its claim, across all test processes of the machine
/// (whatever their `$TMPDIR`): in /run/lock, or /tmp where there is none.
fn lock_file() -> &'static Path {
    if Path::new("/run/lock").is_dir() {
        Path::new("/run/lock/plexer-tests-netns.lock")
    } else {
        Path::new("/tmp/plexer-tests-netns.lock")
    }
}

/// The name of the pair's end inside the namespace.
const INSIDE_DEVICE: &str = "eth0";

/// Linux's IFNAMSIZ less the NUL: the longest interface name.
const MAX_DEVICE_NAME: usize = 15;

/// How long one `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// An IPv4 network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    /// The network of `addr`/`prefix` (host bits cleared).
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        let mask = Self::mask(prefix);
        Self {
            network: Ipv4Addr::from_bits(addr.to_bits() & mask),
            prefix,
        }
    }

    const fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix as u32)
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The `n`th address of the network (0 is the network address itself).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.network.to_bits() + n)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let shorter = self.prefix.min(other.prefix);
        Self::new(self.network, shorter) == Self::new(other.network, shorter)
    }

    /// The `index`th block of `prefix` inside this network.
    fn block(&self, index: u32, prefix: u8) -> Subnet {
        let size = 1u32 << (32 - prefix);
        Self::new(
            Ipv4Addr::from_bits(self.network.to_bits() + index * size),
            prefix,
        )
    }

    /// How many blocks of `prefix` the network holds.
    fn blocks(&self, prefix: u8) -> u32 {
        1u32 << (prefix - self.prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `a.b.c.d/n` or a bare `a.b.c.d` (a /32), as `ip` prints them.
fn parse_subnet(text: &str) -> Option<Subnet> {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, "32"));
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some(Subnet::new(addr.parse().ok()?, prefix))
}

/// Every IPv4 network the machine's root namespace has an address in or a route to, the
/// default route left out (it overlaps everything and is no collision: a more specific route
/// wins).
fn taken_subnets() -> Vec<Subnet> {
    let ip = tools::require("ip", "iproute2");
    let mut taken = Vec::new();
    for args in [
        &["-4", "-o", "addr", "show"][..],
        &["-4", "route", "show", "table", "all"][..],
    ] {
        let out = run(Command::new(&ip).args(args), b"", IP_TIMEOUT);
        out.assert_success();
        // The first word that reads as a network: `ip route` lines may start with a type
        // (`local`, `broadcast`), `ip addr` lines with the device and `inet`.
        taken.extend(
            out.stdout_text()
                .lines()
                .filter_map(|line| line.split_whitespace().find_map(parse_subnet))
                .filter(|subnet| subnet.prefix > 0),
        );
    }
    taken
}

/// The first /30 of [`POOLS`], scanned from a start that `seed` picks, that overlaps nothing in
/// `taken`.
fn free_link(taken: &[Subnet], seed: u32) -> Option<Subnet> {
    POOLS.iter().find_map(|pool| {
        let blocks = pool.blocks(LINK_PREFIX);
        (0..blocks)
            .map(|i| pool.block((seed.wrapping_add(i)) % blocks, LINK_PREFIX))
            .find(|link| !taken.iter().any(|t| t.overlaps(link)))
    })
}

/// A network namespace with a veth pair to the root namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
    host_device: String,
    link: Subnet,
}

impl Netns {
    /// Creates the namespace and its link; panics (after undoing what was done) if `ip` fails.
    pub fn create() -> Self {
        static CREATED: AtomicUsize = AtomicUsize::new(0);
        assert!(
            nix::unistd::geteuid().is_root(),
            "network namespaces need root (CAP_NET_ADMIN): run the cluster tests as root"
        );
        let pid = std::process::id();
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let host_device = format!("pxt{pid}-{n}");
        assert!(
            host_device.len() <= MAX_DEVICE_NAME,
            "{host_device:?} is too long for an interface name"
        );

        let lock_path = lock_file();
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .unwrap_or_else(|err| panic!("open {}: {err}", lock_path.display()));
        let claim = Flock::lock(lock, FlockArg::LockExclusive)
            .unwrap_or_else(|(_, err)| panic!("lock {}: {err}", lock_path.display()));
        let seed = pid.wrapping_mul(31).wrapping_add(n as u32);
        let link = free_link(&taken_subnets(), seed).unwrap_or_else(|| {
            panic!("no /30 in {POOLS:?} is free of the machine's addresses and routes")
        });
        // The guard exists from here on, so that a failing step below undoes the ones before.
        let netns = Self {
            name: format!("plexer-test-{pid}-{n}"),
            host_device,
            link,
        };
        netns.ip(&["netns", "add", &netns.name]);
        netns.ip(&["-n", &netns.name, "link", "set", "lo", "up"]);
        netns.ip(&[
            "link",
            "add",
            &netns.host_device,
            "type",
            "veth",
            "peer",
            "name",
            INSIDE_DEVICE,
            "netns",
            &netns.name,
        ]);
        let host = format!("{}/{LINK_PREFIX}", netns.host());
        netns.ip(&["addr", "add", &host, "dev", &netns.host_device]);
        // Claimed: the address is in `ip addr` for the next process that takes the lock.
        drop(claim);
        netns.ip(&["link", "set", &netns.host_device, "up"]);
        let inside = format!("{}/{LINK_PREFIX}", netns.inside());
        netns.ip(&[
            "-n",
            &netns.name,
            "addr",
            "add",
            &inside,
            "dev",
            INSIDE_DEVICE,
        ]);
        netns.ip(&["-n", &netns.name, "link", "set", INSIDE_DEVICE, "up"]);
        netns
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The /30 of the link.
    pub fn link(&self) -> Subnet {
        self.link
    }

    /// The root namespace's end of the link: what processes inside reach the root on.
    pub fn host(&self) -> Ipv4Addr {
        self.link.host(1)
    }

    /// The namespace's end of the link: what the root namespace reaches processes inside on.
    pub fn inside(&self) -> Ipv4Addr {
        self.link.host(2)
    }

    /// The host side's interface name in the root namespace.
    pub fn host_device(&self) -> &str {
        &self.host_device
    }

    /// `program` to be run inside the namespace (by `ip netns exec`, which execs it in place:
    /// the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(tools::require("ip", "iproute2"));
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `command` (its program, arguments, environment changes and directory) to be run inside
    /// the namespace instead. Its stdio settings are not carried over: set them on the result.
    pub fn wrap(&self, command: &Command) -> Command {
        let mut inside = self.command(command.get_program());
        inside.args(command.get_args());
        for (name, value) in command.get_envs() {
            match value {
                Some(value) => inside.env(name, value),
                None => inside.env_remove(name),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            inside.current_dir(dir);
        }
        inside
    }

    /// Starts `command` inside the namespace as a [`Running`] guard, its output in `log`.
    pub fn spawn(&self, name: &str, command: &Command, log: &Path) -> Running {
        Running::spawn(name, &mut self.wrap(command), log)
    }

    fn ip(&self, args: &[&str]) {
        let mut command = Command::new(tools::require("ip", "iproute2"));
        command.args(args);
        run(&mut command, b"", IP_TIMEOUT).assert_success();
    }
}

impl Drop for Netns {
    /// Best effort and without panicking (a panic while unwinding aborts): kill what is left
    /// inside, remove the link (at once, rather than when the kernel reaps the namespace), and
    /// the namespace.
    fn drop(&mut self) {
        let ip = tools::find("ip").unwrap_or_else(|| "ip".into());
        let quiet = |args: &[&str]| Command::new(&ip).args(args).output().ok();
        if let Some(out) = quiet(&["netns", "pids", &self.name]) {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        quiet(&["link", "del", &self.host_device]);
        quiet(&["netns", "del", &self.name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Subnet {
        parse_subnet(text).unwrap()
    }

    #[test]
    fn subnets_parse_as_ip_prints_them_and_overlap_by_their_common_prefix() {
        assert_eq!(net("10.213.4.6/30"), net("10.213.4.4/30"));
        assert_eq!(net("10.213.4.6").prefix(), 32);
        assert_eq!(parse_subnet("dev"), None);
        assert_eq!(parse_subnet("10.0.0.0/33"), None);
        assert!(net("10.0.0.0/8").overlaps(&net("10.213.4.4/30")));
        assert!(net("10.213.4.5").overlaps(&net("10.213.4.4/30")));
        assert!(!net("10.213.4.8/30").overlaps(&net("10.213.4.4/30")));
        assert_eq!(net("10.213.4.4/30").host(2), Ipv4Addr::new(10, 213, 4, 6));
    }

    #[test]
    fn a_free_link_skips_every_taken_network_and_falls_back_to_the_next_pool() {
        let taken = [net("10.213.0.0/30"), net("10.213.0.5")];
        assert_eq!(free_link(&taken, 0), Some(net("10.213.0.8/30")));
        assert_eq!(free_link(&taken, 16383), Some(net("10.213.255.252/30")));
        let lan = [net("10.0.0.0/8")];
        assert_eq!(free_link(&lan, 0), Some(net("172.31.213.0/30")));
        assert_eq!(free_link(&[net("0.0.0.0/1"), net("128.0.0.0/1")], 0), None);
    }
}
