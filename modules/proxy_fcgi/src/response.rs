//! The application's STDOUT read as a CGI response (RFC 3875 §6): header
//! lines up to an empty line, `Status` for the status, `Location` for a
//! redirect, every other field for the client; the rest is the body.
//! Lines may end in CRLF or a bare LF, as CGI scripts write them.

/// Most bytes of CGI header lines kept while looking for their end.
pub const MAX_HEAD: usize = 64 * 1024;

/// A parsed CGI response head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    /// (name, value) as the application wrote them, minus `Status` and
    /// the fields a proxy sets itself (see [`drops`]).
    pub fields: Vec<(String, Vec<u8>)>,
}

/// Where the head ends in `buf`: the offset just past its empty line.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let line = &buf[line_start..i];
        if line.is_empty() || line == b"\r" {
            return Some(i + 1);
        }
        line_start = i + 1;
    }
    None
}

/// Parses the head `buf[..end]` (`end` from [`head_end`]). `Err` says
/// what is wrong, for the log.
pub fn parse(head: &[u8]) -> Result<CgiHead, String> {
    let mut out = CgiHead::default();
    let mut status = None;
    let mut location = false;
    for raw in head.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!(
                "malformed header line from the application (no colon): {:?}",
                shown(line)
            ));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(format!(
                "malformed header name from the application: {:?}",
                shown(name)
            ));
        }
        let value = line[colon + 1..].trim_ascii();
        let name = String::from_utf8_lossy(name).into_owned();
        if name.eq_ignore_ascii_case("status") {
            status = Some(parse_status(value)?);
            continue;
        }
        if drops(&name) {
            continue;
        }
        location |= name.eq_ignore_ascii_case("location");
        out.fields.push((name, value.to_vec()));
    }
    // RFC 3875 §6.2.3: a Location with no Status is a redirect.
    out.status = status.unwrap_or(if location { 302 } else { 200 });
    Ok(out)
}

/// `404 Not Found` → 404; a status outside 100–599 is refused.
fn parse_status(value: &[u8]) -> Result<u16, String> {
    let digits = value.split(|&b| b == b' ').next().unwrap_or_default();
    let code = std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.len() == 3)
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|c| (100..=599).contains(c));
    code.ok_or_else(|| {
        format!(
            "invalid Status header from the application: {:?} (write Status: 404 Not Found)",
            shown(value)
        )
    })
}

/// Fields the application may write that stop here: the connection's
/// own (RFC 9110 §7.6.1) and the body's framing, which FastCGI records
/// carry and the core sets for the client.
pub fn drops(name: &str) -> bool {
    const DROPPED: [&str; 8] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
    ];
    DROPPED.iter().any(|d| d.eq_ignore_ascii_case(name))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// At most 60 bytes of `b`, for a log line.
fn shown(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(60)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_ends_at_the_first_empty_line_in_either_line_ending() {
        assert_eq!(head_end(b"A: b\r\n\r\nbody"), Some(8));
        assert_eq!(head_end(b"A: b\n\nbody"), Some(6));
        assert_eq!(head_end(b"A: b\r\n\nbody"), Some(7));
        assert_eq!(head_end(b"\r\nbody"), Some(2));
        assert_eq!(head_end(b"A: b\r\nB: c\r\n"), None);
        assert_eq!(head_end(b"A: b\r\n\r"), None);
    }

    #[test]
    fn status_location_and_fields() {
        let h =
            parse(b"Status: 404 Not Found\r\nContent-type: text/html\r\nX-A:  1 \r\n\r\n").unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(
            h.fields,
            vec![
                ("Content-type".to_owned(), b"text/html".to_vec()),
                ("X-A".to_owned(), b"1".to_vec())
            ]
        );
        assert_eq!(parse(b"Content-Type: a\n\n").unwrap().status, 200);
        let redirect = parse(b"Location: http://x/\r\n\r\n").unwrap();
        assert_eq!(redirect.status, 302);
        let created = parse(b"Status: 201\r\nLocation: /n\r\n\r\n").unwrap();
        assert_eq!(created.status, 201);
    }

    #[test]
    fn framing_and_connection_fields_stop_here_and_repeats_stay() {
        let h = parse(
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        )
        .unwrap();
        let names: Vec<&str> = h.fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Set-Cookie", "Set-Cookie"]);
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert!(parse(b"no colon here\r\n\r\n")
            .unwrap_err()
            .contains("no colon"));
        assert!(parse(b"Bad Name: x\r\n\r\n")
            .unwrap_err()
            .contains("header name"));
        for bad in [
            &b"Status: 99"[..],
            b"Status: 600 X",
            b"Status: abc",
            b"Status: 2000",
        ] {
            let mut head = bad.to_vec();
            head.extend_from_slice(b"\r\n\r\n");
            assert!(
                parse(&head).unwrap_err().contains("invalid Status"),
                "{bad:?}"
            );
        }
    }
}
