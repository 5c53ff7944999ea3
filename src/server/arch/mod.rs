//! The architectures, one file each. Each exposes `ARCH: ArchDef` whose `run` serves until the
//! process is killed.

pub mod event_loop;
pub mod io_threads;
pub mod loop_helpers;
pub mod prefork;
pub mod process_per_conn;
pub mod thread_per_conn;
pub mod thread_workers;
