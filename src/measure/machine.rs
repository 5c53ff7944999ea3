//! Where a benchmark ran: CPU, cores, SMT, affinity, kernel, OS, hypervisor, frequency governor,
//! memory, and which build of concbench produced the numbers.
//!
//! Concurrency results only mean something next to the machine that produced them: two workers
//! on sibling hyperthreads are not two cores, a VM has steal time, a `powersave` governor moves
//! clock speeds under the benchmark. [`detect`] gathers all of it once at start-up and never
//! fails (what cannot be read becomes "unknown" or `None`); [`Machine::warnings`] turns the
//! facts that weaken a result into plain-English caveats that travel with it.
//!
//! Every parser here takes text, so the tests feed it fixed inputs; `detect` feeds it the real
//! `/proc` and `/sys` files.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Description of the machine and build a benchmark ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo` ("model name"), or "unknown".
    pub cpu_model: String,
    /// Logical CPUs online on the machine (`/sys/devices/system/cpu/online`; falls back to
    /// `num_cpus::get`, which counts only the CPUs this process may use).
    pub logical_cpus: usize,
    /// Physical cores (`num_cpus::get_physical`): logical CPUs minus SMT siblings.
    pub physical_cores: usize,
    /// True when some core runs more than one hardware thread (SMT / hyperthreading is on).
    pub smt: bool,
    /// CPUs this process was allowed to run on at start-up (its affinity mask).
    pub allowed_cpus: Vec<usize>,
    /// Kernel release (`uname -r`), or "unknown".
    pub kernel: String,
    /// Operating system (`PRETTY_NAME` from `/etc/os-release`), or "unknown".
    pub os: String,
    /// Hypervisor name ("KVM", "Microsoft Hyper-V", …) when running in a virtual machine
    /// ("unknown" when the hypervisor cannot be named); `None` on bare metal.
    pub virtualization: Option<String>,
    /// CPU frequency governor of cpu0 ("performance", "powersave", …); `None` when the kernel
    /// exposes no cpufreq (common in VMs).
    pub governor: Option<String>,
    /// Total memory in bytes (`MemTotal` from `/proc/meminfo`); `None` when unreadable.
    pub memory_bytes: Option<u64>,
    /// Host name (`uname -n`), or "unknown".
    pub hostname: String,
    /// Version of the rustc that compiled concbench (`rustc --version`), or "unknown".
    pub rustc: String,
    /// Git commit concbench was built from (12 hex digits, `-dirty` when tracked files had
    /// uncommitted changes), or "unknown" when built outside git.
    pub commit: String,
    /// concbench's own version (`CARGO_PKG_VERSION`).
    pub concbench_version: String,
    /// Kernel clock ticks per second (`sysconf(_SC_CLK_TCK)`): the unit of `/proc/stat` times.
    pub clock_tick_hz: u64,
    /// True when concbench was built without optimisations (debug assertions on): its numbers
    /// say nothing about the concurrency models.
    pub debug_build: bool,
}

/// Reads this machine's description. Never panics and never fails: values that cannot be
/// read become "unknown" or `None`.
pub fn detect() -> Machine {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let uname = nix::sys::utsname::uname().ok();
    let uts = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| UNKNOWN.into())
    };

    let virtualization = if cpuinfo_has_flag(&cpuinfo, "hypervisor") {
        Some(name_hypervisor(
            cpuid_hypervisor_vendor().as_deref(),
            read("/sys/class/dmi/id/sys_vendor").as_deref(),
            read("/sys/class/dmi/id/product_name").as_deref(),
        ))
    } else {
        None
    };

    let logical_cpus = read("/sys/devices/system/cpu/online")
        .map(|t| parse_cpu_list(&t).len())
        .filter(|&n| n > 0)
        .unwrap_or_else(num_cpus::get);

    Machine {
        cpu_model: parse_cpu_model(&cpuinfo).unwrap_or_else(|| UNKNOWN.into()),
        logical_cpus,
        physical_cores: num_cpus::get_physical(),
        smt: smt_from_sibling_lists(read_sibling_lists().iter().map(String::as_str)),
        allowed_cpus: crate::sys::allowed_cpus(),
        kernel: uts(nix::sys::utsname::UtsName::release),
        os: read("/etc/os-release")
            .or_else(|| read("/usr/lib/os-release"))
            .and_then(|t| parse_os_release(&t))
            .unwrap_or_else(|| UNKNOWN.into()),
        virtualization,
        governor: read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
            .and_then(|t| parse_governor(&t)),
        memory_bytes: read("/proc/meminfo").and_then(|t| parse_mem_total(&t)),
        hostname: uts(nix::sys::utsname::UtsName::nodename),
        rustc: option_env!("CONCBENCH_RUSTC")
            .unwrap_or(UNKNOWN)
            .to_string(),
        commit: option_env!("CONCBENCH_COMMIT")
            .unwrap_or(UNKNOWN)
            .to_string(),
        concbench_version: env!("CARGO_PKG_VERSION").to_string(),
        clock_tick_hz: 1_000_000_000 / crate::sys::procfs::ns_per_tick().max(1),
        debug_build: cfg!(debug_assertions),
    }
}

