//! nimsync's own metrics: schedulers, channels and task groups registered
//! with a [`Collector`] are read at scrape time.
//!
//! The collector holds a weak reference to each object: registering keeps
//! nothing alive, and once the object is gone its series vanish (the source
//! is dropped at the next scrape). Every family carries the name given at
//! registration as a label (`scheduler`, `channel` or `group`), so several
//! objects of a kind share one family.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `nimsync_scheduler_workers` | gauge | scheduler |
//! | `nimsync_scheduler_tasks_spawned_total` | counter | scheduler |
//! | `nimsync_scheduler_tasks_injected_total` | counter | scheduler |
//! | `nimsync_scheduler_tasks_executed_total` | counter | scheduler |
//! | `nimsync_scheduler_tasks_stolen_total` | counter | scheduler |
//! | `nimsync_scheduler_injector_depth` | gauge | scheduler |
//! | `nimsync_scheduler_load_imbalance` | gauge | scheduler |
//! | `nimsync_scheduler_worker_tasks_executed_total` | counter | scheduler, worker |
//! | `nimsync_scheduler_worker_tasks_stolen_total` | counter | scheduler, worker |
//! | `nimsync_scheduler_worker_queue_depth` | gauge | scheduler, worker |
//! | `nimsync_scheduler_worker_parks_total` | counter | scheduler, worker |
//! | `nimsync_scheduler_worker_panics_total` | counter | scheduler, worker |
//! | `nimsync_channel_length` | gauge | channel, mode |
//! | `nimsync_channel_capacity` | gauge (`+Inf` when unbounded) | channel, mode |
//! | `nimsync_channel_closed` | gauge (0/1) | channel, mode |
//! | `nimsync_channel_waiting_senders` | gauge | channel, mode |
//! | `nimsync_channel_waiting_receivers` | gauge | channel, mode |
//! | `nimsync_group_tasks_spawned_total` | counter | group |
//! | `nimsync_group_tasks_pending` | gauge | group |
//! | `nimsync_group_failures_unjoined` | gauge | group |
//! | `nimsync_group_skipped_unjoined` | gauge | group |
//! | `nimsync_group_cancelled` | gauge (0/1) | group |

use super::{lock, read, Collector, Kind};
use crate::error::Error;
use crate::scheduler::WeakScheduler;
use crate::{Scheduler, TaskGroup};

/// Reads one object's numbers, or `None` once it is gone.
type Probe<T> = Box<dyn Fn() -> Option<T> + Send + Sync>;

