//! `--input-raw` values: `[netns:NAME/][HOST|IFACE]:PORT[,PORT]`, or a capture file, and the
//! interfaces they select.

use std::net::IpAddr;
use std::path::PathBuf;

/// What one `--input-raw` value asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The network namespace (a name under /var/run/netns), if any.
    pub netns: Option<String>,
    /// An interface name, an address, or empty (all interfaces).
    pub host: String,
    /// Server ports (empty: every port, direction inferred).
    pub ports: Vec<u16>,
}

/// `file.pcap[:PORTS]` given to `--input-raw` (GoReplay's pcap_file engine spelling).
pub fn as_capture_file(value: &str) -> Option<PathBuf> {
    let file = match value.rsplit_once(':') {
        Some((file, ports)) if ports.chars().all(|c| c.is_ascii_digit() || c == ',') => file,
        _ => value,
    };
    let lower = file.to_ascii_lowercase();
    let is_capture = [".pcap", ".pcapng", ".pcap.gz", ".pcapng.gz", ".cap"]
        .iter()
        .any(|ext| lower.ends_with(ext));
    is_capture.then(|| PathBuf::from(file))
}

/// Parses one `--input-raw` value.
pub fn parse(value: &str) -> Result<Target, String> {
    let (netns, rest) = match value.strip_prefix("netns:") {
        Some(rest) => {
            let (name, rest) = rest
                .split_once('/')
                .ok_or_else(|| format!("{value:?}: expected netns:NAME/IFACE:PORT"))?;
            if name.is_empty() {
                return Err(format!("{value:?}: the namespace name is empty"));
            }
            (Some(name.to_string()), rest)
        }
        None => (None, value),
    };
    let (host, ports) = rest.rsplit_once(':').ok_or_else(|| {
        format!("{value:?}: expected [HOST]:PORT[,PORT] (e.g. :80, eth0:80, 10.0.0.1:8080)")
    })?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ports = ports
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("{value:?}: invalid port {p:?}"))
        })
        .collect::<Result<Vec<u16>, String>>()?;
    let ports = ports.into_iter().filter(|&p| p != 0).collect();
    Ok(Target {
        netns,
        host: host.to_string(),
        ports,
    })
}

/// An interface to capture on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// True for the loopback interface.
    pub loopback: bool,
}

/// The interfaces (in the current namespace) that `host` selects, minus `ignored`.
pub fn select(host: &str, ignored: &[String]) -> Result<Vec<Interface>, String> {
    let all: Vec<Interface> = interfaces()?
        .into_iter()
        .filter(|i| !ignored.contains(&i.name))
        .collect();
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    let wildcard = matches!(host, "" | "any" | "0.0.0.0" | "::");
    if wildcard {
        let chosen: Vec<Interface> = all
            .into_iter()
            .filter(|i| !i.addresses.is_empty())
            .collect();
        return if chosen.is_empty() {
            Err("no interface is up".into())
        } else {
            Ok(chosen)
        };
    }
    let address: Option<IpAddr> = host.parse().ok();
    all.into_iter()
        .find(|i| i.name == host || address.is_some_and(|a| i.addresses.contains(&a)))
        .map(|i| vec![i])
        .ok_or_else(|| format!("no interface named or addressed {host:?} is up"))
}

/// The interfaces that are up in the calling thread's network namespace (netlink, so it is
/// right inside a namespace the thread switched to).
fn interfaces() -> Result<Vec<Interface>, String> {
    use nix::net::if_::InterfaceFlags;
    let mut found: Vec<Interface> = Vec::new();
    for entry in nix::ifaddrs::getifaddrs().map_err(|e| format!("cannot list interfaces: {e}"))? {
        if !entry.flags.contains(InterfaceFlags::IFF_UP) {
            continue;
        }
        let index = match found.iter().position(|i| i.name == entry.interface_name) {
            Some(index) => index,
            None => {
                found.push(Interface {
                    name: entry.interface_name.clone(),
                    addresses: Vec::new(),
                    loopback: entry.flags.contains(InterfaceFlags::IFF_LOOPBACK),
                });
                found.len() - 1
            }
        };
        let address = entry.address.as_ref().and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        });
        found[index].addresses.extend(address);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(
            parse(":80").unwrap(),
            Target {
                netns: None,
                host: String::new(),
                ports: vec![80]
            }
        );
        assert_eq!(parse("eth0:80,8080").unwrap().ports, vec![80, 8080]);
        assert_eq!(parse("[::1]:80").unwrap().host, "::1");
        let t = parse("netns:blue/veth0:8080").unwrap();
        assert_eq!(
            (t.netns.as_deref(), t.host.as_str(), t.ports.as_slice()),
            (Some("blue"), "veth0", &[8080][..])
        );
        assert!(parse("eth0").is_err());
        assert!(parse(":http").is_err());
        assert!(parse("netns:/lo:80").is_err());
    }

    #[test]
    fn capture_files_are_recognised() {
        assert_eq!(
            as_capture_file("traffic.pcap:80"),
            Some(PathBuf::from("traffic.pcap"))
        );
        assert_eq!(as_capture_file("a.pcapng"), Some(PathBuf::from("a.pcapng")));
        assert_eq!(as_capture_file("eth0:80"), None);
    }

    #[test]
    fn loopback_is_selectable() {
        let chosen = select("127.0.0.1", &[]).unwrap();
        assert!(chosen[0].loopback, "{chosen:?}");
        assert_eq!(select("lo", &[]).unwrap()[0].name, chosen[0].name);
        assert!(select("no-such-interface0", &[]).is_err());
    }
}
