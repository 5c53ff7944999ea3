//! The loop driver: one thread multiplexes all of its worker's tasks on an epoll loop (mio),
//! the way Redis and Node.js do. A task's `Wait` registers its fd (edge-triggered, read and
//! write, once per fd); `Sleep` and open-loop arrivals go into a timer heap. Deadlines wake the
//! loop through a `timerfd`, because epoll's own timeout has millisecond resolution and would
//! make the loop look slower than `nanosleep`-based workers for reasons that are not the
//! model's.
//!
//! Pure CPU tasks never make the loop enter the kernel between ops: with no fd registered and
//! no timer pending, ready tasks run back to back. Disk I/O inside `step` blocks the whole
//! loop: that is the real cost of a loop on blocking calls, not a bug to hide.
//!
//! # Timing model
//! An op's latency runs from its issue time (closed loop: the end of the task's previous op;
//! open loop: its due time) to the clock read after `Step::Done`, so it includes the time the
//! task waited in the ready queue behind other tasks of the same loop.

use crate::loop_timer::LoopTimer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::worker::Schedule;
use crate::measure::recorder::Recorder;
use crate::workload::{Step, Task};

/// Longest wait in epoll before the loop rechecks the phase word.
const SLICE: Duration = Duration::from_millis(20);
const TIMER: Token = Token(usize::MAX);

/// Runs `tasks` on one epoll loop until the recorder says stop.
pub fn run(
    tasks: &mut [Box<dyn Task>],
    schedule: &Schedule,
    rec: &mut Recorder<'_>,
) -> Result<(), String> {
    let n = tasks.len();
    let mut poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
    let mut events = Events::with_capacity(n.clamp(16, 1024));
    let mut timer = LoopTimer::new(poll.registry(), TIMER)?;

    let start = Instant::now();
    let interval = schedule.interval();
    let mut issued: Vec<Instant> = (0..n).map(|i| schedule.first_due(start, i)).collect();
    let mut waiting = vec![false; n];
    let mut n_waiting = 0usize;
    let mut registered: Vec<Vec<RawFd>> = vec![Vec::new(); n];
    let mut ready: VecDeque<usize> = VecDeque::with_capacity(n);
    let mut timers: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::with_capacity(n);
    match interval {
        None => ready.extend(0..n),
        Some(_) => timers.extend((0..n).map(|i| Reverse((issued[i], i)))),
    }

    loop {
        // One pass over the tasks that are ready now.
        for _ in 0..ready.len() {
            let i = ready.pop_front().expect("counted");
            match tasks[i].step().map_err(|e| format!("task {i}: {e}"))? {
                Step::Done => {
                    let now = Instant::now();
                    if !rec.op_done(issued[i], now) {
                        return Ok(());
                    }
                    match interval {
                        None => {
                            issued[i] = now;
                            ready.push_back(i);
                        }
                        Some(iv) => {
                            issued[i] += iv;
                            if issued[i] <= now {
                                ready.push_back(i);
                            } else {
                                timers.push(Reverse((issued[i], i)));
                            }
                        }
                    }
                }
                Step::Sleep { until } => timers.push(Reverse((until, i))),
                Step::Wait { fd, .. } => {
                    if !registered[i].contains(&fd) {
                        poll.registry()
                            .register(
                                &mut SourceFd(&fd),
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .map_err(|e| format!("task {i}: epoll_ctl(ADD, fd {fd}): {e}"))?;
                        registered[i].push(fd);
                    }
                    waiting[i] = true;
                    n_waiting += 1;
                }
            }
        }

        // Pure CPU: nothing to wait for, so no syscall between ops.
        if !ready.is_empty() && n_waiting == 0 && timers.is_empty() {
            continue;
        }
        if ready.is_empty() && !rec.keep_going() {
            return Ok(());
        }
        let now = Instant::now();
        expire(&mut timers, &mut ready, now);
        if !ready.is_empty() && n_waiting == 0 {
            continue;
        }
        let timeout = if !ready.is_empty() {
            Duration::ZERO
        } else {
            if let Some(&Reverse((due, _))) = timers.peek() {
                timer.arm(due)?;
            }
            SLICE
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        for ev in events.iter() {
            if ev.token() == TIMER {
                timer.fired();
                continue;
            }
            let i = ev.token().0;
            if i < n && waiting[i] {
                waiting[i] = false;
                n_waiting -= 1;
                ready.push_back(i);
            }
        }
        expire(&mut timers, &mut ready, Instant::now());
    }
}

/// Moves every timer due by `now` to the ready queue.
#[inline]
fn expire(
    timers: &mut BinaryHeap<Reverse<(Instant, usize)>>,
    ready: &mut VecDeque<usize>,
    now: Instant,
) {
    while let Some(&Reverse((due, i))) = timers.peek() {
        if due > now {
            break;
        }
        timers.pop();
        ready.push_back(i);
    }
}
