//! `streamprep-netlab`: test hosts on one machine, for the queue method across a network.
//!
//! A lab is a set of Linux network namespaces: a hub (Redis and, usually, the coordinator) and
//! one namespace a host, each joined to the hub's bridge by a veth pair. Every link has a
//! bandwidth (`tc tbf` on both ends) and a round-trip delay. This kernel has `tbf` but not
//! `netem`, so the delay comes from a delaying TCP proxy in the hub, one a host: a host reaches
//! Redis at `redis://10.77.0.1:<7000 + its number>`, and each byte crossing the proxy waits half
//! the round trip in each direction (reading and writing stay pipelined, so bandwidth is the
//! link's). Packet loss comes from nftables (`numgen random`), links go down with `ip link`.
//!
//! Needs root, iproute2 (`ip`, `tc`), nftables (`nft`, for loss) and redis-server. A lab is
//! named `spl<PID>x<TAG>` after the process that owns it: `up` first removes the labs of
//! processes that are gone, so a test killed half-way leaves nothing behind for long.
//!
//! ```text
//! streamprep-netlab up LAB [HOST=PROFILE ...]   hub with Redis, then the hosts
//! streamprep-netlab add LAB HOST=PROFILE        one more host, while the lab runs
//! streamprep-netlab link LAB HOST up|down       the host's link
//! streamprep-netlab loss LAB PERCENT            drop PERCENT of packets on every link (0: none)
//! streamprep-netlab dropped LAB                 packets dropped by `loss` so far
//! streamprep-netlab url LAB HOST                the Redis URL as that host sees it
//! streamprep-netlab down LAB                    stop its processes, delete its namespaces
//! streamprep-netlab sweep                       remove labs whose owner process is gone
//! streamprep-netlab proxy LISTEN UPSTREAM DELAY a delaying TCP proxy (what `up` starts)
//! ```
//! PROFILE is `rack` (0.2 ms round trip, 10 Gbit/s), `lan` (2 ms, 1 Gbit/s), `wan` (20 ms,
//! 100 Mbit/s), or `RTT/RATE` such as `5ms/500mbit` (`0ms` for no proxy).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

const HUB_IP: &str = "10.77.0.1";
const REDIS_PORT: u16 = 6379;
const PROXY_BASE: u16 = 7000;
/// What a sleep here overshoots by, about (measured: a 100 us sleep took 160-180 us).
const SLACK: Duration = Duration::from_micros(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = match args.as_slice() {
        ["up", lab, hosts @ ..] => up(lab, hosts),
        ["add", lab, host] => add(lab, host),
        ["link", lab, host, state @ ("up" | "down")] => {
            run("ip", &["-n", &hub(lab), "link", "set", host, state])
        }
        ["loss", lab, pct] => loss(lab, pct),
        ["dropped", lab] => dropped(lab).map(|n| println!("{n}")),
        ["url", lab, host] => url(lab, host).map(|u| println!("{u}")),
        ["down", lab] => down(lab),
        ["sweep"] => sweep(),
        ["proxy", listen, upstream, delay] => proxy(listen, upstream, delay),
        _ => Err(USAGE.into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streamprep-netlab: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: streamprep-netlab up LAB [HOST=PROFILE ...] | add LAB HOST=PROFILE | \
link LAB HOST up|down | loss LAB PERCENT | dropped LAB | url LAB HOST | down LAB | sweep | proxy LISTEN UPSTREAM DELAY \
(PROFILE: rack, lan, wan or RTT/RATE such as 5ms/500mbit)";

/// A link: its round trip and its rate in bits a second.
#[derive(Debug, Clone, Copy)]
struct Profile {
    rtt: Duration,
    bits: u64,
}

fn profile(s: &str) -> Result<Profile, String> {
    let (rtt, rate) = match s {
        "rack" => ("0.2ms", "10gbit"),
        "lan" => ("2ms", "1gbit"),
        "wan" => ("20ms", "100mbit"),
        _ => s
            .split_once('/')
            .ok_or_else(|| format!("link profile {s:?}: rack, lan, wan or RTT/RATE"))?,
    };
    Ok(Profile {
        rtt: duration(rtt)?,
        bits: rate_bits(rate)?,
    })
}

fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration such as 2ms or 0.2ms");
    let (n, unit) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(bad());
    };
    let v: f64 = n.parse().map_err(|_| bad())?;
    if !(0.0..=60.0).contains(&(v * unit)) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * unit))
}

