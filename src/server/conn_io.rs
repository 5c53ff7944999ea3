//! Socket I/O shared by the two architectures that run their own mio loops beside
//! `loop_core` (loop-helpers and io-threads): read until `WouldBlock` or a cap and frame the
//! whole requests, and write until done or `WouldBlock`, with the caps that bound what one
//! connection may make the server hold.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;

use super::http::{Limits, Parse, parse_request};

/// A non-blocking mio copy (`dup`) of the server's shared listener, registered for `token`.
pub(crate) fn register_listener(
    listener: &std::net::TcpListener,
    registry: &mio::Registry,
    token: mio::Token,
) -> Result<mio::net::TcpListener, String> {
    let std_listener = listener
        .try_clone()
        .map_err(|e| format!("dup(listener): {e}"))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let mut listener = mio::net::TcpListener::from_std(std_listener);
    registry
        .register(&mut listener, token, mio::Interest::READABLE)
        .map_err(|e| format!("epoll_ctl(listener): {e}"))?;
    Ok(listener)
}

/// Framed requests a connection may queue before the loop stops reading it.
pub const MAX_PENDING: usize = 256;
/// Unframed bytes a connection may hold before the loop stops reading it.
pub const RBUF_CAP: usize = 64 * 1024;

/// What one [`read_and_frame_into`] saw.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReadOutcome {
    /// The client finished sending.
    pub eof: bool,
    /// The socket failed.
    pub dead: bool,
    /// Reading stopped at [`RBUF_CAP`], not at `WouldBlock`: the socket may hold more.
    pub more: bool,
    /// Bytes read.
    pub bytes: usize,
}

/// Reads until the socket would block (edge-triggered) or the buffer holds [`RBUF_CAP`]
/// unframed bytes, then frames every whole request.
pub(crate) fn read_and_frame_into(
    stream: &mut TcpStream,
    inbuf: &mut Vec<u8>,
    limits: &Limits,
    mut push: impl FnMut(Parse) -> bool,
) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if inbuf.len() >= RBUF_CAP.max(limits.max_head + 1) {
            out.more = true;
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                out.eof = true;
                break;
            }
            Ok(n) => {
                inbuf.extend_from_slice(&chunk[..n]);
                out.bytes += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                out.dead = true;
                break;
            }
        }
    }
    let mut start = 0;
    loop {
        let p = parse_request(&inbuf[start..], limits);
        match &p {
            Parse::Partial => break,
            Parse::Complete(r) => start += r.consumed,
            Parse::Refused(_) => start = inbuf.len(),
        }
        if !push(p) {
            start = inbuf.len();
            break;
        }
    }
    inbuf.drain(..start);
    out
}

/// Writes what the socket takes; false when the connection is broken.
pub(crate) fn flush_into(stream: &mut TcpStream, out: &mut Vec<u8>, written: &mut usize) -> bool {
    while *written < out.len() {
        match stream.write(&out[*written..]) {
            Ok(0) => return false,
            Ok(n) => *written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // The WRITABLE edge brings us back.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    out.clear();
    *written = 0;
    true
}
