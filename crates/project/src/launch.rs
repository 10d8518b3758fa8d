//! `launch(spec) -> RunHandle`: a pipeline on a thread of its own, which its host (the CLI, a
//! web server with twenty of them) can watch and stop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use streamprep_connectors::{open_dead_letter, open_sink, open_source};
use streamprep_core::{DeadLetterSink, Sink, Source};
use streamprep_engine::{Event, Figures, PipelineConfig, RunState, Stamped, Stats, Summary};

use crate::plan::{Plan, SpecError};
use crate::spec::ProjectSpec;

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

/// A run, as its host sees it: cheap to clone, shared by every thread that watches it.
#[derive(Clone)]
pub struct RunHandle {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    name: String,
    stop: Arc<AtomicBool>,
    stats: Arc<Stats>,
    state: Mutex<RunState>,
    ended: Mutex<Option<Result<Summary, String>>>,
    changed: Condvar,
    started: Instant,
    live: AtomicBool,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("id", &self.inner.id)
            .field("name", &self.inner.name)
            .field("state", &self.state())
            .finish()
    }
}

/// Everything a status line, `/metrics` or a UI shows of a run, at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct View {
    /// The run's number in this process.
    pub id: u64,
    /// The project's name.
    pub name: String,
    /// Where the run is in its life.
    pub state: RunState,
    /// Seconds since launch.
    pub seconds: f64,
    /// Counters, rates, rho, service times, latency, backlog, links, buffer in force.
    #[serde(flatten)]
    pub figures: Figures,
}

/// Check `spec` and start it on a thread of its own. A spec that cannot run is refused here,
/// with every field that is wrong, before anything is opened or created; what fails while
/// opening (a port taken, a broker down) makes the run `failed`.
pub fn launch(spec: &ProjectSpec) -> Result<RunHandle, SpecError> {
    launch_plan(spec.plan()?)
}

/// [`launch`] a plan (a spec already checked, perhaps adjusted by its host).
pub fn launch_plan(plan: Plan) -> Result<RunHandle, SpecError> {
    let (handle, runner) = prepare(plan);
    std::thread::Builder::new()
        .name(format!("streamprep-run-{}", handle.inner.id))
        .spawn(move || runner.run())
        .map_err(|e| SpecError::field("project", format!("cannot start a thread: {e}")))?;
    Ok(handle)
}

/// A run not started yet: [`Runner::run`] runs it on the calling thread (a CLI runs its one
/// pipeline on the main thread this way, watching it through the handle from others).
pub struct Runner {
    handle: RunHandle,
    plan: Plan,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("run", &self.handle).finish()
    }
}

impl Runner {
    /// Open the endpoints and run to the end (or the stop), on this thread.
    pub fn run(self) {
        self.handle.run(self.plan);
    }
}

/// The handle of a run of `plan`, and the [`Runner`] that runs it where the host wants.
pub fn prepare(plan: Plan) -> (RunHandle, Runner) {
    let inner = Arc::new(Inner {
        id: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
        name: plan.name.clone(),
        stop: plan.config.stop.clone(),
        stats: Arc::new(Stats::default()),
        state: Mutex::new(RunState::Starting),
        ended: Mutex::new(None),
        changed: Condvar::new(),
        started: Instant::now(),
        live: AtomicBool::new(false),
    });
    inner.stats.events.push(Event::State {
        state: RunState::Starting,
    });
    crate::runlog::register(inner.id, &inner.stats);
    let handle = RunHandle { inner };
    (handle.clone(), Runner { handle, plan })
}

type Opened = (
    PipelineConfig,
    Box<dyn Source>,
    Box<dyn Sink>,
    Box<dyn DeadLetterSink>,
);

