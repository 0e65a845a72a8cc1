//! The capture filter: GoReplay's automatic BPF expression from ports and hosts, compiled with
//! libpcap (for the kernel, or for a libpcap handle).

use std::net::IpAddr;

/// What the automatic filter is built from.
pub struct FilterSpec<'a> {
    /// Server ports (empty: all TCP).
    pub ports: &'a [u16],
    /// Server addresses (empty: any host).
    pub hosts: &'a [IpAddr],
    /// Also capture server → client traffic.
    pub track_responses: bool,
    /// Promiscuous mode: no host clause.
    pub promisc: bool,
    /// 802.1Q: prefix `vlan and ` (or `vlan ID and ` per id).
    pub vlan: bool,
    /// VLAN ids.
    pub vlan_ids: &'a [u16],
}

/// GoReplay's expression: `((tcp dst port P…) and (dst host H…))`, plus the mirrored source
/// clause with track-response.
pub fn automatic(spec: &FilterSpec<'_>) -> String {
    let request = clause(spec, "dst");
    let body = if spec.track_responses {
        format!("{request} or {}", clause(spec, "src"))
    } else {
        request
    };
    let mut prefix = String::new();
    if spec.vlan && spec.vlan_ids.is_empty() {
        prefix.push_str("vlan and ");
    }
    for id in spec.vlan_ids {
        prefix.push_str(&format!("vlan {id} and "));
    }
    if prefix.is_empty() {
        body
    } else {
        format!("{prefix}({body})")
    }
}

fn clause(spec: &FilterSpec<'_>, direction: &str) -> String {
    let ports = if spec.ports.is_empty() {
        format!("tcp {direction} portrange 0-65535")
    } else {
        let each: Vec<String> = spec
            .ports
            .iter()
            .map(|p| format!("tcp {direction} port {p}"))
            .collect();
        each.join(" or ")
    };
    if spec.hosts.is_empty() || spec.promisc {
        return format!("({ports})");
    }
    let hosts: Vec<String> = spec
        .hosts
        .iter()
        .map(|h| format!("{direction} host {h}"))
        .collect();
    format!("(({ports}) and ({}))", hosts.join(" or "))
}

/// Compiles `expression` for `linktype` (checks it, and gives kernel BPF instructions).
pub fn compile(expression: &str, linktype: i32) -> Result<pcap::BpfProgram, String> {
    pcap::Capture::dead(pcap::Linktype(linktype))
        .and_then(|c| c.compile(expression, true))
        .map_err(|e| format!("BPF filter {expression:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_goreplay_shape() {
        let hosts: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap()];
        let spec = FilterSpec {
            ports: &[8080],
            hosts: &hosts,
            track_responses: true,
            promisc: false,
            vlan: false,
            vlan_ids: &[],
        };
        assert_eq!(
            automatic(&spec),
            "((tcp dst port 8080) and (dst host 10.0.0.5)) or ((tcp src port 8080) and (src host 10.0.0.5))"
        );
        let spec = FilterSpec {
            ports: &[80, 81],
            hosts: &hosts,
            track_responses: false,
            promisc: true,
            vlan: false,
            vlan_ids: &[7],
        };
        assert_eq!(
            automatic(&spec),
            "vlan 7 and ((tcp dst port 80 or tcp dst port 81))"
        );
        compile(&automatic(&spec), 1).unwrap();
    }
}
