//! The operator runtime's own figures, under the names generic operator dashboards read (those
//! upstream's controller-runtime serves on 8383): reconciles and errors by controller, reconciles
//! in flight, leader status, and the process (CPU, memory, file descriptors, start time, as
//! Prometheus's process collector names them). Unprefixed, in a registry of their own.
//!
//! Not served: controller-runtime's work-queue families (`workqueue_*`): kube's controller does
//! not expose its queue, and a figure under that name that meant something else would mislead.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabels {
    name: String,
}

pub struct Runtime {
    pub registry: Registry,
    reconcile: Family<ResultLabels, Counter>,
    reconcile_errors: Family<ControllerLabels, Counter>,
    active: Family<ControllerLabels, Gauge>,
    leader: Family<NameLabels, Gauge>,
}

impl Runtime {
    pub fn new() -> Runtime {
        let mut registry = Registry::default();
        let r = Runtime {
            reconcile: Family::default(),
            reconcile_errors: Family::default(),
            active: Family::default(),
            leader: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            r.reconcile.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            r.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            r.active.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
            r.leader.clone(),
        );
        registry.register_collector(Box::new(Process));
        Runtime { registry, ..r }
    }

    pub fn started(&self, controller: &str) {
        self.active.get_or_create(&labels(controller)).inc();
    }

    pub fn finished(&self, controller: &str, ok: bool) {
        self.active.get_or_create(&labels(controller)).dec();
        let result = if ok { "success" } else { "error" };
        self.reconcile
            .get_or_create(&ResultLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        if !ok {
            self.reconcile_errors
                .get_or_create(&labels(controller))
                .inc();
        }
    }

    pub fn leader(&self, lease: &str, leading: bool) {
        let name = NameLabels { name: lease.into() };
        self.leader.get_or_create(&name).set(i64::from(leading));
    }
}

fn labels(controller: &str) -> ControllerLabels {
    ControllerLabels {
        controller: controller.into(),
    }
}

/// This process, read from `/proc/self` at each scrape; a figure that cannot be read is left
/// out (never a made-up 0).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let figures = ProcessFigures::read();
        if let Some(v) = figures.cpu_seconds {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                figures.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                figures.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                figures.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                figures.max_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                figures.start_time,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
                g.encode(m)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Default, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
    pub start_time: Option<f64>,
}

/// Linux's USER_HZ: the unit of `/proc` CPU times for every program (the kernel's own tick
/// rate is hidden from them; Prometheus's procfs assumes the same).
const USER_HZ: f64 = 100.0;

impl ProcessFigures {
    pub fn read() -> ProcessFigures {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        let mut f = stat
            .as_deref()
            .map(|s| from_stat(s, boot))
            .unwrap_or_default();
        f.resident_bytes = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| resident(&s));
        f.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        f.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|s| max_open_files(&s));
        f
    }
}

/// Figures from `/proc/self/stat` (fields after the parenthesised command name, which may hold
/// spaces): utime 14, stime 15, starttime 22, vsize 23 (1-based, as proc(5) counts).
pub fn from_stat(stat: &str, boot: Option<f64>) -> ProcessFigures {
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return ProcessFigures::default();
    };
    // `rest` starts at field 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let cpu = match (field(14), field(15)) {
        (Some(u), Some(s)) => Some((u + s) / USER_HZ),
        _ => None,
    };
    ProcessFigures {
        cpu_seconds: cpu,
        virtual_bytes: field(23),
        start_time: match (field(22), boot) {
            (Some(start), Some(boot)) => Some(boot + start / USER_HZ),
            _ => None,
        },
        ..ProcessFigures::default()
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn resident(status: &str) -> Option<f64> {
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: f64 = kb.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024.0)
}

/// `btime` of `/proc/stat`: boot time, Unix seconds.
pub fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
pub fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let rest = line.strip_prefix("Max open files")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The exposition text of both registries, then one end marker.
pub fn encode_all(registries: &[&Registry]) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    for r in registries {
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, r);
    }
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_read_as_proc5_lays_them_out() {
        // A command name with spaces and a parenthesis, as a process may name itself.
        let stat = "42 (fio op) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 123456789 2000 18446744073709551615";
        let f = from_stat(stat, Some(1_700_000_000.0));
        assert_eq!(f.cpu_seconds, Some(3.0));
        assert_eq!(f.virtual_bytes, Some(123_456_789.0));
        assert_eq!(f.start_time, Some(1_700_000_010.0));
        assert_eq!(from_stat("garbage", None), ProcessFigures::default());
        assert_eq!(
            resident("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048.0 * 1024.0)
        );
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(max_open_files(limits), Some(1_048_576.0));
    }

    #[test]
    fn the_runtime_families_are_served_with_this_process() {
        let r = Runtime::new();
        r.started("results");
        r.finished("results", true);
        r.started("results");
        r.finished("results", false);
        r.leader("file-integrity-operator-lock", true);
        let text = encode_all(&[&r.registry]);
        for line in [
            "controller_runtime_reconcile_total{controller=\"results\",result=\"success\"} 1",
            "controller_runtime_reconcile_total{controller=\"results\",result=\"error\"} 1",
            "controller_runtime_reconcile_errors_total{controller=\"results\"} 1",
            "controller_runtime_active_workers{controller=\"results\"} 0",
            "leader_election_master_status{name=\"file-integrity-operator-lock\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        // This process's figures (each family is asserted as served in tests/metrics.rs).
        assert!(
            text.lines().any(|l| l.starts_with("process_open_fds ")),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