impl RunHandle {
    /// The run's number in this process (unique while it lives).
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Stop: no more is read (within a second, whatever the source); what was read is
    /// processed, the sinks are flushed, what reached them is acknowledged, and the run
    /// reports `finished`. Returns at once; [`RunHandle::wait`] waits for the end.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let mut st = self.lock_state();
        if matches!(*st, RunState::Starting | RunState::Running) {
            *st = RunState::Stopping;
            drop(st);
            self.inner.stats.events.push(Event::State {
                state: RunState::Stopping,
            });
        }
        self.inner.changed.notify_all();
    }

    /// Where the run is in its life.
    pub fn state(&self) -> RunState {
        self.lock_state().clone()
    }

    /// True when the source's rows arrive over time (MQTT, a paced replay), once opened.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Relaxed)
    }

    /// Everything the run shows at this moment.
    pub fn view(&self) -> View {
        View {
            id: self.inner.id,
            name: self.inner.name.clone(),
            state: self.state(),
            seconds: self.inner.started.elapsed().as_secs_f64(),
            figures: self.inner.stats.figures(),
        }
    }

    /// Rates and utilisation as of the last second's sample (a cheap part of the view: no
    /// percentiles are computed).
    pub fn live(&self) -> streamprep_engine::metrics::Live {
        self.inner.stats.metrics.live()
    }

    /// The run's events: those kept so far, then each new one until the run is over.
    pub fn events(&self) -> Receiver<Stamped> {
        self.inner.stats.events.subscribe()
    }

    /// The run's output rows sampled for live charts (at most
    /// [`streamprep_engine::TAP_ROWS_PER_S`] a second, NDJSON output only; sampled only while
    /// someone has joined the tap).
    pub fn tap(&self) -> &streamprep_engine::Tap {
        &self.inner.stats.tap
    }

    /// The run's events kept so far (state changes, log lines, links, first dead letters).
    pub fn recent_events(&self) -> Vec<Stamped> {
        self.inner.stats.events.recent()
    }

    /// The run's last dead letters (their reasons; the dead-letter output holds the data).
    pub fn dead_letters(&self) -> Vec<streamprep_engine::DeadLetterView> {
        self.inner.stats.events.last_dead_letters()
    }

    /// The run's metrics and counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        self.inner.stats.prometheus()
    }

    /// Wait for the end: the summary, or why the run failed.
    pub fn wait(&self) -> Result<Summary, String> {
        let mut ended = self.lock_ended();
        loop {
            if let Some(r) = ended.as_ref() {
                return r.clone();
            }
            ended = self
                .inner
                .changed
                .wait(ended)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// [`RunHandle::wait`], for at most `timeout`; `None` if the run goes on.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<Summary, String>> {
        let deadline = Instant::now() + timeout;
        let mut ended = self.lock_ended();
        loop {
            if let Some(r) = ended.as_ref() {
                return Some(r.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            ended = self
                .inner
                .changed
                .wait_timeout(ended, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, RunState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_ended(&self) -> std::sync::MutexGuard<'_, Option<Result<Summary, String>>> {
        self.inner.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_state(&self, state: RunState) {
        let mut st = self.lock_state();
        // a stop asked for while starting stays `stopping` until the end
        if *st == RunState::Stopping && state == RunState::Running {
            return;
        }
        *st = state.clone();
        drop(st);
        self.inner.stats.events.push(Event::State { state });
    }

    /// The run's thread.
    fn run(self, mut plan: Plan) {
        let span = tracing::info_span!("run", run = self.inner.id, project = %self.inner.name);
        let _entered = span.enter();
        let stats = self.inner.stats.clone();
        // the steps' state from the last run, in a file (a host may have given it otherwise)
        let state_file = plan
            .state_file
            .clone()
            .filter(|_| plan.config.state.is_none());
        if let Some(path) = &state_file {
            let saved = std::fs::read(path).ok();
            plan.config.state = Some(Arc::new(Mutex::new(saved)));
        }
        let slot = plan.config.state.clone();
        let result = match self.open(plan) {
            Err(e) => Err(e),
            Ok((cfg, mut src, mut sink, mut dl)) => {
                self.set_state(RunState::Running);
                streamprep_engine::run_with(
                    &cfg,
                    src.as_mut(),
                    sink.as_mut(),
                    Some(dl.as_mut()),
                    &stats,
                )
                .map_err(|e| format!("{e:#}"))
            }
        };
        if let (Some(path), Some(slot), Ok(_)) = (&state_file, &slot, &result) {
            let saved = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(bytes) = saved {
                match write_atomically(path, &bytes) {
                    Ok(()) => stats.info(format!(
                        "the steps' state is saved in {} for the next run",
                        path.display()
                    )),
                    Err(e) => stats.warn(format!(
                        "the steps' state could not be saved in {}: {e}",
                        path.display()
                    )),
                }
            }
        }
        match &result {
            Ok(_) => self.set_state(RunState::Finished),
            Err(reason) => self.set_state(RunState::Failed {
                reason: reason.clone(),
            }),
        }
        stats.events.close();
        *self.lock_ended() = Some(result);
        self.inner.changed.notify_all();
    }

    /// Connect the queue, open the source, the sink and the dead-letter output.
    fn open(&self, plan: Plan) -> Result<Opened, String> {
        let Plan {
            mut config,
            source,
            sink,
            dead_letter,
            options,
            rate,
            queue,
            ..
        } = plan;
        if let Some((url, (lz4, auto_lz4))) = queue {
            let mut q = streamprep_queue::Queue::new(&url).map_err(|e| format!("broker: {e}"))?;
            q.lz4 = lz4;
            q.auto_lz4 = auto_lz4;
            config.remote = Some(Arc::new(q));
        }
        let mut src = open_source(&source, options.clone())
            .map_err(|e| format!("opening the source: {e}"))?;
        if let Some(steps) = rate {
            if src.is_live() {
                return Err(
                    "rate: a replay rate is for a file, stdin or a PostgreSQL range; this source sets its own pace"
                        .into(),
                );
            }
            src = Box::new(streamprep_connectors::paced::Paced::stepped(
                src,
                steps,
                options.stop.clone(),
            ));
        }
        self.inner.live.store(src.is_live(), Ordering::Relaxed);
        if let Some(line) = source.opened() {
            self.inner.stats.info(line);
        }
        let sink = open_sink(&sink, &options).map_err(|e| format!("opening the sink: {e}"))?;
        let dl = open_dead_letter(&dead_letter)
            .map_err(|e| format!("opening the dead-letter output: {e}"))?;
        Ok((config, src, sink, dl))
    }
}

/// Write `bytes` to `path` through a file beside it, renamed over it: a crash leaves the old
/// or the new, never half of one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