fn rate_bits(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a rate such as 100mbit or 10gbit");
    let l = s.to_ascii_lowercase();
    let (n, mult) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)]
        .iter()
        .find_map(|(u, m)| l.strip_suffix(u).map(|n| (n.to_string(), *m)))
        .ok_or_else(bad)?;
    let v: f64 = n.parse().map_err(|_| bad())?;
    if v <= 0.0 || v * mult < 1e5 {
        return Err(bad());
    }
    Ok((v * mult) as u64)
}

fn check_lab(lab: &str) -> Result<(), String> {
    let ok = lab
        .strip_prefix("spl")
        .and_then(|r| r.split_once('x'))
        .is_some_and(|(pid, tag)| {
            !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && !tag.is_empty()
                && tag.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if ok && lab.len() <= 40 {
        Ok(())
    } else {
        Err(format!(
            "lab name {lab:?}: spl<PID>x<TAG>, the PID of the process it belongs to"
        ))
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if !host.is_empty()
        && host.len() <= 12
        && host != "hub"
        && host.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(format!(
            "host name {host:?}: 1 to 12 letters or digits, not \"hub\""
        ))
    }
}

fn hub(lab: &str) -> String {
    format!("{lab}-hub")
}

fn ns(lab: &str, host: &str) -> String {
    format!("{lab}-{host}")
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            format!("{cmd}: {e} (test hosts need root and the packages iproute2 and nftables)")
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn output(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Start a process in a namespace that outlives this command (`down` stops it).
fn spawn_in(netns: &str, cmd: &[&str]) -> Result<(), String> {
    Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("{}: {e}", cmd[0]))
}

fn labs() -> Result<Vec<String>, String> {
    let list = output("ip", &["netns", "list"])?;
    let mut labs: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_suffix("-hub"))
        .filter(|l| check_lab(l).is_ok())
        .map(str::to_string)
        .collect();
    labs.sort();
    labs.dedup();
    Ok(labs)
}

fn namespaces(lab: &str) -> Result<Vec<String>, String> {
    let list = output("ip", &["netns", "list"])?;
    let prefix = format!("{lab}-");
    Ok(list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|h| h == "hub" || check_host(h).is_ok())
        })
        .map(str::to_string)
        .collect())
}

fn sweep() -> Result<(), String> {
    for lab in labs()? {
        let pid = &lab[3..lab.find('x').unwrap_or(3)];
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            down(&lab)?;
        }
    }
    Ok(())
}

