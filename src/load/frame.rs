//! Response framing for the load generator: finds where one HTTP/1.1 response ends in the bytes
//! a connection has read, parsing the head in place with `httparse::Response` and skipping a
//! `Content-Length` body without copying it.
//!
//! The framer keeps a small state per connection (head parsed or not, body bytes left), so a
//! response split over any number of reads is framed correctly, and bodies longer than the read
//! buffer never need to fit in it. It never allocates: the caller owns the buffer.
//!
//! # Timing model
//! Framing runs on the generator's thread between the `read` that returned the response's last
//! byte and the clock read that ends the request's latency, so its (small, bounded) cost is
//! inside both latencies the generator records. It is not part of the window otherwise.

/// Most response headers the framer accepts (more is a protocol error).
const MAX_HEADERS: usize = 48;

/// What the framer knows about the response being read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Framer {
    /// The head is parsed; `body_left` body bytes are still to come.
    in_body: bool,
    /// Body bytes still to skip.
    body_left: usize,
    /// Status code of the response being read (valid once the head is parsed).
    status: u16,
    /// The response asked to close the connection (`Connection: close`, or HTTP/1.0 without
    /// keep-alive).
    close: bool,
}

/// One framed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The server will close the connection after it.
    pub close: bool,
}

/// Why the bytes are not an HTTP/1.1 response the generator can frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Not a valid response head.
    Malformed,
    /// `Transfer-Encoding` bodies (chunked) are not supported.
    Chunked,
    /// A response that is neither bodiless nor carries `Content-Length` (body until close).
    NoLength,
    /// The head does not fit in the largest buffer the connection may grow to.
    HeadTooLarge,
}

/// The result of feeding bytes to the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A whole response; `used` bytes of the input belonged to it (the rest is the next one's).
    Done { used: usize, response: Response },
    /// All `used` bytes belong to the current response, which is not complete yet. The caller
    /// drops those bytes and reads more (`used` is 0 when a partial head must stay buffered).
    More { used: usize },
}

impl Framer {
    /// Feeds the unconsumed bytes `buf`. `buf_full` says the buffer cannot grow any further, so
    /// a partial head in a full buffer is an error rather than a request for more bytes.
    pub fn feed(&mut self, buf: &[u8], buf_full: bool) -> Result<Step, FrameError> {
        let mut used = 0;
        if !self.in_body {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            let head = match resp.parse(buf) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => {
                    return if buf_full {
                        Err(FrameError::HeadTooLarge)
                    } else {
                        Ok(Step::More { used: 0 })
                    };
                }
                Err(_) => return Err(FrameError::Malformed),
            };
            let status = resp.code.unwrap_or(0);
            let mut close = resp.version == Some(0);
            let mut length = None;
            for h in resp.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    length = Some(parse_usize(h.value).ok_or(FrameError::Malformed)?);
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(FrameError::Chunked);
                } else if h.name.eq_ignore_ascii_case("connection") {
                    if contains_ignore_case(h.value, b"close") {
                        close = true;
                    } else if contains_ignore_case(h.value, b"keep-alive") {
                        close = false;
                    }
                }
            }
            let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
            let length = match length {
                Some(n) => n,
                None if bodiless => 0,
                None => return Err(FrameError::NoLength),
            };
            self.in_body = true;
            self.body_left = length;
            self.status = status;
            self.close = close;
            used = head;
        }
        let take = self.body_left.min(buf.len() - used);
        self.body_left -= take;
        used += take;
        if self.body_left > 0 {
            return Ok(Step::More { used });
        }
        self.in_body = false;
        Ok(Step::Done {
            used,
            response: Response {
                status: self.status,
                close: self.close,
            },
        })
    }

    /// Forgets any partial response (the connection was replaced).
    pub fn reset(&mut self) {
        *self = Framer::default();
    }

    /// True when the framer is in the middle of a response.
    #[cfg(test)]
    pub fn mid_response(&self) -> bool {
        self.in_body
    }
}

fn parse_usize(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0usize, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + (b - b'0') as usize)
    })
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The request every connection sends, built once: `GET {path} HTTP/1.1` with a `Host` header.
pub fn build_request(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn whole_response_and_pipelined_rest() {
        let mut two = OK.to_vec();
        two.extend_from_slice(
            b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        let mut f = Framer::default();
        let Step::Done { used, response } = f.feed(&two, false).unwrap() else {
            panic!()
        };
        assert_eq!(used, OK.len());
        assert_eq!(
            response,
            Response {
                status: 200,
                close: false
            }
        );
        let Step::Done { used: u2, response } = f.feed(&two[used..], false).unwrap() else {
            panic!()
        };
        assert_eq!(used + u2, two.len());
        assert_eq!(
            response,
            Response {
                status: 500,
                close: true
            }
        );
    }

    #[test]
    fn split_anywhere() {
        for cut in 0..OK.len() {
            let mut f = Framer::default();
            let (a, b) = OK.split_at(cut);
            // Feed `a`, keep whatever was not used, append `b`, as a connection does.
            let mut pending = a.to_vec();
            match f.feed(&pending, false).unwrap() {
                Step::More { used } => {
                    pending.drain(..used);
                }
                Step::Done { .. } => panic!("cut {cut}: done too early"),
            }
            pending.extend_from_slice(b);
            let step = f.feed(&pending, false).unwrap();
            assert!(
                matches!(
                    step,
                    Step::Done {
                        response: Response { status: 200, .. },
                        ..
                    }
                ),
                "cut {cut}: {step:?}"
            );
        }
    }

    #[test]
    fn long_body_is_skipped_across_reads() {
        let mut f = Framer::default();
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n";
        assert_eq!(
            f.feed(head, false).unwrap(),
            Step::More { used: head.len() }
        );
        assert!(f.mid_response());
        assert_eq!(
            f.feed(&[b'x'; 6000], false).unwrap(),
            Step::More { used: 6000 }
        );
        let Step::Done { used, .. } = f.feed(&[b'x'; 4000], false).unwrap() else {
            panic!()
        };
        assert_eq!(used, 4000);
        assert!(!f.mid_response());
    }

    #[test]
    fn refuses_what_it_cannot_frame() {
        let mut f = Framer::default();
        assert_eq!(f.feed(b"NOPE\r\n\r\n", false), Err(FrameError::Malformed));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            Framer::default().feed(chunked, false),
            Err(FrameError::Chunked)
        );
        let open = b"HTTP/1.1 200 OK\r\n\r\nbody until close";
        assert_eq!(
            Framer::default().feed(open, false),
            Err(FrameError::NoLength)
        );
        let nobody = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert!(matches!(
            Framer::default().feed(nobody, false),
            Ok(Step::Done { .. })
        ));
        let partial = b"HTTP/1.1 200 OK\r\nX: y";
        assert_eq!(
            Framer::default().feed(partial, true),
            Err(FrameError::HeadTooLarge)
        );
        let bad_len = b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n";
        assert_eq!(
            Framer::default().feed(bad_len, false),
            Err(FrameError::Malformed)
        );
    }

    #[test]
    fn http10_closes() {
        let r = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let Step::Done { response, .. } = Framer::default().feed(r, false).unwrap() else {
            panic!()
        };
        assert!(response.close);
    }

    #[test]
    fn request_bytes() {
        assert_eq!(
            build_request("/x", "127.0.0.1:80"),
            b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"
        );
    }
}
