//! The only home of `unsafe` in concbench: fork, shared memory, affinity, rusage, `/proc`
//! and the SIGINT/SIGTERM handler.
//!
//! Everything above this module talks to the kernel through the safe wrappers here, the way
//! mio fences its syscalls into `sys/`. Each `unsafe` block carries a `// SAFETY:` line.

pub mod affinity;
pub mod eventfd;
pub mod fault;
pub mod fd;
pub mod futex;
pub mod limits;
pub mod mem;
pub mod process;
pub mod procfs;
pub mod ring;
pub mod rusage;
pub mod shm;
pub mod signal;
pub mod thread;

pub use affinity::{allowed_cpus, current_cpu, pin_current};
pub use process::{Child, fork_child};
pub use rusage::{Rusage, thread_rusage};
pub use shm::SharedSlice;