fn down(lab: &str) -> Result<(), String> {
    check_lab(lab)?;
    let all = namespaces(lab)?;
    for n in &all {
        for pid in output("ip", &["netns", "pids", n])?.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
    for n in &all {
        // deleting a namespace deletes its ends of the veth pairs
        run("ip", &["netns", "del", n])?;
    }
    Ok(())
}

fn up(lab: &str, hosts: &[&str]) -> Result<(), String> {
    check_lab(lab)?;
    sweep()?;
    if namespaces(lab)?.iter().any(|n| *n == hub(lab)) {
        return Err(format!("lab {lab} is up already"));
    }
    let h = hub(lab);
    let made = (|| {
        run("ip", &["netns", "add", &h])?;
        run("ip", &["-n", &h, "link", "set", "lo", "up"])?;
        run("ip", &["-n", &h, "link", "add", "br0", "type", "bridge"])?;
        run(
            "ip",
            &[
                "-n",
                &h,
                "addr",
                "add",
                &format!("{HUB_IP}/24"),
                "dev",
                "br0",
            ],
        )?;
        run("ip", &["-n", &h, "link", "set", "br0", "up"])?;
        let port = REDIS_PORT.to_string();
        spawn_in(
            &h,
            &[
                "redis-server",
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                HUB_IP,
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
        )?;
        wait_redis(&h)?;
        hosts.iter().try_for_each(|host| add(lab, host))
    })();
    if made.is_err() {
        let _ = down(lab);
    }
    made
}

/// Wait until Redis answers in the hub (up to 10 s).
fn wait_redis(hub: &str) -> Result<(), String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        let out = output(
            "ip",
            &[
                "netns",
                "exec",
                hub,
                "redis-cli",
                "-p",
                &REDIS_PORT.to_string(),
                "ping",
            ],
        )?;
        if out.trim() == "PONG" {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(
        "redis-server did not answer in the hub within 10 s (install the package redis-server)"
            .into(),
    )
}

/// The number of a host: its place among the lab's hosts, from 1.
fn host_number(lab: &str, host: &str) -> Result<u16, String> {
    let list = output(
        "ip",
        &["-n", &hub(lab), "-o", "link", "show", "master", "br0"],
    )?;
    list.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n))
        .position(|n| n == host)
        .map(|i| i as u16 + 1)
        .ok_or_else(|| format!("lab {lab} has no host {host}"))
}