const UNKNOWN: &str = "unknown";

impl Machine {
    /// Plain-English caveats a result measured on this machine should carry, each saying what
    /// it means for the numbers. Empty when nothing is known to weaken them.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.debug_build {
            w.push(
                "debug build: concbench was compiled without optimisations, so these numbers \
                 are meaningless; rebuild with --release"
                    .to_string(),
            );
        }
        if let Some(v) = &self.virtualization {
            w.push(format!(
                "running in a virtual machine ({v}): steal time and noisy neighbours on the \
                 host can slow any run, so compare only results from the same VM"
            ));
        }
        let usable = if self.allowed_cpus.is_empty() {
            self.logical_cpus
        } else {
            self.allowed_cpus.len()
        };
        if usable < 2 {
            w.push(format!(
                "only {usable} CPU available: no parallel speed-up is possible, so every \
                 concurrency model can at best interleave work"
            ));
        } else if self.physical_cores < 2 {
            w.push(
                "only 1 physical core: its hyperthreads share one core's execution units, so \
                 expect little parallel speed-up"
                    .to_string(),
            );
        }
        if self.smt {
            w.push(
                "SMT (hyperthreading) is on: two workers on sibling hyperthreads share one \
                 core and are not two cores; scaling past the physical core count is not \
                 linear"
                    .to_string(),
            );
        }
        if !self.allowed_cpus.is_empty() && self.allowed_cpus.len() < self.logical_cpus {
            w.push(format!(
                "this process may use only {} of the machine's {} logical CPUs (CPUs {}): it \
                 is restricted by affinity or a cpuset, so more workers than that only queue",
                self.allowed_cpus.len(),
                self.logical_cpus,
                format_cpu_list(&self.allowed_cpus)
            ));
        }
        if let Some(g) = &self.governor
            && g != "performance"
        {
            w.push(format!(
                "CPU frequency governor is '{g}', not 'performance': frequency scaling moves \
                 results between runs"
            ));
        }
        w
    }

    /// A human-readable block of aligned `key: value` lines followed by the warnings, as
    /// printed by `concbench sys`.
    pub fn render(&self) -> String {
        let memory = match self.memory_bytes {
            Some(b) => format!("{:.1} GiB ({b} bytes)", b as f64 / (1u64 << 30) as f64),
            None => UNKNOWN.into(),
        };
        let rows: [(&str, String); 16] = [
            ("cpu model", self.cpu_model.clone()),
            ("logical cpus", self.logical_cpus.to_string()),
            ("physical cores", self.physical_cores.to_string()),
            ("smt", if self.smt { "on" } else { "off" }.into()),
            (
                "allowed cpus",
                if self.allowed_cpus.is_empty() {
                    UNKNOWN.into()
                } else {
                    format!(
                        "{} ({} cpus)",
                        format_cpu_list(&self.allowed_cpus),
                        self.allowed_cpus.len()
                    )
                },
            ),
            ("kernel", self.kernel.clone()),
            ("os", self.os.clone()),
            (
                "virtualization",
                self.virtualization
                    .clone()
                    .unwrap_or_else(|| "none (bare metal)".into()),
            ),
            (
                "governor",
                self.governor
                    .clone()
                    .unwrap_or_else(|| "unknown (no cpufreq)".into()),
            ),
            ("memory", memory),
            ("hostname", self.hostname.clone()),
            ("clock tick", format!("{} Hz", self.clock_tick_hz)),
            ("concbench", self.concbench_version.clone()),
            ("commit", self.commit.clone()),
            ("rustc", self.rustc.clone()),
            (
                "build",
                if self.debug_build { "debug" } else { "release" }.into(),
            ),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        let mut out = String::new();
        for (k, v) in &rows {
            out.push_str(&format!("{:<width$} {v}\n", format!("{k}:")));
        }
        let warnings = self.warnings();
        if warnings.is_empty() {
            out.push_str("warnings: none\n");
        } else {
            out.push_str("warnings:\n");
            for w in warnings {
                out.push_str(&format!("  - {w}\n"));
            }
        }
        out
    }
}

