//! Property tests of the HTTP request path (proptest, fixed seed and case counts, so they run
//! in CI in seconds and fail the same way every time): the framer never panics on arbitrary
//! bytes and never claims more bytes than it was given; a valid pipelined stream split at
//! arbitrary points frames into the same requests as the whole stream; and a live
//! event-loop server answers random garbage with a refusal and a close, and keeps serving.

use std::io::{Read, Write};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

use super::http::{Limits, Parse, parse_request};

/// Deterministic: a fixed seed, no failure files, `cases` cases.
fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x00C0_FFEE),
        failure_persistence: None,
        ..Config::default()
    }
}

/// One valid request: method, path, optional body, keep-alive or close; its bytes.
fn request() -> impl Strategy<Value = (Vec<u8>, bool)> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "HEAD", "DELETE"]),
        "/[a-z0-9/._-]{0,30}",
        prop::collection::vec(any::<u8>(), 0..40),
        any::<bool>(),
        prop::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,10}", "[ -~]{0,20}"), 0..4),
    )
        .prop_map(|(method, path, body, close, headers)| {
            let mut r = format!("{method} {path} HTTP/1.1\r\nHost: t\r\n").into_bytes();
            for (k, v) in headers {
                let k = format!("X-{k}");
                r.extend_from_slice(format!("{k}: {}\r\n", v.trim()).as_bytes());
            }
            if close {
                r.extend_from_slice(b"Connection: close\r\n");
            }
            if !body.is_empty() {
                r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
            r.extend_from_slice(b"\r\n");
            r.extend_from_slice(&body);
            (r, !close)
        })
}

/// Frames `chunks` as a server does: append each chunk, then frame every whole request at
/// the front; returns (consumed, keep_alive) per request, and whether anything was refused.
fn frame_incrementally(chunks: &[&[u8]], limits: &Limits) -> (Vec<(usize, bool)>, bool) {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match parse_request(&buf, limits) {
                Parse::Complete(r) => {
                    assert!(r.consumed > 0 && r.consumed <= buf.len());
                    out.push((r.consumed, r.keep_alive));
                    buf.drain(..r.consumed);
                }
                Parse::Partial => break,
                Parse::Refused(_) => return (out, true),
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left unframed", buf.len());
    (out, false)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic_the_framer(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let limits = Limits { max_head: 1024, max_body: 512, ..Limits::default() };
        match parse_request(&bytes, &limits) {
            Parse::Complete(r) => prop_assert!(r.consumed > 0 && r.consumed <= bytes.len()),
            Parse::Partial => prop_assert!(bytes.len() <= limits.max_head + limits.max_body + 4),
            Parse::Refused(r) => prop_assert!([400, 413, 431, 501].contains(&r.status)),
        }
    }

    #[test]
    fn http_prefixed_garbage_never_panics(
        head in "[A-Z]{1,7} [ -~]{0,40} HTTP/1\\.[01]\r\n",
        tail in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&tail);
        let limits = Limits::default();
        if let Parse::Complete(r) = parse_request(&bytes, &limits) {
            prop_assert!(r.consumed <= bytes.len());
        }
    }

    #[test]
    fn split_pipelined_stream_frames_like_the_whole(
        reqs in prop::collection::vec(request(), 1..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let limits = Limits::default();
        let stream: Vec<u8> = reqs.iter().flat_map(|(b, _)| b.clone()).collect();
        let (whole, refused) = frame_incrementally(&[&stream], &limits);
        prop_assert!(!refused);
        let expected: Vec<(usize, bool)> = reqs.iter().map(|(b, k)| (b.len(), *k)).collect();
        prop_assert_eq!(&whole, &expected);
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        at.sort();
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut prev = 0;
        for a in at.into_iter().chain([stream.len()]) {
            chunks.push(&stream[prev..a]);
            prev = a;
        }
        let (split, refused) = frame_incrementally(&chunks, &limits);
        prop_assert!(!refused);
        prop_assert_eq!(split, whole);
    }
}

/// Random garbage sent to a live event-loop server (then half-closed): the server answers
/// with a well-formed refusal (or a 200, should the bytes happen to be a request) and closes;
/// after every case a fresh client is still served.
#[test]
fn live_server_refuses_garbage_and_keeps_serving() {
    use crate::server::blocking_conn::testkit::*;
    let srv = start_with("event-loop", "none", 1, 1, Limits::default());
    let addr = srv.addr;
    let mut runner = proptest::test_runner::TestRunner::new(config(48));
    let garbage = prop::collection::vec(any::<u8>(), 1..3000);
    runner
        .run(&garbage, |bytes| {
            let mut s = connect(addr);
            let _ = s.write_all(&bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got); // EOF, or a reset after the answer
            if !got.is_empty() {
                let mut h = [httparse::EMPTY_HEADER; 16];
                let mut r = httparse::Response::new(&mut h);
                prop_assert!(r.parse(&got).is_ok(), "not HTTP: {:?}", got);
                prop_assert!([200, 400, 413, 431, 501].contains(&r.code.unwrap_or(0)));
            }
            let mut good = connect(addr);
            good.write_all(GET).unwrap();
            let mut buf = Vec::new();
            prop_assert_eq!(read_responses(&mut good, &mut buf, 1)[0].status, 200);
            Ok(())
        })
        .unwrap();
    stop(srv);
}