fn add(lab: &str, spec: &str) -> Result<(), String> {
    check_lab(lab)?;
    let (host, prof) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: HOST=PROFILE"))?;
    check_host(host)?;
    let p = profile(prof)?;
    let h = hub(lab);
    let n = ns(lab, host);
    let count = output("ip", &["-n", &h, "-o", "link", "show", "master", "br0"])?
        .lines()
        .count() as u16;
    if count >= 200 {
        return Err("a lab holds at most 200 hosts".into());
    }
    let ip = format!("10.77.0.{}", count + 10);
    run("ip", &["netns", "add", &n])?;
    run("ip", &["-n", &n, "link", "set", "lo", "up"])?;
    run(
        "ip",
        &[
            "-n", &h, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", &n,
        ],
    )?;
    run("ip", &["-n", &h, "link", "set", host, "master", "br0"])?;
    run(
        "ip",
        &["-n", &n, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
    )?;
    run("ip", &["-n", &h, "link", "set", host, "up"])?;
    run("ip", &["-n", &n, "link", "set", "eth0", "up"])?;
    // the rate, both ways; a burst of 2 ms at the rate (at least 64 KiB) keeps tbf exact
    // on a timer tick and still lets TCP segments through whole
    let rate = format!("{}kbit", p.bits / 1000);
    let burst = (p.bits / 8 / 500).max(64 << 10).to_string();
    for (netns, dev) in [(h.as_str(), host), (n.as_str(), "eth0")] {
        run(
            "tc",
            &[
                "-n", netns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                &burst, "latency", "100ms",
            ],
        )?;
    }
    if !p.rtt.is_zero() {
        let number = host_number(lab, host)?;
        let listen = format!("{HUB_IP}:{}", PROXY_BASE + number);
        let upstream = format!("127.0.0.1:{REDIS_PORT}");
        let half = format!("{}us", p.rtt.as_micros() / 2);
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        let me = me.to_string_lossy();
        spawn_in(&h, &[&me, "proxy", &listen, &upstream, &half])?;
        // listening before the host is handed out
        let t = Instant::now();
        while !output("ip", &["netns", "exec", &h, "ss", "-ltnH"])?.contains(&listen) {
            if t.elapsed() > Duration::from_secs(5) {
                return Err("the delaying proxy did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

fn url(lab: &str, host: &str) -> Result<String, String> {
    check_lab(lab)?;
    if host == "hub" {
        return Ok(format!("redis://127.0.0.1:{REDIS_PORT}"));
    }
    check_host(host)?;
    let number = host_number(lab, host)?;
    let listen = format!("{HUB_IP}:{}", PROXY_BASE + number);
    let proxied = output("ip", &["netns", "exec", &hub(lab), "ss", "-ltnH"])?.contains(&listen);
    Ok(if proxied {
        format!("redis://{listen}")
    } else {
        format!("redis://{HUB_IP}:{REDIS_PORT}")
    })
}

fn loss(lab: &str, pct: &str) -> Result<(), String> {
    check_lab(lab)?;
    let p: f64 = pct
        .trim_end_matches('%')
        .parse()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("{pct:?} is not a percentage"))?;
    let per_10k = (p * 100.0).round() as u32;
    for n in namespaces(lab)? {
        let _ = run(
            "ip",
            &[
                "netns", "exec", &n, "nft", "delete", "table", "inet", "netlab",
            ],
        );
        if per_10k > 0 {
            // what leaves the namespace on a link (not loopback): a random share is dropped
            let limit = per_10k.to_string();
            let chain = "{ type filter hook output priority 0; }";
            let rule = [
                "oifname", "!=", "lo", "numgen", "random", "mod", "10000", "<", &limit, "counter",
                "drop",
            ];
            let x = ["netns", "exec", &n, "nft", "add"];
            run("ip", &[&x[..], &["table", "inet", "netlab"]].concat())?;
            run(
                "ip",
                &[&x[..], &["chain", "inet", "netlab", "out", chain]].concat(),
            )?;
            run(
                "ip",
                &[&x[..], &["rule", "inet", "netlab", "out"], &rule[..]].concat(),
            )?;
        }
    }
    Ok(())
}

/// Packets `loss` dropped, on every link of the lab.
fn dropped(lab: &str) -> Result<u64, String> {
    check_lab(lab)?;
    let mut n = 0;
    for netns in namespaces(lab)? {
        let t = output(
            "ip",
            &[
                "netns", "exec", &netns, "nft", "list", "table", "inet", "netlab",
            ],
        )?;
        let mut words = t.split_whitespace();
        while let Some(w) = words.next() {
            if w == "packets" {
                n += words
                    .next()
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Ok(n)
}

/// Forward every connection to `upstream`, each byte held back `delay` in each direction.
fn proxy(listen: &str, upstream: &str, delay: &str) -> Result<(), String> {
    let delay = duration(delay)?;
    let l = TcpListener::bind(listen).map_err(|e| format!("{listen}: {e}"))?;
    for s in l.incoming() {
        let Ok(down) = s else { continue };
        let upstream = upstream.to_string();
        std::thread::spawn(move || {
            let Ok(up) = TcpStream::connect(&upstream) else {
                let _ = down.shutdown(Shutdown::Both);
                return;
            };
            let _ = down.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let (Ok(d2), Ok(u2)) = (down.try_clone(), up.try_clone()) else {
                return;
            };
            let a = std::thread::spawn(move || pump(d2, u2, delay));
            pump(up, down, delay);
            let _ = a.join();
        });
    }
    Ok(())
}

/// Copy `from` to `to`, each chunk written `delay` after it was read; reading goes on
/// meanwhile (up to 256 chunks ahead, so a slow link still holds the sender back).
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = sync_channel::<(Instant, Vec<u8>)>(256);
    let writer = {
        let mut to2 = match to.try_clone() {
            Ok(t) => t,
            Err(_) => return,
        };
        std::thread::spawn(move || {
            for (due, data) in rx {
                // a sleep overshoots by about a timer slack and a wake-up: ask for that less
                let now = Instant::now();
                if due > now + SLACK {
                    std::thread::sleep(due - now - SLACK);
                }
                if to2.write_all(&data).is_err() {
                    break;
                }
            }
            let _ = to2.shutdown(Shutdown::Write);
        })
    };
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
    let _ = from.shutdown(Shutdown::Read);
    let _ = to.flush();
}