/// Reads a small text file, trimmed; `None` when unreadable or empty.
fn read(path: impl AsRef<Path>) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Values of `key` in `/proc/cpuinfo`-style `key<tabs>: value` lines.
fn cpuinfo_values<'a>(text: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter_map(move |l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The CPU model from `/proc/cpuinfo`: the first "model name" (x86), else "Processor" or
/// "cpu model" (some ARM and MIPS kernels).
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Processor", "cpu model"]
        .iter()
        .find_map(|key| cpuinfo_values(cpuinfo, key).find(|v| !v.is_empty()))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// True when any "flags" line of `/proc/cpuinfo` lists `flag`.
pub fn cpuinfo_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo_values(cpuinfo, "flags").any(|v| v.split_whitespace().any(|f| f == flag))
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        let mult = match parts.next() {
            Some("kB") | Some("KB") | Some("kb") => 1024,
            None => 1,
            Some(_) => return None,
        };
        n.checked_mul(mult)
    })
}

/// `PRETTY_NAME` from `os-release` (quotes and backslash escapes removed), else `NAME`.
pub fn parse_os_release(text: &str) -> Option<String> {
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
            let v = unquote(v.trim());
            (!v.is_empty()).then_some(v)
        })
    };
    value("PRETTY_NAME").or_else(|| value("NAME"))
}

/// Removes one level of shell-style quoting, as os-release(5) allows.
fn unquote(v: &str) -> String {
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    let inner = if quoted { &v[1..v.len() - 1] } else { v };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// A scaling governor file's content, or `None` when empty.
pub fn parse_governor(text: &str) -> Option<String> {
    let g = text.trim();
    (!g.is_empty()).then(|| g.to_string())
}

/// A kernel CPU list such as `0-3,8,10-11` (the format of `online`, `thread_siblings_list`,
/// `cpuset.cpus`). Malformed pieces are skipped.
pub fn parse_cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for piece in text
        .trim()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match piece.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>())
                    && a <= b
                    && b - a < 1 << 16
                {
                    cpus.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = piece.parse() {
                    cpus.push(n);
                }
            }
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// The compact kernel form of a CPU list: `[0, 1, 2, 5]` → `0-2,5`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// True when any core's `thread_siblings_list` names more than one CPU.
pub fn smt_from_sibling_lists<'a>(lists: impl IntoIterator<Item = &'a str>) -> bool {
    lists.into_iter().any(|l| parse_cpu_list(l).len() > 1)
}

/// Every `/sys/devices/system/cpu/cpuN/topology/thread_siblings_list` that can be read.
fn read_sibling_lists() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.strip_prefix("cpu")
                    .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .filter_map(|e| {
            let topo = e.path().join("topology");
            read(topo.join("thread_siblings_list")).or_else(|| read(topo.join("core_cpus_list")))
        })
        .collect()
}

