//! Pure parsers for the small value languages inside nodes: file modes,
//! owners, ports, image references, users, stop signals and durations.

use kdl::KdlValue;

use super::Owner;

/// `mode=0o755` (a KDL integer) or `mode="0755"` (octal text), up to 0o7777.
pub(crate) fn parse_mode(value: &KdlValue) -> Option<u32> {
    let mode = match value {
        KdlValue::Integer(i) => u32::try_from(*i).ok()?,
        KdlValue::String(s) => {
            let digits = s.strip_prefix("0o").unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            u32::from_str_radix(digits, 8).ok()?
        }
        _ => return None,
    };
    (mode <= 0o7777).then_some(mode)
}

/// `owner="UID:GID"`, both numeric.
pub(crate) fn parse_owner(s: &str) -> Option<Owner> {
    let (uid, gid) = s.split_once(':')?;
    let number = |n: &str| {
        n.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| n.parse().ok())?
    };
    Some(Owner {
        uid: number(uid)?,
        gid: number(gid)?,
    })
}

/// `8080`, `"8080"`, `"53/udp"` → `(port, protocol)`.
pub(crate) fn parse_port(value: &KdlValue) -> Option<(u16, &'static str)> {
    let (port, proto) = match value {
        KdlValue::Integer(i) => (u16::try_from(*i).ok()?, "tcp"),
        KdlValue::String(s) => {
            let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
            let proto = match proto {
                "tcp" => "tcp",
                "udp" => "udp",
                _ => return None,
            };
            let digits_only = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            (digits_only.then(|| port.parse().ok())??, proto)
        }
        _ => return None,
    };
    (port != 0).then_some((port, proto))
}

/// Checks an image reference `[registry[:port]/]path[:tag]`; a missing tag
/// becomes `:latest`, as `docker tag` would read it.
pub(crate) fn check_tag(reference: &str) -> Result<String, &'static str> {
    if reference.contains('@') {
        return Err("a digest is not a tag");
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            Some(&reference[last_slash + i + 1..]),
        ),
        None => (reference, None),
    };
    if name.is_empty() || name.len() > 255 {
        return Err("the name must be 1 to 255 characters");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains(['.', ':']) || first == "localhost") {
        check_domain(first)?;
        parts.remove(0);
    }
    if !parts.iter().all(|p| is_path_component(p)) {
        return Err("name parts are lowercase letters and digits, joined by `.`, `_`, `__` or `-`");
    }
    match tag {
        Some(tag) if !is_tag(tag) => {
            Err("a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`")
        }
        Some(_) => Ok(reference.to_owned()),
        None => Ok(format!("{reference}:latest")),
    }
}

fn check_domain(domain: &str) -> Result<(), &'static str> {
    let (host, port) = domain.split_once(':').unwrap_or((domain, "1"));
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    (host_ok && port_ok)
        .then_some(())
        .ok_or("the registry must be `host` or `host:port`")
}