pub(crate) enum Source {
    Scheduler {
        name: String,
        probe: WeakScheduler,
    },
    // Channels are not registered under loom (their probe needs `Weak`).
    #[cfg_attr(loom, allow(dead_code))]
    Channel {
        name: String,
        mode: &'static str,
        probe: Probe<crate::channel::ChannelStats>,
    },
    Group {
        name: String,
        probe: Probe<crate::group::GroupStats>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SourceKind {
    Scheduler,
    Channel,
    Group,
}

impl Source {
    fn kind(&self) -> SourceKind {
        match self {
            Source::Scheduler { .. } => SourceKind::Scheduler,
            Source::Channel { .. } => SourceKind::Channel,
            Source::Group { .. } => SourceKind::Group,
        }
    }

    fn name(&self) -> &str {
        match self {
            Source::Scheduler { name, .. } | Source::Channel { name, .. } | Source::Group { name, .. } => name,
        }
    }

    fn alive(&self) -> bool {
        match self {
            Source::Scheduler { probe, .. } => probe.metrics().is_some(),
            Source::Channel { probe, .. } => probe().is_some(),
            Source::Group { probe, .. } => probe().is_some(),
        }
    }
}

const SCHEDULER_FAMILIES: &[(&str, &str, Kind)] = &[
    ("nimsync_scheduler_workers", "Worker threads of the pool.", Kind::Gauge),
    ("nimsync_scheduler_tasks_spawned_total", "Tasks spawned (injected plus spawned by workers).", Kind::Counter),
    ("nimsync_scheduler_tasks_injected_total", "Tasks spawned from outside the pool.", Kind::Counter),
    ("nimsync_scheduler_tasks_executed_total", "Tasks run.", Kind::Counter),
    ("nimsync_scheduler_tasks_stolen_total", "Tasks stolen between workers.", Kind::Counter),
    ("nimsync_scheduler_injector_depth", "Tasks waiting in the global queue.", Kind::Gauge),
    ("nimsync_scheduler_load_imbalance", "Busiest worker's executed count over the mean, minus one.", Kind::Gauge),
    ("nimsync_scheduler_worker_tasks_executed_total", "Tasks this worker ran.", Kind::Counter),
    ("nimsync_scheduler_worker_tasks_stolen_total", "Tasks this worker took from others.", Kind::Counter),
    ("nimsync_scheduler_worker_queue_depth", "Tasks waiting in this worker's deque.", Kind::Gauge),
    ("nimsync_scheduler_worker_parks_total", "Times this worker slept for lack of work.", Kind::Counter),
    ("nimsync_scheduler_worker_panics_total", "Tasks that panicked on this worker.", Kind::Counter),
];

const CHANNEL_FAMILIES: &[(&str, &str, Kind)] = &[
    ("nimsync_channel_length", "Items in the channel.", Kind::Gauge),
    ("nimsync_channel_capacity", "Slots in the channel (+Inf when unbounded).", Kind::Gauge),
    ("nimsync_channel_closed", "1 once the channel is closed.", Kind::Gauge),
    ("nimsync_channel_waiting_senders", "Threads blocked sending.", Kind::Gauge),
    ("nimsync_channel_waiting_receivers", "Threads blocked receiving.", Kind::Gauge),
];

const GROUP_FAMILIES: &[(&str, &str, Kind)] = &[
    ("nimsync_group_tasks_spawned_total", "Tasks spawned into the group.", Kind::Counter),
    ("nimsync_group_tasks_pending", "Tasks spawned and not finished.", Kind::Gauge),
    ("nimsync_group_failures_unjoined", "Task failures not yet returned by a join.", Kind::Gauge),
    ("nimsync_group_skipped_unjoined", "Tasks skipped by cancellation, not yet reported by a join.", Kind::Gauge),
    ("nimsync_group_cancelled", "1 once the group's token is cancelled.", Kind::Gauge),
];

fn families_of(kind: SourceKind) -> &'static [(&'static str, &'static str, Kind)] {
    match kind {
        SourceKind::Scheduler => SCHEDULER_FAMILIES,
        SourceKind::Channel => CHANNEL_FAMILIES,
        SourceKind::Group => GROUP_FAMILIES,
    }
}

/// The sample names the registered sources write (kept out of user metrics).
pub(crate) fn reserved_names(sources: &[Source]) -> Vec<String> {
    let mut kinds: Vec<SourceKind> = sources.iter().map(Source::kind).collect();
    kinds.dedup();
    kinds.iter().flat_map(|k| families_of(*k).iter().map(|f| f.0.to_string())).collect()
}

/// One runtime family as read at a scrape.
pub(crate) struct RuntimeFamily {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    pub(crate) samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Reads every live source (dropping the dead ones) into families.
pub(crate) fn collect(sources: &mut Vec<Source>) -> Vec<RuntimeFamily> {
    let mut out: Vec<RuntimeFamily> = Vec::new();
    let mut add = |name: &'static str, labels: Vec<(&'static str, String)>, v: f64| {
        let i = match out.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                let (_, help, kind) = [SCHEDULER_FAMILIES, CHANNEL_FAMILIES, GROUP_FAMILIES]
                    .iter()
                    .flat_map(|f| f.iter())
                    .find(|f| f.0 == name)
                    .copied()
                    .expect("every runtime family is listed");
                out.push(RuntimeFamily { name, help, kind, samples: Vec::new() });
                out.len() - 1
            }
        };
        out[i].samples.push((labels, v));
    };
    sources.retain(|source| match source {
        Source::Scheduler { name, probe } => {
            let Some(m) = probe.metrics() else { return false };
            let l = || vec![("scheduler", name.clone())];
            add("nimsync_scheduler_workers", l(), m.workers.len() as f64);
            add("nimsync_scheduler_tasks_spawned_total", l(), m.spawned as f64);
            add("nimsync_scheduler_tasks_injected_total", l(), m.injected as f64);
            add("nimsync_scheduler_tasks_executed_total", l(), m.executed as f64);
            add("nimsync_scheduler_tasks_stolen_total", l(), m.stolen as f64);
            add("nimsync_scheduler_injector_depth", l(), m.injector_depth as f64);
            add("nimsync_scheduler_load_imbalance", l(), m.load_imbalance);
            for (i, w) in m.workers.iter().enumerate() {
                let l = || vec![("scheduler", name.clone()), ("worker", i.to_string())];
                add("nimsync_scheduler_worker_tasks_executed_total", l(), w.executed as f64);
                add("nimsync_scheduler_worker_tasks_stolen_total", l(), w.stolen_by as f64);
                add("nimsync_scheduler_worker_queue_depth", l(), w.queue_depth as f64);
                add("nimsync_scheduler_worker_parks_total", l(), w.parks as f64);
                add("nimsync_scheduler_worker_panics_total", l(), w.panics as f64);
            }
            true
        }
        Source::Channel { name, mode, probe } => {
            let Some(s) = probe() else { return false };
            let l = || vec![("channel", name.clone()), ("mode", mode.to_string())];
            add("nimsync_channel_length", l(), s.len as f64);
            let cap = if s.capacity == usize::MAX { f64::INFINITY } else { s.capacity as f64 };
            add("nimsync_channel_capacity", l(), cap);
            add("nimsync_channel_closed", l(), f64::from(u8::from(s.closed)));
            add("nimsync_channel_waiting_senders", l(), s.waiting_senders as f64);
            add("nimsync_channel_waiting_receivers", l(), s.waiting_receivers as f64);
            true
        }
        Source::Group { name, probe } => {
            let Some(g) = probe() else { return false };
            let l = || vec![("group", name.clone())];
            add("nimsync_group_tasks_spawned_total", l(), g.spawned as f64);
            add("nimsync_group_tasks_pending", l(), g.pending as f64);
            add("nimsync_group_failures_unjoined", l(), g.failures as f64);
            add("nimsync_group_skipped_unjoined", l(), g.skipped as f64);
            add("nimsync_group_cancelled", l(), f64::from(u8::from(g.cancelled)));
            true
        }
    });
    for f in &mut out {
        f.samples.sort_by(|a, b| a.0.cmp(&b.0));
    }
    out
}