/// The hypervisor's vendor signature from CPUID leaf 0x4000_0000 (what `lscpu` reports as
/// "Hypervisor vendor"). Only meaningful when cpuinfo has the `hypervisor` flag.
#[cfg(target_arch = "x86_64")]
fn cpuid_hypervisor_vendor() -> Option<String> {
    let r = std::arch::x86_64::__cpuid(0x4000_0000);
    let bytes: Vec<u8> = [r.ebx, r.ecx, r.edx]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let s = String::from_utf8_lossy(&bytes)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    (!s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')).then_some(s)
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_hypervisor_vendor() -> Option<String> {
    None
}

/// Names the hypervisor of a machine whose CPU has the `hypervisor` flag: the CPUID vendor
/// signature mapped to a name (with the DMI system vendor in brackets when it adds something,
/// e.g. "KVM (Amazon EC2)"), else the DMI system vendor or product name, else "unknown".
pub fn name_hypervisor(
    cpuid_vendor: Option<&str>,
    sys_vendor: Option<&str>,
    product_name: Option<&str>,
) -> String {
    let dmi_vendor = useful_dmi(sys_vendor);
    let cpuid_name = cpuid_vendor
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|v| {
            match v {
                "KVMKVMKVM" => "KVM",
                "Microsoft Hv" => "Microsoft Hyper-V",
                "VMwareVMware" => "VMware",
                "XenVMMXenVMM" => "Xen",
                "TCGTCGTCGTCG" => "QEMU (TCG emulation)",
                "VBoxVBoxVBox" => "VirtualBox",
                "bhyve bhyve" => "bhyve",
                "ACRNACRNACRN" => "ACRN",
                "QNXQVMBSQG" => "QNX",
                "lrpepyh  vr" | "prl hyperv" => "Parallels",
                "Linux KVM Hv" => "KVM (Hyper-V enlightenments)",
                other => other,
            }
            .to_string()
        });
    match (cpuid_name, dmi_vendor) {
        (Some(name), Some(vendor))
            if !name
                .to_ascii_lowercase()
                .contains(&vendor.to_ascii_lowercase()) =>
        {
            format!("{name} ({vendor})")
        }
        (Some(name), _) => name,
        (None, Some(vendor)) => vendor.to_string(),
        (None, None) => useful_dmi(product_name).unwrap_or(UNKNOWN).to_string(),
    }
}

/// A DMI string, or `None` when empty or a firmware placeholder ("To Be Filled By O.E.M.").
fn useful_dmi(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| {
        let l = s.to_ascii_lowercase();
        !s.is_empty()
            && ![
                "to be filled",
                "not specified",
                "default string",
                "system product name",
                "system manufacturer",
            ]
            .iter()
            .any(|p| l.contains(p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7763 64-Core Processor\nflags\t\t: fpu vme de pse hypervisor lahf_lm\n\nprocessor\t: 1\nmodel name\t: AMD EPYC  7763 64-Core Processor\nflags\t\t: fpu vme de pse hypervisor lahf_lm\n";

    #[test]
    fn cpuinfo_model_and_flags() {
        assert_eq!(
            parse_cpu_model(CPUINFO).as_deref(),
            Some("AMD EPYC 7763 64-Core Processor")
        );
        assert!(cpuinfo_has_flag(CPUINFO, "hypervisor"));
        assert!(!cpuinfo_has_flag(CPUINFO, "hyper"));
        let bare = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7\nflags\t\t: fpu sse2 ht\n";
        assert!(!cpuinfo_has_flag(bare, "hypervisor"));
        let arm = "Processor\t: ARMv7 Processor rev 4 (v7l)\nFeatures\t: half thumb\n";
        assert_eq!(
            parse_cpu_model(arm).as_deref(),
            Some("ARMv7 Processor rev 4 (v7l)")
        );
        assert_eq!(parse_cpu_model(""), None);
    }

    #[test]
    fn meminfo_total() {
        let t = "MemTotal:       16318480 kB\nMemFree:         1234567 kB\n";
        assert_eq!(parse_mem_total(t), Some(16318480 * 1024));
        assert_eq!(parse_mem_total("MemFree: 12 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn os_release() {
        let t = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            parse_os_release(t).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(
            parse_os_release("NAME='Alpine Linux'\n").as_deref(),
            Some("Alpine Linux")
        );
        assert_eq!(
            parse_os_release("PRETTY_NAME=\"Say \\\"hi\\\"\"\n").as_deref(),
            Some("Say \"hi\"")
        );
        assert_eq!(parse_os_release("ID=arch\n"), None);
    }

    #[test]
    fn cpu_lists_and_siblings() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("5"), vec![5]);
        assert_eq!(parse_cpu_list(""), Vec::<usize>::new());
        assert_eq!(parse_cpu_list("3-1,x,2"), vec![2]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[]), "");
        assert!(!smt_from_sibling_lists(["0\n", "1\n"]));
        assert!(smt_from_sibling_lists(["0,4\n", "1,5\n"]));
        assert!(smt_from_sibling_lists(["0-1"]));
        assert!(!smt_from_sibling_lists(Vec::<&str>::new()));
    }

    #[test]
    fn governor_and_hypervisor_names() {
        assert_eq!(parse_governor("powersave\n").as_deref(), Some("powersave"));
        assert_eq!(parse_governor("  \n"), None);
        assert_eq!(name_hypervisor(Some("KVMKVMKVM"), None, None), "KVM");
        assert_eq!(
            name_hypervisor(Some("KVMKVMKVM"), Some("Amazon EC2"), Some("m5.large")),
            "KVM (Amazon EC2)"
        );
        assert_eq!(
            name_hypervisor(Some("VMwareVMware"), Some("VMware, Inc."), None),
            "VMware (VMware, Inc.)"
        );
        assert_eq!(
            name_hypervisor(Some("XenVMMXenVMM"), Some("Xen"), None),
            "Xen"
        );
        assert_eq!(name_hypervisor(None, Some("QEMU"), None), "QEMU");
        assert_eq!(
            name_hypervisor(None, Some("To Be Filled By O.E.M."), Some("KVM")),
            "KVM"
        );
        assert_eq!(name_hypervisor(None, None, None), "unknown");
    }

    fn sample() -> Machine {
        Machine {
            cpu_model: "Test CPU".into(),
            logical_cpus: 8,
            physical_cores: 4,
            smt: false,
            allowed_cpus: (0..8).collect(),
            kernel: "6.1.0".into(),
            os: "Test OS".into(),
            virtualization: None,
            governor: Some("performance".into()),
            memory_bytes: Some(8 << 30),
            hostname: "box".into(),
            rustc: "rustc 1.95.0".into(),
            commit: "0123456789ab".into(),
            concbench_version: "0.1.0".into(),
            clock_tick_hz: 100,
            debug_build: false,
        }
    }

    #[test]
    fn warnings_say_what_they_mean() {
        assert!(sample().warnings().is_empty());
        let m = Machine {
            smt: true,
            allowed_cpus: vec![0, 1],
            virtualization: Some("KVM".into()),
            governor: Some("powersave".into()),
            debug_build: true,
            ..sample()
        };
        let w = m.warnings().join("\n");
        for needle in [
            "--release",
            "virtual machine (KVM)",
            "not two cores",
            "'powersave'",
            "only 2 of the machine's 8",
        ] {
            assert!(w.contains(needle), "missing {needle:?} in {w}");
        }
        let one = Machine {
            allowed_cpus: vec![3],
            ..sample()
        };
        assert!(
            one.warnings()
                .iter()
                .any(|w| w.contains("no parallel speed-up"))
        );
        let no_cpufreq = Machine {
            governor: None,
            ..sample()
        };
        assert!(no_cpufreq.warnings().is_empty());
    }

    #[test]
    fn render_aligns_keys_and_lists_warnings() {
        let r = sample().render();
        assert!(r.contains("cpu model:      Test CPU\n"), "{r}");
        assert!(r.contains("allowed cpus:   0-7 (8 cpus)\n"), "{r}");
        assert!(r.contains("memory:         8.0 GiB"), "{r}");
        assert!(r.ends_with("warnings: none\n"), "{r}");
        let r = Machine {
            debug_build: true,
            ..sample()
        }
        .render();
        assert!(r.contains("warnings:\n  - debug build"), "{r}");
    }

    #[test]
    fn serde_round_trip() {
        let m = sample();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Machine>(&json).unwrap(), m);
    }

    #[test]
    fn detects_this_machine() {
        let m = detect();
        assert!(m.logical_cpus >= 1);
        assert!(m.physical_cores >= 1);
        assert!(!m.kernel.is_empty() && m.kernel != "unknown");
        assert_ne!(m.rustc, "unknown");
        assert!(m.rustc.starts_with("rustc "), "{}", m.rustc);
        assert!(!m.allowed_cpus.is_empty());
        assert!(m.clock_tick_hz > 0);
        assert_eq!(m.debug_build, cfg!(debug_assertions));
        assert!(!m.render().is_empty());
    }
}