fn is_path_component(part: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    // Separators between alphanumeric runs: `.`, `_`, `__`, or any dashes.
    part.split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

fn is_tag(tag: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-';
    (1..=128).contains(&tag.len()) && !tag.starts_with(['.', '-']) && tag.bytes().all(ok)
}

/// `name`, `uid`, `name:group` or `uid:gid`.
pub(crate) fn is_user(user: &str) -> bool {
    let part = |p: &str| !p.is_empty() && !p.contains(|c: char| c.is_whitespace() || c == '/');
    match user.split_once(':') {
        Some((u, g)) => part(u) && part(g) && !g.contains(':'),
        None => part(user),
    }
}

/// `SIGTERM`, `SIGRTMIN+3` or a signal number.
pub(crate) fn is_signal(signal: &str) -> bool {
    match signal.strip_prefix("SIG") {
        // Real-time signals count from SIGRTMIN or back from SIGRTMAX
        // (Linux has 32 of them); every other name is plain uppercase.
        Some(name) => match name.split_once(['+', '-']) {
            Some(("RTMIN" | "RTMAX", n)) => n.parse::<u8>().is_ok_and(|n| n <= 30),
            Some(_) => false,
            None => {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            }
        },
        None => signal.parse::<u8>().is_ok_and(|n| (1..=64).contains(&n)),
    }
}

/// A duration: `90`, `90s`, `15m`, `2h` or a sum of them (`1h30m`); at
/// least one second, at most a week. The longest a stage may run.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    const WEEK: u64 = 7 * 24 * 60 * 60;
    if let Ok(secs) = text.parse::<u64>() {
        return (1..=WEEK)
            .contains(&secs)
            .then(|| std::time::Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, after) = rest.split_at(digits);
        let unit = after.chars().next()?;
        let scale = match unit {
            's' => 1,
            'm' => 60,
            'h' => 60 * 60,
            'd' => 24 * 60 * 60,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(scale)?)?;
        rest = &after[unit.len_utf8()..];
    }
    (1..=WEEK)
        .contains(&total)
        .then(|| std::time::Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal_integers_or_octal_text() {
        assert_eq!(parse_mode(&KdlValue::Integer(0o755)), Some(0o755));
        assert_eq!(parse_mode(&KdlValue::String("0644".into())), Some(0o644));
        assert_eq!(parse_mode(&KdlValue::String("0o4755".into())), Some(0o4755));
        assert_eq!(parse_mode(&KdlValue::String("0789".into())), None);
        assert_eq!(parse_mode(&KdlValue::Integer(0o10000)), None);
        assert_eq!(parse_mode(&KdlValue::Integer(-1)), None);
        assert_eq!(parse_mode(&KdlValue::Bool(true)), None);
    }

    #[test]
    fn owners_are_numeric_pairs() {
        assert_eq!(
            parse_owner("1000:100"),
            Some(Owner {
                uid: 1000,
                gid: 100
            })
        );
        assert_eq!(parse_owner("root:root"), None);
        assert_eq!(parse_owner("1000"), None);
        assert_eq!(parse_owner("+1:2"), None);
    }

    #[test]
    fn ports_default_to_tcp_and_reject_zero() {
        assert_eq!(parse_port(&KdlValue::Integer(8080)), Some((8080, "tcp")));
        assert_eq!(
            parse_port(&KdlValue::String("53/udp".into())),
            Some((53, "udp"))
        );
        assert_eq!(
            parse_port(&KdlValue::String("443".into())),
            Some((443, "tcp"))
        );
        assert_eq!(parse_port(&KdlValue::Integer(0)), None);
        assert_eq!(parse_port(&KdlValue::Integer(70000)), None);
        assert_eq!(parse_port(&KdlValue::String("53/sctp".into())), None);
    }

    #[test]
    fn tags_follow_the_docker_reference_shape() {
        assert_eq!(
            check_tag("go-http-demo:v2").as_deref(),
            Ok("go-http-demo:v2")
        );
        assert_eq!(check_tag("app").as_deref(), Ok("app:latest"));
        let full = "registry.example:5000/team/app__x:1.0-rc";
        assert_eq!(check_tag(full).as_deref(), Ok(full));
        assert_eq!(
            check_tag("localhost/app:1").as_deref(),
            Ok("localhost/app:1")
        );
        assert!(check_tag("App:1").is_err());
        assert!(check_tag("app:-x").is_err());
        assert!(check_tag("app@sha256:00").is_err());
        assert!(check_tag("app:").is_err());
        assert!(check_tag("a..b:1").is_err());
        assert!(check_tag(":1").is_err());
    }

    #[test]
    fn users_and_signals() {
        assert!(is_user("nobody") && is_user("1000:1000") && is_user("app:staff"));
        assert!(!is_user("") && !is_user("a:b:c") && !is_user("a b") && !is_user(":1"));
        assert!(is_signal("SIGTERM") && is_signal("SIGRTMIN+3") && is_signal("9"));
        assert!(!is_signal("SIGRTMIN+100") && !is_signal("SIGTERM+1") && !is_signal("SIG"));
        assert!(!is_signal("TERM") && !is_signal("SIG") && !is_signal("0"));
    }

    #[test]
    fn durations_are_seconds_or_summed_units_from_a_second_to_a_week() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90"), Some(90));
        assert_eq!(secs("90s"), Some(90));
        assert_eq!(secs("15m"), Some(900));
        assert_eq!(secs("1h30m"), Some(5400));
        assert_eq!(secs("7d"), Some(604_800));
        for bad in [
            "",
            "0",
            "0s",
            "8d",
            "1.5h",
            "10 minutes",
            "m",
            "5x",
            "-1",
            "99999999999999999999s",
        ] {
            assert_eq!(secs(bad), None, "{bad:?}");
        }
    }
}