impl Collector {
    fn add_source(&self, source: Source) -> Result<(), Error> {
        if source.name().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        let kind = source.kind();
        let mut sources = lock(&self.reg.sources);
        // Registered metrics must not already write this kind's names.
        for f in read(&self.reg.families).values() {
            for line in f.line_names() {
                if families_of(kind).iter().any(|r| r.0 == line) {
                    return Err(Error::invalid("name", format!("a registered metric already writes `{line}`")));
                }
            }
        }
        sources.retain(Source::alive);
        if sources.iter().any(|s| s.kind() == kind && s.name() == source.name()) {
            return Err(Error::invalid("name", format!("{:?} is already registered for this kind", source.name())));
        }
        sources.push(source);
        Ok(())
    }

    /// Publishes `scheduler`'s metrics ([`Scheduler::metrics`]) under the
    /// label `scheduler="<name>"`, read at each scrape. The collector does not
    /// keep the pool running. Fails if `name` is empty or already used for a
    /// scheduler in this collector.
    ///
    /// ```
    /// use nimsync_core::{metrics::Collector, Scheduler};
    /// let pool = Scheduler::new(1).unwrap();
    /// let c = Collector::new();
    /// c.register_scheduler("io", &pool).unwrap();
    /// pool.install(|| ());
    /// assert!(c.to_prometheus().contains("nimsync_scheduler_workers{scheduler=\"io\"} 1\n"));
    /// ```
    pub fn register_scheduler(&self, name: &str, scheduler: &Scheduler) -> Result<(), Error> {
        self.add_source(Source::Scheduler { name: name.to_string(), probe: scheduler.downgrade() })
    }

    /// Publishes `channel`'s length, capacity, closed flag and blocked
    /// threads under `channel="<name>"`. The collector does not keep the
    /// channel alive; once its last handle is dropped, its series go.
    ///
    /// ```
    /// use nimsync_core::{metrics::Collector, Channel, Mode};
    /// let ch = Channel::new(4, Mode::Spsc).unwrap();
    /// let c = Collector::new();
    /// c.register_channel("jobs", &ch).unwrap();
    /// ch.send(1).unwrap();
    /// assert!(c.to_prometheus().contains("nimsync_channel_length{channel=\"jobs\",mode=\"spsc\"} 1\n"));
    /// drop(ch);
    /// assert!(!c.to_prometheus().contains("jobs"));
    /// ```
    #[cfg(not(loom))]
    pub fn register_channel<T: Send + 'static>(&self, name: &str, channel: &crate::Channel<T>) -> Result<(), Error> {
        let mode = if channel.is_unbounded() { "unbounded" } else { channel.mode().name() };
        self.add_source(Source::Channel { name: name.to_string(), mode, probe: channel.stats_probe() })
    }

    /// Publishes `group`'s spawn count, pending tasks, unjoined failures and
    /// skips, and cancellation under `group="<name>"`. The collector does not
    /// keep the group alive.
    pub fn register_group(&self, name: &str, group: &TaskGroup) -> Result<(), Error> {
        self.add_source(Source::Group { name: name.to_string(), probe: group.stats_probe() })
    }

    /// Stops publishing the runtime object registered under `name` (of any
    /// kind); false if there was none.
    pub fn unregister_runtime(&self, name: &str) -> bool {
        let mut sources = lock(&self.reg.sources);
        let before = sources.len();
        sources.retain(|s| s.name() != name);
        sources.len() != before
    }
}
