//! Minimal HTTP/1.1 for the servers: request framing with `httparse` (keep-alive, pipelined
//! requests, small bodies), bounded by limits, and fixed responses. Not a general HTTP
//! implementation: enough to serve benchmark requests correctly and to refuse the rest clearly.

use std::time::Duration;

/// Bounds on what a request may hold, how long a client may take, and how many clients a
/// server takes at once. Every architecture enforces all of them (see `server` module docs).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line + headers), bytes: past it, 431 and close.
    pub max_head: usize,
    /// Most headers: past it, 431 and close.
    pub max_headers: usize,
    /// Largest body (Content-Length), bytes: past it, 413 and close.
    pub max_body: usize,
    /// A request (head and body) must have fully arrived this long after its first byte (for
    /// a new connection: after the accept); otherwise 408 and close. Stops clients that
    /// trickle bytes from holding a connection (slowloris).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in progress, or one whose client stopped
    /// reading our responses, is closed after this long without traffic.
    pub idle_timeout: Duration,
    /// Most connections served at once (per loop for the loop architectures; live threads for
    /// thread-per-conn, live processes for process-per-conn). A connection past the cap is
    /// accepted, answered 503 and closed, so the client learns at once instead of timing out.
    pub max_conns: usize,
    /// loop-helpers: a CPU-kind op whose measured cost is above this runs on a helper; a
    /// cheaper one runs inline on the loop (blocking disk ops always go to a helper).
    pub offload_over: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 8 * 1024,
            max_headers: 64,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_conns: 20_000,
            offload_over: Duration::from_micros(100),
        }
    }
}

/// One framed request. Every request gets the same handler, so only its framing matters: no
/// allocation per request (method and path are not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Bytes of the buffer the request used (head + body): drop them before parsing the next.
    pub consumed: usize,
    /// Keep the connection open after the response.
    pub keep_alive: bool,
}

/// Most headers a request may have (the header array lives on the stack).
pub const MAX_HEADERS: usize = 64;

/// A request the server refuses: answer with `status` and close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 413, 431 or 501.
    pub status: u16,
    /// Why, for the response body.
    pub reason: &'static str,
}

/// What the bytes so far hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// A whole request.
    Complete(Request),
    /// Not yet a whole request: read more.
    Partial,
    /// A request the server will not serve.
    Refused(Refusal),
}

/// Frames the first request in `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let n = limits.max_headers.clamp(1, MAX_HEADERS);
    let mut req = httparse::Request::new(&mut headers[..n]);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > limits.max_head {
                refuse(431, "request head too large")
            } else {
                Parse::Partial
            };
        }
        Err(httparse::Error::TooManyHeaders) => return refuse(431, "too many headers"),
        Err(_) => return refuse(400, "malformed request"),
    };
    if head_len > limits.max_head {
        return refuse(431, "request head too large");
    }
    let version = req.version.unwrap_or(1);
    let mut keep_alive = version >= 1;
    let mut body = 0usize;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                Some(n) if n <= limits.max_body => body = n,
                Some(_) => return refuse(413, "body too large"),
                None => return refuse(400, "bad Content-Length"),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return refuse(501, "chunked bodies are not supported");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
    }
    if buf.len() < head_len + body {
        return Parse::Partial;
    }
    Parse::Complete(Request {
        consumed: head_len + body,
        keep_alive,
    })
}

fn refuse(status: u16, reason: &'static str) -> Parse {
    Parse::Refused(Refusal { status, reason })
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Appends a complete response to `out`.
pub fn write_response(out: &mut Vec<u8>, status: u16, body: &[u8], keep_alive: bool) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nServer: concbench\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        status_text(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l() -> Limits {
        Limits::default()
    }

    #[test]
    fn frames_pipelined_keep_alive_requests() {
        let two = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let Parse::Complete(r) = parse_request(two, &l()) else {
            panic!()
        };
        assert!(r.keep_alive);
        assert_eq!(r.consumed, 28);
        let Parse::Complete(r2) = parse_request(&two[r.consumed..], &l()) else {
            panic!()
        };
        assert!(r2.keep_alive);
        assert_eq!(r.consumed + r2.consumed, two.len());
    }

    #[test]
    fn partial_body_and_close() {
        let req = b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nab";
        assert_eq!(parse_request(req, &l()), Parse::Partial);
        let mut full = req.to_vec();
        full.extend_from_slice(b"cde");
        let Parse::Complete(r) = parse_request(&full, &l()) else {
            panic!()
        };
        assert!(!r.keep_alive);
        assert_eq!(r.consumed, full.len());
        assert_eq!(parse_request(b"GET / HTTP/1.1\r\nHo", &l()), Parse::Partial);
    }

    #[test]
    fn http10_closes_unless_asked() {
        let Parse::Complete(r) = parse_request(b"GET / HTTP/1.0\r\n\r\n", &l()) else {
            panic!()
        };
        assert!(!r.keep_alive);
        let Parse::Complete(r) =
            parse_request(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &l())
        else {
            panic!()
        };
        assert!(r.keep_alive);
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let st = |b: &[u8]| match parse_request(b, &l()) {
            Parse::Refused(r) => r.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(st(b"NOT HTTP\r\n\r\n"), 400);
        assert_eq!(st(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"), 400);
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            501
        );
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(9000));
        assert_eq!(st(big.as_bytes()), 431);
        let body = "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(st(body.as_bytes()), 413);
    }

    #[test]
    fn response_is_well_formed() {
        let mut out = Vec::new();
        write_response(&mut out, 200, b"ok", true);
        let mut h = [httparse::EMPTY_HEADER; 8];
        let mut r = httparse::Response::new(&mut h);
        assert_eq!(
            r.parse(&out).unwrap(),
            httparse::Status::Complete(out.len() - 2)
        );
        assert_eq!(r.code, Some(200));
    }
}
