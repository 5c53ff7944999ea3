//! loop-helpers' own tests (the shared ones come from `shared_arch_tests!`).
use crate::server::blocking_conn::testkit::*;

crate::server::blocking_conn::shared_arch_tests!("loop-helpers", 2);

#[test]
fn loop_keeps_serving_while_a_helper_runs_a_long_op() {
    use std::io::{ErrorKind, Read, Write};
    let s = start("loop-helpers", "spin:op_time=1s", 1);
    // A's op occupies the only helper for a second...
    let mut a = connect(s.addr);
    a.write_all(GET).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // ...while the loop still accepts, frames and answers B (its request is refused on
    // the loop, no op needed).
    let mut b = connect(s.addr);
    b.write_all(b"NOT HTTP\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_responses(&mut b, &mut buf, 1)[0].status, 400);
    // B was answered before A's op ended.
    a.set_nonblocking(true).unwrap();
    let mut one = [0u8; 1];
    let early = a.read(&mut one);
    assert!(
        matches!(&early, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "A answered before B: {early:?}"
    );
    a.set_nonblocking(false).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_responses(&mut a, &mut buf, 1)[0].status, 200);
    stop(s);
}

#[test]
fn helpers_serve_pipelined_requests_in_order() {
    let s = start("loop-helpers", "spin:op_time=20us", 2);
    basic_behaviour(s.addr);
    concurrent(s.addr, 20, 5);
    stop(s);
}

/// Runs `conns × reqs` requests on loop-helpers with `handler` and `offload_over`; returns
/// (requests answered, ops offloaded).
fn offloads(handler: &str, offload_over: std::time::Duration) -> (u64, u64) {
    let limits = crate::server::http::Limits {
        offload_over,
        ..Default::default()
    };
    let s = start_with("loop-helpers", handler, 2, 1, limits);
    concurrent(s.addr, 4, 5);
    let r = (
        s.stats.requests().iter().sum::<u64>(),
        s.stats.offloaded_ops(),
    );
    stop(s);
    r
}

#[test]
fn cheap_cpu_ops_run_inline_expensive_ones_on_helpers() {
    use std::time::Duration;
    // 5 µs of spin is far under the default 100 µs threshold: every op runs on the loop.
    assert_eq!(
        offloads("spin:op_time=5us", Duration::from_micros(100)),
        (20, 0)
    );
    // 3 ms is far over it: every op goes to a helper.
    assert_eq!(
        offloads("spin:op_time=3ms", Duration::from_micros(100)),
        (20, 20)
    );
    // The threshold is what decides: the same 5 µs op with a 1 µs threshold is offloaded.
    assert_eq!(
        offloads("spin:op_time=5us", Duration::from_micros(1)),
        (20, 20)
    );
    // Blocking disk ops always go to a helper, however high the threshold.
    assert_eq!(offloads("fsync", Duration::from_secs(10)), (20, 20));
}
